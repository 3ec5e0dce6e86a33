"""Every message judged alone, every duty alone; floods cost a bounded amount
(issue 11 items 3 and 5), against a real broker and the agent in a thread."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sync.commands
from kiosk import orders as orders_mod
from kiosk.audit import REJECT_BURST
from kiosk.clock import FakeClock
from kiosk.store import Store
from sync.outbox import Outbox
from tests.support.broker import Broker
from tests.support.polling import wait_for
from tests.support.sync import (
    HUB,
    STRANGER,
    T0,
    AgentThread,
    Watcher,
    as_bytes,
    command,
    make_config,
    online_agent,
    order,
    topic,
)

pytestmark = pytest.mark.broker


def rejections(store: Store) -> list[dict[str, Any]]:
    return [e.as_dict()["detail"] for e in store.events_since(0) if e.type == "message_rejected"]


def summarized(store: Store) -> int:
    return sum(
        e.as_dict()["detail"]["total"]
        for e in store.events_since(0)
        if e.type == "rejections_summarized"
    )


def test_a_defect_judging_one_message_hurts_no_other(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_to_row = orders_mod.to_row
    real_check_args = sync.commands.check_args

    def to_row(doc: Any, **kw: Any) -> Any:
        if isinstance(doc, dict) and doc.get("order_id") == "BOOM":
            raise RuntimeError("a defect only this document meets: secret=123456")
        return real_to_row(doc, **kw)

    def check_args(cmd: Any) -> Any:
        if cmd.cmd_id == "C-BOOM":
            raise KeyError("a defect only this command meets")
        return real_check_args(cmd)

    fills = {"n": 0}
    real_fill = Outbox.fill

    def fill(self: Outbox, publish: Any, **kw: Any) -> int:
        fills["n"] += 1
        if fills["n"] == 3:
            raise ZeroDivisionError("a duty's defect, once")
        return real_fill(self, publish, **kw)

    monkeypatch.setattr(orders_mod, "to_row", to_row)
    monkeypatch.setattr(sync.commands, "check_args", check_args)
    monkeypatch.setattr(Outbox, "fill", fill)
    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    hub = Watcher(broker.port, [topic("events"), topic("cmd_result/+")]).start()
    with AgentThread(cfg):
        wait_for(store.mqtt_online, what="online")
        burst = [
            (topic("orders", "A"), as_bytes(order("A", pickup_no="001"))),
            (topic("orders", "BOOM"), as_bytes(order("BOOM", pickup_no="002"))),
            (topic("orders", "SUR"), b'{"v": 1, "order_id": "SUR", "x": "\\ud800"}'),
            (topic("cmd", "S-1"), as_bytes(command("S-1", "sync", args={}))),
            (topic("cmd", "C-BOOM"), as_bytes(command("C-BOOM", "sync", args={}))),
            (topic("orders", "B"), as_bytes(order("B", pickup_no="003"))),
            (topic("cmd", "S-2"), as_bytes(command("S-2", "sync", args={}))),
        ]
        for t, p in burst:
            hub.client.publish(t, p, qos=1)
        wait_for(lambda: store.get_order("A") and store.get_order("B"), what="A and B")
        assert store.get_order("BOOM") is None
        wait_for(lambda: len(rejections(store)) >= 2, what="two rejections")
        by_id = {d.get("topic", "").rsplit("/", 1)[-1]: d for d in rejections(store)}
        assert by_id["BOOM"]["reason"] == "internal"
        assert "RuntimeError" in by_id["BOOM"]["message"]
        assert "123456" not in json.dumps(rejections(store))  # never the exception's text
        assert by_id["SUR"]["reason"] == "bad_text"
        for cmd_id in ("S-1", "S-2"):
            wait_for(lambda c=cmd_id: hub.on(f"/cmd_result/{c}"), what=cmd_id)
        boom = wait_for(lambda: hub.on("/cmd_result/C-BOOM"), what="C-BOOM")[0]
        assert boom["ok"] is False and boom["reason"] == "internal"
        # The drain failed once and went on: every stored event reaches the hub.
        wait_for(
            lambda: {e["seq"] for e in hub.on("/events")} >= set(range(1, store.last_seq() + 1)),
            what="all events at the hub",
        )
        assert fills["n"] > 3
    logs = " ".join(r.message for r in store.logs_since(0, 1000))
    assert "123456" not in logs and "ZeroDivisionError" in logs
    hub.stop()


def test_a_flood_costs_a_bounded_amount_and_valid_messages_still_pass(
    broker: Broker, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    clock = FakeClock(wall=T0)
    hub = Watcher(broker.port, [topic("cmd_result/+"), topic("status")]).start()
    rng = random.Random(8008)
    junk = 0
    with AgentThread(cfg, clock):
        wait_for(store.mqtt_online, what="online")
        wait_for(lambda: hub.on("/status"), what="a status")
        before_events, before_logs = store.last_seq(), store.logs_outbox_size()
        for i in range(3000):
            kind = i % 5
            if kind == 0:
                t, p = topic("orders", f"J-{i}"), rng.randbytes(rng.randint(1, 200))
            elif kind == 1:
                doc = order(f"J-{i}", key=STRANGER)
                t, p = topic("orders", f"J-{i}"), as_bytes(doc)
            elif kind == 2:
                t, p = topic("cmd", f"J-{i}"), rng.randbytes(50)
            elif kind == 3:
                t, p = topic("cmd", f"J-{i}"), as_bytes(command(f"J-{i}", key=STRANGER))
            else:
                t, p = topic("orders", "x" * 70 + str(i)), b"{}"
            hub.client.publish(t, p, qos=1)  # QoS 0 may be dropped by a busy broker
            junk += 1
        # A valid order and an owner's command, sent after the flood, get through.
        hub.publish(topic("orders", "OK-1"), as_bytes(order("OK-1")))
        hub.publish(topic("cmd", "S-9"), as_bytes(command("S-9", "sync", args={})))
        wait_for(lambda: store.get_order("OK-1"), timeout=60, what="the valid order")
        wait_for(lambda: hub.on("/cmd_result/S-9"), timeout=60, what="the owner's answer")
        wait_for(
            lambda: "flood" in (hub.on("/status") or [{}])[-1].get("alarms", []),
            what="the flood alarm",
        )
        individual = len(rejections(store)) + sum(
            1
            for e in store.events_since(0)
            if e.type == "command" and e.as_dict()["detail"]["ok"] is False
        )
        assert individual == REJECT_BURST  # the injected clock stands still: no refill
        clock.advance(61)  # a minute later: one summary with the count
        wait_for(lambda: summarized(store) > 0, what="the summary")
        wait_for(lambda: individual + summarized(store) >= junk, what="every message counted")
        assert individual + summarized(store) == junk
        summaries = sum(1 for e in store.events_since(0) if e.type == "rejections_summarized")
        added = store.last_seq() - before_events
        assert added == individual + summaries + 2  # + the order and the owner's command
        # log records: one line per recorded rejection, one per summary, a few others
        assert store.logs_outbox_size() - before_logs <= individual + summaries + 5
    hub.stop()


def test_a_captured_signed_refusal_replayed_costs_no_more_than_junk(
    broker: Broker, tmp_path: Path
) -> None:
    """A command signed by a trusted key but refused before its times are judged
    (the hub key signing an unlock, a lifetime over 10 minutes, args that are
    not an object) is remembered like any signed command: replayed a thousand
    times, it is recorded and answered once, then the replays are `replayed`
    and pass the flood limiter. Before, every replay wrote an event and an answer."""
    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    clock = FakeClock(wall=T0)
    owner = Watcher(broker.port, [topic("cmd_result/+")]).start()
    captured = {
        "R-hub": (command("R-hub", key=HUB), "wrong_role"),
        "R-long": (command("R-long", expires_at=T0 + 3600), "too_long_lived"),
        "R-args": (command("R-args", "logs", args=[1]), "bad_args"),  # type: ignore[arg-type]
    }
    with AgentThread(cfg, clock):
        wait_for(store.mqtt_online, what="online")
        for _ in range(300):
            for cmd_id, (doc, _reason) in captured.items():
                owner.client.publish(topic("cmd", cmd_id), as_bytes(doc), qos=1)
        owner.publish(topic("cmd", "S-1"), as_bytes(command("S-1", "sync", args={})))
        wait_for(lambda: owner.on("/cmd_result/S-1"), timeout=60, what="the owner's answer")
        clock.advance(61)
        wait_for(
            lambda: sum(e.type == "rejections_summarized" for e in store.events_since(0)),
            what="the summary",
        )
        details = [e.as_dict()["detail"] for e in store.events_since(0) if e.type == "command"]
        refusals = [d for d in details if d["ok"] is False]
        first = {d["cmd_id"]: d["refusal"] for d in refusals if d["refusal"] != "replayed"}
        assert first == {k: reason for k, (_doc, reason) in captured.items()}
        assert len(refusals) <= len(captured) + REJECT_BURST
        for cmd_id in captured:  # each answered at most burst-many times, never 300
            assert 1 <= len(owner.on(f"/cmd_result/{cmd_id}")) <= REJECT_BURST
    owner.stop()


# ----- random and mutated documents mixed with valid ones -------------------------

_counter = {"n": 0}


def _mutate(doc: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    out = json.loads(json.dumps(doc))
    key = rng.choice(sorted(out))
    choices: list[Any] = [None, 0, -1, 10**25, 1.5, "", "x" * 300, [], {}, True, "\u0000"]
    value = rng.choice(choices)
    if out[key] == value:
        value = "changed"
    out[key] = value
    return out


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=st.lists(
        st.sampled_from(["valid", "mutated", "random", "surrogate", "deep", "bigint", "cmd"]),
        min_size=1,
        max_size=15,
    ),
    seed=st.integers(0, 2**32),
)
def test_poison_mixed_into_batches(
    running_agent: tuple[Store, Watcher, FakeClock], plan: list[str], seed: int
) -> None:
    """Every valid one stored, every bad one rejected alone, the agent alive and draining."""
    store, hub, clock = running_agent
    rng = random.Random(seed)
    valid: list[str] = []
    bad = 0
    before = len(rejections(store)) + summarized(store)
    for what in plan:
        _counter["n"] += 1
        oid = f"H-{_counter['n']}"
        if what == "valid":
            valid.append(oid)
            payload = as_bytes(order(oid, pickup_no=f"{_counter['n'] % 1000:03d}"))
        elif what == "mutated":
            payload = as_bytes(_mutate(order(oid), rng))
        elif what == "random":
            payload = rng.randbytes(rng.randint(1, 300))
        elif what == "surrogate":
            payload = b'{"v": 1, "order_id": "%s", "name": "\\udc00"}' % oid.encode()
        elif what == "deep":
            payload = b'{"a":' * 40 + b"1" + b"}" * 40
        elif what == "bigint":
            payload = as_bytes({**order(oid), "version": 0}).replace(
                b'"version": 0', b'"version": ' + b"9" * 5000
            )
        else:
            hub.client.publish(topic("cmd", oid), as_bytes(command(oid, "sync", args={})), qos=1)
            valid.append("cmd:" + oid)
            continue
        if what != "valid":
            bad += 1
        hub.client.publish(topic("orders", oid), payload, qos=1)
    for v in valid:
        if v.startswith("cmd:"):
            wait_for(lambda c=v[4:]: hub.on(f"/cmd_result/{c}"), what=v)
        else:
            wait_for(lambda o=v: store.get_order(o), what=v)
    clock.advance(61)  # let any held-back rejections be summarized
    wait_for(
        lambda: len(rejections(store)) + summarized(store) - before >= bad,
        what=f"{bad} rejections",
    )
    assert len(rejections(store)) + summarized(store) - before == bad
    wait_for(
        lambda: {e["seq"] for e in hub.on("/events")} >= set(range(1, store.last_seq() + 1)),
        what="the drain",
    )


@pytest.fixture(scope="module")
def running_agent(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with online_agent(
        tmp_path_factory.mktemp("poison"), [topic("events"), topic("cmd_result/+")]
    ) as running:
        yield running
