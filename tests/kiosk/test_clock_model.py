"""The trusted clock's model: what can raise the floor, what confirms the wall, what repairs it."""

from __future__ import annotations

from pathlib import Path

from kiosk.clock import SIGNED_LEAD_S, FakeClock, TrustedClock
from tests.support.door import Rig


def test_a_signed_confirmation_does_not_survive_a_step_of_the_wall_clock() -> None:
    clock = FakeClock(wall=1_790_000_000.0)
    tc = TrustedClock(clock, synced=False)
    assert not tc.snapshot().trusted
    tc.observe_signed(clock.wall() - 30)  # agrees with the wall: confirms it
    assert tc.snapshot().trusted
    clock.advance(86400)  # a day of normal running (drift is allowed)
    assert tc.snapshot().trusted
    clock.step_wall(3600)  # someone (or fake-hwclock) steps the wall clock
    assert not tc.snapshot().trusted


def test_signed_times_cannot_be_stepped_forward_one_after_another() -> None:
    clock = FakeClock(wall=1_790_000_000.0)
    tc = TrustedClock(clock, synced=False)
    start = clock.wall()
    assert tc.observe_signed(start + SIGNED_LEAD_S - 60).outcome == "raised"
    # the bound is measured from the evidence, not from the last document
    assert tc.observe_signed(start + SIGNED_LEAD_S + 3600).outcome == "conflict"
    assert tc.floor() < start + SIGNED_LEAD_S


def test_ntp_discards_a_document_floor_ahead_of_the_wall() -> None:
    clock = FakeClock(wall=1_790_000_000.0)
    tc = TrustedClock(clock, synced=False)
    tc.observe_signed(clock.wall() + 7200)
    assert tc.snapshot().floor >= clock.wall() + 7200
    assert tc.set_synced(True) is True
    snap = tc.snapshot()
    assert snap.trusted and snap.now == clock.wall()


def test_the_door_drops_its_floor_when_the_store_s_is_cleared(tmp_path: Path) -> None:
    rig = Rig(tmp_path, clock=FakeClock(wall=1_790_000_000.0))
    rig.d.synced = lambda: False  # no NTP: only the store's floor can repair the door's
    try:
        poisoned = rig.w.clock.wall() + 30 * 3600
        rig.w.store.save_doc_floor(poisoned)
        rig.advance(61)  # the door reads the shared floors once a minute
        assert rig.d.tclock.doc_floor() >= poisoned
        rig.w.store.save_doc_floor(0.0)  # the owner's `time` command repaired it
        rig.advance(61)
        assert rig.d.tclock.doc_floor() == 0.0
    finally:
        rig.board.close()
