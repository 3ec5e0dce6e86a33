"""The door's board: every device the daemon drives, on real or mock pins.

:func:`open_board` picks the implementation from ``[hardware] board``:

- ``"gpio"``: gpiozero devices on lgpio pins (a Raspberry Pi).
- ``"sim"``: the very same device classes on a private
  :class:`gpiozero.pins.mock.MockFactory`, plus controls that move the mock
  pins (press a key on the emulated matrix, open the door, push the exit
  button) so the real device code path runs in the simulator and in tests.

:meth:`Board.start` hands input events to the daemon's ``post`` (a
thread-safe queue put); device callbacks only convert and post.

What may escape: :func:`open_board` and :func:`relock` raise
:class:`hardware.devices.HardwareError` when GPIO is missing or busy;
``SimBoard.press`` raises ValueError for a key the keypad does not have.
"""

from __future__ import annotations

import glob
import logging
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from typing import Any, Final

from gpiozero import DigitalOutputDevice
from gpiozero.pins.mock import MockFactory

from hardware.devices import Buzzer, DoorContact, ExitButton, HardwareError, Lock, StatusLed
from hardware.keypad import MatrixKeypad, MockMatrix
from kiosk.clock import Clock, SystemClock
from kiosk.config import HardwareConfig, LockConfig
from kiosk.inputs import KEYS, DoorChanged, ExitPressed, InputEvent, KeyPressed

log = logging.getLogger(__name__)

SIM_HINT: Final = 'set [hardware] board = "sim" to run the simulator'
NO_GPIO_MESSAGE: Final = f"no GPIO chip found: {SIM_HINT}"
#: Where lgpio may put its notification files when LG_WD is unset.
RUN_DIR: Final = "/run/pickup-kiosk"


class Board:
    """Lock relay, door contact, exit button, buzzer, status LED, keypad.

    The relay is claimed first, at its inactive level, and released first
    on :meth:`close`. ``threads=False`` starts neither the lock's guard nor
    the keypad's scanner: the caller then drives ``lock.poll()`` and
    ``keypad.scan_once()`` itself (tests with a fake clock).

    ``on_activity``, if set, is called with short strings ("relay on",
    "buzzer accepted", "led alarm", ...) from whichever thread caused them.
    """

    def __init__(
        self,
        hw: HardwareConfig,
        lock: LockConfig,
        *,
        clock: Clock | None = None,
        pin_factory: Any = None,
        threads: bool = True,
    ) -> None:
        self.hw = hw
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.on_activity: Callable[[str], None] | None = None
        self._post: Callable[[InputEvent], None] | None = None
        self._closed = False
        with ExitStack() as stack:
            self.lock = stack.enter_context(
                closing(
                    Lock.from_config(
                        hw,
                        lock,
                        clock=self.clock,
                        pin_factory=pin_factory,
                        guard=threads,
                        notify=self._activity,
                    )
                )
            )
            self.door = stack.enter_context(
                closing(
                    DoorContact(
                        hw.door_pin,
                        closed_is_low=hw.door_closed_is_low,
                        debounce_s=hw.debounce_s,
                        pin_factory=pin_factory,
                        on_change=self._on_door,
                    )
                )
            )
            self.exit_button = stack.enter_context(
                closing(
                    ExitButton(
                        hw.exit_pin,
                        debounce_s=hw.debounce_s,
                        pin_factory=pin_factory,
                        on_press=self._on_exit,
                    )
                )
            )
            self.buzzer = stack.enter_context(
                closing(Buzzer(hw.buzzer_pin, pin_factory=pin_factory, notify=self._activity))
            )
            self.led = stack.enter_context(
                closing(StatusLed(hw.led_pin, pin_factory=pin_factory, notify=self._activity))
            )
            self.keypad: MatrixKeypad | None = None
            if hw.keypad == "matrix":
                self.keypad = stack.enter_context(
                    closing(
                        MatrixKeypad(
                            hw.keypad_rows,
                            hw.keypad_cols,
                            self._on_key,
                            pin_factory=pin_factory,
                            clock=self.clock,
                            debounce_s=hw.debounce_s,
                            thread=threads,
                        )
                    )
                )
            stack.pop_all()

    # -- input: convert and post, nothing else --------------------------

    def start(self, post: Callable[[InputEvent], None]) -> None:
        """Deliver input events to ``post`` from now on (thread-safe ``post``)."""
        self._post = post

    def _on_key(self, key: str) -> None:
        post = self._post
        if post is not None and key in KEYS:
            post(KeyPressed(key))

    def _on_door(self, is_open: bool) -> None:
        post = self._post
        if post is not None:
            post(DoorChanged(is_open))

    def _on_exit(self) -> None:
        post = self._post
        if post is not None:
            post(ExitPressed())

    def _activity(self, text: str) -> None:
        hook = self.on_activity
        if hook is not None:
            hook(text)

    def door_is_open(self) -> bool:
        return self.door.is_open

    # -- shutdown -----------------------------------------------------------

    def close(self) -> None:
        """Release the relay first, then free everything (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._post = None
        try:
            self.lock.release()
        except Exception:
            log.exception("releasing the lock relay failed")
        parts: list[tuple[str, Callable[[], None]]] = []
        if self.keypad is not None:
            parts.append(("keypad", self.keypad.close))
        parts += [
            ("door contact", self.door.close),
            ("exit button", self.exit_button.close),
            ("buzzer", self.buzzer.close),
            ("status LED", self.led.close),
            ("lock relay", self.lock.close),
        ]
        for name, close in parts:
            try:
                close()
            except Exception:
                log.exception("closing the %s failed", name)


class SimBoard(Board):
    """The board on gpiozero's MockFactory, with controls that move the pins.

    The door starts closed. Every control changes mock pin levels only; the
    real device code (debounced matrix scan, door polarity, exit button)
    produces the events.
    """

    def __init__(
        self,
        hw: HardwareConfig,
        lock: LockConfig,
        *,
        clock: Clock | None = None,
        pin_factory: Any = None,
        threads: bool = True,
    ) -> None:
        factory = pin_factory if pin_factory is not None else MockFactory()
        if not isinstance(factory, MockFactory):
            raise TypeError("SimBoard needs a gpiozero MockFactory")
        self.factory: Any = factory
        self.matrix: MockMatrix | None = None
        if hw.keypad == "matrix":
            self.matrix = MockMatrix(factory, hw.keypad_rows, hw.keypad_cols)
        super().__init__(hw, lock, clock=clock, pin_factory=factory, threads=threads)
        self._threads = threads
        self.set_door(False)

    @property
    def has_matrix(self) -> bool:
        return self.matrix is not None

    def pin(self, number: int) -> Any:
        """The MockPin of a BCM pin (for tests: ``.state``, ``.drive_low()``)."""
        return self.factory.pin(number)

    # -- keypad -----------------------------------------------------------

    def hold(self, key: str) -> None:
        """Hold a key down on the emulated matrix (until :meth:`release`)."""
        self._matrix().hold_key(key)

    def release(self, key: str) -> None:
        self._matrix().release_key(key)

    def press(self, key: str, *, advance: Callable[[float], None] | None = None) -> None:
        """Press and release a key, held long enough to pass the debounce.

        With the scanning thread running this blocks for about
        6 x debounce. Without it, this scans itself: between steps it calls
        ``advance(dt)`` (e.g. ``FakeClock.advance``, instant and exact) or,
        if not given, sleeps.
        """
        matrix = self._matrix()
        hold_s = 3 * max(self.hw.debounce_s, 0.01)
        matrix.hold_key(key)
        try:
            self._settle(hold_s, advance)
        finally:
            matrix.release_key(key)
        self._settle(hold_s, advance)

    def _settle(self, seconds: float, advance: Callable[[float], None] | None) -> None:
        keypad = self.keypad
        if keypad is None:
            return
        if advance is None and self._threads:
            time.sleep(seconds)
            return
        step = min(0.01, self.hw.debounce_s / 2)
        steps = max(1, round(seconds / step))
        keypad.scan_once()
        for _ in range(steps):
            if advance is not None:
                advance(step)
            else:
                time.sleep(step)
            keypad.scan_once()

    def _matrix(self) -> MockMatrix:
        if self.matrix is None:
            raise ValueError(
                'the simulated board has no matrix keypad ([hardware] keypad = "matrix")'
            )
        return self.matrix

    # -- door, exit button, relay ---------------------------------------------

    def set_door(self, open: bool) -> None:
        pin = self.pin(self.hw.door_pin)
        high = open if self.hw.door_closed_is_low else not open
        if high:
            pin.drive_high()
        else:
            pin.drive_low()

    def press_exit(self) -> None:
        pin = self.pin(self.hw.exit_pin)
        pin.drive_low()
        pin.drive_high()

    def relay_pin_state(self) -> bool:
        """The relay pin's electrical level (True = high)."""
        return bool(self.pin(self.hw.relay_pin).state)

    def relay_active(self) -> bool:
        """True when the relay pin is at its energizing level."""
        return self.relay_pin_state() == self.hw.relay_active_high


def ensure_lgpio_workdir() -> str:
    """Give lgpio a writable working directory through ``LG_WD``.

    lgpio creates its notification FIFOs (``.lgd-nfy*``) in ``$LG_WD``, else
    in the current directory; under systemd that is ``/`` and read-only, and
    every edge callback then fails. Must run before lgpio is imported.
    """
    current = os.environ.get("LG_WD")
    if current:
        return current
    candidates = [
        *os.environ.get("RUNTIME_DIRECTORY", "").split(":"),
        RUN_DIR,
        tempfile.gettempdir(),
    ]
    for path in candidates:
        if path and os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK):
            os.environ["LG_WD"] = path
            return path
    return os.getcwd()


def gpio_pin_factory() -> Any:
    """gpiozero's lgpio pin factory for this machine's GPIO chip.

    Raises HardwareError (with the simulator hint) when there is no GPIO
    chip, lgpio is missing or the chip cannot be opened.
    """
    ensure_lgpio_workdir()
    if not glob.glob("/dev/gpiochip*"):
        raise HardwareError(NO_GPIO_MESSAGE)
    try:
        from gpiozero.pins.lgpio import LGPIOFactory
    except ImportError as exc:
        raise HardwareError(
            "the lgpio library is not installed (pip install 'pickup-kiosk[gpio]' or "
            f"apt install python3-lgpio); or {SIM_HINT}"
        ) from exc
    try:
        return LGPIOFactory()
    except Exception as exc:
        raise HardwareError(
            f"cannot open the GPIO chip ({exc}); is the kiosk user in the gpio group? Or {SIM_HINT}"
        ) from exc


def open_board(
    hw: HardwareConfig,
    lock: LockConfig,
    *,
    clock: Clock | None = None,
    pin_factory: Any = None,
    threads: bool = True,
) -> Board:
    """The board ``hw.board`` names; raises HardwareError if GPIO is unusable."""
    if hw.board == "sim":
        log.info("simulated board (gpiozero mock pins)")
        return SimBoard(hw, lock, clock=clock, pin_factory=pin_factory, threads=threads)
    factory = pin_factory if pin_factory is not None else gpio_pin_factory()
    try:
        return Board(hw, lock, clock=clock, pin_factory=factory, threads=threads)
    except HardwareError:
        raise
    except Exception as exc:
        raise HardwareError(f"cannot set up the GPIO devices: {exc}") from exc


def relock(hw: HardwareConfig, *, pin_factory: Any = None) -> None:
    """Drive the relay pin to its inactive level and let it go (``kiosk relock``).

    For systemd's ExecStopPost after the daemon stopped or was killed. After
    the pin is let go it floats; the pull-down (pull-up for an active-low
    module) on the relay input keeps the door locked (docs/wiring.md).
    On the simulated board this does nothing. Raises HardwareError.
    """
    if hw.board == "sim":
        log.info("relock: simulated board, nothing to do")
        return
    factory = pin_factory if pin_factory is not None else gpio_pin_factory()
    try:
        relay = DigitalOutputDevice(
            hw.relay_pin,
            active_high=hw.relay_active_high,
            initial_value=False,
            pin_factory=factory,
        )
        try:
            relay.off()
        finally:
            relay.close()
    except HardwareError:
        raise
    except Exception as exc:
        raise HardwareError(f"relock: cannot drive GPIO{hw.relay_pin}: {exc}") from exc
    finally:
        if pin_factory is None:
            factory.close()
    log.info("relock: relay on GPIO%d driven inactive and released", hw.relay_pin)
