"""Floods cost a bounded amount (issue 11 item 5), with real processes: a real
``kiosk door`` and ``kiosk sync``, a real Mosquitto, and a keyless publisher
writing more than 10,000 bad messages a second on every topic the kiosk
subscribes (tests/reliability/flood.py). The store grows by at most
``kiosk.audit.flood_bound_bytes`` for the flood's duration, log lines are
rate-limited as events are, the door opens for valid codes throughout, and
the agent keeps draining events. How fast the door opens is the bench's
(bench/bench_flood.py); here it only has to open."""

from __future__ import annotations

import os
import random
import sqlite3
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.audit import MAX_REJECTION_BYTES, flood_bound_bytes
from tests.support.broker import Broker
from tests.support.flood import Flooder, junk_pool
from tests.support.harness import (
    SITE,
    CodeBook,
    DoorProc,
    SyncProc,
    import_orders,
    open_door,
    write_config,
)
from tests.support.polling import wait_for
from tests.support.sync import Watcher

pytestmark = [pytest.mark.slow, pytest.mark.broker]

SEED = int(os.environ.get("KIOSK_CAMPAIGN_SEED", "8008"))
FLOOD_S = float(os.environ.get("KIOSK_FLOOD_S", "6"))
RATE = float(os.environ.get("KIOSK_FLOOD_RATE", "12000"))


def used(db: Path) -> dict[str, int]:
    """Bytes in use inside the database (WAL included), and the rows that matter."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        q = lambda sql: int(con.execute(sql).fetchone()[0])  # noqa: E731
        return {
            "bytes": (q("PRAGMA page_count") - q("PRAGMA freelist_count")) * q("PRAGMA page_size"),
            "events": q("SELECT count(*) FROM events"),
            "rejected": q("SELECT count(*) FROM events WHERE type = 'message_rejected'"),
            "refused": q(
                "SELECT count(*) FROM events WHERE type = 'command' "
                "AND json_extract(body, '$.detail.ok') = 0"
            ),
            "summaries": q("SELECT count(*) FROM events WHERE type = 'rejections_summarized'"),
            "logs": q("SELECT count(*) FROM logs"),
            "max_event": q("SELECT coalesce(max(length(body)), 0) FROM events"),
        }
    finally:
        con.close()


def test_a_flood_on_every_topic_costs_a_bounded_amount_and_the_door_opens(
    tmp_path: Path,
) -> None:
    broker = Broker(tmp_path / "broker", extra_conf=["max_queued_messages 0"]).start()
    hub = Ed25519PrivateKey.generate()
    config = write_config(tmp_path, hub, mqtt_url=broker.url)
    db = tmp_path / "kiosk.db"
    book = CodeBook(import_orders(config, tmp_path, hub, 20), random.Random(SEED))
    watcher = Watcher(broker.port, [f"pickup/v1/{SITE}/events", f"pickup/v1/{SITE}/status"])
    watcher.start()
    door = DoorProc(config, tmp_path)
    sync = SyncProc(config, tmp_path)
    flooder: Flooder | None = None
    try:
        door.wait_ready()
        wait_for(lambda: watcher.on("/status"), what="the kiosk online")
        open_door(door, db, book)  # before the flood: the path is warm
        before = used(db)
        flooder = Flooder("127.0.0.1", broker.port, junk_pool(SITE, seed=SEED), rate=RATE).start()
        started = time.monotonic()
        opened = 0
        while time.monotonic() - started < FLOOD_S:
            time.sleep(1.0)
            open_door(door, db, book, timeout=30)  # a valid code during the flood
            opened += 1
        flooder.stop()
        seconds = time.monotonic() - started
        print(
            f"flood: {flooder.sent} messages in {seconds:.1f} s ({flooder.achieved:.0f}/s); "
            f"the door opened {opened} times during it"
        )
        assert door.proc.poll() is None and sync.proc.poll() is None
        alarms = {a for s in watcher.on("/status") for a in s.get("alarms", [])}
        assert "flood" in alarms
        after = used(db)
        # Per-row costs within their stated maxima, and the rows within the rate.
        assert after["max_event"] < MAX_REJECTION_BYTES
        individual = (after["rejected"] - before["rejected"]) + (
            after["refused"] - before["refused"]
        )
        assert 0 < individual <= flood_bound_bytes(seconds) // MAX_REJECTION_BYTES
        summaries = after["summaries"] - before["summaries"]
        # The door's own events during the flood (boot-free: codes, unlocks, collects).
        door_events = (after["events"] - before["events"]) - individual - summaries
        assert door_events <= 8 * opened
        grown = after["bytes"] - before["bytes"]
        allowed = flood_bound_bytes(seconds) + door_events * MAX_REJECTION_BYTES + 16 * 4096
        print(f"store grew {grown} bytes; the stated bound for {seconds:.1f} s is {allowed}")
        assert grown <= allowed
        assert after["logs"] - before["logs"] <= (individual + summaries) * 2 + 10 * opened
        # journald's share: the agent's stderr holds a bounded number of rejection lines
        lines = sync.err_path.read_text(errors="replace").splitlines()
        noisy = [ln for ln in lines if "rejected an order" in ln or "refused command" in ln]
        assert len(noisy) <= individual
        # The agent kept draining: every stored event reaches the hub.
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        last = int(con.execute("SELECT max(seq) FROM events").fetchone()[0])
        con.close()
        wait_for(
            lambda: {e["seq"] for e in watcher.on("/events")} >= set(range(1, last + 1)),
            timeout=60,
            what="every event at the hub",
        )
    finally:
        if flooder is not None:
            flooder.stop()
        door.stop()
        sync.stop()
        watcher.stop()
        broker.stop()
