"""Helpers for the hub's tests: chained events, configs, keys, archives."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub import config as hub_config
from hub.archive import Incoming, SqliteArchive
from hub.config import Config
from hub.db import Database
from protocol.canonical import dumps
from protocol.events import ZERO_HASH, build_event
from protocol.keys import generate_private_key, private_key_pem

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from tests.support.broker import Broker

T0 = 1_780_000_000.0  # 2026-05-28


def chain(
    site: str, n: int, *, start: int = 1, prev: str = ZERO_HASH, **kw: Any
) -> list[dict[str, Any]]:
    """``n`` valid chained events of ``site`` from seq ``start`` after ``prev``."""
    out = []
    for seq in range(start, start + n):
        ev = build_event(
            site=site,
            seq=seq,
            prev_hash=prev,
            ts=T0 + seq,
            clock="synced",
            type_=kw.get("type_", "door_opened"),
            order_id=kw.get("order_id"),
            detail=kw.get("detail"),
        )
        prev = ev["hash"]
        out.append(ev)
    return out


def live(site: str, events: list[dict[str, Any]]) -> list[Incoming]:
    return [Incoming(site, dumps(ev)) for ev in events]


def write_keys(tmp: Path) -> tuple[Path, Path]:
    paths = []
    for name in ("hub.key", "auditor.key"):
        p = tmp / name
        p.write_bytes(private_key_pem(generate_private_key()))
        p.chmod(0o600)
        paths.append(p)
    return paths[0], paths[1]


def write_config(
    tmp: Path,
    sites: tuple[str, ...] = ("shop-a", "shop-b"),
    *,
    mqtt_url: str = "mqtt://127.0.0.1:1883",
    extra: str = "",
    listen: str = "127.0.0.1:8080",
    site_extra: str = "",
) -> Path:
    """A hub.toml in ``tmp`` with fresh keys, archive ``tmp/hub.db``."""
    hub_key, auditor_key = write_keys(tmp)
    site_tables = "".join(f'[[site]]\nid = "{s}"\n{site_extra}\n' for s in sites)
    path = tmp / "hub.toml"
    path.write_text(
        f"""
[hub]
listen = "{listen}"
archive = "{tmp / "hub.db"}"
[keys]
hub_key = "{hub_key}"
auditor_key = "{auditor_key}"
[mqtt]
url = "{mqtt_url}"
{site_tables}
{extra}
""",
        encoding="utf-8",
    )
    return path


def load(path: Path) -> Config:
    return hub_config.load(path)


def archive(
    tmp: Path, sites: tuple[str, ...] = ("shop-a", "shop-b"), **limits: Any
) -> SqliteArchive:
    db = Database(tmp / "hub.db")
    return SqliteArchive(db, sites, hub_config.LimitsSection(**limits))


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def context(tmp: Path, cfg_path: Path | None = None, clock: FakeClock | None = None) -> Any:
    """An AppContext over a fresh archive in ``tmp`` (see hub.service for the real one)."""
    from hub.alerts import AlertBook
    from hub.db import Runner
    from hub.keys import load_keys
    from hub.orders import OrderBook
    from hub.staff import StaffBook
    from hub.tokens import Tokens
    from hub.web import AppContext

    cfg = hub_config.load(cfg_path or write_config(tmp))
    db = Database(cfg.hub.archive)
    keys = load_keys(cfg.keys.hub_key, cfg.keys.auditor_key)
    return AppContext(
        cfg=cfg,
        archive=SqliteArchive(db, cfg.site_ids, cfg.limits),
        orders=OrderBook(db, cfg, keys.hub),
        tokens=Tokens(db),
        alerts=AlertBook(db),
        runner=Runner(),
        clock=clock or FakeClock(),
        extra={"keys": keys},
        staff=StaffBook(db, cfg, keys.hub),
    )


def hub_cli(*args: str, config: Path, stdin: str | None = None, timeout: float = 60) -> Any:
    """Run ``pickup-hub`` as a subprocess (the real command line)."""
    import subprocess
    import sys

    from tests.support.procs import env

    e = env()
    e.pop("PICKUP_HUB_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args, "--config", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=e,
        check=False,
    )


def popen_hub(config: Path, log: Path, *, open_files: str | None = None) -> Any:
    """``pickup-hub serve`` as a process; ``open_files`` ("SOFT:HARD") runs it
    under ``prlimit --nofile`` (systemd's default is 1024:524288)."""
    import subprocess
    import sys

    from tests.support.procs import env

    e = env()
    e.pop("PICKUP_HUB_CONFIG", None)
    limit = ["prlimit", f"--nofile={open_files}"] if open_files else []
    return subprocess.Popen(
        [*limit, sys.executable, "-m", "hub.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),
        env=e,
        start_new_session=True,
    )


def kiosk_config(tmp: Path, site: str, trust: str, mqtt_url: str, extra: str = "") -> Path:
    """A sim-board kiosk in ``tmp`` whose [trust] is ``trust`` (keygen's lines)."""
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = tmp / "kiosk.toml"
    cfg.write_text(
        f"""
[site]
id = "{site}"
[store]
path = "{tmp / "kiosk.db"}"
[trust]
{trust}
[hardware]
board = "sim"
keypad = "matrix"
[display]
enabled = false
[clock]
trust_system_clock = "always"
[mqtt]
url = "{mqtt_url}"
{extra}
""",
        encoding="utf-8",
    )
    return cfg


def archived(config: Path, site: str) -> list[bytes]:
    out = hub_cli("events", site, "--json", config=config)
    assert out.returncode == 0, out.stderr
    return [line.encode("utf-8") for line in out.stdout.splitlines() if line]


def kiosk_events_raw(config: Path) -> list[bytes]:
    from tests.support.procs import kiosk

    out = kiosk("events", "--json", config=config)
    assert out.returncode == 0, out.stderr
    return [line.encode("utf-8") for line in out.stdout.splitlines() if line]


# ----- a real hub process against a real broker (tests/hub/test_faults.py, test_attacks.py)


def publisher(broker: Broker) -> mqtt.Client:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    return c


def publish_all(c: mqtt.Client, items: list[tuple[str, bytes]]) -> None:
    infos = [c.publish(topic, payload, qos=1) for topic, payload in items]
    for info in infos:
        info.wait_for_publish(30)


def archived_count(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        (n,) = con.execute("SELECT COUNT(*) FROM events").fetchone()
        con.close()
        return int(n)
    except sqlite3.Error:
        return 0


def connected(log: Path, times: int = 1) -> bool:
    return log.exists() and log.read_text().count("connected to the broker") >= times


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def term(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            kill(proc)
