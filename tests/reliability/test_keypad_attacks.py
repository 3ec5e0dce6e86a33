"""The keypad attacked from outside: staff and pickup codes mixed, long runs
without ``#``, ``*`` storms, day-mode switches in and out of staffed hours,
keys in every door state (open, forced, held open, day), under hypothesis,
into the real DoorDaemon on mock pins with the injected clock.

What must hold whatever was typed: every TOTP step (staff or order) is used
at most once, every use is exactly one event, the relay never energizes
without a committed ``door_unlocked``, the trail verifies, typed staff digits
never reach the trail, and afterwards a staff code and a customer's code
still open the door (docs/protocol.md, "Codes at the keypad").
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyotp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kiosk.audit import verify_store
from kiosk.clock import FakeClock
from kiosk.inputs import ExitPressed, KeyPressed
from kiosk.staff import StaffIntake
from kiosk.store import staff_key
from protocol.keys import sign_document
from protocol.otp import hotp, new_secret
from protocol.times import format_time
from tests.support.door import Rig

TZ = ZoneInfo("Asia/Shanghai")
TUESDAY_0730 = datetime(2026, 6, 2, 7, 30, tzinfo=TZ).timestamp()  # day mode from 08:00
SECRET = new_secret()
MACROS = [
    "STAFF",  # a right staff code: open
    "STAFF7",  # ... asking for day mode on
    "STAFF0",  # ... day mode off
    "STAFF9",  # ... with a digit that is no action
    "STAFFWRONG",  # the staff number with a wrong value
    "CODE",  # the customer's right code
    "CODE8",  # ... all 8 digits
    "PARTIAL",  # the customer's code cut short
    "MIXED",  # the staff number followed by the customer's value
    "LONG",  # 40 digits, no #
    "STARS",  # a * storm
    "OPEN",
    "CLOSE",
    "EXIT",
    "WAIT",
    "STEP",  # the next TOTP step
    "HOUR",
]
ACTIONS = st.lists(
    st.one_of(st.sampled_from(list("0123456789*#")), st.sampled_from(MACROS)), max_size=60
)


def _staff_doc(rig: Rig) -> dict[str, Any]:
    now = rig.w.clock.wall()
    doc = {
        "v": 1,
        "site": rig.cfg.site.id,
        "staff_id": "S-7",
        "version": 1,
        "issued_at": format_time(now - 60),
        "staff_no": "0042",
        "name": "Wang",
        "role": "staff",
        "otp": {"secret": SECRET, "digits": 8, "period": 30},
    }
    return sign_document(doc, rig.w.owner)


def _keys(rig: Rig, action: str, doc: dict[str, Any]) -> str:
    now = rig.w.clock.wall()
    staff = "0042" + hotp(SECRET, int(now // 30), 8)
    full = pyotp.TOTP(doc["otp"]["secret"], digits=8).at(now)
    return {
        "STAFF": staff + "#",
        "STAFF7": staff + "7#",
        "STAFF0": staff + "0#",
        "STAFF9": staff + "9#",
        "STAFFWRONG": "0042" + "1" * 8 + "#",
        "CODE": "042" + full[-6:] + "#",
        "CODE8": "042" + full + "#",
        "PARTIAL": "042" + full[:4] + "#",
        "MIXED": "0042" + full + "#",
        "LONG": "1234567890" * 4,
        "STARS": "*" * 12,
    }.get(action, action)


class Relay:
    """Counts energizations from off for a visit; each must follow a committed
    ``door_unlocked``. In day mode the lock is held (and its lease renewed) after
    a committed ``mode_changed`` to day."""

    def __init__(self, rig: Rig) -> None:
        self.n = 0
        real = rig.board.lock.energize

        def committed(sql: str) -> Any:
            con = sqlite3.connect(rig.w.path)
            try:
                return con.execute(sql).fetchone()[0]
            finally:
                con.close()

        def energize(seconds: float) -> None:
            if rig.d.machine.holding:
                mode = committed(
                    "SELECT json_extract(body, '$.detail.mode') FROM events "
                    "WHERE type = 'mode_changed' ORDER BY seq DESC LIMIT 1"
                )
                assert mode == "day", "the lock held open without a committed day mode"
            elif not rig.board.lock.energized:
                self.n += 1
                done = committed("SELECT count(*) FROM events WHERE type = 'door_unlocked'")
                assert done >= self.n, "relay energized before its door_unlocked"
            real(seconds)

        rig.board.lock.energize = energize  # type: ignore[method-assign]


def _used(rig: Rig, key: str) -> int:
    con = sqlite3.connect(rig.w.path)
    (n,) = con.execute("SELECT count(*) FROM used_steps WHERE order_id = ?", (key,)).fetchone()
    con.close()
    return int(n)


def _play(rig: Rig, actions: list[str]) -> None:
    doc = rig.w.add("K-1", "042", digits=8, expires_in=30 * 86400)
    assert StaffIntake(rig.w.intake).accept(_staff_doc(rig), rig.w.snap(), source="t").outcome == (
        "stored"
    )
    relay = Relay(rig)
    staff_values: set[str] = set()
    for a in actions:
        if a in ("OPEN", "CLOSE"):
            rig.door(a == "OPEN")
        elif a == "EXIT":
            rig.d.post(ExitPressed())
            rig.d.drain()
        elif a in ("WAIT", "STEP", "HOUR"):
            rig.advance({"WAIT": 1.0, "STEP": 30.0, "HOUR": 3600.0}[a])
        else:
            keys = _keys(rig, a, doc)
            if a.startswith("STAFF"):
                staff_values.add(keys[4:12])
            for k in keys:
                rig.d.post(KeyPressed(k))
                rig.d.drain()
        rig.board.lock.poll()
    evs = rig.w.events()
    assert verify_store(rig.w.store) == len(evs)
    # every use of a step is one event, and no step twice (the table's key says so)
    staff_uses = [e for e in evs if e["type"] == "staff_entry"]
    assert len(staff_uses) == _used(rig, staff_key("S-7"))
    assert len([e for e in evs if e["type"] == "code_accepted"]) == _used(rig, "K-1")
    assert relay.n <= len([e for e in evs if e["type"] == "door_unlocked"])
    plain = json.dumps(
        [{k: v for k, v in e.items() if k not in ("hash", "prev_hash")} for e in evs]
    )
    for value in staff_values:
        if value != "1" * 8:
            assert value not in plain
    # Afterwards, with the door shut and a fresh step, the staff code still opens.
    rig.door(False)
    rig.advance(rig.cfg.throttle.full_code_refill_s * rig.cfg.throttle.full_code_burst + 31)
    rig.board.lock.poll()
    if rig.d.machine.holding:
        return  # day mode holds the door open: nothing to open
    rig.type("*" + _keys(rig, "STAFF", doc))
    assert rig.board.relay_active(), rig.screens[-1]


@settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(actions=ACTIONS)
@example(actions=["STAFF", "STAFF", "STEP", "STAFF7", "HOUR", "STAFF0", "OPEN", "STAFF", "CLOSE"])
@example(actions=["LONG", "STAFF", "STARS", "MIXED", "CODE8", "OPEN", "HOUR", "CODE", "CLOSE"])
@example(actions=["OPEN", "STAFF", "HOUR", "STAFF7", "CODE", "CLOSE", "STAFF0", "EXIT", "STAFF"])
def test_staff_and_pickup_entries_in_every_door_state(actions: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(
            Path(tmp),
            site={"timezone": "Asia/Shanghai"},
            schedule={"day_mode": "unlocked", "day_start": "08:00", "day_end": "22:00"},
            clock=FakeClock(wall=TUESDAY_0730),
        )
        try:
            _play(rig, actions)
        finally:
            rig.board.close()
            rig.w.store.close()
