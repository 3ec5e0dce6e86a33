"""A valid code during a flood of bad messages, and what the flood costs the store.

Run: .venv/bin/python bench/bench_flood.py [--rate 12000] [--seconds 20] [--codes 30]

Starts its own Mosquitto, a real ``kiosk door`` (simulated board, keys on
its standard input) and a real ``kiosk sync``, then a keyless publisher
(tests/reliability/flood.py) writes ``--rate`` bad messages a second for
``--seconds`` on every topic the kiosk subscribes: random bytes and
documents signed by an unknown key on ``orders/+``, junk and forged
commands on ``cmd/+``, order ids the kiosk refuses. Meanwhile a valid
pickup code is typed every ``--seconds / --codes`` seconds; its latency is
from the ``#`` written to the door's stdin to its ``door_unlocked`` commit
seen in the store. docs/design.md budget: opens within 1 s; store growth within
``kiosk.audit.flood_bound_bytes``.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from kiosk.audit import flood_bound_bytes  # noqa: E402
from tests.support.broker import Broker  # noqa: E402
from tests.support.flood import Flooder, junk_pool  # noqa: E402
from tests.support.harness import (  # noqa: E402
    SITE,
    CodeBook,
    DoorProc,
    SyncProc,
    import_orders,
    open_door,
    write_config,
)
from tests.support.polling import wait_for  # noqa: E402


def used_bytes(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        free = con.execute("PRAGMA freelist_count").fetchone()[0]
        size = con.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)
    finally:
        con.close()


def judged(db: Path) -> tuple[int, int]:
    """(rejections recorded one by one, rejections counted in summaries)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        one = con.execute(
            "SELECT count(*) FROM events WHERE type = 'message_rejected' OR (type = 'command' "
            "AND json_extract(body, '$.detail.ok') = 0)"
        ).fetchone()[0]
        summed = con.execute(
            "SELECT coalesce(sum(json_extract(body, '$.detail.total')), 0) FROM events "
            "WHERE type = 'rejections_summarized'"
        ).fetchone()[0]
        return int(one), int(summed)
    finally:
        con.close()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=12000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--codes", type=int, default=30)
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Broker(tmp / "broker", extra_conf=["max_queued_messages 0"]).start()
        hub = Ed25519PrivateKey.generate()
        config = write_config(tmp, hub, mqtt_url=broker.url)
        db = tmp / "kiosk.db"
        book = CodeBook(import_orders(config, tmp, hub, 200), random.Random(8008))
        door = DoorProc(config, tmp)
        sync = SyncProc(config, tmp)
        try:
            door.wait_ready()
            wait_for(lambda: judged(db) is not None and sync.proc.poll() is None, what="sync")
            time.sleep(2)  # the agent connected and drained the boot events
            quiet = [open_door(door, db, book) for _ in range(5)]
            before = used_bytes(db)
            before_judged = sum(judged(db))
            flooder = Flooder("127.0.0.1", broker.port, junk_pool(SITE), rate=ns.rate).start()
            start = time.monotonic()
            lat: list[float] = []
            gap = ns.seconds / ns.codes
            while time.monotonic() - start < ns.seconds:
                time.sleep(gap * 0.5)
                lat.append(open_door(door, db, book, timeout=30))
                time.sleep(gap * 0.5)
            flooder.stop()
            seconds = time.monotonic() - start
            grown = used_bytes(db) - before
        finally:
            sync.stop()  # SIGTERM: the agent writes its last summary
            door.stop()
            broker.stop()
        one, summed = judged(db)
        n = one + summed - before_judged
        print(
            f"flood: {flooder.sent:,} bad messages in {seconds:.1f} s "
            f"({flooder.achieved:,.0f}/s written to the broker); the agent judged {n:,} "
            f"({n / seconds:,.0f}/s), {one} recorded one by one, the rest summarized"
        )
        print(
            f"valid code to door_unlocked committed, during the flood (n={len(lat)}): "
            f"median {statistics.median(lat) * 1000:.0f} ms, p95 {pct(lat, 0.95) * 1000:.0f} ms, "
            f"max {max(lat) * 1000:.0f} ms (budget 1000 ms); without flood median "
            f"{statistics.median(quiet) * 1000:.0f} ms"
        )
        print(
            f"store grew {grown / 1024:.0f} KiB during {seconds:.0f} s of flood (stated bound "
            f"{flood_bound_bytes(seconds) / 1024:.0f} KiB for that time, "
            f"{flood_bound_bytes(3600) / (1024 * 1024):.2f} MiB an hour)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
