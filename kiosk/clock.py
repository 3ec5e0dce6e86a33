"""Clocks: an injectable time source and the kiosk's trusted lower bound.

Nothing in the core reads ``time`` directly; it is handed a :class:`Clock`.
Tests use :class:`FakeClock` and advance it. :class:`TrustedClock` keeps a
lower bound on true time (persisted time, signed hub timestamps, monotonic
time since boot) and says whether the wall clock can be trusted (DESIGN.md
rule 5).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from dataclasses import dataclass
from typing import Protocol

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


@dataclass(frozen=True)
class ClockSnapshot:
    now: float  # the time the kiosk judges codes and stamps events with
    wall: float
    floor: float  # lower bound on true time
    trusted: bool

    @property
    def state(self) -> str:
        return CLOCK_SYNCED if self.trusted else CLOCK_UNTRUSTED


class TrustedClock:
    """A lower bound on true time and whether the wall clock is trusted.

    - The bound only rises: persisted time from the store, signed hub
      timestamps, and the monotonic clock carry it forward.
    - The kiosk judges at ``max(wall, floor)``, so stepping the wall clock
      back never reopens old one-time codes or rewinds event times.
    - The clock is trusted when a sync source says so (NTP, or a signed hub
      timestamp close to the wall clock) and the wall clock is not behind the
      bound by more than ``slack`` seconds.
    """

    def __init__(
        self,
        clock: Clock,
        floor: float = 0.0,
        *,
        synced: bool = False,
        slack: float = 5.0,
        hub_skew: float = 300.0,
    ) -> None:
        self._clock = clock
        self._anchor_floor = floor
        self._anchor_mono = clock.monotonic()
        self._sync_source = synced
        self._hub_confirmed = False
        self._slack = slack
        self._hub_skew = hub_skew

    def floor(self) -> float:
        return self._anchor_floor + max(0.0, self._clock.monotonic() - self._anchor_mono)

    def raise_floor(self, t: float) -> bool:
        """Raise the bound to ``t`` if higher; return whether it moved."""
        if t <= self.floor():
            return False
        self._anchor_floor = t
        self._anchor_mono = self._clock.monotonic()
        return True

    def observe_hub_time(self, t: float) -> None:
        """A signed hub timestamp: true time is at least ``t``.

        When it is within ``hub_skew`` of the wall clock it also confirms the
        wall clock, which makes the clock trusted without NTP.
        """
        self.raise_floor(t)
        if abs(self._clock.wall() - t) <= self._hub_skew:
            self._hub_confirmed = True

    def set_synced(self, synced: bool) -> None:
        self._sync_source = synced

    def snapshot(self) -> ClockSnapshot:
        wall = self._clock.wall()
        floor = self.floor()
        behind = wall < floor - self._slack
        trusted = (self._sync_source or self._hub_confirmed) and not behind
        return ClockSnapshot(now=max(wall, floor), wall=wall, floor=floor, trusted=trusted)
