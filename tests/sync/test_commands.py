"""Commands: refusals with their reasons, unlock through the store, logs pages, sync."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kiosk.audit import Audit
from kiosk.clock import FakeClock, TrustedClock
from kiosk.store import Store
from protocol.times import format_time as rfc3339
from tests.support.broker import Broker
from tests.support.polling import wait_for
from tests.support.sync import (
    HUB,
    OWNER,
    T0,
    AgentThread,
    Watcher,
    as_bytes,
    command,
    make_config,
    topic,
)

pytestmark = pytest.mark.broker


def results(owner: Watcher, cmd_id: str) -> list[dict[str, Any]]:
    return owner.on(f"/cmd_result/{cmd_id}")


def one_result(owner: Watcher, cmd_id: str) -> dict[str, Any]:
    got: list[dict[str, Any]] = wait_for(lambda: results(owner, cmd_id), what=f"{cmd_id} result")
    return got[0]


def command_events(store: Store) -> list[dict[str, Any]]:
    return [e.as_dict()["detail"] for e in store.events_since(0) if e.type == "command"]


def test_refusals(broker: Broker, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    owner = Watcher(broker.port, [topic("cmd_result/+")]).start()
    tampered = command("C-tampered")
    tampered["args"] = {"reason": "changed"}
    cases: dict[str, tuple[bytes, bool, str]] = {
        "C-expired": (
            as_bytes(command("C-expired", issued_at=T0 - 600, expires_at=T0 - 1)),
            False,
            "expired",
        ),
        "C-future": (
            as_bytes(command("C-future", issued_at=T0 + 3600, expires_at=T0 + 3900)),
            False,
            "issued_in_future",
        ),
        "C-long": (
            as_bytes(command("C-long", issued_at=T0, expires_at=T0 + 601)),
            False,
            "too_long_lived",
        ),
        "C-unsigned": (as_bytes(command("C-unsigned", key=None)), False, "unsigned"),
        "C-tampered": (as_bytes(tampered), False, "bad_signature"),
        "C-hubkey": (as_bytes(command("C-hubkey", key=HUB)), False, "wrong_role"),
        "C-site": (as_bytes(command("C-site", site="other-site")), False, "wrong_site"),
        "C-idmismatch": (as_bytes(command("C-other")), False, "cmd_id_mismatch"),
        "C-retained": (as_bytes(command("C-retained")), True, "retained"),
        "C-junk": (b"\x00\x01 not json", False, "malformed"),
        "C-unknown": (as_bytes(command("C-unknown", cmd="selfdestruct")), False, "unknown_cmd"),
        "C-badargs": (
            as_bytes(command("C-badargs", cmd="logs", args={"since_seq": -1})),
            False,
            "bad_args",
        ),
    }
    with AgentThread(cfg):
        wait_for(lambda: store.get_meta("mqtt_online") == "1", what="online")
        for cmd_id, (payload, retain, _) in cases.items():
            owner.publish(topic("cmd", cmd_id), payload, retain=retain)
        for cmd_id, (_, _, reason) in cases.items():
            res = one_result(owner, cmd_id)
            assert res["ok"] is False, cmd_id
            assert res["cmd_id"] == cmd_id
            assert res["reason"] == reason, (cmd_id, res)
            assert res["error"].startswith(reason + ": ")
        # Replay: the first copy runs (and waits for the door), the second is refused.
        ok = as_bytes(command("C-replay"))
        owner.publish(topic("cmd", "C-replay"), ok)
        wait_for(lambda: store.get_command("C-replay"), what="C-replay recorded")
        owner.publish(topic("cmd", "C-replay"), ok)
        res = one_result(owner, "C-replay")
        assert res["reason"] == "replayed"
        # Nothing refused reached the door.
        assert [c["cmd_id"] for c in store.pending_commands()] == ["C-replay"]
        details = command_events(store)
        refused = {d["cmd_id"]: d for d in details if d["ok"] is False}
        assert set(refused) == set(cases) | {"C-replay"}
        assert all(d["error"] for d in refused.values())
        # Unsigned junk never burns a cmd_id the owner may use later.
        assert store.get_command("C-unsigned") is None
        assert store.get_command("C-expired")["state"] == "refused"  # type: ignore[index]
        # The retained command comes back with every subscribe; refused once per run.
        assert len(results(owner, "C-retained")) == 1
        owner.publish(topic("cmd", "C-retained"), b"", retain=True)
    owner.stop()


def test_unlock_done_failed_and_timeout(broker: Broker, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    owner = Watcher(broker.port, [topic("cmd_result/+")]).start()
    clock = FakeClock(wall=T0)
    with AgentThread(cfg, clock) as agent:
        wait_for(lambda: store.get_meta("mqtt_online") == "1", what="online")
        for cmd_id in ("U-1", "U-2", "U-3"):
            owner.publish(topic("cmd", cmd_id), as_bytes(command(cmd_id)))
        wait_for(lambda: len(store.pending_commands()) == 3, what="three pending")
        row = store.get_command("U-1")
        assert row is not None and json.loads(row["args"]) == {"reason": "test"}
        # The door daemon (simulated) opens for U-1 and fails U-2.
        store.finish_command("U-1", "done")
        store.finish_command("U-2", "failed", "door held open")
        assert one_result(owner, "U-1") == {
            "cmd_id": "U-1",
            "ok": True,
            "result": {"cmd": "unlock", "state": "done", "expires_at": rfc3339(T0 + 120)},
        }
        r2 = one_result(owner, "U-2")
        assert r2["ok"] is False and r2["error"] == "door held open"
        # Nobody takes U-3: after 30 s (of the injected clock) it fails.
        clock.advance(29)
        assert not results(owner, "U-3")
        assert store.get_command("U-3")["state"] == "pending"  # type: ignore[index]
        clock.advance(2)
        r3 = one_result(owner, "U-3")
        assert r3 == {
            "cmd_id": "U-3",
            "ok": False,
            "error": "door daemon not running",
            "reason": "door_timeout",
            "expires_at": rfc3339(T0 + 120),
        }
        assert store.get_command("U-3")["state"] == "failed"  # type: ignore[index]
        assert agent.rc is None
    accepted = [d for d in command_events(store) if d["ok"] is True]
    assert [d["cmd_id"] for d in accepted] == ["U-1", "U-2", "U-3"]
    owner.stop()


def test_logs_pages_and_sync(broker: Broker, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    audit = Audit(store, cfg.site.id)
    snap = TrustedClock(FakeClock(wall=T0), T0, synced=True).snapshot()
    for i in range(450):
        audit.record("door_opened", snap, detail={"i": i})
    for i in range(5):
        store.append_log(T0, "INFO", "test", f"line {i}")
    owner = Watcher(broker.port, [topic("cmd_result/+"), topic("status")]).start()
    with AgentThread(cfg):
        wait_for(lambda: store.get_meta("mqtt_online") == "1", what="online")
        owner.publish(
            topic("cmd", "L-1"),
            as_bytes(command("L-1", "logs", args={"since_seq": 10, "since_log_seq": 2})),
        )
        pages = wait_for(
            lambda: (p := results(owner, "L-1")) and p[-1].get("last") and p, what="the last page"
        )
        assert [p["page"] for p in pages] == [1, 2, 3]
        assert all(len(p["events"]) <= 200 for p in pages)
        seqs = [e["seq"] for p in pages for e in p["events"]]
        # Everything after seq 10, in order: 440 door events and later ones.
        assert seqs[0] == 11 and seqs == list(range(11, seqs[-1] + 1))
        assert seqs[-1] >= 450
        published = {e.seq: e.as_dict() for e in store.events_since(0)}
        assert all(e == published[e["seq"]] for p in pages for e in p["events"])
        logs = [r["message"] for r in pages[0]["logs"]]
        assert logs[:3] == ["line 2", "line 3", "line 4"]
        assert all(p["ok"] is True and p["cmd_id"] == "L-1" for p in pages)

        before = len(owner.on("/status"))
        owner.publish(topic("cmd", "S-1"), as_bytes(command("S-1", "sync", args={})))
        assert one_result(owner, "S-1") == {"cmd_id": "S-1", "ok": True, "result": {"cmd": "sync"}}
        wait_for(lambda: len(owner.on("/status")) > before, what="status again")
    owner.stop()


def test_owner_key_can_also_sign_orders(broker: Broker, tmp_path: Path) -> None:
    from tests.support.sync import order

    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    hub = Watcher(broker.port).start()
    with AgentThread(cfg):
        hub.publish(topic("orders", "OW-1"), as_bytes(order("OW-1", key=OWNER)), retain=True)
        wait_for(lambda: store.get_order("OW-1"), what="owner-signed order")
    hub.stop()
