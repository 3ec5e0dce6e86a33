"""A 3x4 or 4x4 matrix keypad scanned through gpiozero, and its mock twin.

Wiring (docs/wiring.md): rows are outputs, columns are inputs with pull-ups.
A selected row is driven low; a pressed key connects its row to its column,
so the column reads low while its row is selected.

Scanning, cheap when idle and exact when typing:

- Idle, every row is selected (low). Any press pulls a column low; the
  column's edge wakes the scanning thread. As a fallback for a missed edge
  the thread also looks every ``idle_interval_s`` (4 pin reads, nothing else).
- While a key is down or settling, the thread scans every
  ``scan_interval_s``: each row alone is selected in turn and the columns read.
- Per key: a press is reported once, after the key has read pressed without
  interruption for ``debounce_s``; it is not reported again until it has
  read released without interruption for ``debounce_s``. Contact bounce
  shorter than ``debounce_s`` therefore neither doubles nor drops a key, and
  two overlapping presses (rollover) are both reported, in press order.

Keys: rows ``123 / 456 / 789 / *0#``; a fourth column adds ``A B C D``, which
are emitted as 'A'..'D' (the door daemon ignores them).

``on_key`` is called on the scanning thread (or the caller of
:meth:`MatrixKeypad.scan_once`) with no lock held. Typed keys are never logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any, Final

from gpiozero import DigitalInputDevice, DigitalOutputDevice
from gpiozero.pins.mock import MockPin

from kiosk.clock import Clock

log = logging.getLogger(__name__)

LAYOUT_3X4: Final = ("123", "456", "789", "*0#")
LAYOUT_4X4: Final = ("123A", "456B", "789C", "*0#D")

#: Comparing float times: a microsecond of slack so that a key held for
#: exactly ``debounce_s`` on a fake clock counts as held for it.
_EPS: Final = 1e-6


def layout_for(n_rows: int, n_cols: int) -> tuple[str, ...]:
    """The key labels by row for a 4-row keypad with 3 or 4 columns."""
    if n_rows != 4 or n_cols not in (3, 4):
        raise ValueError(f"a matrix keypad has 4 rows and 3 or 4 columns, not {n_rows}x{n_cols}")
    return LAYOUT_3X4 if n_cols == 3 else LAYOUT_4X4


def key_position(layout: Sequence[str], key: str) -> tuple[int, int]:
    """(row, column) of ``key``; ValueError if the keypad has no such key."""
    for r, row in enumerate(layout):
        c = row.find(key) if len(key) == 1 else -1
        if c >= 0:
            return r, c
    raise ValueError("no such key on this keypad")


class MatrixKeypad:
    """A debounced, scanned matrix keypad (see the module doc)."""

    def __init__(
        self,
        rows: tuple[int, ...],
        cols: tuple[int, ...],
        on_key: Callable[[str], None],
        *,
        pin_factory: Any = None,
        clock: Clock,
        debounce_s: float,
        scan_interval_s: float = 0.01,
        idle_interval_s: float = 0.1,
        thread: bool = True,
    ) -> None:
        self._layout = layout_for(len(rows), len(cols))
        if not debounce_s > 0 or not scan_interval_s > 0 or not idle_interval_s > 0:
            raise ValueError("debounce_s, scan_interval_s and idle_interval_s must be positive")
        self.on_key = on_key
        self._clock = clock
        self._debounce_s = float(debounce_s)
        self._scan_interval_s = float(scan_interval_s)
        self._idle_interval_s = float(idle_interval_s)
        self._mutex = threading.Lock()
        self._closed = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        now = clock.monotonic()
        self._positions = [(r, c) for r in range(len(rows)) for c in range(len(cols))]
        self._raw = dict.fromkeys(self._positions, False)
        self._since = dict.fromkeys(self._positions, now)
        self._down: set[tuple[int, int]] = set()
        with ExitStack() as stack:
            # Rows: "on" = selected = driven low. All selected while idle.
            self._rows: list[Any] = []
            for pin in rows:
                dev = DigitalOutputDevice(
                    pin, active_high=False, initial_value=True, pin_factory=pin_factory
                )
                stack.callback(dev.close)
                self._rows.append(dev)
            # Columns: pulled up, "active" = low = a key joins a selected row.
            self._cols: list[Any] = []
            for pin in cols:
                col = DigitalInputDevice(pin, pull_up=True, pin_factory=pin_factory)
                stack.callback(col.close)
                col.when_activated = self._on_edge
                self._cols.append(col)
            stack.pop_all()
        self._thread: threading.Thread | None = None
        if thread:
            self._thread = threading.Thread(target=self._run, name="keypad-scan", daemon=True)
            self._thread.start()

    @property
    def layout(self) -> tuple[str, ...]:
        return self._layout

    @property
    def busy(self) -> bool:
        """True while some key is down or settling (scanning at full rate)."""
        with self._mutex:
            return self._busy()

    def _busy(self) -> bool:
        return bool(self._down) or any(self._raw.values())

    def _on_edge(self) -> None:
        # gpiozero's callback thread: just wake the scanner.
        self._wake.set()

    def _read_matrix(self) -> set[tuple[int, int]]:
        pressed: set[tuple[int, int]] = set()
        for row in self._rows:
            row.off()
        try:
            for r, row in enumerate(self._rows):
                row.on()
                for c, col in enumerate(self._cols):
                    if col.is_active:
                        pressed.add((r, c))
                row.off()
        finally:
            for row in self._rows:
                row.on()
        return pressed

    def scan_once(self) -> None:
        """One scanning step at the injected clock's time; reports settled keys."""
        reported: list[tuple[float, str]] = []
        with self._mutex:
            if self._closed:
                return
            if not self._busy() and not any(col.is_active for col in self._cols):
                return  # idle: every row selected and no column pulled low
            now = self._clock.monotonic()
            pressed = self._read_matrix()
            for pos in self._positions:
                raw = pos in pressed
                if raw != self._raw[pos]:
                    self._raw[pos] = raw
                    self._since[pos] = now
                settled = now - self._since[pos] >= self._debounce_s - _EPS
                if not settled:
                    continue
                if raw and pos not in self._down:
                    self._down.add(pos)
                    r, c = pos
                    reported.append((self._since[pos], self._layout[r][c]))
                elif not raw and pos in self._down:
                    self._down.discard(pos)
        reported.sort(key=lambda item: item[0])
        for _, key in reported:
            self.on_key(key)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.scan_once()
            except Exception:
                # Never log the key; a broken callback must not kill the keypad.
                log.exception("keypad scan step failed")
                self._stop.wait(1.0)
                continue
            if self.busy:
                self._stop.wait(self._scan_interval_s)
            else:
                self._wake.wait(self._idle_interval_s)

    def close(self) -> None:
        """Stop scanning and free the pins (idempotent)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            for dev in (*self._cols, *self._rows):
                try:
                    dev.close()
                except Exception:
                    log.exception("closing a keypad pin failed")


class _MatrixRowPin(MockPin):  # type: ignore[misc]
    """A mock row pin that tells its :class:`MockMatrix` when its level changes."""

    def __init__(self, factory: Any, info: Any, matrix: MockMatrix | None = None) -> None:
        super().__init__(factory, info)
        self.matrix = matrix

    def _change_state(self, value: bool) -> bool:
        changed = bool(super()._change_state(value))
        if changed and self.matrix is not None:
            self.matrix.refresh()
        return changed


class MockMatrix:
    """The keypad's wires and switches, emulated on a MockFactory.

    Create it before the :class:`MatrixKeypad` (it claims the row pins with a
    pin class that reports level changes). While key (r, c) is held, column
    c reads low when row r is an output driven low, like a real switch
    between a driven row and a pulled-up column; otherwise the pull-up wins.
    """

    def __init__(self, factory: Any, rows: tuple[int, ...], cols: tuple[int, ...]) -> None:
        self._layout = layout_for(len(rows), len(cols))
        self._lock = threading.RLock()
        self._held: set[tuple[int, int]] = set()
        self._row_pins: list[Any] = []
        for pin in rows:
            row_pin = factory.pin(pin, pin_class=_MatrixRowPin, matrix=self)
            if not isinstance(row_pin, _MatrixRowPin):
                raise ValueError(f"GPIO{pin} was claimed before the mock keypad matrix")
            row_pin.matrix = self
            self._row_pins.append(row_pin)
        self._col_pins: list[Any] = [factory.pin(pin) for pin in cols]

    @property
    def held(self) -> frozenset[tuple[int, int]]:
        with self._lock:
            return frozenset(self._held)

    def hold(self, row: int, col: int) -> None:
        with self._lock:
            self._held.add((row, col))
            self.refresh()

    def release(self, row: int, col: int) -> None:
        with self._lock:
            self._held.discard((row, col))
            self.refresh()

    def hold_key(self, key: str) -> None:
        self.hold(*key_position(self._layout, key))

    def release_key(self, key: str) -> None:
        self.release(*key_position(self._layout, key))

    def release_all(self) -> None:
        with self._lock:
            self._held.clear()
            self.refresh()

    def refresh(self) -> None:
        """Recompute every column's level from the held keys and row levels."""
        with self._lock:
            for c, col_pin in enumerate(self._col_pins):
                if col_pin.function != "input":
                    continue
                low = any(
                    self._row_pins[r].function == "output" and not self._row_pins[r].state
                    for (r, cc) in self._held
                    if cc == c
                )
                if low:
                    col_pin.drive_low()
                elif col_pin.pull == "up":
                    col_pin.drive_high()
