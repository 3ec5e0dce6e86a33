"""The door daemon's budgets on the simulated board (docs/design.md, "Budgets").

1. `#` pressed to relay energized, 10,000 active orders, p50/p99: the real
   DoorDaemon, the real gpiozero device code on mock pins; the time from the
   `#` key event to the relay pin at its energizing level, including the
   durable commit of the audit events that precedes it.
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


def keypress_to_relay(cfg: Config, path: Path, docs: list[dict], presses: int) -> list[float]:
    store = Store(path)
    board = SimBoard(cfg.hardware, cfg.lock, threads=False)
    daemon = DoorDaemon(cfg, store, board, SystemClock(), synced=lambda: True)
    daemon.start()
    out: list[float] = []
    try:
        for i in range(presses):
            doc = docs[(i * 7919) % len(docs)]
            code = doc["pickup_no"] + pyotp.TOTP(doc["otp"]["secret"]).now()
            for k in code:
                daemon.handle(KeyPressed(k))
            t0 = time.perf_counter()
            daemon.handle(KeyPressed("#"))
            energized = board.relay_active()
            out.append(time.perf_counter() - t0)
            assert energized, f"press {i}: relay not energized"
            board.lock.release()
            daemon.machine.handle("pulse_end", float("inf"))
    finally:
        board.close()
        store.close()
    return out


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
        lat = keypress_to_relay(cfg, db, docs, args.presses)
        print(summary(f"'#' to relay energized ({args.orders} orders)", lat))
        print(f"  budget p99 5 ms: {'ok' if pct(lat, 99) <= 0.005 else 'OVER'}")
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
