"""Orders down: retained delivery, versions, rejections, forgetting, the clock floor."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.config import from_mapping
from kiosk.store import Store
from tests.support.broker import Broker
from tests.support.polling import wait_for
from tests.support.sync import (
    HUB,
    OWNER,
    STRANGER,
    T0,
    AgentThread,
    Watcher,
    as_bytes,
    config_dict,
    make_config,
    order,
    topic,
)

pytestmark = pytest.mark.broker


def rejected(store: Store) -> list[dict[str, object]]:
    return [e.as_dict() for e in store.events_since(0) if e.type == "message_rejected"]


def test_retained_orders_published_while_down_arrive_after_connect(
    broker: Broker, tmp_path: Path
) -> None:
    hub = Watcher(broker.port).start()
    for i in range(30):
        hub.publish(
            topic("orders", f"O-{i}"), as_bytes(order(f"O-{i}", pickup_no=f"{i:03d}")), retain=True
        )
    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    with AgentThread(cfg):
        wait_for(lambda: store.count_orders() == 30, what="30 orders")
    assert {o.order_id for o in store.list_orders()} == {f"O-{i}" for i in range(30)}
    assert store.get_order("O-7").pickup_no == "007"  # type: ignore[union-attr]
    assert store.get_meta("mqtt_online") == "0"  # the agent said goodbye
    hub.stop()


def test_versions_out_of_order_duplicates_and_forget(broker: Broker, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    hub = Watcher(broker.port).start()
    with AgentThread(cfg):
        t = topic("orders", "A-1")
        hub.publish(t, as_bytes(order("A-1", 3, status="ready")), retain=True)
        wait_for(lambda: store.get_order("A-1"), what="A-1")
        hub.publish(t, as_bytes(order("A-1", 2, status="cancelled")), retain=True)
        hub.publish(t, as_bytes(order("A-1", 3, status="cancelled")), retain=True)
        hub.publish(t, as_bytes(order("A-1", 4, status="paid")), retain=True)
        wait_for(lambda: (o := store.get_order("A-1")) and o.version == 4, what="v4")
        held = store.get_order("A-1")
        assert held is not None and held.status == "paid"
        updates = [e for e in store.events_since(0) if e.type == "order_updated"]
        assert [e.as_dict()["detail"]["version"] for e in updates] == [3, 4]
        hub.publish(t, b"", retain=True)
        wait_for(lambda: store.get_order("A-1") is None, what="forgotten")
        assert any(e.type == "order_forgotten" for e in store.events_since(0))
    hub.stop()


def test_bad_documents_are_rejected_whole_and_the_agent_keeps_running(
    broker: Broker, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    hub = Watcher(broker.port).start()
    forged = order("B-2")
    forged["slot"] = "Z9"  # changed after signing
    bad = {
        "B-1": as_bytes(order("B-1", key=STRANGER)),  # signed by an unknown key
        "B-2": as_bytes(forged),  # signature no longer matches
        "B-3": as_bytes(order("B-3", key=None)),  # unsigned
        "B-4": as_bytes(order("B-4", site="other-site")),  # wrong site
        "B-5": as_bytes(order("B-6")),  # order_id differs from the topic's
        "B-7": b"{not json",
        "B-8": b"\xff\xfe\x00binary",
        "B-9": b"[1, 2, 3]",
        "B-10": b"{" + b" " * (64 * 1024 + 10) + b"}",
        "B-11": as_bytes(order("B-11", otp={"secret": "AAAA", "digits": 6, "period": 30})),
    }
    with AgentThread(cfg):
        for oid, payload in bad.items():
            hub.publish(topic("orders", oid), payload, retain=True)
        hub.publish(topic("orders", "GOOD"), as_bytes(order("GOOD")), retain=True)
        wait_for(lambda: store.get_order("GOOD"), what="the good order after the bad ones")
        wait_for(lambda: len(rejected(store)) == len(bad), what="one rejection each")
        assert store.count_orders() == 1
        reasons = {
            e["detail"]["topic"].rsplit("/", 1)[1]: e["detail"]["reason"]  # type: ignore[index]
            for e in rejected(store)
        }
        assert reasons == {
            "B-1": "bad_signature",
            "B-2": "bad_signature",
            "B-3": "unsigned",
            "B-4": "wrong_site",
            "B-5": "order_id_mismatch",
            "B-7": "malformed",
            "B-8": "not_utf8",
            "B-9": "not_object",
            "B-10": "too_large",
            "B-11": "bad_otp_secret",
        }
        # Never the payload, never the secret.
        trail = json.dumps([e.as_dict() for e in store.events_since(0)])
        assert "GEZDGNBVGY3TQOJQ" not in trail and "binary" not in trail
    hub.stop()


def test_signed_issued_at_raises_the_document_floor_within_its_bound(
    broker: Broker, tmp_path: Path
) -> None:
    # An untrusted clock (no NTP): signed times are the kiosk's only evidence.
    data = config_dict(tmp_path, broker.url)
    data["clock"] = {"trust_system_clock": "never"}
    cfg = from_mapping(data, "test.toml")
    store = Store(cfg.store.path)
    hub = Watcher(broker.port).start()
    with AgentThread(cfg):
        # A forged document from the future must not move the floor ...
        hub.publish(
            topic("orders", "F-1"),
            as_bytes(order("F-1", key=STRANGER, issued_at=T0 + 5000)),
            retain=True,
        )
        # ... a signed one an hour ahead of the untrusted wall clock does (an owner
        # key also signs orders) ...
        hub.publish(
            topic("orders", "F-2"),
            as_bytes(order("F-2", key=OWNER, issued_at=T0 + 3600)),
            retain=True,
        )
        wait_for(lambda: store.get_order("F-2"), what="F-2")
        wait_for(lambda: store.doc_floor() >= T0 + 3600, what="floor raised")
        # ... and a signed one ten years ahead is a conflict, never adopted.
        hub.publish(
            topic("orders", "F-3"),
            as_bytes(order("F-3", key=HUB, issued_at=T0 + 10 * 365 * 86400)),
            retain=True,
        )
        wait_for(
            lambda: [e for e in store.events_since(0) if e.type == "clock_conflict"],
            what="clock_conflict",
        )
        assert T0 + 3600 <= store.doc_floor() < T0 + 5000
        assert store.clock_floor() < T0 + 5000
    hub.stop()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=st.one_of(
        st.binary(min_size=1, max_size=300),
        st.text(min_size=1, max_size=200).map(lambda s: s.encode("utf-8")),
        st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=5).map(
            lambda d: json.dumps(d).encode()
        ),
    )
)
def test_fuzzed_payloads_store_nothing(
    tmp_path_factory: pytest.TempPathFactory, payload: bytes
) -> None:
    from kiosk.clock import FakeClock
    from sync.agent import Agent
    from sync.connection import Message

    # The ingest path without a network: the same code the loop calls.

    tmp = tmp_path_factory.mktemp("fuzz")
    cfg = make_config(tmp, "mqtt://127.0.0.1:1")
    agent = Agent(cfg, FakeClock(wall=T0), threading.Event())
    try:
        agent._ingest([Message(topic("orders", "X-1"), payload, True, 1)])
        assert agent.store.count_orders() == 0
        assert [e.type for e in agent.store.events_since(0)] == ["message_rejected"]
        detail = agent.store.events_since(0)[0].as_dict()["detail"]
        assert detail["topic"] == topic("orders", "X-1")
    finally:
        agent.store.close()


def test_replayed_retained_orders_are_skipped_but_changed_ones_are_not(tmp_path: Path) -> None:
    from kiosk.clock import FakeClock
    from sync.agent import Agent
    from sync.connection import Message

    cfg = make_config(tmp_path, "mqtt://127.0.0.1:1")
    agent = Agent(cfg, FakeClock(wall=T0), threading.Event())
    try:
        doc = order("R-1", 2)
        agent._ingest([Message(topic("orders", "R-1"), as_bytes(doc), True, 1)])
        n_events = agent.store.last_seq()
        # The same document again (a resubscribe): nothing new, no verification.
        agent._ingest([Message(topic("orders", "R-1"), as_bytes(doc), True, 1)])
        assert agent.replays_skipped == 1 and agent.store.last_seq() == n_events
        # Same version, changed content, bad signature: the full path rejects it.
        forged = dict(doc, slot="Z9")
        agent._ingest([Message(topic("orders", "R-1"), as_bytes(forged), True, 1)])
        assert agent.replays_skipped == 1
        assert [e.type for e in agent.store.events_since(n_events)] == ["message_rejected"]
        held = agent.store.get_order("R-1")
        assert held is not None and held.slot == "B3"
    finally:
        agent.store.close()
