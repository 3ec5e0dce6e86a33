"""docs/design.md, rule 5 through a power cut: fake-hwclock steps the wall clock back,
then NTP steps it forward. The real DoorDaemon on the simulated board with
injected clocks (FakeClock.step_wall moves only the wall clock)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from hardware.board import SimBoard
from kiosk.clock import FakeClock
from kiosk.daemon import FLOOR_SAVE_S, DoorDaemon
from kiosk.i18n import render_text
from tests.support.door import Rig

T0 = 1_780_000_000.0


def totp(doc: dict, t: float) -> str:  # type: ignore[type-arg]
    return str(doc["pickup_no"]) + pyotp.TOTP(doc["otp"]["secret"]).at(t)


def backup(doc: dict) -> str:  # type: ignore[type-arg]
    return str(doc["pickup_no"]) + pyotp.HOTP(doc["otp"]["secret"]).at(0)


def power_cut(rig: Rig, clock: FakeClock, synced: list[bool]) -> None:
    """The Pi loses power (no shutdown, nothing saved) and boots with ``clock``."""
    rig.board.close()
    rig.w.clock = clock
    rig.board = SimBoard(rig.cfg.hardware, rig.cfg.lock, clock=clock, threads=False)
    rig.d = DoorDaemon(
        rig.cfg,
        rig.w.store,
        rig.board,
        clock,
        screen_sinks=[rig.screens.append],
        synced=lambda: synced[0],
    )
    rig.d.start()


def last_refusal(rig: Rig) -> str:
    refused = [s for s in rig.screens if s.kind == "refused"]
    return refused[-1].reason if refused else ""


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.board.close()


def test_clock_stepped_back_then_forward(rig: Rig) -> None:
    a = rig.w.add("A-1", "042", backup_code=True)
    b = rig.w.add("B-1", "117")
    c = rig.w.add("C-1", "256")
    seen_code = rig.code(a)
    rig.type(seen_code + "#")  # a customer gets in; someone behind them reads the code
    assert rig.board.relay_active()
    rig.advance(FLOOR_SAVE_S + 1)  # the floor is persisted every 5 minutes
    floor = rig.w.store.clock_floor()
    assert floor >= T0 + FLOOR_SAVE_S
    cut_seq = rig.w.events()[-1]["seq"]

    # Power cut; fake-hwclock restores a time an hour old; no network, so no NTP.
    synced = [False]
    clock = FakeClock(wall=floor - 3600, mono=4.0)
    power_cut(rig, clock, synced)
    after = rig.w.events()[cut_seq:]
    assert [e["type"] for e in after[:2]] == ["boot", "clock_untrusted"]
    assert all(e["clock"] == "untrusted" for e in after)
    assert after[1]["detail"]["wall"] < after[1]["detail"]["floor"] == pytest.approx(floor)
    snap = rig.d.snap()
    assert not snap.trusted and snap.now >= floor > snap.wall  # time keeps moving from the floor

    # The code seen before the cut is not accepted again.
    rig.type(seen_code + "#")
    assert not rig.board.relay_active()
    assert last_refusal(rig) in ("replayed", "clock_untrusted")
    # A code that a kiosk believing its wall clock would take is refused, and the
    # screen says what still works: the backup code.
    rig.type(totp(b, clock.wall()) + "#")
    assert not rig.board.relay_active()
    assert last_refusal(rig) == "clock_untrusted"
    refused = next(s for s in reversed(rig.screens) if s.kind == "refused")
    text = render_text(refused.__class__(**{**refused.__dict__, "lang": "en"}))
    assert "backup code" in text
    idle_status = rig.d.screen().status
    assert idle_status.clock_trusted is False
    # Codes are judged at the trusted floor: the value for that instant opens,
    rig.type(totp(c, rig.d.snap().now) + "#")
    assert rig.board.relay_active()
    rig.advance(rig.cfg.lock.release_s)
    # and the backup code opens whatever the clock says.
    rig.type(backup(a) + "#")
    assert rig.board.relay_active()
    accepted = rig.w.events("code_accepted")
    assert accepted[-1]["detail"]["kind"] == "backup" and accepted[-1]["clock"] == "untrusted"
    rig.advance(rig.cfg.lock.release_s)

    # The network returns: NTP steps the wall clock forward to the true time.
    true_now = floor + 2 * 3600
    clock.step_wall(true_now - clock.wall())
    synced[0] = True
    rig.advance(61)  # the daemon looks at its clock every minute
    assert rig.w.events()[-1]["type"] == "clock_trusted"
    assert rig.d.snap().trusted and rig.d.snap().now == pytest.approx(clock.wall())
    rig.type(totp(b, clock.wall()) + "#")
    assert rig.board.relay_active()
    assert rig.w.events("door_unlocked")[-1]["clock"] == "synced"
    # Event times never went back past the persisted floor across all of it.
    ts = [e.ts for e in rig.w.store.events_since(cut_seq)]
    assert min(ts) >= floor
    assert ts == sorted(ts)


def test_the_door_adopts_a_floor_the_owner_lowered_and_never_pushes_it_back(rig: Rig) -> None:
    """A floor five years ahead (an owner's `time` from a wrong laptop clock)
    refuses every code; once the sync agent lowers it (a `time` the wall clock
    agrees with: a new clock epoch), the door adopts it within a minute, and
    until then its periodic save of the old floor is not written back."""
    doc = rig.w.add("A-1", "042", expires_in=30 * 86400)
    now = rig.w.clock.wall()
    later = now + 5 * 365 * 86400
    rig.d.tclock.raise_floor(later)
    rig.w.store.save_clock_floor(later)
    rig.type(totp(doc, now) + "#")
    assert not rig.board.relay_active()
    assert last_refusal(rig) in ("clock_untrusted", "wrong_code")
    rig.w.store.lower_clock_floor(now)  # what the agent does for the owner's repair
    rig.d._save_floor()  # the door's periodic save, before it noticed
    assert rig.w.store.clock_floor() == now
    rig.advance(61)
    assert rig.d.snap().trusted and rig.d.snap().floor < later
    rig.type(totp(doc, rig.w.clock.wall()) + "#")
    assert rig.board.relay_active(), last_refusal(rig)
    rig.d.shutdown()
    assert rig.w.store.clock_floor() < later


def test_a_wall_clock_that_ran_ahead_and_was_put_back_locks_nobody_out(rig: Rig) -> None:
    """The wall clock jumps a year ahead (a bad NTP answer, an RTC glitch) for a
    few minutes. A customer mistypes and another collects; then it is corrected.
    The throttle rows and the collection were stamped a year ahead: the
    mistyped number's wait and the keypad bucket count from now again (before,
    the number was throttled for the year and the bucket did not refill), and
    the collection allows no re-entry for the length of the jump."""
    a = rig.w.add("A-1", "042", expires_in=800 * 86400)
    b = rig.w.add("B-1", "117", expires_in=800 * 86400)
    rig.w.clock.step_wall(365 * 86400)
    rig.d.tick()
    rig.type(totp(b, rig.w.clock.wall()) + "#")
    assert rig.board.relay_active()
    rig.door(True)
    rig.door(False)
    assert rig.w.store.get_order("B-1").status == "collected"
    rig.type("042" + "000000" + "#")
    assert last_refusal(rig) == "wrong_code"
    for n in range(9):  # and a vandal empties the keypad bucket
        rig.type(f"{300 + n:03d}000000#")
    rig.w.clock.step_wall(-365 * 86400)  # corrected
    rig.advance(61)  # the door's minute check notices
    rig.advance(rig.cfg.throttle.keypad_refill_s)  # one try refilled, counted from then
    assert rig.d.snap().trusted
    rig.type(totp(a, rig.w.clock.wall()) + "#")
    assert rig.board.relay_active(), last_refusal(rig)
    rig.advance(rig.cfg.lock.release_s + 31)
    rig.type(totp(b, rig.w.clock.wall()) + "#")
    assert last_refusal(rig) == "already_collected" and not rig.board.relay_active()
