"""A full card recovers (issue 11 item 6), with real processes: the store on a
small tmpfs (root only, as tests/reliability/test_storage.py makes it), a
real ``kiosk door`` and ``kiosk sync`` and a Mosquitto. The card is filled
to the last block from outside while the kiosk works: the door keeps
opening for valid codes (it releases the space reserve before its commit),
the agent frees only what may be lost (acknowledged log records, then
acknowledged events from the front of the trail), and re-creates the
reserve once the card has room again. Nothing unacknowledged and no active
order is ever freed: every event reaches the hub and the chain verifies."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.audit import Audit
from kiosk.clock import SystemClock, TrustedClock
from kiosk.store import Store
from tests.support.broker import Broker
from tests.support.disk import fill, tmpfs
from tests.support.flood import Flooder, junk_pool
from tests.support.harness import (
    SITE,
    CodeBook,
    DoorProc,
    SyncProc,
    import_orders,
    kiosk,
    open_door,
    outbox_size,
    write_config,
)
from tests.support.polling import dedup, wait_for
from tests.support.sync import Watcher

pytestmark = [
    pytest.mark.slow,
    pytest.mark.broker,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("mount") is None, reason="mounting a tmpfs needs root"
    ),
]

RESERVE_KB = 2048


def q(db: Path, sql: str) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute(sql).fetchone()[0] or 0)
    finally:
        con.close()


def test_a_full_card_never_stops_the_door_and_recovers(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker", extra_conf=["max_queued_messages 0"]).start()
    hub_key = Ed25519PrivateKey.generate()
    watcher = Watcher(broker.port, [f"pickup/v1/{SITE}/events", f"pickup/v1/{SITE}/status"])
    watcher.start()
    with tmpfs(tmp_path / "sd", size="24m") as sd:
        config = write_config(sd, hub_key, mqtt_url=broker.url)
        text = config.read_text().replace("[store]\n", f"[store]\nreserve_kb = {RESERVE_KB}\n")
        config.write_text(text)
        db = sd / "kiosk.db"
        book = CodeBook(import_orders(config, sd, hub_key, 20), random.Random(8008))
        with Store(db) as store:  # a past to free: 3,000 events the hub will acknowledge
            audit = Audit(store, SITE)
            snap = TrustedClock(SystemClock(), 0.0, synced=True).snapshot()
            with store.atomic():
                for i in range(3000):
                    audit.record("door_opened", snap, detail={"i": i, "pad": "x" * 300})
        reserve = Path(str(db) + ".reserve")
        door = DoorProc(config, tmp_path)
        sync = SyncProc(config, tmp_path)
        flooder: Flooder | None = None
        junk: Path | None = None
        try:
            door.wait_ready()
            wait_for(lambda: outbox_size(db) == 0, timeout=60, what="the past acknowledged")
            wait_for(reserve.exists, timeout=30, what="the space reserve")
            assert reserve.stat().st_size == RESERVE_KB * 1024
            orders_before = q(db, "SELECT count(*) FROM orders")
            junk = fill(sd)  # someone else filled the card to the last block
            for _ in range(4):
                open_door(door, db, book, timeout=30)
            assert not reserve.exists(), "the door's commit released the reserve"
            # The agent frees what may be lost, by itself.
            wait_for(
                lambda: q(
                    db,
                    "SELECT count(*) FROM events WHERE type = 'retention' AND "
                    "json_extract(body, '$.detail.reason') = 'disk_full'",
                ),
                timeout=60,
                what="room made",
            )
            alarms = lambda: {a for s in watcher.on("/status") for a in s.get("alarms", [])}  # noqa: E731
            wait_for(lambda: alarms() & {"disk_full", "reserve_spent"}, what="the alarm")
            # A flood while the card is full changes nothing for the door.
            flooder = Flooder("127.0.0.1", broker.port, junk_pool(SITE), rate=5000).start()
            for _ in range(6):
                open_door(door, db, book, timeout=30)
            flooder.stop()
            err = door.stderr()
            assert "cannot be written" not in err and "out_of_service" not in err, err[-2000:]
            assert door.proc.poll() is None and sync.proc.poll() is None
            assert q(db, "SELECT count(*) FROM orders") == orders_before
            # Space is back: the reserve comes back by itself.
            junk.unlink()
            junk = None
            wait_for(reserve.exists, timeout=60, what="the reserve re-created")
            wait_for(lambda: outbox_size(db) == 0, timeout=60, what="the drain")
            last = q(db, "SELECT max(seq) FROM events")
            got = dedup(watcher.on("/events"))
            assert [e["seq"] for e in got][:last] == list(range(1, last + 1))  # nothing lost
            check = kiosk("verify-log", config=config)
            assert check.returncode == 0, check.stderr
            assert "freed to make room on a full card" in check.stdout
        finally:
            if flooder is not None:
                flooder.stop()
            if junk is not None:
                junk.unlink()
            door.stop()
            sync.stop()
    watcher.stop()
    broker.stop()
