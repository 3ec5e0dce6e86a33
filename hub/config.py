"""hub.toml: the hub's one configuration file, validated whole at load.

Where it comes from: ``--config FILE``, else ``$PICKUP_HUB_CONFIG``, else
``/etc/pickup-hub/hub.toml``. Every key has a type, a range and a default
(``hub/example.toml`` shows them all); an unknown key or a bad value raises
:class:`hub.errors.ConfigError` naming the file, the key and what is
expected, with a "did you mean" for misspellings. Secrets (the broker
password, notification URLs, which carry bot tokens) are never echoed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hub.errors import ConfigError, RequestError
from protocol.settings import (
    SettingsProblem,
    build_section,
    choice,
    described,
    did_you_mean,
    in_range,
    meta,
    parse_toml,
    resolve,
)
from protocol.topics import valid_site

DEFAULT_PATH = Path("/etc/pickup-hub/hub.toml")
ENV_VAR = "PICKUP_HUB_CONFIG"
_LISTEN_RE = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})\Z")
_MQTT_URL_RE = re.compile(r"^mqtts?://[^/:\s@]+(:\d{1,5})?/?\Z")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*\Z")

_meta = meta
_range = in_range
_choice = choice


def _listen(v: Any) -> str | None:
    m = _LISTEN_RE.match(v)
    if not m or not 1 <= int(m.group(2)) <= 65535:
        return 'HOST:PORT like "127.0.0.1:8080"'
    return None


def _public_url(v: Any) -> str | None:
    if v and not re.match(r"^https?://[^\s/]+(/[^\s]*)?\Z", v):
        return 'empty or an http(s) URL like "https://shop.example" (no trailing spaces)'
    return None


def _mqtt_url(v: Any) -> str | None:
    m = _MQTT_URL_RE.match(v)
    if not m or (m.group(1) and not 1 <= int(m.group(1)[1:]) <= 65535):
        # (a port out of range once passed, and every connect then failed)
        return "mqtt://host[:port] or mqtts://host[:port], the port from 1 to 65535"
    return None


def _site_id(v: Any) -> str | None:
    return None if valid_site(v) else "a slug of a-z, 0-9 and '-' (at most 64), like 'shop-01'"


def _prefix(v: Any) -> str | None:
    return None if _PREFIX_RE.match(v) else "topic levels of A-Z, a-z, 0-9, '_' and '-'"


def _urls(v: Any) -> str | None:
    for url in v:
        if "://" not in url or len(url) > 2000:
            return 'a list of Apprise URLs like "json://127.0.0.1:9000/hook"'
    return None


def _timezone(v: Any) -> str | None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        return 'an IANA time zone like "Asia/Shanghai"'
    return None


def _client_id(v: Any) -> str | None:
    ok = re.match(r"^[A-Za-z0-9_.-]{1,64}\Z", v)
    return None if ok else "1 to 64 of A-Z, a-z, 0-9, '_', '.', '-'"


@dataclass(frozen=True)
class HubSection:
    listen: str = field(
        default="127.0.0.1:8080", metadata=_meta("HTTP address: JSON API and console", _listen)
    )
    archive: str = field(
        default="/var/lib/pickup-hub/hub.db", metadata=_meta("the archive: one SQLite file")
    )
    public_url: str = field(
        default="",
        metadata=_meta("base of customer links (empty: http://LISTEN)", _public_url),
    )
    log_level: str = field(
        default="INFO",
        metadata=_meta("log level on stderr", _choice("DEBUG", "INFO", "WARNING", "ERROR")),
    )

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.listen}").rstrip("/")

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True)
class KeysSection:
    hub_key: str = field(
        default="/etc/pickup-hub/hub.key", metadata=_meta("PEM Ed25519 key that signs orders")
    )
    auditor_key: str = field(
        default="/etc/pickup-hub/auditor.key",
        metadata=_meta("PEM Ed25519 key that signs logs and sync commands only"),
    )


@dataclass(frozen=True)
class MqttSection:
    url: str = field(default="mqtt://127.0.0.1:1883", metadata=_meta("the broker", _mqtt_url))
    username: str = field(default="", metadata=_meta("broker user name"))
    password: str = field(default="", metadata=_meta("broker password", secret=True))
    client_id: str = field(
        default="pickup-hub",
        metadata=_meta("MQTT client id; keep it stable (the broker's session)", _client_id),
    )
    ca_file: str = field(default="", metadata=_meta("CA bundle for mqtts (empty: system CAs)"))
    keepalive_s: int = field(default=60, metadata=_meta("MQTT keepalive", _range(5, 3600)))
    session_expiry_s: int = field(
        default=7 * 86400,
        metadata=_meta("how long the broker queues for an offline hub", _range(60, 2**32 - 1)),
    )


@dataclass(frozen=True)
class SiteSection:
    id: str = field(default="", metadata=_meta("the site slug (the kiosk's site.id)", _site_id))
    name: str = field(default="", metadata=_meta("the shop's name, for people"))
    language: str = field(default="zh", metadata=_meta("alerts in zh or en", _choice("zh", "en")))
    pickup_no_width: int = field(
        default=3, metadata=_meta("digits in a pickup number (the kiosk's)", _range(1, 6))
    )
    offline_alert_s: float = field(
        default=600, metadata=_meta("alert when offline this long", _range(10, 7 * 86400))
    )
    order_expiry_days: float = field(
        default=7, metadata=_meta("an order's expires_at, from creation", _range(0.01, 365))
    )
    timezone: str = field(
        default="Asia/Shanghai",
        metadata=_meta("the kiosk's site.timezone: times on the console", _timezone),
    )
    code_digits: int = field(
        default=8,
        metadata=_meta(
            "one-time code digits: 8 lets a kiosk ask for the full code after a vandal, "
            "customers normally type the last 6",
            _range(6, 8),
        ),
    )


@dataclass(frozen=True)
class AlertsSection:
    urls: tuple[str, ...] = field(
        default=(), metadata=_meta("Apprise notification URLs", _urls, secret=True)
    )
    hold_down_s: float = field(
        default=60,
        metadata=_meta("a condition must hold this long to alert or clear", _range(0, 3600)),
    )
    refused_burst: int = field(
        default=10, metadata=_meta("refused codes in the window that alert", _range(2, 10000))
    )
    refused_window_s: float = field(
        default=600, metadata=_meta("window for refused codes", _range(10, 86400))
    )
    gap_alert_s: float = field(
        default=600, metadata=_meta("alert when a gap is not filled this long", _range(10, 86400))
    )


@dataclass(frozen=True)
class GapsSection:
    grace_s: float = field(
        default=5, metadata=_meta("wait this long before fetching a gap", _range(0, 3600))
    )
    retry_max_s: float = field(
        default=300, metadata=_meta("longest pause between fetch attempts", _range(1, 86400))
    )
    result_timeout_s: float = field(
        default=60, metadata=_meta("a fetch with no answer this long is retried", _range(1, 3600))
    )


@dataclass(frozen=True)
class LimitsSection:
    early_events_per_site: int = field(
        default=20000,
        metadata=_meta(
            "events held after a gap, per site (more are fetched later)", _range(10, 10**7)
        ),
    )
    site_bytes: int = field(
        default=2 * 1024**3,
        metadata=_meta("archive bytes per site before it refuses more", _range(10**5, 2**50)),
    )
    log_records_per_site: int = field(
        default=10000, metadata=_meta("kiosk log records kept per site", _range(0, 10**7))
    )
    rejections_per_site: int = field(
        default=100,
        metadata=_meta("rejected messages kept as evidence, per site", _range(0, 10**6)),
    )


@dataclass(frozen=True)
class HomeAssistantSection:
    enabled: bool = field(
        default=False, metadata=_meta("publish MQTT discovery for Home Assistant")
    )
    discovery_prefix: str = field(
        default="homeassistant", metadata=_meta("Home Assistant's discovery prefix", _prefix)
    )
    state_prefix: str = field(
        default="pickup-hub", metadata=_meta("where the hub publishes sites' state", _prefix)
    )


@dataclass(frozen=True)
class ApiSection:
    max_body_bytes: int = field(
        default=65536, metadata=_meta("largest request body", _range(1024, 16 * 1024**2))
    )
    max_list: int = field(
        default=1000, metadata=_meta("most orders one list request returns", _range(1, 100000))
    )


@dataclass(frozen=True)
class ConsoleSection:
    session_days: float = field(
        default=30,
        metadata=_meta("a console login lasts at most this long", _range(0.01, 365)),
    )
    idle_days: float = field(
        default=7,
        metadata=_meta("a console session unused this long ends", _range(0.01, 365)),
    )
    secret_file: str = field(
        default="",
        metadata=_meta(
            "the key that signs session cookies, made once, 0600 (empty: console.secret "
            "beside the archive)"
        ),
    )
    trust_forwarded_for: bool = field(
        default=False,
        metadata=_meta(
            "behind a reverse proxy on this host: take the client address from "
            "X-Forwarded-For (login limits per address)"
        ),
    )
    hub_holds_owner_key: bool = field(
        default=False,
        metadata=_meta(
            "RISK: let the hub sign remote unlocks with owner_key (for phones without "
            "Ed25519 in the browser); a stolen hub can then open every door"
        ),
    )
    owner_key: str = field(
        default="",
        metadata=_meta("PEM Ed25519 owner key the hub signs unlocks with (see above)"),
    )

    @property
    def hub_signs(self) -> bool:
        return self.hub_holds_owner_key and bool(self.owner_key)


@dataclass(frozen=True)
class Config:
    hub: HubSection = field(default_factory=HubSection)
    keys: KeysSection = field(default_factory=KeysSection)
    mqtt: MqttSection = field(default_factory=MqttSection)
    sites: tuple[SiteSection, ...] = ()
    alerts: AlertsSection = field(default_factory=AlertsSection)
    gaps: GapsSection = field(default_factory=GapsSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    homeassistant: HomeAssistantSection = field(default_factory=HomeAssistantSection)
    api: ApiSection = field(default_factory=ApiSection)
    console: ConsoleSection = field(default_factory=ConsoleSection)
    source: str = "<defaults>"

    def site(self, site_id: str) -> SiteSection | None:
        for s in self.sites:
            if s.id == site_id:
                return s
        return None

    def require_site(self, site_id: str) -> SiteSection:
        """The site, or a RequestError (404) naming it: for the API and the console."""
        section = self.site(site_id)
        if section is None:
            raise RequestError(f"no site {site_id!r} in hub.toml", "site", 404)
        return section

    @property
    def site_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.sites)


_TABLES: dict[str, type[Any]] = {
    "hub": HubSection,
    "keys": KeysSection,
    "mqtt": MqttSection,
    "alerts": AlertsSection,
    "gaps": GapsSection,
    "limits": LimitsSection,
    "homeassistant": HomeAssistantSection,
    "api": ApiSection,
    "console": ConsoleSection,
}
_ALL = [*_TABLES, "site"]
T = TypeVar("T")


def _section(src: str, name: str, cls: type[T], table: Any) -> T:
    try:
        return build_section(src, name, cls, table)
    except SettingsProblem as err:
        raise ConfigError(str(err)) from None


def from_mapping(data: Mapping[str, Any], source: str = "<config>") -> Config:
    """Validate a parsed TOML document into a Config (raises ConfigError)."""
    kwargs: dict[str, Any] = {}
    for name, table in data.items():
        if name == "site":
            kwargs["sites"] = _sites(source, table)
        elif name in _TABLES:
            kwargs[name] = _section(source, name, _TABLES[name], table)
        else:
            raise ConfigError(
                f"{source}: unknown section [{name}]{did_you_mean(name, _ALL)}; "
                f"sections are: {', '.join(_ALL)} (sites are [[site]] tables)"
            )
    cfg = Config(source=source, **kwargs)
    c = cfg.console
    if c.hub_holds_owner_key != bool(c.owner_key):
        raise ConfigError(
            f"{source}: console.hub_holds_owner_key and console.owner_key go together: set both "
            "to let the hub sign unlocks (a risk, docs/hub.md), or neither"
        )
    return cfg


def _sites(src: str, value: Any) -> tuple[SiteSection, ...]:
    if not isinstance(value, list):
        raise ConfigError(
            f'{src}: sites are written [[site]] (a list of tables), each with id = "..."'
        )
    out: list[SiteSection] = []
    for i, table in enumerate(value):
        section = _section(src, f"site[{i}]", SiteSection, table)
        if not section.id:
            raise ConfigError(
                f'{src}: site[{i}].id is missing: expected the kiosk\'s site.id, like "shop-01"'
            )
        if any(s.id == section.id for s in out):
            raise ConfigError(f"{src}: site[{i}].id = {section.id!r} is listed twice")
        out.append(section)
    return tuple(out)


def resolve_path(explicit: str | os.PathLike[str] | None) -> Path:
    return resolve(explicit, os.environ.get(ENV_VAR), DEFAULT_PATH)


def load(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate hub.toml (see the module doc for where from).

    Raises ConfigError for a missing, unreadable or invalid file.
    """
    path = resolve_path(explicit)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file (give --config FILE or set ${ENV_VAR}; "
            "hub/example.toml is a commented example)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        data = parse_toml(path, raw)
    except SettingsProblem as err:
        raise ConfigError(str(err)) from None
    return from_mapping(data, str(path))


def describe(cfg: Config) -> dict[str, Any]:
    """The effective configuration as plain data, secrets masked."""

    table = described
    result: dict[str, Any] = {"source": cfg.source}
    for name in _TABLES:
        result[name] = table(getattr(cfg, name))
    result["site"] = [table(s) for s in cfg.sites]
    return result
