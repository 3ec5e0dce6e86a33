"""The matrix keypad's real scanning code on an emulated matrix of mock pins."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from gpiozero import DigitalOutputDevice
from gpiozero.pins.mock import MockFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardware.keypad import LAYOUT_3X4, MatrixKeypad, MockMatrix, key_position
from kiosk.clock import FakeClock, SystemClock

ROWS = (5, 6, 13, 19)
COLS3 = (12, 16, 20)
COLS4 = (12, 16, 20, 21)
DEBOUNCE = 0.02
SCAN = 0.01


class Rig:
    """A keypad on a MockFactory with a fake clock, scanned by hand."""

    def __init__(self, cols: tuple[int, ...] = COLS3) -> None:
        self.factory = MockFactory()
        self.clock = FakeClock()
        self.keys: list[str] = []
        self.matrix = MockMatrix(self.factory, ROWS, cols)
        self.keypad = MatrixKeypad(
            ROWS,
            cols,
            self.keys.append,
            pin_factory=self.factory,
            clock=self.clock,
            debounce_s=DEBOUNCE,
            scan_interval_s=SCAN,
            thread=False,
        )

    def run(self, seconds: float, step: float = SCAN) -> None:
        """Let ``seconds`` pass, scanning every ``step``."""
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            self.keypad.scan_once()

    def tap(self, key: str, hold: float = 0.05, gap: float = 0.05) -> None:
        self.matrix.hold_key(key)
        self.keypad.scan_once()
        self.run(hold)
        self.matrix.release_key(key)
        self.keypad.scan_once()
        self.run(gap)

    def close(self) -> None:
        self.keypad.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.close()


def test_mock_matrix_connects_a_held_key_to_its_selected_row() -> None:
    factory = MockFactory()
    matrix = MockMatrix(factory, ROWS, COLS3)
    rows = [
        DigitalOutputDevice(p, active_high=False, initial_value=False, pin_factory=factory)
        for p in ROWS
    ]
    col = factory.pin(COLS3[2])
    col.input_with_pull("up")
    matrix.hold(1, 2)  # key '6'
    assert col.state is True  # no row selected: the pull-up wins
    rows[0].on()
    assert col.state is True  # row 0 is not joined to column 2 by key '6'
    rows[0].off()
    rows[1].on()
    assert col.state is False
    matrix.release(1, 2)
    assert col.state is True


def test_every_key_of_a_3x4_keypad_once(rig: Rig) -> None:
    for key in "123456789*0#":
        rig.tap(key)
    assert rig.keys == list("123456789*0#")


def test_4x4_keypad_emits_letters() -> None:
    r = Rig(COLS4)
    try:
        for key in "1A5B9C#D":
            r.tap(key)
        assert r.keys == list("1A5B9C#D")
    finally:
        r.close()


def test_key_reported_after_debounce_and_only_once_while_held(rig: Rig) -> None:
    rig.matrix.hold_key("7")
    rig.keypad.scan_once()  # t0: the press is first seen
    rig.clock.advance(DEBOUNCE / 2)
    rig.keypad.scan_once()
    assert rig.keys == [], "reported before it was stable for debounce_s"
    rig.clock.advance(DEBOUNCE / 2)
    rig.keypad.scan_once()
    assert rig.keys == ["7"]
    rig.run(2.0)  # held for two seconds: still one key
    assert rig.keys == ["7"]
    rig.matrix.release_key("7")
    rig.run(0.05)
    rig.tap("7")
    assert rig.keys == ["7", "7"]


def test_a_blip_shorter_than_debounce_is_not_a_key(rig: Rig) -> None:
    rig.matrix.hold_key("5")
    rig.keypad.scan_once()
    rig.run(0.01)
    rig.matrix.release_key("5")
    rig.run(0.1)
    assert rig.keys == []


def test_bouncy_press_and_release_give_one_key(rig: Rig) -> None:
    # Contact bounce: closed/open every 3 ms for 15 ms, then firmly closed.
    for _ in range(3):
        rig.matrix.hold_key("8")
        rig.keypad.scan_once()
        rig.clock.advance(0.003)
        rig.matrix.release_key("8")
        rig.keypad.scan_once()
        rig.clock.advance(0.003)
    assert rig.keys == []
    rig.matrix.hold_key("8")
    rig.run(0.06, step=0.003)
    assert rig.keys == ["8"]
    # The release bounces too.
    for _ in range(3):
        rig.matrix.release_key("8")
        rig.keypad.scan_once()
        rig.clock.advance(0.003)
        rig.matrix.hold_key("8")
        rig.keypad.scan_once()
        rig.clock.advance(0.003)
    rig.matrix.release_key("8")
    rig.run(0.06, step=0.003)
    assert rig.keys == ["8"]


def test_fast_typing_ten_keys_a_second(rig: Rig) -> None:
    code = "042715938#"
    for key in code:
        rig.tap(key, hold=0.05, gap=0.05)
    assert "".join(rig.keys) == code


def test_rollover_reports_both_in_press_order(rig: Rig) -> None:
    rig.matrix.hold_key("1")
    rig.run(0.03)
    rig.matrix.hold_key("9")  # pressed before '1' is let go
    rig.run(0.03)
    rig.matrix.release_key("1")
    rig.run(0.03)
    rig.matrix.release_key("9")
    rig.run(0.05)
    assert rig.keys == ["1", "9"]


def test_keys_settling_in_the_same_scan_come_in_press_order(rig: Rig) -> None:
    for key in "591":  # not the keypad's row/column order
        rig.matrix.hold_key(key)
        rig.keypad.scan_once()
        rig.clock.advance(0.005)
    rig.clock.advance(0.1)  # a late scan sees all three settled at once
    rig.keypad.scan_once()
    assert rig.keys == ["5", "9", "1"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    presses=st.lists(
        st.tuples(
            st.sampled_from("0123456789*#"),
            st.integers(min_value=4, max_value=15),  # hold, in scan steps (>= debounce + 2)
            st.integers(min_value=4, max_value=15),  # gap, in scan steps
            st.integers(min_value=0, max_value=3),  # bounces before the firm press
        ),
        min_size=1,
        max_size=12,
    )
)
def test_any_human_sequence_is_read_exactly(presses: list[tuple[str, int, int, int]]) -> None:
    r = Rig()
    try:
        for key, hold, gap, bounces in presses:
            for _ in range(bounces):
                r.matrix.hold_key(key)
                r.keypad.scan_once()
                r.clock.advance(0.002)
                r.matrix.release_key(key)
                r.keypad.scan_once()
                r.clock.advance(0.002)
            r.matrix.hold_key(key)
            r.run(hold * SCAN)
            r.matrix.release_key(key)
            r.run(gap * SCAN)
        assert r.keys == [p[0] for p in presses]
    finally:
        r.close()


def test_idle_scan_does_not_drive_the_rows(rig: Rig) -> None:
    row_pins = [rig.factory.pin(p) for p in ROWS]
    before = [len(p.states) for p in row_pins]
    rig.run(1.0)  # 100 idle scan steps
    assert [len(p.states) for p in row_pins] == before
    rig.tap("3")  # a press does scan the rows
    assert [len(p.states) for p in row_pins] != before
    assert rig.keys == ["3"]
    assert all(p.state is False for p in row_pins), "idle rows must all be selected (low)"


def test_keys_are_never_logged(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for key in "90210#":
        rig.tap(key)
    assert rig.keys == list("90210#")
    assert [r for r in caplog.records if r.name.startswith("hardware")] == []


def test_key_position_does_not_echo_unknown_keys() -> None:
    assert key_position(LAYOUT_3X4, "0") == (3, 1)
    with pytest.raises(ValueError) as info:
        key_position(LAYOUT_3X4, "A")
    assert "A" not in str(info.value)


def test_scanning_thread_wakes_on_a_column_edge() -> None:
    factory = MockFactory()
    matrix = MockMatrix(factory, ROWS, COLS3)
    keys: list[str] = []
    # A 30 s idle fallback: only the column edge can make this key show up soon.
    keypad = MatrixKeypad(
        ROWS,
        COLS3,
        keys.append,
        pin_factory=factory,
        clock=SystemClock(),
        debounce_s=DEBOUNCE,
        idle_interval_s=30.0,
    )
    try:
        time.sleep(0.05)  # let the thread reach its idle wait
        matrix.hold_key("4")
        end = time.monotonic() + 5.0
        while not keys and time.monotonic() < end:
            time.sleep(0.005)
        matrix.release_key("4")
        assert keys == ["4"]
    finally:
        keypad.close()


def test_close_frees_the_pins() -> None:
    factory = MockFactory()
    keypad = MatrixKeypad(
        ROWS,
        COLS3,
        lambda k: None,
        pin_factory=factory,
        clock=FakeClock(),
        debounce_s=DEBOUNCE,
        thread=False,
    )
    keypad.close()
    keypad.close()
    again = MatrixKeypad(
        ROWS,
        COLS3,
        lambda k: None,
        pin_factory=factory,
        clock=FakeClock(),
        debounce_s=DEBOUNCE,
        thread=False,
    )
    again.close()
