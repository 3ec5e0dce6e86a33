"""The outbox on its own: window, acks only on PUBACK, restart from the first unacked."""

from __future__ import annotations

from pathlib import Path

from kiosk.audit import Audit
from kiosk.clock import FakeClock, TrustedClock
from kiosk.store import Store
from sync.outbox import Outbox
from tests.support.sync import SITE, T0


class Wire:
    """What paho's publish does for the outbox: hand out mids, remember payloads."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str, bytes]] = []
        self.up = True

    def __call__(self, topic: str, payload: bytes) -> int | None:
        if not self.up:
            return None
        mid = len(self.sent) + 1
        self.sent.append((mid, topic, payload))
        return mid


def test_window_acks_and_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    audit = Audit(store, SITE)
    snap = TrustedClock(FakeClock(wall=T0), T0, synced=True).snapshot()
    for i in range(10):
        audit.record("door_opened", snap, detail={"i": i})
    store.append_log(T0, "INFO", "x", "hello")
    box = Outbox(store, SITE, FakeClock(wall=T0), window=4)
    wire = Wire()
    assert box.fill(wire) == 4 and box.fill(wire) == 0  # the window is full
    assert [p for _, _, p in wire.sent] == [e.body.encode() for e in store.events_since(0, 4)]
    # PUBACKs for mids 1 and 3 (2 is still out); only acked rows are marked.
    box.on_ack(1, True)
    box.on_ack(3, True)
    assert box.on_ack(99, True) is False  # not ours
    box.flush(force=True)
    assert [e.seq for e in store.outbox(100)] == [2, 4, 5, 6, 7, 8, 9, 10]
    assert box.fill(wire) == 2  # two slots free again: seq 5 and 6
    # A refused PUBACK (e.g. not authorized) leaves the row in the outbox.
    box.on_ack(5, False, "Not authorized")
    box.flush(force=True)
    assert store.outbox_size() == 8
    # Reconnect: in-flight mids are forgotten, sending restarts at seq 2.
    box.restart()
    wire.sent.clear()
    box.fill(wire)
    assert [int(p.split(b'"seq":')[1].split(b",")[0]) for _, _, p in wire.sent] == [2, 4, 5, 6]
    # When the events are all out, the log record follows on the log topic.
    for mid, _, _ in list(wire.sent):
        box.on_ack(mid, True)
    box.flush(force=True)
    while store.outbox_size():
        before = len(wire.sent)
        box.fill(wire)
        for mid, _, _ in wire.sent[before:]:
            box.on_ack(mid, True)
        box.flush(force=True)
    box.fill(wire)
    assert wire.sent[-1][1] == f"pickup/v1/{SITE}/log"
    box.on_ack(wire.sent[-1][0], True)
    box.flush(force=True)
    assert store.logs_outbox_size() == 0
    # Disconnected: nothing is handed over and nothing is lost.
    wire.up = False
    audit.record("door_closed", snap)
    assert box.fill(wire) == 0 and store.outbox_size() == 1
