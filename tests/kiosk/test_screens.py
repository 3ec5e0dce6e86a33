"""Screens follow the door: each door state has its own screen, on the real daemon."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiosk.door import State
from kiosk.i18n import render_text
from kiosk.screens import KINDS, DoorView, Screen, StatusCorner, compose
from kiosk.store import OrderRow
from tests.support.door import Rig


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    r = Rig(tmp_path)
    yield r
    r.board.close()


def kinds(rig: Rig) -> list[str]:
    out: list[str] = []
    for s in rig.screens:
        if not out or out[-1] != s.kind:
            out.append(s.kind)
    return out


def test_a_pickup_shows_accepted_then_open_then_idle_only_once_closed(rig: Rig) -> None:
    doc = rig.w.add()
    rig.type(rig.code(doc) + "#")
    assert rig.screens[-1].kind == "accepted" and rig.screens[-1].seconds_left == 5
    rig.advance(1)
    assert rig.screens[-1].seconds_left == 4  # the countdown follows the relay
    rig.board.set_door(True)
    rig.d.drain()
    assert not rig.board.relay_active()
    assert rig.screens[-1].kind == "door_open" and rig.screens[-1].slot == "B3"
    rig.advance(10)  # the relay's pulse would have ended: still the open-door screen
    assert rig.screens[-1].kind == "door_open"
    rig.board.set_door(False)
    rig.d.drain()
    assert rig.screens[-1].kind == "idle"
    assert kinds(rig)[-4:] == ["typing", "accepted", "door_open", "idle"]
    text = render_text(next(s for s in rig.screens if s.kind == "door_open"))
    assert "关门" in text and "B3" in text  # close the door behind you; the slot


def test_exit_button_shows_opened_from_inside_until_closed(rig: Rig) -> None:
    rig.board.press_exit()
    rig.d.drain()
    assert rig.screens[-1].kind == "exit_open"
    rig.board.set_door(True)
    rig.d.drain()
    rig.advance(6)
    assert rig.screens[-1].kind == "exit_open"  # not "door unlocked" after the relay released
    rig.board.set_door(False)
    rig.d.drain()
    assert rig.screens[-1].kind == "idle"


def test_forced_door_shows_the_alarm_then_the_countdown(rig: Rig) -> None:
    rig.board.set_door(True)
    rig.d.drain()
    assert rig.screens[-1].kind == "forced"
    rig.advance(rig.cfg.lock.held_open_s)
    assert rig.screens[-1].kind == "close_door"
    rig.advance(15)
    assert rig.screens[-1].seconds_left == rig.cfg.lock.held_open_s + 15
    rig.board.set_door(False)
    rig.d.drain()
    assert rig.screens[-1].kind == "idle"


def test_backup_code_reused_says_to_call_not_to_wait(rig: Rig) -> None:
    from protocol.otp import backup_code

    doc = rig.w.add(backup_code=True)
    code = backup_code(doc["pickup_no"], doc["otp"]["secret"])
    rig.type(code + "#")
    rig.board.set_door(True)
    rig.d.drain()
    rig.board.set_door(False)
    rig.d.drain()
    rig.w.clock.advance(rig.cfg.codes.reentry_grace_s + 1)
    rig.type(code + "#")
    last = rig.screens[-1]
    assert last.kind == "refused" and last.reason == "backup_used"
    words = render_text(Screen(**{**last.__dict__, "lang": "en", "contact": "138 0000"}))
    assert "call" in words.lower() and "wait" not in words.lower()


def test_a_value_the_door_never_imagined_still_completes_the_cycle(rig: Rig) -> None:
    doc = rig.w.add()
    # An order stored before today's validation (or by a bug): a 400-digit qty.
    row = rig.w.store.get_order("O-1")
    assert row is not None
    bad = dict(row.doc)
    bad["items"] = [{"name": "x", "qty": 10**400, "unit": ""}]
    rig.w.store.put_order(OrderRow(**{**row.__dict__, "doc": json.loads(json.dumps(bad))}))
    rig.type(rig.code(doc) + "#")
    assert rig.board.relay_active()
    assert rig.screens[-1].kind == "accepted"  # a plain one stood in
    rig.board.set_door(True)
    rig.d.drain()
    rig.board.set_door(False)
    rig.d.drain()
    assert rig.w.store.get_order("O-1").status == "collected"
    assert rig.types()[-3:] == ["door_opened", "door_closed", "order_collected"]


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("entrant", [None, "code", "exit", "command", "free_entry"])
def test_compose_gives_a_screen_for_every_state(state: State, entrant: str | None) -> None:
    view = DoorView(lang="en", status=StatusCorner(), door=state, entrant=entrant, open_for=70)
    screen = compose(view)
    assert screen.kind in KINDS
    render_text(screen)  # every composed screen has its words
    if state is State.LOCKED:
        assert screen.kind == "idle"
    if state in (State.OPEN, State.UNLOCKED) and entrant == "exit":
        assert screen.kind == "exit_open"
    if state is State.FORCED:
        assert screen.kind == "forced"
    if state is State.HELD:
        assert screen.kind == "close_door"
