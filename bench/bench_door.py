"""The door daemon's budgets on the simulated board (docs/design.md, "Budgets").

1. `#` pressed to relay energized, 10,000 active orders, p50/p99: the real
   DoorDaemon, the real gpiozero device code on mock pins; the time from the
   `#` key event to the relay pin at its energizing level, including the
   durable commit of the audit events that precedes it. Also counted: the
   commits per accepted code (one), and, in the same run and directory, the
   physical floor of audit-before-action: one bare ``synchronous=FULL``
   SQLite commit of the same rows (two event bodies and a used step).
2. start to ready: a real `kiosk door` process, from spawn to READY=1 on a
   notify socket.
3. idle CPU and resident memory of that process over --idle seconds, with the
   display on (SDL dummy driver).

    .venv/bin/python bench/bench_door.py [--orders 10000] [--presses 300] [--idle 60]
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401 - puts the repository on sys.path
import pyotp
from common import ROOT, pct, summary
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hardware.board import SimBoard
from kiosk.audit import Audit
from kiosk.clock import SystemClock, TrustedClock
from kiosk.config import Config
from kiosk.daemon import DoorDaemon
from kiosk.door import Event
from kiosk.inputs import KeyPressed
from kiosk.orders import Intake
from kiosk.sample import order_doc
from kiosk.store import Store
from protocol.keys import Keyring, public_key_text, sign_document

SITE = "bench-site"


def fill(path: Path, n: int, hub: Ed25519PrivateKey, cfg: Config) -> list[dict]:
    now = time.time()
    docs = [sign_document(order_doc(SITE, f"B-{i}", f"{i:05d}", now=now), hub) for i in range(n)]
    store = Store(path)
    intake = Intake(store, Audit(store, SITE), Keyring(cfg.trust.hub_keys), site=SITE, width=5)
    snap = TrustedClock(SystemClock(), synced=True).snapshot()
    for start in range(0, n, 500):
        intake.accept_many(
            [(d, None, None) for d in docs[start : start + 500]], snap, source="bench"
        )
    store.close()
    return docs


def keypress_to_relay(
    cfg: Config, path: Path, docs: list[dict], presses: int, floor: Floor | None = None
) -> tuple[list[float], list[int]]:
    store = Store(path)
    board = SimBoard(cfg.hardware, cfg.lock, threads=False)
    daemon = DoorDaemon(cfg, store, board, SystemClock(), synced=lambda: True)
    daemon.start()
    out: list[float] = []
    commits: list[int] = []
    seen: list[str] = []
    relay_at: list[int] = []
    moved: list[float] = []
    real_energize = board.lock.energize

    def energize(seconds: float) -> None:
        relay_at.append(len(seen))  # statements run before the relay moved
        real_energize(seconds)
        moved.append(time.perf_counter())

    board.lock.energize = energize  # type: ignore[method-assign]
    try:
        for i in range(presses):
            doc = docs[(i * 7919) % len(docs)]
            code = doc["pickup_no"] + pyotp.TOTP(doc["otp"]["secret"]).now()
            for k in code:
                daemon.handle(KeyPressed(k))
            if floor is not None:
                floor.commit_once()
            seen.clear()
            relay_at.clear()
            moved.clear()
            store.on_statement(seen.append)
            t0 = time.perf_counter()
            daemon.handle(KeyPressed("#"))
            energized = board.relay_active()
            out.append((moved[0] if moved else time.perf_counter()) - t0)
            store.on_statement(None)
            assert energized, f"press {i}: relay not energized"
            before = seen[: relay_at[0]] if relay_at else seen
            commits.append(sum(s.strip().upper() == "COMMIT" for s in before))
            board.lock.release()
            daemon.machine.handle(Event.PULSE_END, float("inf"))
    finally:
        board.close()
        store.close()
    return out, commits


class Floor:
    """One durable commit of the same rows, alone: the physical floor of
    audit-before-action. Measured interleaved with the real presses, so that
    both see the same disk and the same load."""

    def __init__(self, directory: Path, body_bytes: int = 640) -> None:
        self.conn = sqlite3.connect(str(directory / "floor.db"), isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("CREATE TABLE ev (seq INTEGER PRIMARY KEY, body TEXT, hash TEXT)")
        self.conn.execute("CREATE TABLE st (o TEXT, s INTEGER, t REAL, PRIMARY KEY (o, s))")
        self.body = "x" * body_bytes
        self.times: list[float] = []

    def commit_once(self) -> None:
        i = len(self.times)
        t0 = time.perf_counter()
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT INTO ev(body, hash) VALUES (?, ?)", (self.body, "0" * 64))
        self.conn.execute("INSERT INTO ev(body, hash) VALUES (?, ?)", (self.body, "0" * 64))
        self.conn.execute("INSERT INTO st VALUES (?, ?, ?)", (f"O-{i}", i, 0.0))
        self.conn.execute("COMMIT")
        self.times.append(time.perf_counter() - t0)


def process_figures(cfg_path: Path, idle_s: float) -> tuple[float, float, float]:
    sock_path = cfg_path.parent / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    env = dict(
        os.environ,
        NOTIFY_SOCKET=str(sock_path),
        SDL_VIDEODRIVER="dummy",
        PYGAME_HIDE_SUPPORT_PROMPT="1",
    )
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk.cli", "--config", str(cfg_path), "door"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    try:
        while True:
            msg = sock.recv(4096).decode()
            if "READY=1" in msg:
                ready_s = time.perf_counter() - t0
                break
        time.sleep(2)  # let start-up work settle before measuring idle
        tick = os.sysconf("SC_CLK_TCK")

        def cpu() -> float:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick

        c0, w0 = cpu(), time.perf_counter()
        time.sleep(idle_s)
        cpu_pct = (cpu() - c0) / (time.perf_counter() - w0) * 100
        rss_kb = next(
            int(line.split()[1])
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
    finally:
        proc.terminate()
        proc.wait(20)
        sock.close()
    return ready_s, cpu_pct, rss_kb / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=10_000)
    ap.add_argument("--presses", type=int, default=300)
    ap.add_argument("--idle", type=float, default=60.0)
    args = ap.parse_args()
    hub = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "k.db"
        cfg = Config().replace("site", id=SITE, pickup_no_width=5)
        cfg = cfg.replace("trust", hub_keys=(public_key_text(hub.public_key()),))
        cfg = cfg.replace("hardware", board="sim").replace("display", enabled=False)
        cfg = cfg.replace("clock", trust_system_clock="always")
        docs = fill(db, args.orders, hub, cfg)
        bare = Floor(Path(d))
        lat, commits = keypress_to_relay(cfg, db, docs, args.presses, bare)
        floor = bare.times
        print(summary(f"'#' to relay energized ({args.orders} orders)", lat))
        print(f"  budget p99 5 ms: {'ok' if pct(lat, 99) <= 0.005 else 'OVER'}")
        print(f"  commits before the relay per accepted code: {sorted(set(commits))}")
        print(summary("bare synchronous=FULL commit of the same rows", floor))
        print(
            f"  ratio p50 ours/floor: {pct(lat, 50) / pct(floor, 50):.2f}x, "
            f"p99: {pct(lat, 99) / pct(floor, 99):.2f}x (goal p50 within 2x)"
        )
        cfg_path = Path(d) / "kiosk.toml"
        cfg_path.write_text(f"""
[site]
id = "{SITE}"
pickup_no_width = 5
[store]
path = "{db}"
[trust]
hub_keys = ["{public_key_text(hub.public_key())}"]
[hardware]
board = "sim"
[display]
enabled = true
driver = "dummy"
[clock]
trust_system_clock = "always"
""")
        ready_s, cpu_pct, rss_mb = process_figures(cfg_path, args.idle)
        print(f"start to ready (spawn to READY=1): {ready_s:.2f} s (budget 1.5 s)")
        print(
            f"idle CPU over {args.idle:g} s, display on: {cpu_pct:.2f} % of one core (budget 2 %)"
        )
        print(f"resident memory: {rss_mb:.1f} MB (budget 80 MB)")


if __name__ == "__main__":
    main()
