"""Events and logs up: order, QoS 1 acks, and exactly-once after de-duplication
across a broker restart and a SIGKILLed agent."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from kiosk.audit import Audit
from kiosk.clock import FakeClock, TrustedClock
from kiosk.store import Store
from protocol.events import verify_chain
from tests.support.broker import Broker
from tests.support.polling import dedup, wait_for
from tests.support.sync import (
    SITE,
    T0,
    AgentThread,
    Watcher,
    agent_process,
    config_dict,
    make_config,
    topic,
    write_toml,
)

pytestmark = pytest.mark.broker

# Run as root, mosquitto drops to user "mosquitto", who cannot write the test's
# folder, and then it keeps no sessions across a restart.
ROOT_USER = ["user root"] if os.geteuid() == 0 else []


def fill(store: Store, n: int) -> None:
    audit = Audit(store, SITE)
    snap = TrustedClock(FakeClock(wall=T0), T0, synced=True).snapshot()
    with store.atomic():
        for i in range(n):
            audit.record("door_opened", snap, detail={"i": i})


def test_events_and_logs_drain_in_order_and_are_acked(broker: Broker, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, broker.url, inflight=7)
    store = Store(cfg.store.path)
    fill(store, 500)
    for i in range(3):
        store.append_log(T0 + i, "WARNING", "kiosk.door", f"door note {i}")
    hub = Watcher(broker.port, [topic("events"), topic("log")]).start()
    with AgentThread(cfg):
        wait_for(lambda: len(hub.on("/events")) >= 500, what="500 events")
        wait_for(lambda: store.outbox_size() == 0, what="all acked")
        wait_for(lambda: len(hub.on("/log")) >= 3, what="log records")
    events = hub.on("/events")
    # No reconnect happened, so no duplicates: exactly the stored bodies, in order.
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert verify_chain(events) == len(events)
    bodies = {e.seq: e.body for e in store.events_since(0)}
    raw = [p for t, p, _ in hub.messages if t.endswith("/events")]
    assert all(p.decode() == bodies[json.loads(p)["seq"]] for p in raw)
    assert all(e.acked for e in store.events_since(0))
    logs = [r for r in hub.on("/log") if r["logger"] == "kiosk.door"]
    assert [r["message"] for r in logs] == ["door note 0", "door note 1", "door note 2"]
    assert set(logs[0]) == {"v", "site", "seq", "ts", "level", "logger", "message"}
    assert logs[0]["level"] == "WARNING" and logs[0]["ts"] == "2026-05-28T20:26:40Z"
    assert store.logs_outbox_size() == 0
    hub.stop()


def test_broker_restart_mid_drain_loses_nothing(tmp_path: Path) -> None:
    # The hub's queue must hold what arrives while it reconnects (mosquitto's
    # default drops beyond 1,000 queued messages per offline client).
    broker = Broker(tmp_path / "broker", extra_conf=["max_queued_messages 0", *ROOT_USER]).start()
    cfg = make_config(tmp_path, broker.url, inflight=5)
    store = Store(cfg.store.path)
    fill(store, 3000)
    hub = Watcher(broker.port, [topic("events")], client_id="hub-1", persistent=True).start()
    clock = FakeClock(wall=T0)
    with AgentThread(cfg, clock):
        wait_for(lambda: len(hub.on("/events")) >= 200, what="drain started")
        broker.restart()  # graceful stop and start; the agent's in-flight window is cut
        assert store.outbox_size() > 0, "the drain finished before the restart"
        wait_for(
            lambda: store.outbox_size() == 0,
            timeout=60,
            what="drained after restart",
            tick=lambda: clock.advance(0.5),
        )  # backoff runs on the injected clock
        try:
            wait_for(
                lambda: len(dedup(hub.on("/events"))) >= 3000,
                timeout=10,
                what="every event at the hub",
            )
        except AssertionError:
            got = {e["seq"] for e in hub.on("/events")}
            missing = sorted(set(range(1, 3001)) - got)
            raise AssertionError(
                f"{len(missing)} missing: {missing[:5]}..{missing[-5:]}; "
                f"got {len(hub.on('/events'))}"
            ) from None
    events = dedup(hub.on("/events"))
    assert [e["seq"] for e in events] == list(range(1, 3001))
    assert verify_chain(events) == 3000
    hub.stop()
    broker.stop()


@pytest.mark.slow
def test_agent_sigkill_mid_drain_then_restart(broker: Broker, tmp_path: Path) -> None:
    conf = write_toml(tmp_path / "kiosk.toml", config_dict(tmp_path, broker.url, inflight=3))
    store = Store(tmp_path / "kiosk.db")
    fill(store, 4000)
    hub = Watcher(broker.port, [topic("events")]).start()
    proc = agent_process(conf)
    try:
        wait_for(lambda: store.outbox_size() < 3800, what="first acks written")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        left = store.outbox_size()
        assert 0 < left < 4000, "kill did not land mid-drain"
        proc = agent_process(conf)
        wait_for(lambda: store.outbox_size() == 0, timeout=60, what="drained after restart")
        wait_for(lambda: len(dedup(hub.on("/events"))) >= 4000, what="every event")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    events = hub.on("/events")
    unique = dedup(events)
    assert [e["seq"] for e in unique] == list(range(1, 4001))
    assert verify_chain(unique) == 4000
    # Duplicates are only the un-acknowledged tail at the kill, never more.
    assert len(events) - len(unique) <= 4000 - left + 3 + 500
    hub.stop()


@pytest.mark.slow
def test_will_marks_the_kiosk_offline_after_sigkill(broker: Broker, tmp_path: Path) -> None:
    # will_delay_s: the broker holds the will back that long (a kiosk back sooner
    # keeps its last status); short here so the test sees it.
    conf = write_toml(tmp_path / "kiosk.toml", config_dict(tmp_path, broker.url, will_delay_s=1))
    watcher = Watcher(broker.port, [topic("status")]).start()
    proc = agent_process(conf)
    try:
        status = wait_for(
            lambda: (s := watcher.on("/status")) and s[-1]["online"] and s[-1], what="online status"
        )
        assert status["door"] == "closed" and status["lock"] == "locked"
        assert status["mode"] == "night" and status["clock"] in ("synced", "untrusted")
        assert {"ts", "version", "orders_ready", "outbox", "last_seq"} <= set(status)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        wait_for(lambda: watcher.on("/status")[-1]["online"] is False, what="the will")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    late = Watcher(broker.port, [topic("status")]).start()  # retained for newcomers
    got = wait_for(lambda: late.on("/status"), what="retained status")
    assert got[-1]["online"] is False and got[-1]["site"] == SITE
    # the will still says which seq the kiosk had reached when it connected
    assert {"last_seq", "last_hash", "seal"} <= set(got[-1])
    assert Store(tmp_path / "kiosk.db").get_meta("mqtt_online") == "1"  # it died online
    late.stop()
    watcher.stop()


@pytest.mark.slow
def test_sigterm_says_offline_and_exits_zero(broker: Broker, tmp_path: Path) -> None:
    conf = write_toml(tmp_path / "kiosk.toml", config_dict(tmp_path, broker.url))
    watcher = Watcher(broker.port, [topic("status")]).start()
    proc = agent_process(conf)
    try:
        wait_for(lambda: (s := watcher.on("/status")) and s[-1]["online"], what="online")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    last = wait_for(
        lambda: (s := watcher.on("/status")) and not s[-1]["online"] and s[-1], what="offline"
    )
    assert last["reason"] == "shutdown"
    assert Store(tmp_path / "kiosk.db").get_meta("mqtt_online") == "0"
    watcher.stop()


@pytest.mark.slow
def test_the_agent_process_runs_below_the_door_s_priority(broker: Broker, tmp_path: Path) -> None:
    """A flood keeps the agent busy; the door (nice 0) must win the CPU."""
    import os

    conf = write_toml(tmp_path / "kiosk.toml", config_dict(tmp_path, broker.url))
    proc = agent_process(conf)
    try:
        wait_for(lambda: os.getpriority(os.PRIO_PROCESS, proc.pid) == 10, what="nice 10")
    finally:
        proc.kill()
        proc.wait(5)
