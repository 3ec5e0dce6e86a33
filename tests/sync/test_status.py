"""Status on change, on a timer of the injected clock, and the offline idle mode."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from kiosk.clock import FakeClock
from kiosk.store import Store
from sync.agent import run
from tests.support.broker import Broker
from tests.support.polling import wait_for
from tests.support.sync import T0, AgentThread, Watcher, make_config, topic


@pytest.mark.broker
def test_status_follows_the_door_and_repeats_every_five_minutes(
    broker: Broker, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    watcher = Watcher(broker.port, [topic("status")]).start()
    clock = FakeClock(wall=T0)
    with AgentThread(cfg, clock):
        first = wait_for(
            lambda: (s := watcher.on("/status")) and s[-1]["online"] and s[-1], what="online status"
        )
        assert (first["door"], first["lock"], first["mode"]) == ("closed", "locked", "night")
        assert first["orders_ready"] == 0 and first["ts"] == "2026-05-28T20:26:40Z"
        store.set_meta(
            "door_status", json.dumps({"door": "open", "lock": "unlocked", "mode": "day"})
        )
        clock.advance(1.5)
        changed = wait_for(
            lambda: (s := watcher.on("/status")) and s[-1]["door"] == "open" and s[-1],
            what="status after the door opened",
        )
        assert changed["lock"] == "unlocked" and changed["mode"] == "day"
        count = len(watcher.on("/status"))
        clock.advance(301)
        wait_for(lambda: len(watcher.on("/status")) > count, what="the 5-minute repeat")
        again = watcher.on("/status")[-1]
        assert again["door"] == "open" and again["ts"] > changed["ts"]
    watcher.stop()


def test_without_mqtt_the_agent_idles_until_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cfg = make_config(tmp_path, None)
    stop = threading.Event()
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(run(cfg, clock=FakeClock(), stop=stop)))
    t.start()
    wait_for(
        lambda: any("runs offline" in r.getMessage() for r in caplog.records),
        what="the offline notice",
    )
    assert t.is_alive()  # idle, not exited: systemd must not restart-loop it
    stop.set()
    t.join(10)
    assert result == [0]
    assert Store(cfg.store.path).get_meta("mqtt_online") == "0"


@pytest.mark.broker
def test_status_claims_its_seq_and_a_forged_claim_is_ignored(
    broker: Broker, tmp_path: Path
) -> None:
    """Anyone with write access to the status topic can retain a status claiming
    a huge seq; without this store's seal it moves nothing."""
    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    forger = Watcher(broker.port).start()
    forged = {"online": True, "site": "test-site-01", "last_seq": 10**12, "last_hash": "f" * 64}
    forger.publish(topic("status"), json.dumps(forged).encode(), retain=True)
    watcher = Watcher(broker.port, [topic("status"), topic("events")]).start()
    with AgentThread(cfg):
        status = wait_for(
            lambda: [s for s in watcher.on("/status") if s.get("last_seq") != 10**12],
            what="the kiosk's own status",
        )[-1]
        assert {"last_seq", "last_hash", "seal", "alarms"} <= set(status)
        assert status["last_seq"] == store.last_seq() < 10**6
        assert "store_rollback" not in status["alarms"]
        # Flooding the status topic afterwards is ignored (the agent unsubscribed).
        for i in range(200):
            forger.client.publish(topic("status"), b'{"last_seq": %d}' % (10**9 + i), qos=0)
        forger.publish(topic("status"), json.dumps(forged).encode())
    assert store.last_seq() < 10**6
    assert not [e for e in store.events_since(0) if e.type in ("seq_gap", "store_rollback")]
    forger.stop()
    watcher.stop()
