"""The cancel, time and orders commands, and the unlock's hand-off to the door
(issue 12 item 2, kiosk side), against a real broker and the agent."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from kiosk.clock import FakeClock
from kiosk.config import from_mapping
from kiosk.store import Store
from protocol.times import format_time as rfc3339
from protocol.times import parse_time
from tests.support.broker import Broker
from tests.support.polling import wait_for
from tests.support.sync import (
    HUB,
    T0,
    AgentThread,
    Watcher,
    as_bytes,
    command,
    config_dict,
    make_config,
    order,
    topic,
)

pytestmark = pytest.mark.broker


def result(owner: Watcher, cmd_id: str) -> dict[str, Any]:
    got: list[dict[str, Any]] = wait_for(
        lambda: owner.on(f"/cmd_result/{cmd_id}"), what=f"{cmd_id} result"
    )
    return got[0]


def send(owner: Watcher, cmd_id: str, cmd: str = "unlock", **kw: Any) -> None:
    owner.publish(topic("cmd", cmd_id), as_bytes(command(cmd_id, cmd, **kw)))


def cancel(owner: Watcher, cmd_id: str, target: str) -> None:
    send(owner, cmd_id, "cancel", args={"cmd_id": target, "reason": "pressed twice"})


def test_cancel_withdraws_blocks_or_reports_what_is_left(broker: Broker, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    owner = Watcher(broker.port, [topic("cmd_result/+")]).start()
    with AgentThread(cfg):
        wait_for(store.mqtt_online, what="online")
        # A pending unlock is withdrawn: the door never sees it.
        send(owner, "U-1")
        wait_for(lambda: store.command_state("U-1") == "pending", what="U-1 pending")
        cancel(owner, "K-1", "U-1")
        assert result(owner, "K-1")["result"] == {
            "cmd": "cancel",
            "target": "U-1",
            "state": "cancelled",
        }
        assert store.pending_door_commands() == []  # what the door daemon would take
        u1 = result(owner, "U-1")
        assert u1["ok"] is False and u1["reason"] == "cancelled"
        # An id not seen yet is tombstoned: when it comes, it is refused.
        cancel(owner, "K-2", "U-2")
        assert result(owner, "K-2")["result"]["state"] == "blocked"
        send(owner, "U-2")
        assert result(owner, "U-2")["reason"] == "cancelled"
        assert store.command_state("U-2") == "refused"
        # Done already: nothing left to withdraw.
        send(owner, "U-3")
        wait_for(lambda: store.command_state("U-3") == "pending", what="U-3 pending")
        taken = store.pending_door_commands()
        assert [t["cmd_id"] for t in taken] == ["U-3"]
        store.finish_command("U-3", "done")
        cancel(owner, "K-3", "U-3")
        assert result(owner, "K-3")["result"]["state"] == "done"
        # Taken by the door right now: the cancel answers with the door's outcome.
        send(owner, "U-4")
        wait_for(lambda: store.command_state("U-4") == "pending", what="U-4 pending")
        store.pending_door_commands()
        cancel(owner, "K-4", "U-4")
        wait_for(lambda: store.command_state("K-4") == "done", what="K-4 recorded")
        assert not owner.on("/cmd_result/K-4")
        store.finish_command("U-4", "failed", "door held open")
        assert result(owner, "K-4")["result"]["state"] == "failed"
    events = [e.as_dict() for e in store.events_since(0) if e.type == "command"]
    cancels = {e["detail"]["cmd_id"]: e["detail"] for e in events if e["detail"]["cmd"] == "cancel"}
    assert cancels["K-1"]["target"] == "U-1" and cancels["K-1"]["state"] == "cancelled"
    assert cancels["K-1"]["reason"] == "pressed twice"
    assert cancels["K-2"]["state"] == "blocked"
    refused_u2 = [e["detail"] for e in events if e["detail"]["cmd_id"] == "U-2"]
    assert refused_u2[-1]["refusal"] == "cancelled"
    owner.stop()


def test_one_owner_action_never_unlocks_twice(broker: Broker, tmp_path: Path) -> None:
    """The door takes an unlock once; a cancel racing it either withdraws it
    before the door saw it or finds it taken (each of 20 tries)."""
    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    owner = Watcher(broker.port, [topic("cmd_result/+")]).start()
    with AgentThread(cfg):
        wait_for(store.mqtt_online, what="online")
        for i in range(20):
            send(owner, f"R-{i}")
            wait_for(lambda i=i: store.command_state(f"R-{i}") == "pending", what="pending")
            cancel(owner, f"RK-{i}", f"R-{i}")
            taken = store.pending_door_commands()  # the door, racing the cancel
            for row in taken:
                store.finish_command(row["cmd_id"], "done")
            state = result(owner, f"RK-{i}")["result"]["state"]
            took = bool(taken)
            assert (not took and state == "cancelled") or (took and state == "done"), (state, took)
            assert store.pending_door_commands() == []
    owner.stop()


def test_time_repairs_a_poisoned_document_floor(broker: Broker, tmp_path: Path) -> None:
    data = config_dict(tmp_path, broker.url)
    data["clock"] = {"trust_system_clock": "never"}
    cfg = from_mapping(data, "test.toml")
    store = Store(cfg.store.path)
    hub = Watcher(broker.port).start()
    owner = Watcher(broker.port, [topic("cmd_result/+")]).start()
    clock = FakeClock(wall=T0)
    with AgentThread(cfg, clock):
        wait_for(store.mqtt_online, what="online")
        # A hub-signed order 30 h ahead raises the document floor (within its bound).
        ahead = T0 + 30 * 3600
        hub.publish(topic("orders", "P-1"), as_bytes(order("P-1", issued_at=ahead)), retain=True)
        wait_for(lambda: store.doc_floor() >= ahead, what="the poisoned floor")
        # The owner's time command is judged against the evidence, not that floor.
        send(owner, "T-1", "time", args={}, issued_at=T0, expires_at=T0 + 60)
        res = result(owner, "T-1")
        assert res["ok"] is True, res
        assert res["result"]["cmd"] == "time" and res["result"]["clock"] == "untrusted"
        assert res["result"]["floor"] < rfc3339(ahead)
        assert res["result"]["floor"] >= rfc3339(T0)
        assert store.doc_floor() == 0.0
        assert store.clock_floor() >= T0
    ev = [e.as_dict() for e in store.events_since(0) if e.type == "clock_set"]
    assert len(ev) == 1 and ev[0]["detail"]["doc_floor_cleared"] is True
    hub.stop()
    owner.stop()


def test_a_time_years_ahead_is_repaired_by_a_time_the_wall_clock_agrees_with(
    broker: Broker, tmp_path: Path
) -> None:
    """An owner's laptop with its clock five years ahead signs a `time` while the
    kiosk has no NTP: the floor goes to 2031 and every code would be judged
    then, with no way back (NTP cannot lower an evidence floor, and the next
    `time` was refused as expired). A `time` that the kiosk's wall clock agrees
    with now and that names the floor it repairs (``lower_from``, as the
    refusal reported it) lowers it (a new clock epoch the door adopts); one
    that nothing agrees with, or that names no floor or another, is refused."""
    data = config_dict(tmp_path, broker.url)
    data["clock"] = {"trust_system_clock": "never"}
    cfg = from_mapping(data, "test.toml")
    store = Store(cfg.store.path)
    owner = Watcher(broker.port, [topic("cmd_result/+")]).start()
    clock = FakeClock(wall=T0)
    later = T0 + 5 * 365 * 86400
    with AgentThread(cfg, clock):
        wait_for(store.mqtt_online, what="online")
        send(owner, "T-far", "time", args={}, issued_at=later, expires_at=later + 60)
        assert result(owner, "T-far")["ok"] is True
        assert store.clock_floor() >= later
        # behind the floor, and the wall clock (T0) does not agree either: refused
        send(owner, "T-old", "time", args={}, issued_at=T0 - 3600, expires_at=T0 - 3540)
        refused = result(owner, "T-old")
        assert refused["reason"] == "expired"
        named = re.search(r"clock floor (\S+);", refused["error"])
        assert named is not None and parse_time(named[1]) >= later
        # the wall clock agrees, but the command does not name the floor it repairs:
        # a captured old `time` replayed under a spoofed wall clock looks just so
        send(owner, "T-bare", "time", args={}, issued_at=T0 + 1, expires_at=T0 + 61)
        assert result(owner, "T-bare")["reason"] == "expired"
        wrong = {"lower_from": rfc3339(later - 2 * 86400)}
        send(owner, "T-wrong", "time", args=wrong, issued_at=T0 + 2, expires_at=T0 + 62)
        assert result(owner, "T-wrong")["reason"] == "expired"
        assert store.clock_floor() >= later
        fix = {"lower_from": named[1]}
        send(owner, "T-fix", "time", args=fix, issued_at=T0 + 5, expires_at=T0 + 65)
        res = result(owner, "T-fix")
        assert res["ok"] is True and res["result"]["floor"] < rfc3339(T0 + 3600), res
        assert T0 <= store.clock_floor() < T0 + 60 and store.clock_epoch() == 1
        send(owner, "T-far", "time", args={}, issued_at=later, expires_at=later + 60)
        again = wait_for(lambda: owner.on("/cmd_result/T-far")[1:], what="the replay's answer")
        assert again[0]["reason"] == "replayed" and store.clock_floor() < T0 + 60
    ev = [e.as_dict()["detail"] for e in store.events_since(0) if e.type == "clock_set"]
    assert [d["lowered"] for d in ev] == [False, True]
    owner.stop()


def test_time_ahead_of_a_synchronised_clock_is_refused(broker: Broker, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, broker.url)  # trust_system_clock = always
    store = Store(cfg.store.path)
    owner = Watcher(broker.port, [topic("cmd_result/+")]).start()
    with AgentThread(cfg):
        wait_for(store.mqtt_online, what="online")
        send(owner, "T-2", "time", args={}, issued_at=T0 + 3600, expires_at=T0 + 3660)
        res = result(owner, "T-2")
        assert res["ok"] is False and res["reason"] == "clock_conflict"
    assert store.clock_floor() < T0 + 3600
    owner.stop()


def test_orders_answers_state_without_secrets(broker: Broker, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    hub = Watcher(broker.port).start()
    owner = Watcher(broker.port, [topic("cmd_result/+")]).start()
    with AgentThread(cfg):
        hub.publish(topic("orders", "Q-1"), as_bytes(order("Q-1", 2, pickup_no="007")), retain=True)
        wait_for(lambda: store.get_order("Q-1"), what="Q-1")
        send(owner, "O-1", "orders", args={"order_ids": ["Q-1", "nope"]})
        res = result(owner, "O-1")
    assert res == {
        "cmd_id": "O-1",
        "ok": True,
        "result": {
            "cmd": "orders",
            "orders": {
                "Q-1": {"status": "ready", "version": 2, "pickup_no": "007", "collected_at": None},
                "nope": None,
            },
        },
    }
    assert "secret" not in str(owner.messages) and HUB is not None
    hub.stop()
    owner.stop()


def test_a_captured_unlock_replayed_after_its_id_was_forgotten_is_refused(
    broker: Broker, tmp_path: Path
) -> None:
    """Issue 11 item 8: the id memory outlives any command it could accept."""
    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    owner = Watcher(broker.port, [topic("cmd_result/+")]).start()
    clock = FakeClock(wall=T0)
    captured = as_bytes(command("CAP-1"))
    with AgentThread(cfg, clock):
        wait_for(store.mqtt_online, what="online")
        owner.publish(topic("cmd", "CAP-1"), captured)
        wait_for(lambda: store.command_state("CAP-1") == "pending", what="pending")
        for row in store.pending_door_commands():  # the door opens once
            store.finish_command(row["cmd_id"], "done")
        assert result(owner, "CAP-1")["ok"] is True
        owner.publish(topic("cmd", "CAP-1"), captured)  # replayed while remembered
        wait_for(lambda: len(owner.on("/cmd_result/CAP-1")) == 2, what="the replay's answer")
        assert owner.on("/cmd_result/CAP-1")[1]["reason"] == "replayed"
        clock.advance(61)  # the first retention pass after start takes its mark
        wait_for(lambda: store.get_meta("retention_mark"), what="the retention mark")
        clock.advance(8 * 86400)  # a week and a day later (trusted, no jump): ids forgotten
        wait_for(lambda: store.get_command("CAP-1") is None, what="the id forgotten")
        owner.publish(topic("cmd", "CAP-1"), captured)  # the attacker replays it now
        wait_for(lambda: len(owner.on("/cmd_result/CAP-1")) == 3, what="the late replay's answer")
        late = owner.on("/cmd_result/CAP-1")[2]
        assert late["ok"] is False and late["reason"] == "too_old"
        assert store.pending_commands() == []  # nothing for the door
    owner.stop()


def test_an_auditor_key_may_read_but_never_open_cancel_or_set_the_clock() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from protocol.commands import CommandRefused, check_command
    from protocol.keys import Keyring
    from tests.support.sync import SITE, pub

    auditor = Ed25519PrivateKey.generate()
    ring = Keyring(owner_keys=[], auditor_keys=[pub(auditor)])
    for cmd, args in (
        ("unlock", {"reason": "x"}),
        ("cancel", {"cmd_id": "U-1"}),
        ("time", {}),
    ):
        doc = command("A-1", cmd, key=auditor, args=args)
        with pytest.raises(CommandRefused) as err:
            check_command(as_bytes(doc), topic_cmd_id="A-1", site=SITE, keyring=ring)
        assert err.value.reason == "auditor_not_allowed"
    for cmd, args in (("orders", {"order_ids": ["Q-1"]}), ("logs", {}), ("sync", {})):
        doc = command("A-2", cmd, key=auditor, args=args)
        got = check_command(as_bytes(doc), topic_cmd_id="A-2", site=SITE, keyring=ring)
        assert got.signer.role.value == "auditor"
