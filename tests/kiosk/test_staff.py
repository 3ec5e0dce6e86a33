"""Staff and courier codes: intake, the offline check, the door, day mode at the door."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.clock import FakeClock
from kiosk.staff import StaffIntake
from protocol.errors import ValidationError
from protocol.keys import sign_document
from protocol.otp import hotp, new_secret
from protocol.staff import in_schedule, validate_staff
from protocol.times import format_time
from tests.support.door import Rig

TZ = ZoneInfo("Asia/Shanghai")
# Tuesday 2026-06-02 05:30 in Shanghai
TUESDAY_0530 = datetime(2026, 6, 2, 5, 30, tzinfo=TZ).timestamp()


def staff_doc(rig: Rig, **kw: Any) -> dict[str, Any]:
    now = rig.w.clock.wall()
    doc: dict[str, Any] = {
        "v": 1,
        "site": rig.cfg.site.id,
        "staff_id": "S-lin",
        "version": 1,
        "issued_at": format_time(now - 60),
        "staff_no": "0042",
        "name": "林师傅",
        "role": "courier",
        "valid_from": format_time(now - 86400),
        "valid_until": format_time(now + 30 * 86400),
        "schedule": [{"days": [1, 2, 3, 4, 5, 6], "from": "05:00", "until": "07:00"}],
        "otp": {"secret": SECRET, "digits": 8, "period": 30},
    }
    doc.update(kw)
    return sign_document(doc, rig.w.owner)


SECRET = new_secret()


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    from kiosk.clock import FakeClock

    r = Rig(
        tmp_path,
        site={"timezone": "Asia/Shanghai"},
        schedule={"day_mode": "unlocked", "day_start": "08:00", "day_end": "22:00"},
        clock=FakeClock(wall=TUESDAY_0530),
    )
    yield r
    r.board.close()


def take(rig: Rig, doc: dict[str, Any]) -> str:
    return StaffIntake(rig.w.intake).accept(doc, rig.w.snap(), source="test").outcome


def code(rig: Rig, extra: str = "") -> str:
    return "0042" + hotp(SECRET, int(rig.w.clock.wall() // 30), 8) + extra


def test_a_courier_opens_in_their_hours_and_is_named(rig: Rig) -> None:
    assert take(rig, staff_doc(rig)) == "stored"
    rig.type(code(rig) + "#")
    assert rig.board.relay_active()
    entry = rig.w.events("staff_entry")[-1]
    assert entry["detail"] == {
        "staff_id": "S-lin",
        "role": "courier",
        "name": "林师傅",
        "action": "open",
    }
    unlocked = rig.w.events("door_unlocked")[-1]["detail"]
    assert unlocked == {"by": "staff", "staff_id": "S-lin", "role": "courier"}
    assert rig.screens[-1].kind == "staff_open" and rig.screens[-1].customer == "林*傅"
    # one use per step
    rig.advance(6)
    rig.type(code(rig) + "#")
    assert rig.screens[-1].reason == "replayed"


def test_outside_hours_revoked_and_after_the_window_are_refused(rig: Rig) -> None:
    take(rig, staff_doc(rig))
    rig.w.clock.advance(2 * 3600)  # 07:30: past the courier's hours
    rig.type(code(rig) + "#")
    assert not rig.board.relay_active()
    assert rig.screens[-1].reason == "staff_outside_hours"
    ev = rig.w.events("code_rejected")[-1]
    assert ev["detail"] == {"reason": "staff_outside_hours", "staff_id": "S-lin"}
    rig.w.clock.advance(6 * 86400 - 2 * 3600)  # next Monday 05:30: in hours again
    take(rig, staff_doc(rig, version=2, revoked=True))
    rig.type(code(rig) + "#")
    assert rig.screens[-1].reason == "staff_revoked"
    take(rig, staff_doc(rig, version=3, valid_until=format_time(rig.w.clock.wall() - 1)))
    rig.type(code(rig) + "#")
    assert rig.screens[-1].reason == "staff_outside_window"
    assert not rig.board.relay_active()


def test_staff_switch_day_mode_at_the_door_in_staffed_hours_only(rig: Rig) -> None:
    take(rig, staff_doc(rig, schedule=None))  # any hour
    rig.type(code(rig, "7") + "#")  # 05:30: not staffed hours
    assert rig.screens[-1].reason == "day_toggle_not_now"
    rig.w.clock.advance(3 * 3600)  # 08:30: staffed; the schedule made it day
    rig.d.tick()
    rig.advance(61)
    assert rig.d.day and rig.board.relay_active()
    rig.type(code(rig, "0") + "#")  # the owner closes early
    assert not rig.d.day and not rig.board.relay_active()
    assert rig.w.events("mode_changed")[-1]["detail"] == {"mode": "night"}
    rig.advance(61)  # the schedule does not undo her switch ...
    assert not rig.d.day
    rig.advance(31)
    rig.type(code(rig, "7") + "#")  # ... and she can switch it back
    assert rig.d.day
    assert [e["detail"]["action"] for e in rig.w.events("staff_entry")] == ["day_off", "day_on"]


def test_pickup_codes_still_work_beside_staff_codes(rig: Rig) -> None:
    take(rig, staff_doc(rig))
    doc = rig.w.add()
    rig.type(rig.code(doc) + "#")
    assert rig.board.relay_active()
    assert rig.types()[-2:] == ["code_accepted", "door_unlocked"]


def test_a_wrong_staff_code_counts_against_the_full_code_limit(rig: Rig) -> None:
    take(rig, staff_doc(rig))
    for _ in range(rig.cfg.throttle.full_code_burst):
        rig.type("0042" + "12345678" + "#")
    assert rig.screens[-1].reason == "wrong_code"
    rig.type("0042" + "12345678" + "#")
    assert rig.screens[-1].reason == "throttled"
    rig.advance(rig.cfg.throttle.full_code_refill_s)
    rig.type(code(rig) + "#")
    assert rig.board.relay_active()


def test_schedule_windows_past_midnight() -> None:
    from protocol.staff import Window

    night = (Window((5,), "22:00", "02:00"),)  # Friday night into Saturday
    assert in_schedule(night, 5, "23:30") and in_schedule(night, 6, "01:59")
    assert not in_schedule(night, 6, "02:00") and not in_schedule(night, 5, "21:59")
    assert in_schedule((), 3, "12:00")


GOOD = {
    "v": 1,
    "site": "s",
    "staff_id": "S-1",
    "version": 1,
    "issued_at": "2026-06-01T00:00:00Z",
    "staff_no": "0042",
    "name": "Lin",
    "role": "staff",
    "otp": {"secret": SECRET, "digits": 8},
}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    key=st.sampled_from([*sorted(GOOD), "schedule", "valid_from", "revoked"]),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True),
        st.text(max_size=30),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    ),
)
def test_a_mutated_staff_document_is_refused_with_a_reason_or_taken(key: str, value: Any) -> None:
    doc = dict(GOOD)
    doc[key] = value
    try:
        staff = validate_staff(doc, site="s", width=3)
    except ValidationError as err:
        assert err.reason and SECRET not in str(err)
        return
    assert staff.staff_no == doc["staff_no"]  # taken only with every field in its domain


def test_a_forgotten_revocation_is_not_undone_by_replaying_the_older_version(rig: Rig) -> None:
    """An empty retained payload needs no key; the older, non-revoked version of
    the code is retained history anyone on the broker may have kept."""
    intake = StaffIntake(rig.w.intake)
    v1 = staff_doc(rig)
    assert take(rig, v1) == "stored"
    assert take(rig, staff_doc(rig, version=2, revoked=True)) == "stored"
    assert intake.forget("S-lin", rig.w.snap()).outcome == "forgotten"
    assert take(rig, v1) == "ignored"  # its version was forgotten at 2
    rig.type(code(rig) + "#")
    assert not rig.board.relay_active()
    assert take(rig, staff_doc(rig, version=3)) == "stored"  # the owner re-issues: newer
    rig.advance(31)
    rig.type(code(rig) + "#")
    assert rig.board.relay_active()


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("doc"), st.integers(1, 6), st.booleans()),
        st.tuples(st.just("forget"), st.just(0), st.just(False)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_versions_and_forgetting_in_any_order_never_go_backwards(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, bool]]
) -> None:
    """Documents of any version, revoked or not, and forgets, in any order: the
    kiosk holds a document only if its version is above every version it held
    before, and the code opens exactly when the held one is not revoked."""
    r = Rig(
        tmp_path_factory.mktemp("staff"),
        site={"timezone": "Asia/Shanghai"},
        clock=FakeClock(wall=TUESDAY_0530),
    )
    try:
        highest = 0
        held: tuple[int, bool] | None = None
        for op, version, revoked in ops:
            if op == "forget":
                StaffIntake(r.w.intake).forget("S-lin", r.w.snap())
                held = None
                continue
            outcome = take(r, staff_doc(r, version=version, revoked=revoked))
            assert outcome == ("stored" if version > highest else "ignored")
            if version > highest:
                highest, held = version, (version, revoked)
        row = r.w.store.get_staff("S-lin")
        assert (row.version, row.revoked) == held if row else held is None
        r.advance(31)
        r.type(code(r) + "#")
        assert r.board.relay_active() == (held is not None and not held[1])
    finally:
        r.board.close()


def test_schedule_times_from_may_not_be_24_00_until_may() -> None:
    """``from 24:00`` would be the next day's window written on the wrong day
    (a Monday window from 24:00 to 24:00 was all of Tuesday)."""
    ok = {**GOOD, "schedule": [{"days": [1], "from": "22:00", "until": "24:00"}]}
    assert validate_staff(ok, site="s", width=3).schedule[0].end == "24:00"
    for start in ("24:00", "24:30", "23:60", "7:00"):
        bad = {**GOOD, "schedule": [{"days": [1], "from": start, "until": "24:00"}]}
        with pytest.raises(ValidationError) as err:
            validate_staff(bad, site="s", width=3)
        assert err.value.reason == "bad_schedule"


def test_a_duplicate_key_cannot_change_what_was_signed(rig: Rig) -> None:
    """JSON with a key twice is refused before anything else is judged
    (``duplicate_key``), wherever the copy stands: two parsers that pick
    different copies can never read one signed document two ways. The document
    without the copy is still stored."""
    import json

    from protocol.canonical import decode_json_object

    signed = json.dumps(staff_doc(rig, revoked=True), ensure_ascii=False)
    for forged in (signed[:-1] + ', "revoked": false}', '{"revoked": false, ' + signed[1:]):
        with pytest.raises(ValidationError) as err:
            decode_json_object(forged)
        assert err.value.reason == "duplicate_key"
    assert rig.w.store.get_staff("S-lin") is None
    assert take(rig, decode_json_object(signed)) == "stored"
    assert rig.w.store.get_staff("S-lin").revoked
