"""The kiosk's configuration: one TOML file, validated whole at load.

Where it comes from: ``--config FILE``, else ``$KIOSK_CONFIG``, else
``/etc/pickup-kiosk/kiosk.toml``. Every key has a type, a range and a
default (see ``kiosk/example.toml``); an unknown key or a bad value raises
:class:`ConfigError` naming the file, the key and what is expected, with a
"did you mean" for misspellings.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiosk.errors import ConfigError
from protocol.keys import Keyring, parse_public_key
from protocol.settings import (
    SettingsProblem,
    build_section,
    choice,
    described,
    did_you_mean,
    help_texts,
    in_range,
    meta,
    parse_toml,
    resolve,
)

DEFAULT_PATH = Path("/etc/pickup-kiosk/kiosk.toml")
SERVICE_USER = "pickup-kiosk"
ENV_VAR = "KIOSK_CONFIG"

SITE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
HHMM_RE = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])$")


_meta = meta
_range = in_range
_choice = choice
_did_you_mean = did_you_mean


def _site_slug(v: Any) -> str | None:
    return None if SITE_RE.match(v) else "a slug of a-z, 0-9 and '-' (at most 64), like 'shop-01'"


def _hhmm(v: Any) -> str | None:
    m = HHMM_RE.match(v)
    if not m or (m.group(1) == "24" and m.group(2) != "00"):
        return 'a time of day as "HH:MM" (00:00 to 24:00)'
    return None


def _pins(v: Any) -> str | None:
    if not all(isinstance(p, int) and 0 <= p <= 27 for p in v):
        return "a list of BCM GPIO numbers from 0 to 27"
    return None


@dataclass(frozen=True)
class SiteConfig:
    id: str = field(
        default="demo-site", metadata=_meta("the site slug of docs/protocol.md", _site_slug)
    )
    name: str = field(default="", metadata=_meta("name shown on the idle screen"))
    contact: str = field(default="", metadata=_meta("owner's contact line shown on screens"))
    pickup_no_width: int = field(
        default=3, metadata=_meta("digits in a pickup number", _range(1, 6))
    )
    timezone: str = field(
        default="", metadata=_meta("IANA zone for the schedule and screens; empty: system")
    )


@dataclass(frozen=True)
class StoreConfig:
    path: str = field(
        default="/var/lib/pickup-kiosk/kiosk.db", metadata=_meta("the SQLite database file")
    )
    order_retention_days: float = field(
        default=30,
        metadata=_meta("keep collected/cancelled/expired orders this long", _range(0, 3650)),
    )
    event_retention_days: float = field(
        default=90, metadata=_meta("keep acknowledged events this long", _range(1, 3650))
    )
    busy_timeout_ms: int = field(
        default=5000,
        metadata=_meta("wait this long for the other process's write", _range(100, 60000)),
    )
    max_purge_fraction: float = field(
        default=0.25,
        metadata=_meta(
            "refuse a retention pass that would delete more than this share of the "
            "orders, events or log records at once",
            _range(0.01, 1),
        ),
    )
    reserve_kb: int = field(
        default=2048,
        metadata=_meta(
            "space kept in reserve for the door's writes when the card fills up (0: none)",
            _range(0, 1048576),
        ),
    )


@dataclass(frozen=True)
class TrustConfig:
    hub_keys: tuple[str, ...] = field(
        default=(), metadata=_meta("public keys that may sign orders")
    )
    owner_keys: tuple[str, ...] = field(
        default=(), metadata=_meta("public keys that may sign orders and commands")
    )
    auditor_keys: tuple[str, ...] = field(
        default=(), metadata=_meta("public keys that may sign the logs and sync commands only")
    )
    allow_unsigned: bool = field(
        default=False, metadata=_meta("accept unsigned documents (lab bench only)")
    )

    def keyring(self) -> Keyring:
        """The trusted keys with their roles (validated at load)."""
        return Keyring(self.hub_keys, self.owner_keys, self.auditor_keys)


@dataclass(frozen=True)
class MqttConfig:
    url: str = field(default="", metadata=_meta("mqtt://host:port or mqtts://host:port"))
    username: str = field(default="", metadata=_meta("broker user name"))
    password: str = field(default="", metadata=_meta("broker password", secret=True))
    ca_file: str = field(default="", metadata=_meta("CA bundle for mqtts (empty: system CAs)"))
    cert_file: str = field(default="", metadata=_meta("client certificate for mqtts"))
    key_file: str = field(default="", metadata=_meta("client key for mqtts", secret=False))
    client_id: str = field(default="", metadata=_meta("MQTT client id (empty: kiosk-<site>)"))
    keepalive_s: int = field(default=60, metadata=_meta("MQTT keepalive", _range(5, 3600)))
    inflight: int = field(
        default=50, metadata=_meta("unacknowledged messages at once", _range(1, 1000))
    )
    log_level: str = field(
        default="INFO",
        metadata=_meta("lowest log level published", _choice("DEBUG", "INFO", "WARNING", "ERROR")),
    )
    log_rate_per_min: int = field(
        default=120, metadata=_meta("log records queued per minute at most", _range(1, 100000))
    )
    will_delay_s: int = field(
        default=60,
        metadata=_meta(
            "the broker waits this long before publishing the kiosk's offline will "
            "(a kiosk back sooner keeps its last status)",
            _range(0, 3600),
        ),
    )


@dataclass(frozen=True)
class CodesConfig:
    totp_window: int = field(
        default=1, metadata=_meta("steps accepted either side of the current one", _range(0, 3))
    )
    reentry_grace_s: float = field(
        default=600,
        metadata=_meta("a collected order's code still opens this long", _range(0, 86400)),
    )
    backup_codes: bool = field(
        default=True, metadata=_meta("honour orders' backup_code (HOTP counter 0)")
    )


@dataclass(frozen=True)
class ThrottleConfig:
    number_free_failures: int = field(
        default=3, metadata=_meta("failures per pickup number before backoff", _range(1, 10))
    )
    number_base_s: float = field(
        default=60, metadata=_meta("first per-number backoff, doubling", _range(1, 3600))
    )
    number_max_s: float = field(
        default=3600, metadata=_meta("longest per-number backoff", _range(1, 86400))
    )
    keypad_burst: int = field(
        default=10, metadata=_meta("failures the keypad absorbs at once", _range(1, 100))
    )
    keypad_refill_s: float = field(
        default=3600,
        metadata=_meta("one more failure allowed every this many seconds", _range(10, 86400)),
    )
    full_code_burst: int = field(
        default=10,
        metadata=_meta("full 8-digit entries the keypad absorbs at once", _range(1, 100)),
    )
    full_code_refill_s: float = field(
        default=300,
        metadata=_meta("one more full 8-digit entry every this many seconds", _range(10, 86400)),
    )
    night_hours: float = field(
        default=12, metadata=_meta("length of the night used for the security bound", _range(1, 24))
    )


@dataclass(frozen=True)
class LockConfig:
    release_s: float = field(
        default=5, metadata=_meta("relay pulse: how long the door stays unlocked", _range(3, 30))
    )
    held_open_s: float = field(
        default=60, metadata=_meta("alarm when the door stays open this long", _range(5, 3600))
    )
    max_energized_s: float = field(
        default=0,
        metadata=_meta("hard cap on one relay energization (0: release_s + 1)", _range(0, 60)),
    )


@dataclass(frozen=True)
class ScheduleConfig:
    day_mode: str = field(
        default="off",
        metadata=_meta(
            "staffed hours: off (codes always), free_entry (# opens), unlocked",
            _choice("off", "free_entry", "unlocked"),
        ),
    )
    day_start: str = field(default="08:00", metadata=_meta("staffed hours start", _hhmm))
    day_end: str = field(default="24:00", metadata=_meta("staffed hours end", _hhmm))


@dataclass(frozen=True)
class ClockConfig:
    trust_system_clock: str = field(
        default="auto",
        metadata=_meta(
            "auto: trust when NTP or a signed hub time confirms it; always; never",
            _choice("auto", "always", "never"),
        ),
    )


@dataclass(frozen=True)
class HardwareConfig:
    board: str = field(default="gpio", metadata=_meta("gpio or sim", _choice("gpio", "sim")))
    relay_pin: int = field(default=17, metadata=_meta("BCM pin of the lock relay", _range(0, 27)))
    relay_active_high: bool = field(default=True, metadata=_meta("relay energizes on a high pin"))
    door_pin: int = field(
        default=27, metadata=_meta("BCM pin of the door reed switch", _range(0, 27))
    )
    door_closed_is_low: bool = field(
        default=True, metadata=_meta("reed switch pulls the pin low when the door is closed")
    )
    exit_pin: int = field(
        default=22, metadata=_meta("BCM pin of the inside exit button", _range(0, 27))
    )
    buzzer_pin: int = field(default=23, metadata=_meta("BCM pin of the buzzer", _range(0, 27)))
    led_pin: int = field(default=24, metadata=_meta("BCM pin of the status LED", _range(0, 27)))
    keypad: str = field(
        default="matrix",
        metadata=_meta("matrix, keyboard or none", _choice("matrix", "keyboard", "none")),
    )
    keypad_rows: tuple[int, ...] = field(
        default=(5, 6, 13, 19), metadata=_meta("BCM pins of the keypad rows", _pins)
    )
    keypad_cols: tuple[int, ...] = field(
        default=(12, 16, 20), metadata=_meta("BCM pins of the keypad columns (3 or 4)", _pins)
    )
    debounce_s: float = field(
        default=0.02, metadata=_meta("debounce time for buttons and keys", _range(0.001, 0.5))
    )


@dataclass(frozen=True)
class DisplayConfig:
    enabled: bool = field(default=True, metadata=_meta("draw the shelf display"))
    language: str = field(default="zh", metadata=_meta("zh or en", _choice("zh", "en")))
    width: int = field(default=800, metadata=_meta("pixels", _range(320, 7680)))
    height: int = field(default=480, metadata=_meta("pixels", _range(240, 4320)))
    rotation: int = field(
        default=0,
        metadata=_meta(
            "0, 90, 180 or 270", lambda v: None if v in (0, 90, 180, 270) else "0, 90, 180 or 270"
        ),
    )
    fullscreen: bool = field(default=False, metadata=_meta("take the whole screen"))
    driver: str = field(
        default="", metadata=_meta("SDL video driver (kmsdrm, x11, wayland, dummy; empty: auto)")
    )
    font: str = field(
        default="", metadata=_meta("a CJK font file (empty: search the usual places)")
    )


def _colour(v: Any) -> str | None:
    return None if re.fullmatch(r"#[0-9A-Fa-f]{6}", v) else 'a colour as "#RRGGBB", like "#00FF40"'


@dataclass(frozen=True)
class VoiceConfig:
    enabled: bool = field(
        default=True, metadata=_meta("speak a short prompt for each screen, in its language")
    )
    volume: float = field(default=0.8, metadata=_meta("prompt volume, 0 to 1", _range(0, 1)))
    quiet_start: str = field(
        default="00:00", metadata=_meta("quiet hours start (equal to quiet_end: none)", _hhmm)
    )
    quiet_end: str = field(default="00:00", metadata=_meta("quiet hours end", _hhmm))
    quiet_volume: float = field(
        default=0.0, metadata=_meta("volume in quiet hours (0: silent)", _range(0, 1))
    )
    dir: str = field(
        default="/opt/pickup-kiosk/voice",
        metadata=_meta("the prompt files `kiosk voice build` wrote"),
    )


#: GPIO lines of SPI0 (CE1, CE0, MISO, MOSI, SCLK): the LED strip's data leaves on MOSI.
SPI0_PINS = (7, 8, 9, 10, 11)
SLOT_NAME_MAX = 16  # protocol.orders.SLOT_LEN
SLOT_LEDS_MAX = 1000


@dataclass(frozen=True)
class SlotLightConfig:
    enabled: bool = field(
        default=True, metadata=_meta("light the order's slot; off while [slots] is empty")
    )
    leds: int = field(
        default=0,
        metadata=_meta("LEDs on the strip (0: the highest in [slots] + 1)", _range(0, 1000)),
    )
    brightness: float = field(
        default=0.5, metadata=_meta("strip brightness, 0.05 to 1", _range(0.05, 1))
    )
    colour: str = field(default="#00FF40", metadata=_meta("the lit slot's colour", _colour))
    order: str = field(
        default="GRB",
        metadata=_meta(
            "the strip's colour order (WS2812B: GRB)",
            _choice("GRB", "RGB", "BRG", "RBG", "GBR", "BGR"),
        ),
    )


def slot_key(name: str) -> str:
    """How slot names compare: case and runs of spaces do not matter ("b 3" is "B 3")."""
    return " ".join(name.split()).casefold()


@dataclass(frozen=True)
class LogConfig:
    level: str = field(
        default="INFO",
        metadata=_meta("log level on stderr", _choice("DEBUG", "INFO", "WARNING", "ERROR")),
    )


@dataclass(frozen=True)
class Config:
    site: SiteConfig = field(default_factory=SiteConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    trust: TrustConfig = field(default_factory=TrustConfig)
    mqtt: MqttConfig | None = None
    codes: CodesConfig = field(default_factory=CodesConfig)
    throttle: ThrottleConfig = field(default_factory=ThrottleConfig)
    lock: LockConfig = field(default_factory=LockConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    log: LogConfig = field(default_factory=LogConfig)
    voice: VoiceConfig = field(default_factory=VoiceConfig)
    slot_light: SlotLightConfig = field(default_factory=SlotLightConfig)
    # [slots]: slot name -> LED indexes on the strip, in file order.
    slots: tuple[tuple[str, tuple[int, ...]], ...] = ()
    source: str = "<defaults>"

    def slot_leds(self) -> dict[str, tuple[int, ...]]:
        """The slot map keyed by :func:`slot_key`; empty when the slot light is off."""
        if not self.slot_light.enabled:
            return {}
        return {slot_key(name): leds for name, leds in self.slots}

    def strip_length(self) -> int:
        """LEDs on the strip: ``[slot_light] leds``, or just enough for the map."""
        if self.slot_light.leds:
            return self.slot_light.leds
        return max((i for _, leds in self.slots for i in leds), default=-1) + 1

    def replace(self, section: str, **changes: Any) -> Config:
        """A copy with some keys of one section changed (used by the simulator and tests)."""
        current = getattr(self, section) or _SECTIONS[section]()
        return dataclasses.replace(self, **{section: dataclasses.replace(current, **changes)})


_SECTIONS: dict[str, type[Any]] = {
    "site": SiteConfig,
    "store": StoreConfig,
    "trust": TrustConfig,
    "mqtt": MqttConfig,
    "codes": CodesConfig,
    "throttle": ThrottleConfig,
    "lock": LockConfig,
    "schedule": ScheduleConfig,
    "clock": ClockConfig,
    "hardware": HardwareConfig,
    "display": DisplayConfig,
    "log": LogConfig,
    "voice": VoiceConfig,
    "slot_light": SlotLightConfig,
}
#: Sections of free keys, parsed by their own function.
_FREE_SECTIONS = ("slots",)


def from_mapping(
    data: Mapping[str, Any], source: str = "<config>", problems: list[str] | None = None
) -> Config:
    """Validate a parsed TOML document into a Config.

    Raises ConfigError at the first problem; with ``problems`` given, every
    problem is appended there instead and the returned Config keeps the
    defaults for what was wrong.
    """
    kwargs: dict[str, Any] = {}
    for name, table in data.items():
        if name == "slots":
            kwargs[name] = _build_slots(source, table, problems)
            continue
        if name not in _SECTIONS:
            known = [*_SECTIONS, *_FREE_SECTIONS]
            message = (
                f"{source}: unknown section [{name}]{_did_you_mean(name, known)}; "
                f"sections are: {', '.join(known)}"
            )
            if problems is None:
                raise ConfigError(message)
            problems.append(message)
            continue
        try:
            kwargs[name] = build_section(source, name, _SECTIONS[name], table, problems)
        except SettingsProblem as err:
            raise ConfigError(str(err)) from None
    cfg = Config(source=source, **kwargs)
    whole = _whole_problems(cfg)
    if whole and problems is None:
        raise ConfigError(whole[0])
    if problems is not None:
        problems.extend(whole)
    return cfg


def _build_slots(
    src: str, table: Any, problems: list[str] | None
) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """``[slots]``: ``B3 = 17`` or ``B3 = [17, 18]`` (LED indexes from 0); bad
    entries are named (and, with ``problems``, left out)."""

    def bad(message: str) -> None:
        if problems is None:
            raise ConfigError(message)
        problems.append(message)

    if not isinstance(table, dict):
        bad(f"{src}: [slots] must be a table of slot = LED, like B3 = 17")
        return ()
    out: list[tuple[str, tuple[int, ...]]] = []
    for name, value in table.items():
        shown = f"slots.{name!r}" if not name.isidentifier() else f"slots.{name}"
        if not name.strip() or len(name) > SLOT_NAME_MAX or not name.isprintable():
            bad(f"{src}: {shown} is not a slot name: 1 to {SLOT_NAME_MAX} printable characters")
            continue
        leds = value if isinstance(value, list) else [value]
        if (
            not leds
            or len(leds) > 64
            or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < SLOT_LEDS_MAX
                for i in leds
            )
        ):
            bad(
                f"{src}: {shown} = {value!r} is not valid: expected an LED number from 0 to "
                f"{SLOT_LEDS_MAX - 1}, or a list of 1 to 64 of them, like [17, 18]"
            )
            continue
        out.append((name, tuple(leds)))
    return tuple(out)


def _slot_problems(cfg: Config) -> list[str]:
    """A slot map that would light the wrong shelf is refused whole."""
    src = cfg.source
    out: list[str] = []
    owner: dict[int, str] = {}
    names: dict[str, str] = {}
    for name, leds in cfg.slots:
        other = names.setdefault(slot_key(name), name)
        if other != name:
            out.append(f"{src}: [slots] names one slot twice: {other!r} and {name!r}")
        for i in leds:
            first = owner.setdefault(i, name)
            if first != name:
                out.append(
                    f"{src}: [slots] gives LED {i} to both {first!r} and {name!r}: "
                    "each LED lights one slot only"
                )
            if cfg.slot_light.leds and i >= cfg.slot_light.leds:
                out.append(
                    f"{src}: slots.{name} uses LED {i}, but slot_light.leds = "
                    f"{cfg.slot_light.leds} (LEDs are numbered from 0)"
                )
    if cfg.slots and cfg.slot_light.enabled:
        hw = cfg.hardware
        used = [hw.relay_pin, hw.door_pin, hw.exit_pin, hw.buzzer_pin, hw.led_pin]
        if hw.keypad == "matrix":
            used += list(hw.keypad_rows) + list(hw.keypad_cols)
        clash = sorted(set(used) & set(SPI0_PINS))
        if clash:
            out.append(
                f"{src}: [hardware] uses GPIO {clash}, which the LED strip's SPI0 needs "
                "(data on GPIO 10); move those devices or set slot_light.enabled = false"
            )
    return out


def _whole_problems(cfg: Config) -> list[str]:
    """Rules across keys; every problem, in order."""
    src = cfg.source
    out: list[str] = []
    if cfg.mqtt is not None:
        url = cfg.mqtt.url
        if not re.match(r"^mqtts?://[^/:\s]+(:\d{1,5})?/?$", url):
            out.append(
                f"{src}: mqtt.url = {url!r} is not valid: expected mqtt://host[:port] or "
                "mqtts://host[:port] (remove the [mqtt] section to run offline)"
            )
    if len(cfg.hardware.keypad_cols) not in (3, 4) or len(cfg.hardware.keypad_rows) != 4:
        out.append(
            f"{src}: hardware.keypad_rows must list 4 pins and hardware.keypad_cols 3 or 4 "
            "(a 3x4 or 4x4 keypad)"
        )
    pins = [
        cfg.hardware.relay_pin,
        cfg.hardware.door_pin,
        cfg.hardware.exit_pin,
        cfg.hardware.buzzer_pin,
        cfg.hardware.led_pin,
    ]
    if cfg.hardware.keypad == "matrix":
        pins += list(cfg.hardware.keypad_rows) + list(cfg.hardware.keypad_cols)
    dupes = sorted({p for p in pins if pins.count(p) > 1})
    if dupes:
        out.append(f"{src}: [hardware] uses GPIO {dupes} for more than one device")
    for key_name in ("hub_keys", "owner_keys", "auditor_keys"):
        for i, text in enumerate(getattr(cfg.trust, key_name)):
            try:
                parse_public_key(text)
            except ValueError as exc:
                out.append(
                    f"{src}: trust.{key_name}[{i}] is not valid: expected the unpadded "
                    f"base64url of a 32-byte Ed25519 public key ({exc}); `kioskctl keygen` "
                    "prints one"
                )
    if cfg.site.timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(cfg.site.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            out.append(
                f"{src}: site.timezone = {cfg.site.timezone!r} is not valid: expected an IANA "
                'zone like "Asia/Shanghai"'
            )
    out += _slot_problems(cfg)
    return out


def resolve_path(explicit: str | os.PathLike[str] | None) -> Path:
    return resolve(explicit, os.environ.get(ENV_VAR), DEFAULT_PATH)


def read(explicit: str | os.PathLike[str] | None = None) -> tuple[Path, dict[str, Any]]:
    """The config file's path and parsed TOML; raises ConfigError.

    A file the user cannot read says how to read it as the service user.
    """
    path = resolve_path(explicit)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file (give --config FILE or set ${ENV_VAR}; "
            "kiosk/example.toml is a commented example)"
        ) from None
    except PermissionError:
        raise ConfigError(
            f"{path}: permission denied: the config holds secrets and is readable by the "
            f"service only; run as it: sudo -u {SERVICE_USER} kiosk ... (for example "
            f"`sudo -u {SERVICE_USER} kiosk doctor`)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        return path, parse_toml(path, raw)
    except SettingsProblem as err:
        raise ConfigError(str(err)) from None


def load(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate the config file (see module doc for where from).

    Raises ConfigError for a missing, unreadable or invalid file.
    """
    path, data = read(explicit)
    return from_mapping(data, str(path))


def load_all(
    explicit: str | os.PathLike[str] | None = None,
) -> tuple[Config | None, list[str]]:
    """Every problem of the config file at once, and a Config with the
    defaults where keys were wrong (None when the file cannot be read)."""
    try:
        path, data = read(explicit)
    except ConfigError as err:
        return None, [str(err)]
    problems: list[str] = []
    return from_mapping(data, str(path), problems), problems


def describe(cfg: Config) -> dict[str, Any]:
    """The effective configuration as plain data, secrets masked."""
    out: dict[str, Any] = {"source": cfg.source}
    for name in _SECTIONS:
        section = getattr(cfg, name)
        if section is not None:
            out[name] = described(section)
    if cfg.slots:
        out["slots"] = {name: list(leds) for name, leds in cfg.slots}
    return out


def section_help() -> dict[str, dict[str, str]]:
    """Key help texts, for docs and ``kiosk config keys``."""
    return help_texts(_SECTIONS)


def relay_fallback(explicit: str | os.PathLike[str] | None = None) -> HardwareConfig:
    """The relay settings for ``kiosk relock`` even when the file is invalid.

    Relocking must not depend on the rest of the config being right: read
    what can be read of [hardware] and use the defaults for the rest.
    """
    try:
        data = tomllib.loads(resolve_path(explicit).read_text("utf-8"))
        table = data.get("hardware", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        table = {}
    kwargs: dict[str, Any] = {}
    if isinstance(table, dict):
        pin = table.get("relay_pin")
        if isinstance(pin, int) and not isinstance(pin, bool) and 0 <= pin <= 27:
            kwargs["relay_pin"] = pin
        if isinstance(table.get("relay_active_high"), bool):
            kwargs["relay_active_high"] = table["relay_active_high"]
        if table.get("board") in ("gpio", "sim"):
            kwargs["board"] = table["board"]
    return HardwareConfig(**kwargs)
