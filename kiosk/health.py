"""Health checks: a registry, and the checks of the kiosk's core (``kiosk doctor``).

Each check lives with the part it checks and registers itself with
:func:`check`: the core's here (config, store, disk, clock, trust, site,
the unit), the board's and display's in ``hardware.health``, the broker's in
``sync.health``. The composition root (``kiosk.cli.doctor``) imports those
modules and runs every registered check in order, each guarded so one
check's crash is a failed result, not a traceback.

A check takes the Config and returns :class:`Result`\\ s: a name, whether
it passed, a warning flag (warnings never fail the run), what was found
and, when something is wrong, the fix. Checks never change orders, events
or configuration; the only writes are the store's probe transaction, which
is rolled back, and creating a store that does not exist yet (as the door
daemon would on its first start). Never prints a password.
"""

from __future__ import annotations

import contextlib
import dataclasses
import grp
import os
import pwd
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk.config import SERVICE_USER, Config
from kiosk.errors import StoreError

# Where things are on a Raspberry Pi; tests point these elsewhere.
RTC_DEVICE = Path("/dev/rtc0")
UNIT_PATHS: tuple[Path, ...] = (
    Path("/etc/systemd/system/pickup-kiosk-door.service"),
    Path("/usr/local/lib/systemd/system/pickup-kiosk-door.service"),
    Path("/lib/systemd/system/pickup-kiosk-door.service"),
)
MIN_FREE_BYTES = 100 * 1024 * 1024
DEMO_SITE = "demo-site"


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


def ok(name: str, detail: str) -> Result:
    return Result(name, True, detail)


def warn(name: str, detail: str, fix: str) -> Result:
    return Result(name, True, detail, fix, warning=True)


def fail(name: str, detail: str, fix: str) -> Result:
    return Result(name, False, detail, fix)


_ok, _warn, _fail = ok, warn, fail

Check = Callable[[Config], list[Result]]


@dataclass(frozen=True)
class Registered:
    name: str
    order: int
    fn: Check


_REGISTRY: dict[str, Registered] = {}


def check(name: str, order: int) -> Callable[[Check], Check]:
    """Register a check under ``name``; checks run by ``order``."""

    def register(fn: Check) -> Check:
        _REGISTRY[name] = Registered(name, order, fn)
        return fn

    return register


def registered() -> list[Registered]:
    return sorted(_REGISTRY.values(), key=lambda r: (r.order, r.name))


def run(cfg: Config) -> list[Result]:
    """Every registered check, in order, each guarded."""
    results: list[Result] = []
    for reg in registered():
        try:
            results += reg.fn(cfg)
        except Exception as err:  # reported, with its type, as a failure
            results.append(
                fail(
                    reg.name,
                    f"the check itself failed: {type(err).__name__}: {err}",
                    "report this with the output of `kiosk doctor --json`",
                )
            )
    return results


def user_groups() -> tuple[str, set[str]]:
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


# ----- config ----------------------------------------------------------------


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return True  # there, but not for us to see


def scrub(message: str) -> str:
    """A config error may quote a bad value; never let that be the password."""
    return re.sub(r"(mqtt\.password = ).*?( is not valid)", r"\1******\2", message)


def config_results(path: Path, problems: list[str], cfg: Config | None) -> list[Result]:
    """The config file's results: every problem at once, or one ok."""
    if cfg is None or problems:
        if any("permission denied" in p for p in problems):
            fix = f"run the doctor as the service user: sudo -u {SERVICE_USER} kiosk doctor"
        elif not _exists(path):
            fix = f"copy kiosk/example.toml to {path} (scripts/install.sh does) and edit it"
        else:
            fix = f"edit {path} (sudoedit {path}), then `kiosk config check`"
        return [fail("config", scrub(p), fix) for p in problems]
    return [ok("config", f"{path} is valid (site {cfg.site.id})")]


@check("site", 5)
def check_site(cfg: Config) -> list[Result]:
    """The two mistakes the install guide warns about."""
    out: list[Result] = []
    if cfg.site.id == DEMO_SITE:
        out.append(
            fail(
                "site id",
                f'[site] id is still "{DEMO_SITE}" from the example: the hub will not know '
                "this kiosk",
                "set [site] id to your site's slug, as the hub and the broker know it",
            )
        )
    else:
        out.append(ok("site id", cfg.site.id))
    mq = cfg.mqtt
    if mq is not None and mq.username and mq.username != cfg.site.id:
        out.append(
            fail(
                "mqtt user",
                f"[mqtt] username {mq.username!r} is not the site id {cfg.site.id!r}: with the "
                "per-site ACL of docs/install.md the broker keeps this kiosk out of its own "
                "topics, so orders never arrive",
                f'set [mqtt] username = "{cfg.site.id}" (and its password in the broker)',
            )
        )
    return out


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


@check("store", 10)
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


@check("disk space", 20)
def check_disk(cfg: Config) -> list[Result]:
    return [_disk(cfg)]


def _disk(cfg: Config) -> Result:
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


# ----- clock ---------------------------------------------------------------


@check("clock", 30)
def check_clock_registered(cfg: Config) -> list[Result]:
    return [check_clock(cfg)]


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


# ----- trust ---------------------------------------------------------------


@check("trusted keys", 70)
def check_trust_registered(cfg: Config) -> list[Result]:
    return [check_trust(cfg)]


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


# ----- the unit ------------------------------------------------------------


@check("relock on stop", 80)
def check_unit_registered(cfg: Config) -> list[Result]:
    return [check_unit()]


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


# ----- output ---------------------------------------------------------------


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
