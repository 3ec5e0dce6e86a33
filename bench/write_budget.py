"""Bytes written to the store per pickup and per idle hour, and what that means
for the SD card's life (issue 8, item 7).

The real DoorDaemon on the simulated board with a FakeClock (so an idle hour
is 36,000 ticks of its 0.1 s loop, done in seconds), the store log handler
attached as ``kiosk door`` does, and the sync agent's acknowledgements applied
the way its outbox writes them (one transaction per batch). Written bytes are
counted two ways for this process from /proc/self/io:

- ``wchar``: bytes handed to write(2) (SQLite's WAL frames, checkpoints into
  the database file); stderr logging is turned off so it is the store alone;
- ``write_bytes``: bytes the kernel sent to the block device (includes the
  file system's journal for every fsync; 0 on tmpfs).

    .venv/bin/python bench/write_budget.py [--pickups 200] [--dir DIR]
        [--card-gb 32] [--pe-cycles 1000] [--write-amp 4] [--pickups-per-day 150]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import common  # noqa: F401 - puts the repository on sys.path
import pyotp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hardware.board import SimBoard
from kiosk import logutil
from kiosk.audit import Audit
from kiosk.clock import FakeClock, TrustedClock
from kiosk.config import Config
from kiosk.daemon import DoorDaemon
from kiosk.inputs import DoorChanged, KeyPressed
from kiosk.orders import Intake
from kiosk.sample import order_doc
from kiosk.store import Store
from protocol.keys import Keyring, public_key_text, sign_document

SITE = "budget-site"


def io_counters() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/io").read_text().splitlines():
        key, value = line.split(":")
        out[key.strip()] = int(value)
    return out


class Bench:
    def __init__(self, folder: Path, orders: int) -> None:
        hub = Ed25519PrivateKey.generate()
        self.clock = FakeClock()
        cfg = (
            Config()
            .replace("site", id=SITE)
            .replace("hardware", board="sim", keypad="none")
            .replace("display", enabled=False)
            .replace("trust", hub_keys=(public_key_text(hub.public_key()),))
        )
        self.cfg = cfg
        self.store = Store(folder / "kiosk.db")
        intake = Intake(
            self.store, Audit(self.store, SITE), Keyring(cfg.trust.hub_keys, ()), site=SITE, width=3
        )
        snap = TrustedClock(self.clock, synced=True).snapshot()
        self.docs = [
            sign_document(order_doc(SITE, f"W-{i}", f"{i:03d}", now=self.clock.wall()), hub)
            for i in range(orders)
        ]
        intake.accept_many([(d, None, None) for d in self.docs], snap, source="bench")
        self.board = SimBoard(cfg.hardware, cfg.lock, clock=self.clock, threads=False)
        self.d = DoorDaemon(cfg, self.store, self.board, self.clock, synced=lambda: True)
        logutil.attach_store(self.store, self.clock.wall, "INFO")
        self.d.start()
        self.acked = self.store.last_seq()

    def tick_for(self, seconds: float, step: float = 0.1) -> None:
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            self.board.lock.poll()
            self.d.tick()

    def ack(self) -> None:
        """What the sync agent writes when the broker acknowledged the new events."""
        last = self.store.last_seq()
        seqs = list(range(self.acked + 1, last + 1))
        logs = [r.seq for r in self.store.logs_since(0, 10_000, unacked_only=True)]
        with self.store.atomic():
            self.store.mark_events_acked(seqs, self.clock.wall())
            self.store.mark_logs_acked(logs)
        self.acked = last

    def pickup(self, i: int) -> None:
        doc = self.docs[i]
        code = doc["pickup_no"] + pyotp.TOTP(doc["otp"]["secret"]).at(self.clock.wall())
        for k in code + "#":
            self.d.post(KeyPressed(k))
        self.d.drain()
        self.tick_for(1.0)
        self.d.post(DoorChanged(True))
        self.d.drain()
        self.tick_for(4.0)
        self.d.post(DoorChanged(False))
        self.d.drain()
        self.tick_for(1.0)
        self.ack()

    def checkpoint(self) -> None:
        self.store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def measure(folder: Path, pickups: int) -> dict[str, float]:
    b = Bench(folder, pickups)
    b.tick_for(5.0)
    b.ack()
    b.checkpoint()
    # per pickup (events, logs, order update, used step, acks), checkpoints included
    c0 = io_counters()
    for i in range(pickups):
        b.pickup(i)
    b.checkpoint()
    c1 = io_counters()
    # one idle hour: floor saves, retention, clock checks, status polls
    b.tick_for(3600.0)
    b.ack()
    b.checkpoint()
    c2 = io_counters()
    b.board.close()
    b.store.close()
    return {
        "pickup_wchar": (c1["wchar"] - c0["wchar"]) / pickups,
        "pickup_block": (c1["write_bytes"] - c0["write_bytes"]) / pickups,
        "idle_hour_wchar": c2["wchar"] - c1["wchar"],
        "idle_hour_block": c2["write_bytes"] - c1["write_bytes"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pickups", type=int, default=200)
    p.add_argument("--dir", help="folder for the store (default: a temporary folder on disk)")
    p.add_argument("--card-gb", type=float, default=32.0)
    p.add_argument(
        "--pe-cycles",
        type=float,
        default=1000.0,
        help="program/erase cycles of the card's flash (TLC: 500 to 3000)",
    )
    p.add_argument(
        "--write-amp",
        type=float,
        default=4.0,
        help="assumed write amplification of the card's controller for small writes",
    )
    p.add_argument("--pickups-per-day", type=float, default=150.0)
    args = p.parse_args()
    logging.getLogger().setLevel(logging.INFO)  # records go to the store, not to stderr
    with tempfile.TemporaryDirectory(dir=args.dir or Path(__file__).resolve().parent) as tmp:
        r = measure(Path(tmp), args.pickups)
    per_pickup = max(r["pickup_wchar"], r["pickup_block"])
    per_hour = max(r["idle_hour_wchar"], r["idle_hour_block"])
    per_day = per_pickup * args.pickups_per_day + per_hour * 24
    endurance = args.card_gb * 1e9 * args.pe_cycles
    years = endurance / (per_day * args.write_amp) / 365
    print(
        f"per pickup: {r['pickup_wchar'] / 1024:.1f} KiB written by SQLite, "
        f"{r['pickup_block'] / 1024:.1f} KiB to the block device "
        f"(n={args.pickups}, WAL + checkpoints + sync acks)"
    )
    print(
        f"per idle hour: {r['idle_hour_wchar'] / 1024:.1f} KiB written by SQLite, "
        f"{r['idle_hour_block'] / 1024:.1f} KiB to the block device"
    )
    print(
        f"per day at {args.pickups_per_day:g} pickups: {per_day / 1e6:.2f} MB "
        f"(the larger of the two counts)"
    )
    print(
        f"SD card life: {args.card_gb:g} GB x {args.pe_cycles:g} P/E cycles / "
        f"(write amplification {args.write_amp:g} x {per_day / 1e6:.2f} MB/day) "
        f"= {years:,.0f} years"
    )


if __name__ == "__main__":
    main()
