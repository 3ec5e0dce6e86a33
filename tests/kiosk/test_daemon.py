"""The door daemon on gpiozero's mock pins, driven with an injected clock."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import pytest

from kiosk.inputs import ExitPressed
from kiosk.notify import Notifier
from tests.support.door import Rig


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    r = Rig(tmp_path)
    yield r
    r.board.close()


def test_whole_pickup_on_mock_pins(rig: Rig) -> None:
    doc = rig.w.add()
    relay = rig.board.pin(rig.cfg.hardware.relay_pin)
    assert not rig.board.relay_active()
    rig.type(rig.code(doc) + "#")
    assert rig.board.relay_active()
    unlocked_at = rig.w.clock.monotonic()
    assert rig.types()[-2:] == ["code_accepted", "door_unlocked"]
    accepted = [s for s in rig.screens if s.kind == "accepted"]
    assert accepted and accepted[-1].slot == "B3" and accepted[-1].customer == "李*云"
    # the pulse lasts exactly release_s on the injected clock
    rig.advance(rig.cfg.lock.release_s - 0.01)
    assert rig.board.relay_active()
    rig.advance(0.01)
    assert not rig.board.relay_active()
    assert rig.w.clock.monotonic() - unlocked_at == pytest.approx(rig.cfg.lock.release_s)
    assert relay.state == (not rig.cfg.hardware.relay_active_high)
    assert rig.types()[-1] == "door_relocked"
    assert rig.w.store.get_order("O-1").status == "ready"  # nobody went in


def test_door_open_and_close_collects_the_order(rig: Rig) -> None:
    doc = rig.w.add()
    rig.type(rig.code(doc) + "#")
    rig.board.set_door(True)
    rig.d.drain()
    assert not rig.board.relay_active()  # released as soon as the door opened
    rig.advance(3)
    rig.board.set_door(False)
    rig.d.drain()
    assert rig.types()[-3:] == ["door_opened", "door_closed", "order_collected"]
    order = rig.w.store.get_order("O-1")
    assert order.status == "collected" and order.collected_locally
    status = json.loads(rig.w.store.get_meta("door_status"))
    assert status == {"door": "closed", "lock": "locked", "mode": "night", "alarms": []}


def test_audit_before_action(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = rig.w.add()
    seen: list[list[str]] = []
    real = rig.board.lock.energize

    def spy(seconds: float) -> None:
        other = sqlite3.connect(rig.w.path)  # another connection sees only committed rows
        seen.append([r[0] for r in other.execute("SELECT type FROM events ORDER BY seq")])
        other.close()
        real(seconds)

    monkeypatch.setattr(rig.board.lock, "energize", spy)
    rig.type(rig.code(doc) + "#")
    assert seen and seen[0][-2:] == ["code_accepted", "door_unlocked"]


def test_wrong_code_is_refused_without_the_digits_anywhere(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.w.add()
    rig.type("042987654#")
    assert not rig.board.relay_active()
    ev = rig.w.events("code_rejected")[-1]
    assert ev["detail"]["reason"] == "wrong_code" and ev["order_id"] is None
    dump = json.dumps(rig.w.events()) + caplog.text
    assert "987654" not in dump and "042987654" not in dump
    assert rig.screens[-1].kind == "refused" and rig.screens[-1].reason == "wrong_code"


def test_forced_door_and_held_open(rig: Rig) -> None:
    rig.board.set_door(True)
    rig.d.drain()
    assert rig.types()[-1] == "door_forced"
    rig.advance(rig.cfg.lock.held_open_s)
    assert rig.types()[-1] == "door_held_open"
    assert rig.screens[-1].kind == "close_door"
    rig.board.set_door(False)
    rig.d.drain()
    assert rig.types()[-1] == "door_closed"


def test_exit_button_releases_the_door(rig: Rig) -> None:
    rig.board.press_exit()
    rig.d.drain()
    assert rig.board.relay_active()
    assert rig.types()[-2:] == ["exit_pressed", "door_unlocked"]


def test_store_unwritable_no_unlock_but_exit_works(tmp_path: Path) -> None:
    r = Rig(tmp_path, store={"busy_timeout_ms": 100})
    doc = r.w.add()
    r.d.store = r.w.store
    r.w.store._conn.execute("PRAGMA busy_timeout = 100")
    blocker = sqlite3.connect(r.w.path, timeout=0.1)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock: writes fail
    try:
        r.type(r.code(doc) + "#")
        assert not r.board.relay_active()
        assert r.screens[-1].kind == "out_of_service"
        r.d.post(ExitPressed())
        r.d.drain()
        assert r.board.relay_active()  # the exit button always works
    finally:
        blocker.rollback()
        blocker.close()
    r.advance(5)  # the daemon retries, writes what it kept, and says so
    types = r.types()
    assert types[-1] == "store_recovered"
    assert "exit_pressed" in types and "door_unlocked" in types
    r.board.close()


def test_unlock_command_left_by_the_sync_agent(rig: Rig) -> None:
    now = rig.w.clock.wall()
    rig.w.store.record_command(
        "c-1",
        "unlock",
        received_at=now,
        expires_at=now + 60,
        state="pending",
        args={"reason": "customer forgot to pay", "account": "lin"},
    )
    rig.w.store.record_command(
        "c-old", "unlock", received_at=now - 120, expires_at=now - 60, state="pending"
    )
    rig.advance(1)
    assert rig.board.relay_active()
    assert rig.w.store.get_command("c-1")["state"] == "done"
    assert rig.w.store.get_command("c-old")["state"] == "failed"  # stale never opens
    ev = rig.w.events("door_unlocked")
    # the owner's reason and the console account reach the audit trail
    assert len(ev) == 1 and ev[0]["detail"] == {
        "by": "command",
        "cmd_id": "c-1",
        "reason": "customer forgot to pay",
        "account": "lin",
    }


def test_language_toggle_with_star_on_empty_entry(rig: Rig) -> None:
    assert rig.screens[-1].lang == "zh"
    rig.type("*")
    assert rig.screens[-1].lang == "en"


def test_day_mode_free_entry(tmp_path: Path) -> None:
    r = Rig(tmp_path, schedule={"day_mode": "free_entry", "day_start": "00:00", "day_end": "24:00"})
    assert r.screens[-1].kind == "day_open"
    r.type("#")
    assert r.board.relay_active()
    assert r.w.events("door_unlocked")[-1]["detail"] == {"by": "free_entry"}
    r.board.close()


def test_sd_notify_on_a_real_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"})
    assert n.watchdog_interval == 5.0
    n.ready("taking codes")
    n.watchdog(100.0)
    n.watchdog(101.0)  # too soon: no second ping
    n.watchdog(105.0)
    n.stopping()
    got = [sock.recv(256).decode() for _ in range(4)]
    assert got == ["READY=1\nSTATUS=taking codes", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]
    sock.close()


def test_exit_while_the_door_is_open_records_no_unlock(rig: Rig) -> None:
    rig.board.press_exit()
    rig.d.drain()
    rig.board.set_door(True)
    rig.d.drain()
    n = len(rig.w.events("door_unlocked"))
    rig.board.press_exit()
    rig.d.drain()
    assert len(rig.w.events("door_unlocked")) == n
    assert not rig.board.relay_active()


def test_code_accepted_while_the_door_is_open_still_collects(rig: Rig) -> None:
    doc = rig.w.add()
    rig.board.press_exit()  # someone leaving holds the door open
    rig.d.drain()
    rig.board.set_door(True)
    rig.d.drain()
    rig.type(rig.code(doc) + "#")
    rig.board.set_door(False)
    rig.d.drain()
    assert rig.w.store.get_order("O-1").status == "collected"
