"""``kiosk doctor``: check an installation and say how to fix what is wrong.

Each check gives a :class:`Result`: a name, whether it passed, a warning flag
(warnings never fail the run), what was found and, when something is wrong,
the fix. :func:`main` prints them as a table (or JSON with ``--json``) and
returns 1 if any check failed, else 0.

The doctor is safe to run on a live kiosk: it never changes orders, events
or configuration. The only writes are the store's probe transaction, which is
rolled back, and creating a store that does not exist yet (as the door daemon
would on its first start). When run as root, any file it creates in the
store's folder is handed to that folder's owner, so a root-owned ``-wal`` or
``-shm`` file cannot lock the service user out.

Never prints a password. Imports paho only inside the broker check and
pygame (through ``hardware.fonts``) only inside the display check.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import grp
import json
import os
import pwd
import re
import shutil
import socket
import sqlite3
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from kiosk import config as config_mod
from kiosk.config import Config
from kiosk.errors import ConfigError, StoreError

SERVICE_USER = "pickup-kiosk"

# Where things are on a Raspberry Pi; tests point these elsewhere.
RTC_DEVICE = Path("/dev/rtc0")
GPIOCHIP = Path("/dev/gpiochip0")
DRI_GLOB = "/dev/dri/card*"
UNIT_PATHS: tuple[Path, ...] = (
    Path("/etc/systemd/system/pickup-kiosk-door.service"),
    Path("/usr/local/lib/systemd/system/pickup-kiosk-door.service"),
    Path("/lib/systemd/system/pickup-kiosk-door.service"),
)
FALLBACK_FONTS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
)
MIN_FREE_BYTES = 100 * 1024 * 1024
BROKER_TIMEOUT_S = 5.0

SDL_DRIVERS = ("kmsdrm", "x11", "wayland", "dummy", "offscreen")

# MQTT CONNACK reasons that mean "who you are was not accepted" (MQTT 5:
# 0x86 bad user name or password, 0x87 not authorized, 0x85 client id not
# valid; MQTT 3.1.1 return codes 4 and 5).
_CREDENTIAL_REASONS = {134, 135, 133, 4, 5}


@dataclass(frozen=True)
class Result:
    """One check: ``ok`` False fails the run; ``warning`` only draws attention."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False

    @property
    def status(self) -> str:
        if not self.ok:
            return "FAIL"
        return "WARN" if self.warning else "ok"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _ok(name: str, detail: str) -> Result:
    return Result(name, True, detail)


def _warn(name: str, detail: str, fix: str) -> Result:
    return Result(name, True, detail, fix, warning=True)


def _fail(name: str, detail: str, fix: str) -> Result:
    return Result(name, False, detail, fix)


# ----- config ----------------------------------------------------------------


def _scrub(message: str) -> str:
    """A config error may quote a bad value; never let that be the password."""
    return re.sub(r"(mqtt\.password = ).*?( is not valid)", r"\1******\2", message)


def check_config(cfg_path: str | None) -> tuple[Result, Config | None]:
    path = config_mod.resolve_path(cfg_path)
    try:
        cfg = config_mod.load(cfg_path)
    except ConfigError as err:
        fix = (
            f"copy kiosk/example.toml to {path} (scripts/install.sh does) and edit it"
            if not path.exists()
            else f"edit {path} as the message says, then `kiosk config check`"
        )
        return _fail("config", _scrub(str(err)), fix), None
    return _ok("config", f"{path} is valid (site {cfg.site.id})"), cfg


# ----- store -------------------------------------------------------------------


def _store_files(path: Path) -> list[Path]:
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")]


@contextlib.contextmanager
def _keep_owner(path: Path) -> Iterator[None]:
    """As root, give files created in the store's folder to the folder's owner."""
    before = {p for p in _store_files(path) if p.exists()}
    try:
        yield
    finally:
        if os.geteuid() == 0 and path.parent.is_dir():
            st = path.parent.stat()
            for p in _store_files(path):
                if p not in before and p.exists() and st.st_uid != 0:
                    with contextlib.suppress(OSError):
                        os.chown(p, st.st_uid, st.st_gid)


def _service_uid() -> int | None:
    try:
        return pwd.getpwnam(SERVICE_USER).pw_uid
    except KeyError:
        return None


def check_store(cfg: Config) -> list[Result]:
    from kiosk.store import MIGRATIONS, Store

    path = Path(cfg.store.path)
    results: list[Result] = []
    fix_dir = (
        f"make {path.parent} a folder the service user can write "
        f"(chown {SERVICE_USER}: {path.parent}), or set [store] path"
    )
    with _keep_owner(path):
        if not path.exists():
            # What the door daemon does on its first start: create and migrate.
            try:
                Store(path, busy_timeout_ms=cfg.store.busy_timeout_ms).close()
            except StoreError as err:
                return [_fail("store writable", str(err), fix_dir)]
        try:
            conn = sqlite3.connect(
                f"file:{path}?mode=rw",
                uri=True,
                isolation_level=None,
                timeout=cfg.store.busy_timeout_ms / 1000,
            )
        except sqlite3.Error as err:
            return [_fail("store writable", f"{path}: cannot open read-write: {err}", fix_dir)]
        try:
            unreadable = _readable(conn, path)
            if unreadable is not None:
                return [unreadable]
            results.append(_probe_write(conn, path, fix_dir))
            results.append(_integrity(conn, path))
            results.append(_schema(conn, path, len(MIGRATIONS)))
        finally:
            conn.close()
    owner = _ownership(path)
    if owner is not None:
        results.append(owner)
    return results


def _restore_fix(path: Path) -> str:
    return (
        f"stop pickup-kiosk.target, keep a copy of {path} with its -wal file, and "
        'restore the last backup (docs/install.md, "Backup and restore")'
    )


def _readable(conn: sqlite3.Connection, path: Path) -> Result | None:
    """A failure if the file is not an SQLite database at all, else None."""
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.OperationalError:
        return None  # locked or unreadable: the write probe says which
    except sqlite3.DatabaseError as err:
        return _fail("store integrity", f"{path}: {err}", _restore_fix(path))
    return None


def _probe_write(conn: sqlite3.Connection, path: Path, fix: str) -> Result:
    name = "store writable"
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE main.doctor_probe (x INTEGER)")
            conn.execute("INSERT INTO main.doctor_probe VALUES (1)")
        finally:
            conn.execute("ROLLBACK")
    except sqlite3.OperationalError as err:
        if "locked" in str(err) or "busy" in str(err):
            return _warn(name, f"{path}: busy ({err}); another writer held it", "run again")
        return _fail(name, f"{path}: a test write failed: {err}", fix)
    except sqlite3.Error as err:
        return _fail(name, f"{path}: a test write failed: {err}", fix)
    return _ok(name, f"{path}: a test transaction was written and rolled back")


def _integrity(conn: sqlite3.Connection, path: Path) -> Result:
    name = "store integrity"
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as err:
        rows = [(str(err),)]
    text = "; ".join(str(r[0]) for r in rows)
    if text == "ok":
        return _ok(name, "PRAGMA integrity_check: ok")
    return _fail(name, f"PRAGMA integrity_check: {text[:300]}", _restore_fix(path))


def _schema(conn: sqlite3.Connection, path: Path, current: int) -> Result:
    name = "store schema"
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version == current:
        return _ok(name, f"schema {version} (current)")
    if version < current:
        return _warn(
            name,
            f"schema {version}, this program's is {current}",
            "the door daemon migrates it when it starts: "
            "sudo systemctl restart pickup-kiosk.target",
        )
    return _fail(
        name,
        f"schema {version} is newer than this program's {current}",
        "upgrade pickup-kiosk (git pull && sudo scripts/install.sh)",
    )


def _ownership(path: Path) -> Result | None:
    """Are the store files the service user's? Only where that user exists."""
    uid = _service_uid()
    if uid is None:
        return None
    foreign = [p for p in _store_files(path) if p.exists() and p.stat().st_uid != uid]
    if not foreign:
        return _ok("store owner", f"owned by {SERVICE_USER}")
    names = ", ".join(p.name for p in foreign)
    return _fail(
        "store owner",
        f"{names} not owned by {SERVICE_USER}; the services could not write them",
        f"sudo chown {SERVICE_USER}: {path.parent}/{path.name}*",
    )


def check_disk(cfg: Config) -> Result:
    name = "disk space"
    where = Path(cfg.store.path).parent
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    mb = free // (1024 * 1024)
    if free >= MIN_FREE_BYTES:
        return _ok(name, f"{mb} MB free on {where}")
    return _warn(
        name,
        f"only {mb} MB free on {where}; when it fills, the door stops opening for codes",
        "free space (sudo journalctl --vacuum-size=50M, apt-get clean) or use a bigger SD card",
    )


# ----- clock -------------------------------------------------------------------


def check_clock(cfg: Config, synchronized: Callable[[], bool] | None = None) -> Result:
    name = "clock"
    if synchronized is None:
        from kiosk.clock import system_time_synchronized

        synchronized = system_time_synchronized
    mode = cfg.clock.trust_system_clock
    if mode == "always":
        return _warn(
            name,
            'trust_system_clock = "always": the clock is trusted without proof',
            'use "auto" unless this Pi has a battery-backed RTC you have set',
        )
    if synchronized():
        return _ok(name, "system clock synchronized (NTP)")
    if RTC_DEVICE.exists():
        return _ok(name, f"not synchronized now, but a real-time clock ({RTC_DEVICE}) keeps time")
    return _warn(
        name,
        "not NTP-synchronized and no RTC: until a signed hub time arrives, events say "
        'clock "untrusted"',
        "sudo timedatectl set-ntp true (systemd-timesyncd), or fit an RTC "
        "(the Pi 5 has one: add its battery)",
    )


# ----- gpio --------------------------------------------------------------------


def _user_groups() -> tuple[str, set[str]]:
    """Whose device access matters, and their groups: the service user when
    run as root, else whoever runs the doctor."""
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return "root", {"root"}
        names = {g.gr_name for g in grp.getgrall() if SERVICE_USER in g.gr_mem}
        with contextlib.suppress(KeyError):
            names.add(grp.getgrgid(pw.pw_gid).gr_name)
        return SERVICE_USER, names
    names = set()
    for gid in os.getgroups():
        with contextlib.suppress(KeyError):
            names.add(grp.getgrgid(gid).gr_name)
    return pwd.getpwuid(os.geteuid()).pw_name, names


def check_gpio(cfg: Config) -> list[Result]:
    name = "gpio"
    if cfg.hardware.board == "sim":
        return [_ok(name, 'simulated board (board = "sim")')]
    if not GPIOCHIP.exists():
        return [
            _fail(
                name,
                f"{GPIOCHIP} does not exist: no GPIO character device here",
                "on a Raspberry Pi, update Raspberry Pi OS; on a bench machine set "
                '[hardware] board = "sim"',
            )
        ]
    results: list[Result] = []
    user, groups = _user_groups()
    if not os.access(GPIOCHIP, os.R_OK | os.W_OK):
        results.append(
            _fail(
                name,
                f"{GPIOCHIP} is not readable and writable by {user}",
                f"sudo usermod -aG gpio {user}, then log in again (the service gets the "
                "group from its unit)",
            )
        )
    elif user != "root" and "gpio" not in groups:
        results.append(
            _warn(
                name,
                f"{user} can open {GPIOCHIP} but is not in group gpio",
                f"sudo usermod -aG gpio {user}",
            )
        )
    else:
        results.append(_ok(name, f"{GPIOCHIP} opens read-write for {user}"))
    lg_wd = os.environ.get("LG_WD", "")
    if not lg_wd:
        results.append(
            _ok(
                "gpio work dir",
                "LG_WD not set here; the door unit sets LG_WD=/run/pickup-kiosk",
            )
        )
    elif os.path.isdir(lg_wd) and os.access(lg_wd, os.W_OK | os.X_OK):
        results.append(_ok("gpio work dir", f"LG_WD={lg_wd} is writable"))
    else:
        results.append(
            _fail(
                "gpio work dir",
                f"LG_WD={lg_wd} is not a writable folder (lgpio keeps its pipes there)",
                "keep RuntimeDirectory=pickup-kiosk and LG_WD=/run/pickup-kiosk in the door unit",
            )
        )
    return results


# ----- display -----------------------------------------------------------------


def _find_font(explicit: str) -> Path | None:
    try:
        from hardware.fonts import find_cjk_font
    except ImportError:
        # hardware/ missing or pygame unusable: the usual files will do.
        wanted = [Path(explicit)] if explicit else []
        return next((p for p in (*wanted, *FALLBACK_FONTS) if p.is_file()), None)
    return find_cjk_font(explicit)


def check_display(cfg: Config) -> list[Result]:
    if not cfg.display.enabled:
        return [_ok("display", "display disabled ([display] enabled = false)")]
    results: list[Result] = []
    explicit = cfg.display.font
    font = _find_font(explicit)
    install = "sudo apt-get install fonts-wqy-microhei (or fonts-noto-cjk)"
    if font is None:
        what = f"{explicit} does not draw Chinese, nor" if explicit else "no"
        results.append(
            _fail(
                "display font",
                f"{what} any CJK font found: screens would show empty boxes",
                f"{install}, or set [display] font to a CJK font file",
            )
        )
    elif explicit and font != Path(explicit):
        results.append(
            _warn(
                "display font",
                f"[display] font = {explicit!r} does not draw Chinese; using {font}",
                "point [display] font at a CJK font file, or leave it empty",
            )
        )
    else:
        results.append(_ok("display font", str(font)))
    results.append(_check_driver(cfg))
    return results


def _check_driver(cfg: Config) -> Result:
    name = "display driver"
    driver = cfg.display.driver or os.environ.get("SDL_VIDEODRIVER", "")
    source = "[display] driver" if cfg.display.driver else "SDL_VIDEODRIVER"
    if not driver:
        return _ok(name, "automatic here; the door unit sets SDL_VIDEODRIVER=kmsdrm")
    if driver not in SDL_DRIVERS:
        return _fail(
            name,
            f"{source} = {driver!r} is not an SDL video driver this kiosk uses",
            f"use one of {', '.join(SDL_DRIVERS)} (kmsdrm on the Pi's console)",
        )
    if driver in ("dummy", "offscreen"):
        if cfg.hardware.board == "gpio":
            return _warn(
                name,
                f"{source} = {driver!r}: nothing is drawn on the screen",
                "use kmsdrm on the kiosk (set by the door unit), or disable the display",
            )
        return _ok(name, f"{driver} (headless, fine for a simulated board)")
    if driver == "kmsdrm":
        cards = sorted(glob.glob(DRI_GLOB))
        if not cards:
            return _fail(
                name,
                "kmsdrm needs /dev/dri/card*, and there is none",
                "enable the KMS driver: dtoverlay=vc4-kms-v3d in /boot/firmware/config.txt "
                "(the Bookworm default), then reboot",
            )
        user, _groups = _user_groups()
        if not any(os.access(c, os.R_OK | os.W_OK) for c in cards):
            return _fail(
                name,
                f"{user} cannot open {', '.join(cards)}",
                f"sudo usermod -aG video,render {user}",
            )
        return _ok(name, f"kmsdrm on {', '.join(cards)}")
    env = "DISPLAY" if driver == "x11" else "WAYLAND_DISPLAY"
    if not os.environ.get(env):
        return _warn(
            name,
            f"{driver} needs a desktop session and {env} is not set here",
            "on the kiosk use kmsdrm (Raspberry Pi OS Lite, no desktop)",
        )
    return _ok(name, f"{driver} on {os.environ[env]}")


# ----- broker --------------------------------------------------------------------


def check_broker(cfg: Config, timeout: float = BROKER_TIMEOUT_S) -> Result:
    name = "broker"
    mq = cfg.mqtt
    if mq is None:
        return _ok(name, "no [mqtt] section: offline only")
    parts = urlsplit(mq.url)
    tls = parts.scheme == "mqtts"
    host = parts.hostname or ""
    port = parts.port or (8883 if tls else 1883)
    where = f"{host}:{port}"
    who = f"as {mq.username!r}" if mq.username else "without a user name"

    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        return _fail(
            name,
            f"{where} unreachable: {err.strerror or err}",
            "check [mqtt] url, that the broker runs and listens there, DNS, and any "
            "firewall between (`nc -vz HOST PORT`)",
        )

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    outcome: dict[str, Any] = {}

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        outcome["reason"] = reason

    # Its own client id, clean start: the doctor must never take over the
    # sync agent's session (same id) or leave a session of its own behind.
    base = mq.client_id or f"kiosk-{cfg.site.id}"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{base}-doctor-{os.getpid()}",
        protocol=mqtt.MQTTv5,
    )
    client.on_connect = on_connect
    if mq.username:
        client.username_pw_set(mq.username, mq.password or None)
    try:
        if tls:
            client.tls_set(
                ca_certs=mq.ca_file or None,
                certfile=mq.cert_file or None,
                keyfile=mq.key_file or None,
            )
        client.connect(host, port, keepalive=max(5, int(timeout) * 2), clean_start=True)
        deadline = time.monotonic() + timeout
        while "reason" not in outcome and time.monotonic() < deadline:
            client.loop(timeout=0.1)
    except ssl.SSLCertVerificationError as err:
        return _fail(
            name,
            f"{where}: TLS certificate not trusted: {err.verify_message}",
            "set [mqtt] ca_file to the CA that signed the broker's certificate, and use "
            "the host name the certificate names",
        )
    except (ssl.SSLError, FileNotFoundError) as err:
        return _fail(
            name,
            f"{where}: TLS failed: {err}",
            "check [mqtt] ca_file, cert_file, key_file and that the port speaks TLS "
            "(mqtts://, usually 8883)",
        )
    except OSError as err:
        if tls and "reason" not in outcome:
            # A plain MQTT listener drops a TLS hello without a word.
            return _fail(
                name,
                f"{where}: TLS failed: the connection was dropped during the "
                f"handshake ({err.strerror or err})",
                "is this a plain mqtt:// port? Use the broker's TLS listener (usually 8883)",
            )
        return _fail(
            name,
            f"{where}: connection lost during MQTT CONNECT: {err}",
            "check that this port is an MQTT listener",
        )
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
        with contextlib.suppress(Exception):
            client.loop(timeout=0.1)

    reason = outcome.get("reason")
    if reason is None:
        return _fail(
            name,
            f"{where}: no MQTT answer within {timeout:g} s",
            "check that the url's port is the broker's MQTT listener (mqtts:// for a TLS port)",
        )
    if getattr(reason, "is_failure", False):
        code = int(getattr(reason, "value", -1))
        if code in _CREDENTIAL_REASONS:
            return _fail(
                name,
                f"{where}: the broker refused the credentials {who}: {reason}",
                "check [mqtt] username and password against the broker's password file "
                "(mosquitto_passwd) and its ACL",
            )
        return _fail(
            name, f"{where}: the broker refused the connection: {reason}", "see the broker's log"
        )
    return _ok(name, f"{where}: MQTT CONNECT accepted {who}{' over TLS' if tls else ''}")


# ----- trust -----------------------------------------------------------------------


def check_trust(cfg: Config) -> Result:
    name = "trusted keys"
    t = cfg.trust
    n_hub, n_owner = len(t.hub_keys), len(t.owner_keys)
    if t.allow_unsigned:
        return _warn(
            name,
            f"allow_unsigned = true ({n_hub} hub, {n_owner} owner keys): lab bench only, "
            "anyone who can publish to the broker can add orders",
            "set [trust] allow_unsigned = false and list hub_keys/owner_keys",
        )
    if n_hub + n_owner == 0:
        return _fail(
            name,
            "no hub_keys or owner_keys: every order and command will be rejected",
            "add the hub's public key to [trust] hub_keys and yours to owner_keys "
            "(`kioskctl keygen` makes a pair)",
        )
    detail = f"{n_hub} hub, {n_owner} owner keys"
    if n_owner == 0:
        return _warn(
            name,
            detail + "; no owner key, so no remote commands",
            "add your public key to [trust] owner_keys",
        )
    return _ok(name, detail)


# ----- the unit ------------------------------------------------------------------


def check_unit() -> Result:
    name = "relock on stop"
    unit = next((p for p in UNIT_PATHS if p.is_file()), None)
    if unit is None:
        return _ok(name, "door unit not installed here (development machine)")
    try:
        text = unit.read_text("utf-8")
    except OSError as err:
        return _warn(name, f"{unit}: cannot read: {err.strerror}", "run as root")
    if re.search(r"^\s*ExecStopPost=.*\bkiosk relock\b", text, re.MULTILINE):
        return _ok(name, f"{unit} relocks after every stop")
    return _fail(
        name,
        f"{unit} has no ExecStopPost=... kiosk relock: after a crash the relay line "
        "may stay released",
        "reinstall the unit: sudo scripts/install.sh",
    )


# ----- running it all --------------------------------------------------------------


def _guarded(name: str, fn: Callable[[], list[Result]]) -> list[Result]:
    """One check's own crash becomes a failed result, not a traceback."""
    try:
        return fn()
    except Exception as err:  # reported, with its type, as a failure
        return [
            _fail(
                name,
                f"the check itself failed: {type(err).__name__}: {err}",
                "report this with the output of `kiosk doctor --json`",
            )
        ]


def run_checks(cfg_path: str | None) -> list[Result]:
    first, cfg = check_config(cfg_path)
    if cfg is None:
        return [first]
    c = cfg
    results = [first]
    results += _guarded("store", lambda: check_store(c))
    results += _guarded("disk space", lambda: [check_disk(c)])
    results += _guarded("clock", lambda: [check_clock(c)])
    results += _guarded("gpio", lambda: check_gpio(c))
    results += _guarded("display", lambda: check_display(c))
    results += _guarded("broker", lambda: [check_broker(c)])
    results += _guarded("trusted keys", lambda: [check_trust(c)])
    results += _guarded("relock on stop", lambda: [check_unit()])
    return results


def render_table(results: list[Result]) -> str:
    width = max(len(r.name) for r in results)
    lines = []
    for r in results:
        lines.append(f"{r.status:<4}  {r.name:<{width}}  {r.detail}")
        if r.fix and (not r.ok or r.warning):
            lines.append(f"{'':<4}  {'':<{width}}  fix: {r.fix}")
    failed = sum(not r.ok for r in results)
    warned = sum(r.ok and r.warning for r in results)
    lines.append("")
    lines.append(
        f"{len(results)} checks: {failed} failed, {warned} warnings"
        if failed or warned
        else f"{len(results)} checks: all passed"
    )
    return "\n".join(lines)


def main(cfg_path: str | None, as_json: bool, out: TextIO | None = None) -> int:
    """Run every check, print the results, return 1 if any failed else 0."""
    stream = out if out is not None else sys.stdout
    results = run_checks(cfg_path)
    ok = all(r.ok for r in results)
    if as_json:
        json.dump(
            {"ok": ok, "checks": [r.as_dict() for r in results]},
            stream,
            ensure_ascii=False,
            indent=2,
        )
        stream.write("\n")
    else:
        stream.write(render_table(results) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="kiosk doctor", description="check this installation")
    parser.add_argument("--config", default=None)
    parser.add_argument("--json", action="store_true")
    ns = parser.parse_args()
    sys.exit(main(ns.config, ns.json))
