"""Reliability campaigns against real processes and a real Mosquitto (tests and bench).

docs/design.md, rule 3 (nothing lost) and the IEC 60839-11-1 items on
communication failure: ``kiosk sync`` SIGKILLed during a drain while ``kiosk
door`` takes pickups; the broker killed and restarted without persistence,
and frozen mid-stream (SIGSTOP/SIGCONT). ``tests/reliability`` runs them
small; ``bench/campaign.py`` runs them at full size.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.audit import Audit
from kiosk.clock import SystemClock, TrustedClock
from kiosk.store import Store
from protocol.events import verify_chain
from tests.support.broker import Broker
from tests.support.harness import (
    SITE,
    CodeBook,
    DoorProc,
    SyncProc,
    count_events,
    import_orders,
    open_door,
    outbox_size,
    stored_bodies,
    write_config,
)
from tests.support.polling import dedup
from tests.support.polling import wait_for as wait_until
from tests.support.sync import OWNER, Watcher, command

EVENTS = f"pickup/v1/{SITE}/events"


def prefill(db: Path, n: int) -> None:
    with Store(db) as store:
        audit = Audit(store, SITE)
        snap = TrustedClock(SystemClock(), 0.0, synced=True).snapshot()
        with store.atomic():
            for i in range(n):
                audit.record("door_opened", snap, detail={"i": i})


def assert_exactly_once(hub: Watcher, db: Path) -> tuple[int, int]:
    """Every stored event at the hub once after de-dup, in seq order, bodies unchanged."""
    bodies = stored_bodies(db)
    got = hub.on("/events")
    unique = dedup(got)
    assert [e["seq"] for e in unique] == list(range(1, len(bodies) + 1))
    assert verify_chain(unique) == len(bodies)
    assert all(
        json.dumps(e, ensure_ascii=False, separators=(",", ":")) == bodies[e["seq"]] for e in unique
    )
    return len(unique), len(got) - len(unique)


def hub_broker(workdir: Path, persistence: bool = True) -> Broker:
    """Mosquitto as a hub should run it: its default drops QoS 1 messages beyond
    1,000 queued for a subscriber that falls behind (docs/design.md), after PUBACK."""
    return Broker(workdir, persistence=persistence, extra_conf=["max_queued_messages 0"]).start()


def sync_kill_campaign(tmp_path: Path, *, kills: int, seed: int) -> None:
    """``kiosk sync`` SIGKILLed ``kills`` times during a drain while the door works;
    every event reaches a subscriber exactly once after de-dup, in seq order."""
    broker = hub_broker(tmp_path / "broker")
    try:
        _sync_kills(broker, tmp_path, kills, seed)
    finally:
        broker.stop()


def _sync_kills(broker: Broker, tmp_path: Path, kills: int, seed: int) -> None:
    print(f"seed {seed}")
    rng = random.Random(seed)
    hub_key = Ed25519PrivateKey.generate()
    config = write_config(tmp_path, hub_key, mqtt_url=broker.url)
    db = tmp_path / "kiosk.db"
    book = CodeBook(import_orders(config, tmp_path, hub_key, 60), rng)
    hub = Watcher(broker.port, [EVENTS]).start()
    door = DoorProc(config, tmp_path)
    mid_drain = 0
    try:
        door.wait_ready()
        for _ in range(kills):
            prefill(db, 2000)  # more to send, written while the door writes too
            open_door(door, db, book)
            queued = outbox_size(db)
            sync = SyncProc(config, tmp_path)
            if rng.random() < 0.25:
                time.sleep(rng.uniform(0.0, 0.6))  # during start-up and connect
            else:
                wait_until(
                    lambda: outbox_size(db) < queued,  # noqa: B023 - called now
                    20,
                    "the drain to start",
                )
                time.sleep(rng.uniform(0.0, 0.3))
            left = outbox_size(db)
            sync.kill()
            mid_drain += 0 < left < queued
        assert mid_drain >= kills // 2, f"only {mid_drain} kills landed mid-drain"
        assert door.stop() == 0
        sync = SyncProc(config, tmp_path)
        try:
            wait_until(lambda: outbox_size(db) == 0, 90, "the outbox to drain")
            n = count_events(db)
            wait_until(lambda: len(dedup(hub.on("/events"))) >= n, 30, "every event at the hub")
        finally:
            assert sync.stop() == 0
        unique, dupes = assert_exactly_once(hub, db)
        print(
            f"{kills} SIGKILLs of kiosk sync ({mid_drain} mid-drain): {unique} events "
            f"reached the hub exactly once after de-dup, in seq order "
            f"({dupes} duplicates resent after kills)"
        )
    finally:
        door.kill()
        hub.stop()


def recover_gaps(owner: Watcher, hub: Watcher, n: int) -> list[dict[str, Any]]:
    """What a hub does when seq shows a gap: ask the kiosk with a signed `logs` command."""
    have = {e["seq"] for e in hub.on("/events")}
    missing = sorted(set(range(1, n + 1)) - have)
    if not missing:
        return []
    now = time.time()
    cmd_id = f"L-{int(now * 1000)}"
    doc = command(
        cmd_id,
        "logs",
        site=SITE,
        issued_at=now,
        expires_at=now + 120,
        args={"since_seq": missing[0] - 1, "since_log_seq": 0},
    )
    owner.publish(f"pickup/v1/{SITE}/cmd/{cmd_id}", json.dumps(doc).encode())

    def pages() -> list[dict[str, Any]] | None:
        got = [p for p in owner.on(f"/cmd_result/{cmd_id}")]
        return got if got and got[-1].get("last") else None

    got = wait_until(pages, 30, "the logs pages")
    return [e for p in got for e in p["events"]]


def broker_outage_campaign(tmp_path: Path, *, down_s: float, frozen_s: float, seed: int) -> None:
    """The broker killed and restarted without persistence, then frozen; the door
    keeps opening and every event is there after a hub's gap fetch."""
    print(f"seed {seed}")
    rng = random.Random(seed)
    broker = hub_broker(tmp_path / "broker", persistence=False)
    hub_key = Ed25519PrivateKey.generate()
    config = write_config(tmp_path, hub_key, mqtt_url=broker.url, owner=OWNER)
    db = tmp_path / "kiosk.db"
    book = CodeBook(import_orders(config, tmp_path, hub_key, 60), rng)
    hub = Watcher(broker.port, [EVENTS]).start()
    hub.client.reconnect_delay_set(0.2, 1)
    door = DoorProc(config, tmp_path)
    sync = SyncProc(config, tmp_path)
    latencies: dict[str, list[float]] = {"up": [], "down": [], "frozen": []}
    try:
        door.wait_ready()
        for _ in range(3):
            latencies["up"].append(open_door(door, db, book))
        wait_until(lambda: outbox_size(db) == 0, 30, "first drain")

        broker.kill()  # down, and its sessions and queues are gone with it
        for _ in range(5):
            latencies["down"].append(open_door(door, db, book))
            time.sleep(down_s / 5)
        assert outbox_size(db) >= 5  # kept for later, not lost
        broker.start()  # same port, no persistence: a broker that forgot everything
        wait_until(lambda: outbox_size(db) == 0, 90, "drain after the broker came back")

        assert broker.proc is not None
        os.kill(broker.proc.pid, signal.SIGSTOP)  # traffic blocked mid-stream
        try:
            for _ in range(5):
                latencies["frozen"].append(open_door(door, db, book))
                time.sleep(frozen_s / 5)
            assert outbox_size(db) >= 5
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
        wait_until(lambda: outbox_size(db) == 0, 90, "drain after SIGCONT")
        assert door.stop() == 0
        wait_until(lambda: outbox_size(db) == 0, 30, "the shutdown event")
        n = count_events(db)
        # Acked means the broker took it; a subscriber that was reconnecting to a
        # broker that forgot its session may have missed some. The hub sees the
        # gap in seq and asks for them with a signed `logs` command.
        owner = Watcher(broker.port, [f"pickup/v1/{SITE}/cmd_result/+"]).start()
        recovered = recover_gaps(owner, hub, n)
        owner.stop()
        everything = dedup(hub.on("/events") + recovered)
        everything.sort(key=lambda e: e["seq"])
        # The `logs` command is itself an event (seq n + 1), which may arrive too.
        everything = [e for e in everything if e["seq"] <= n]
        assert [e["seq"] for e in everything] == list(range(1, n + 1))
        assert verify_chain(everything) == n
        bodies = stored_bodies(db)
        assert all(
            json.dumps(e, ensure_ascii=False, separators=(",", ":")) == bodies[e["seq"]]
            for e in everything
        )
        print(
            f"broker down {down_s:g} s, frozen {frozen_s:g} s; "
            f"door_unlocked latency (s) broker up {max(latencies['up']):.3f}, "
            f"down {max(latencies['down']):.3f}, frozen {max(latencies['frozen']):.3f} (max); "
            f"{n} events, {len({e['seq'] for e in recovered})} fetched again by `logs`"
        )
        assert sync.stop() == 0
    finally:
        door.kill()
        sync.kill()
        hub.stop()
        broker.stop()
