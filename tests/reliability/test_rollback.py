"""A disk that lies is caught (issue 11 item 9), with real processes: a real
``kiosk door`` and ``kiosk sync`` take pickups and publish their events to a
Mosquitto that keeps the kiosk's retained status; both are SIGKILLed, and
the card loses the end of the WAL (committed, published events vanish, as
when a few bytes of it are flipped: SQLite stops at the first bad frame).
Restarted, the kiosk notices its trail is behind what it published, records
``store_rollback``, and continues after the published seq with a
``seq_gap``: a hub that de-duplicates by ``event_id`` never receives a seq
twice with different contents, loses nothing, and its chain verifies."""

from __future__ import annotations

import json
import random
import sqlite3
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.events import verify_chain
from tests.support.broker import Broker
from tests.support.harness import (
    SITE,
    CodeBook,
    DoorProc,
    SyncProc,
    import_orders,
    kiosk,
    open_door,
    stored_bodies,
    write_config,
)
from tests.support.polling import dedup, wait_for
from tests.support.sync import Watcher

pytestmark = [pytest.mark.slow, pytest.mark.broker]


def commit_ends(wal: Path) -> list[int]:
    """Byte offsets just after each commit frame of a WAL file."""
    data = wal.read_bytes()
    page_size = struct.unpack(">I", data[8:12])[0]
    frame = 24 + page_size
    ends = []
    for off in range(32, len(data) - frame + 1, frame):
        if struct.unpack(">I", data[off + 4 : off + 8])[0]:  # "db size after commit"
            ends.append(off + frame)
    return ends


def events_of(watcher: Watcher) -> list[dict[str, Any]]:
    return watcher.on("/events")


def test_a_lost_wal_tail_never_makes_a_published_seq_mean_something_else(
    tmp_path: Path,
) -> None:
    broker = Broker(tmp_path / "broker", extra_conf=["max_queued_messages 0"]).start()
    hub_key = Ed25519PrivateKey.generate()
    watcher = Watcher(broker.port, [f"pickup/v1/{SITE}/events", f"pickup/v1/{SITE}/status"])
    watcher.start()
    config = write_config(tmp_path, hub_key, mqtt_url=broker.url)
    db = tmp_path / "kiosk.db"
    book = CodeBook(import_orders(config, tmp_path, hub_key, 30), random.Random(8008))
    door, sync = DoorProc(config, tmp_path), SyncProc(config, tmp_path)
    try:
        door.wait_ready()
        for _ in range(8):
            open_door(door, db, book)
        last = max(stored_bodies(db))
        wait_for(
            lambda: (
                {e["seq"] for e in events_of(watcher)} >= set(range(1, last + 1))
                and watcher.on("/status")[-1].get("last_seq") == last
            ),
            timeout=30,
            what="every event published and the status claiming it",
        )
        published = {e["seq"]: e for e in dedup(events_of(watcher))}
    finally:
        door.kill()
        sync.kill()
    # The card loses the end of the WAL: the last commits vanish.
    wal = Path(str(db) + "-wal")
    ends = commit_ends(wal)
    assert len(ends) > 10, "expected the run to still be in the WAL"
    with open(wal, "r+b") as f:
        f.truncate(ends[len(ends) // 3])
    Path(str(db) + "-shm").unlink()
    kept = max(stored_bodies(db))
    assert kept < last, "the truncation should have lost published events"

    door, sync = DoorProc(config, tmp_path), SyncProc(config, tmp_path)
    try:
        door.wait_ready()
        wait_for(
            lambda: any(
                json.loads(b)["type"] == "store_rollback" for b in stored_bodies(db).values()
            ),
            timeout=30,
            what="the rollback noticed",
        )
        for _ in range(3):
            open_door(door, db, book)
        now_last = max(stored_bodies(db))
        wait_for(
            lambda: {e["seq"] for e in events_of(watcher)} >= set(stored_bodies(db)),
            timeout=30,
            what="the new events at the hub",
        )
        status = watcher.on("/status")[-1]
        assert "store_rollback" in status.get("alarms", [])
    finally:
        door.stop()
        sync.stop()
    bodies = {seq: json.loads(b) for seq, b in stored_bodies(db).items()}
    gap = next(e for e in bodies.values() if e["type"] == "seq_gap")
    assert gap["seq"] == last + 1 and gap["prev_hash"] == published[last]["hash"]
    assert gap["detail"]["to"] == last and gap["detail"]["reason"] == "store_rollback"
    rollback = next(e for e in bodies.values() if e["type"] == "store_rollback")
    assert rollback["detail"]["published_seq"] == last and rollback["detail"]["verified"]
    assert now_last > last
    # What a hub de-duplicating by event_id sees: no event_id with two contents...
    seen: dict[str, dict[str, Any]] = {}
    for ev in events_of(watcher):
        assert seen.setdefault(ev["event_id"], ev) == ev, f"{ev['event_id']} reused"
    # ... nothing the kiosk holds is missing, and the chain verifies straight on.
    hub = sorted(seen.values(), key=lambda e: e["seq"])
    assert {e["seq"] for e in hub} >= set(bodies)
    assert [e["seq"] for e in hub] == list(range(1, hub[-1]["seq"] + 1))
    assert verify_chain(hub) == len(hub)
    out = kiosk("verify-log", config=config)
    assert out.returncode == 0, out.stderr
    assert f"gap: seqs {gap['detail']['from']} to {last}" in out.stdout
    assert "rollback:" in out.stdout
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    watcher.stop()
    broker.stop()
