"""Clocks: an injectable time source and the kiosk's trusted lower bound.

Nothing in the core reads ``time`` directly; it is handed a :class:`Clock`.
Tests use :class:`FakeClock` and advance it. :class:`TrustedClock` keeps a
lower bound on true time that no document can poison and says whether the
wall clock can be trusted (docs/design.md, rule 5; docs/protocol.md, "Time").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from dataclasses import dataclass
from typing import Protocol

from protocol.times import MIN_TIME, plausible

CLOCK_SYNCED = "synced"
CLOCK_UNTRUSTED = "untrusted"


class Clock(Protocol):
    def wall(self) -> float:
        """Seconds since the Unix epoch, as the system believes."""

    def monotonic(self) -> float:
        """Seconds on a clock that never steps (since boot on Linux)."""


class SystemClock:
    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to: ``advance`` moves both clocks,
    ``step_wall`` moves only the wall clock (as fake-hwclock or NTP do)."""

    def __init__(self, wall: float = 1_780_000_000.0, mono: float = 1000.0) -> None:
        self._wall = float(wall)
        self._mono = float(mono)

    def wall(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a fake clock only advances; use step_wall to step back")
        self._wall += seconds
        self._mono += seconds

    def step_wall(self, seconds: float) -> None:
        self._wall += seconds


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>; only the leading fields matter to us,
    # the padding keeps the kernel from writing past the buffer.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("pad", ctypes.c_byte * 256),
    ]


_TIME_ERROR = 5


def system_time_synchronized() -> bool:
    """True when the kernel says an NTP client has disciplined the clock.

    Uses adjtimex(2) read-only (what ``timedatectl`` shows as "System clock
    synchronized"); falls back to systemd-timesyncd's marker file.
    """
    if os.path.exists("/run/systemd/timesync/synchronized"):
        return True
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        tx = _Timex()
        state = int(libc.adjtimex(ctypes.byref(tx)))
    except (OSError, AttributeError):
        return False
    return state not in (-1, _TIME_ERROR)


SIGNED_SKEW_S = 300.0  # a signed time this close to a trusted wall clock is plausible
SIGNED_LEAD_S = 36 * 3600.0  # ... and this far ahead of the evidence when the wall is untrusted


@dataclass(frozen=True)
class ClockSnapshot:
    """The kiosk's time at one instant (docs/protocol.md, "Time").

    ``now`` judges codes and stamps events; ``floor`` is the lower bound on
    true time; ``expiry_now`` is what order and command expiry are judged
    at: ``now`` when the clock is trusted, else the floor, so that an
    untrusted wall clock running ahead can expire nothing.
    """

    now: float
    wall: float
    floor: float
    trusted: bool
    mono: float = 0.0

    @property
    def state(self) -> str:
        return CLOCK_SYNCED if self.trusted else CLOCK_UNTRUSTED

    @property
    def expiry_now(self) -> float:
        return self.now if self.trusted else self.floor


@dataclass(frozen=True)
class SignedTime:
    """What a signed time did: ``raised`` the floor, was ``old`` news, or was
    a ``conflict`` (further ahead than the kiosk can account for; not adopted)."""

    outcome: str  # raised | old | conflict
    t: float
    bound: float  # the furthest the floor could have been raised to


class TrustedClock:
    """A lower bound on true time that no document can poison.

    Two floors, each carried forward by the monotonic clock:

    - the *evidence* floor: the persisted floor, the wall clock while it is
      trusted (NTP, or confirmed by a signed time), and an owner's signed
      ``time`` command. Documents never move it.
    - the *document* floor: signed ``issued_at`` times (orders, commands),
      each taken only when it is at most ``lead`` ahead of the evidence
      (``SIGNED_SKEW_S`` when the wall is trusted, ``SIGNED_LEAD_S`` when it
      is not). A later signed time cannot step further: the bound is measured
      from the evidence, not from the last document. A synchronised wall clock
      behind the document floor discards it.

    The floor is the larger of the two. The clock is trusted when a sync
    source says so (NTP, or a signed time within ``SIGNED_SKEW_S`` of the
    wall) and the wall is not behind the floor by more than ``slack``.
    """

    def __init__(
        self,
        clock: Clock,
        floor: float = 0.0,
        *,
        doc_floor: float = 0.0,
        synced: bool = False,
        slack: float = 5.0,
        skew: float = SIGNED_SKEW_S,
        lead: float = SIGNED_LEAD_S,
    ) -> None:
        self._clock = clock
        mono = clock.monotonic()
        self._evidence = (floor, mono)
        self._doc = (doc_floor, mono)
        self._sync_source = synced
        # (wall, monotonic) when a signed time last agreed with the wall clock;
        # the confirmation holds only while the wall keeps pace with monotonic time
        self._confirmed: tuple[float, float] | None = None
        self._slack = slack
        self._skew = skew
        self._lead = lead

    @staticmethod
    def _carry(anchor: tuple[float, float], mono: float) -> float:
        value, at = anchor
        return value + max(0.0, mono - at) if value > 0 else 0.0

    def evidence(self) -> float:
        mono = self._clock.monotonic()
        ev = self._carry(self._evidence, mono)
        wall = self._clock.wall()
        if self._wall_trusted(wall, max(ev, self._carry(self._doc, mono))):
            ev = max(ev, wall)
        return ev

    def doc_floor(self) -> float:
        return self._carry(self._doc, self._clock.monotonic())

    def floor(self) -> float:
        mono = self._clock.monotonic()
        return max(self._carry(self._evidence, mono), self._carry(self._doc, mono))

    def _wall_trusted(self, wall: float, floor: float) -> bool:
        return (
            (self._sync_source or self._still_confirmed(wall))
            and plausible(wall)
            and wall >= floor - self._slack
        )

    def _still_confirmed(self, wall: float) -> bool:
        """A confirmation survives drift (1,000 ppm) but not a step of the wall clock."""
        if self._confirmed is None:
            return False
        wall0, mono0 = self._confirmed
        elapsed = self._clock.monotonic() - mono0
        if abs((wall - wall0) - elapsed) > self._slack + 0.001 * max(0.0, elapsed):
            self._confirmed = None
            return False
        return True

    def raise_floor(self, t: float) -> bool:
        """Raise the evidence floor to ``t`` (a persisted floor, an owner's time)."""
        if not plausible(t) or t <= self._carry(self._evidence, self._clock.monotonic()):
            return False
        self._evidence = (t, self._clock.monotonic())
        return True

    def adopt_doc_floor(self, t: float) -> bool:
        """Take a document floor another process already judged (from the store)."""
        if not plausible(t) or t <= self.doc_floor():
            return False
        wall = self._clock.wall()
        base = max(self.evidence(), wall if plausible(wall) else 0.0, MIN_TIME)
        if t > base + self._lead:
            return False  # never trust a stored value more than a fresh document
        self._doc = (t, self._clock.monotonic())
        return True

    def observe_signed(self, t: float) -> SignedTime:
        """A signature-verified ``issued_at``; see the class docstring.

        With a trusted wall clock a signed time only confirms it (it never
        lifts the floor above the wall, so it cannot make the clock untrusted
        and open the wider bound). With an untrusted one it may raise the
        document floor up to ``lead`` past the evidence or the wall clock,
        whichever is later; neither moves with documents, so signed times
        cannot be stepped forward one after another.
        """
        wall = self._clock.wall()
        if plausible(wall) and abs(wall - t) <= self._skew:
            self._confirmed = (wall, self._clock.monotonic())  # a signed time agrees
        floor = self.floor()
        if self._wall_trusted(wall, floor):
            bound = wall + self._skew
            outcome = "old" if plausible(t) and t <= bound else "conflict"
            return SignedTime(outcome, t, bound)
        base = max(self.evidence(), wall if plausible(wall) else 0.0)
        bound = max(base, MIN_TIME) + self._lead
        if not plausible(t) or t > bound:
            return SignedTime("conflict", t, bound)
        if t <= floor:
            return SignedTime("old", t, bound)
        self._doc = (t, self._clock.monotonic())
        return SignedTime("raised", t, bound)

    def set_synced(self, synced: bool) -> bool:
        """Tell whether NTP has the wall clock. Returns True when this
        discarded a document floor ahead of the synchronised wall clock."""
        self._sync_source = synced
        wall = self._clock.wall()
        if synced and plausible(wall) and self.doc_floor() > wall + self._slack:
            self._doc = (0.0, self._clock.monotonic())
            return True
        return False

    def reset_floor(self, t: float) -> None:
        """The owner lowered the floor (a ``time`` command the wall clock agrees
        with): both floors start again from ``t``."""
        mono = self._clock.monotonic()
        self._evidence = (t, mono)
        self._doc = (0.0, mono)

    def clear_doc_floor(self) -> None:
        """An owner's ``time`` command replaces whatever documents claimed."""
        self._doc = (0.0, self._clock.monotonic())

    def snapshot(self) -> ClockSnapshot:
        wall = self._clock.wall()
        mono = self._clock.monotonic()
        floor = self.floor()
        trusted = self._wall_trusted(wall, floor)
        now = max(wall, floor) if plausible(wall) else max(floor, MIN_TIME)
        return ClockSnapshot(now=now, wall=wall, floor=floor, trusted=trusted, mono=mono)
