"""The door's GPIO devices on gpiozero: lock relay, door contact, exit button,
buzzer and status LED.

Every device takes a ``pin_factory`` (gpiozero's pin seam), so the same code
drives lgpio pins on a Pi and :class:`gpiozero.pins.mock.MockFactory` pins in
tests and in the simulator (docs/design.md). Input callbacks run on gpiozero's
threads; they only convert and hand over (docs/design.md).

What may escape: constructors raise gpiozero errors (``GPIOZeroError``
subclasses, e.g. a pin already in use) or lgpio errors; ``Lock.energize``
raises ``ValueError`` for a bad duration and :class:`HardwareError` once the
lock is closed; everything else only raises for programming errors.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

from gpiozero import DigitalInputDevice, DigitalOutputDevice

from kiosk.clock import Clock
from kiosk.config import HardwareConfig, LockConfig
from kiosk.errors import KioskError

log = logging.getLogger(__name__)

Notify = Callable[[str], None]

#: How often the lock's guard thread checks the deadline while energized.
GUARD_INTERVAL_S: Final = 0.025
#: How long the guard thread sleeps when the relay is off (an energize wakes it).
GUARD_IDLE_S: Final = 1.0


class HardwareError(KioskError, OSError):
    """The GPIO hardware is missing, busy or cannot be driven.

    The message says what to do (e.g. set ``[hardware] board = "sim"``).
    """


def _notify(notify: Notify | None, text: str) -> None:
    """Call an activity hook; its failure never reaches the device code."""
    if notify is None:
        return
    try:
        notify(text)
    except Exception:
        log.exception("activity hook failed for %r", text)


class Lock:
    """The lock relay: energized only for a bounded pulse (fail-secure).

    - The relay pin is claimed at its inactive level (``initial_value=False``)
      so the relay never clicks when the daemon starts.
    - :meth:`energize` sets a deadline on the injected clock; calling it
      again while energized moves the deadline later, never earlier, so the
      daemon can hold the door open as a lease (day mode) by renewing.
    - No single call keeps the relay on longer than ``max_s``: if the daemon
      stops renewing, the door locks within ``max_s``.
    - A guard thread calls :meth:`poll` every ~25 ms on real time while the
      relay is energized, independently of the daemon's loop, so the relay is
      released even if that loop stalls or dies (docs/design.md, rule 2).
    """

    def __init__(
        self,
        pin: int,
        *,
        clock: Clock,
        active_high: bool = True,
        max_s: float = 6.0,
        pin_factory: Any = None,
        guard: bool = True,
        notify: Notify | None = None,
    ) -> None:
        if not (max_s > 0 and math.isfinite(max_s)):
            raise ValueError(f"max_s must be a positive number of seconds, not {max_s!r}")
        self._clock = clock
        self._max_s = float(max_s)
        self._notify = notify
        self._mutex = threading.Lock()
        self._deadline: float | None = None
        self._closed = False
        self._cap_warned = False
        self._device: Any = DigitalOutputDevice(
            pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
        )
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._guard: threading.Thread | None = None
        if guard:
            self._guard = threading.Thread(
                target=self._guard_loop, name=f"lock-guard-{pin}", daemon=True
            )
            self._guard.start()

    @classmethod
    def from_config(
        cls,
        hw: HardwareConfig,
        lock: LockConfig,
        *,
        clock: Clock,
        pin_factory: Any = None,
        guard: bool = True,
        notify: Notify | None = None,
    ) -> Lock:
        return cls(
            hw.relay_pin,
            clock=clock,
            active_high=hw.relay_active_high,
            max_s=max_energized_s(lock),
            pin_factory=pin_factory,
            guard=guard,
            notify=notify,
        )

    @property
    def max_s(self) -> float:
        return self._max_s

    @property
    def energized(self) -> bool:
        with self._mutex:
            return not self._closed and bool(self._device.value)

    @property
    def deadline(self) -> float | None:
        """When the relay will be released, on the clock's monotonic scale."""
        with self._mutex:
            return self._deadline

    def energize(self, seconds: float) -> None:
        """Energize the relay for ``seconds`` (capped at ``max_s``) from now.

        While already energized this only moves the deadline later.
        Raises ValueError for a non-positive or non-finite duration and
        HardwareError after :meth:`close`.
        """
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError(f"a relay pulse must be a positive number of seconds, not {seconds!r}")
        if seconds > self._max_s:
            if not self._cap_warned:  # once: a lease renews many times a minute
                self._cap_warned = True
                log.warning("relay pulse of %.1f s capped at %.1f s", seconds, self._max_s)
            seconds = self._max_s
        with self._mutex:
            if self._closed:
                raise HardwareError("the lock relay is closed")
            deadline = self._clock.monotonic() + seconds
            if self._deadline is None or deadline > self._deadline:
                self._deadline = deadline
            was_on = bool(self._device.value)
            self._device.on()
        self._wake.set()
        if not was_on:
            log.info("relay energized for %.1f s", seconds)
            _notify(self._notify, "relay on")

    def release(self) -> None:
        """De-energize now (locks the door). Safe to call at any time."""
        with self._mutex:
            if self._closed:
                return
            self._deadline = None
            was_on = bool(self._device.value)
            self._device.off()
        if was_on:
            log.info("relay released")
            _notify(self._notify, "relay off")

    def poll(self) -> None:
        """Release the relay if its deadline has passed."""
        with self._mutex:
            if self._closed:
                return
            now = self._clock.monotonic()
            due = self._deadline is not None and now >= self._deadline
            # On without a deadline cannot happen through this class; if the
            # pin was driven some other way, the safe reading is "release".
            stray = self._deadline is None and bool(self._device.value)
            if not (due or stray):
                return
            self._deadline = None
            self._device.off()
        log.info("relay released (pulse over)")
        _notify(self._notify, "relay off")

    def _guard_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:
                log.exception("lock guard: poll failed; trying to release the relay")
                try:
                    self._device.off()
                except Exception:
                    log.exception("lock guard: cannot release the relay")
            with self._mutex:
                busy = self._deadline is not None
            if busy:
                self._stop.wait(GUARD_INTERVAL_S)
            else:
                self._wake.wait(GUARD_IDLE_S)
                self._wake.clear()

    def close(self) -> None:
        """Release the relay, stop the guard and free the pin (idempotent)."""
        try:
            self.release()
        finally:
            self._stop.set()
            self._wake.set()
            guard = self._guard
            if guard is not None and guard is not threading.current_thread():
                guard.join(timeout=2.0)
            self._close_device()

    def _close_device(self) -> None:
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            self._deadline = None
            try:
                self._device.off()
            finally:
                self._device.close()


def max_energized_s(lock: LockConfig) -> float:
    """The hard cap on one energization: ``max_energized_s`` or release_s + 1."""
    return lock.max_energized_s if lock.max_energized_s > 0 else lock.release_s + 1.0


class DoorContact:
    """The door's reed switch, wired to GND with the pin pulled up.

    ``closed_is_low=True`` (the default and the safe choice): the closed
    switch pulls the pin low, so a cut wire reads as "open" and raises an
    alarm instead of hiding a forced door. ``on_change(is_open)`` is called
    (on gpiozero's thread) only when the debounced state really changes.
    """

    def __init__(
        self,
        pin: int,
        *,
        closed_is_low: bool = True,
        debounce_s: float = 0.02,
        pin_factory: Any = None,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.on_change = on_change
        self._closed_is_low = closed_is_low
        self._mutex = threading.Lock()
        # pull_up=True: the device is "active" when the pin is low.
        self._device: Any = DigitalInputDevice(
            pin, pull_up=True, bounce_time=debounce_s, pin_factory=pin_factory
        )
        self._last = self._read()
        self._device.when_activated = self._changed
        self._device.when_deactivated = self._changed

    def _read(self) -> bool:
        low = bool(self._device.is_active)
        return not low if self._closed_is_low else low

    @property
    def is_open(self) -> bool:
        return self._read()

    def _changed(self) -> None:
        with self._mutex:
            now_open = self._read()
            if now_open == self._last:
                return
            self._last = now_open
        log.info("door %s", "opened" if now_open else "closed")
        callback = self.on_change
        if callback is not None:
            callback(now_open)

    def close(self) -> None:
        self._device.when_activated = None
        self._device.when_deactivated = None
        self._device.close()


class ExitButton:
    """The inside exit button (normally open, to GND, pin pulled up)."""

    def __init__(
        self,
        pin: int,
        *,
        debounce_s: float = 0.02,
        pin_factory: Any = None,
        on_press: Callable[[], None] | None = None,
    ) -> None:
        self.on_press = on_press
        self._device: Any = DigitalInputDevice(
            pin, pull_up=True, bounce_time=debounce_s, pin_factory=pin_factory
        )
        self._device.when_activated = self._pressed

    @property
    def is_pressed(self) -> bool:
        return bool(self._device.is_active)

    def _pressed(self) -> None:
        log.info("exit button pressed")
        callback = self.on_press
        if callback is not None:
            callback()

    def close(self) -> None:
        self._device.when_activated = None
        self._device.close()


#: Buzzer patterns: (on seconds, off seconds, repeats; None = until silenced).
BUZZER_PATTERNS: Final[Mapping[str, tuple[float, float, int | None]]] = {
    "key": (0.03, 0.0, 1),  # a tick per key
    "accepted": (0.08, 0.06, 2),  # two short beeps
    "refused": (0.8, 0.0, 1),  # one long buzz
    "alarm": (0.4, 0.2, None),  # repeats until silence() or another pattern
}


class Buzzer:
    """A buzzer on a transistor, driven on/off; patterns never block."""

    def __init__(self, pin: int, *, pin_factory: Any = None, notify: Notify | None = None) -> None:
        self._notify = notify
        self._end: threading.Timer | None = None
        self._device: Any = DigitalOutputDevice(pin, initial_value=False, pin_factory=pin_factory)

    def play(self, pattern: str, *, wait: bool = False) -> None:
        """Start ``pattern`` (one of BUZZER_PATTERNS), replacing any other.

        ``wait=True`` returns only when it has finished (tests; never with
        "alarm"). Raises ValueError for an unknown pattern.
        """
        try:
            on_s, off_s, n = BUZZER_PATTERNS[pattern]
        except KeyError:
            raise ValueError(
                f"unknown buzzer pattern {pattern!r}; one of {', '.join(BUZZER_PATTERNS)}"
            ) from None
        if wait and n is None:
            raise ValueError(f"buzzer pattern {pattern!r} never ends; cannot wait for it")
        _notify(self._notify, f"buzzer {pattern}")
        self._cancel_end()
        self._device.blink(on_time=on_s, off_time=off_s, n=n, background=not wait)
        if n is not None and not wait and self._notify is not None:
            # Say when a finite pattern ends, as its start was said.
            self._end = threading.Timer((on_s + off_s) * n, self._ended)
            self._end.daemon = True
            self._end.start()

    def _ended(self) -> None:
        _notify(self._notify, "buzzer off")

    def _cancel_end(self) -> None:
        if self._end is not None:
            self._end.cancel()
            self._end = None

    def silence(self) -> None:
        was_on = self.is_on or self._end is not None
        self._cancel_end()
        self._device.off()
        if was_on:
            _notify(self._notify, "buzzer off")

    @property
    def is_on(self) -> bool:
        return bool(self._device.value)

    def close(self) -> None:
        self._cancel_end()
        self._device.close()


#: LED states: None = steady on, else (on seconds, off seconds) repeating.
LED_PATTERNS: Final[Mapping[str, tuple[float, float] | None]] = {
    "idle": None,  # steady: ready for codes
    "unlocked": (0.25, 0.25),  # 2 Hz while the door is released
    "alarm": (0.08, 0.08),  # fast flicker: held open or forced
    "offline": (1.8, 0.2),  # mostly on, a blink every 2 s: works, no network
    "fault": (0.2, 1.8),  # mostly off, a flash every 2 s: out of service
}


class StatusLed:
    """The status LED (through a resistor to GND)."""

    def __init__(self, pin: int, *, pin_factory: Any = None, notify: Notify | None = None) -> None:
        self._notify = notify
        self._state = ""
        self._device: Any = DigitalOutputDevice(pin, initial_value=False, pin_factory=pin_factory)

    @property
    def state(self) -> str:
        """The last state shown ('' before the first :meth:`set`)."""
        return self._state

    @property
    def is_lit(self) -> bool:
        return bool(self._device.value)

    def set(self, state: str) -> None:
        """Show one of LED_PATTERNS; showing the current state again is a no-op.

        Raises ValueError for an unknown state.
        """
        if state not in LED_PATTERNS:
            raise ValueError(f"unknown LED state {state!r}; one of {', '.join(LED_PATTERNS)}")
        if state == self._state:
            return
        self._state = state
        pattern = LED_PATTERNS[state]
        if pattern is None:
            self._device.on()
        else:
            self._device.blink(on_time=pattern[0], off_time=pattern[1], n=None, background=True)
        _notify(self._notify, f"led {state}")

    def close(self) -> None:
        self._device.close()
