"""The board on mock pins: the whole pickup path, shutdown, gpio selection, relock."""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero import DigitalOutputDevice
from gpiozero.pins.mock import MockFactory

from hardware.board import Board, SimBoard, ensure_lgpio_workdir, open_board, relock
from hardware.devices import HardwareError
from kiosk.clock import FakeClock, SystemClock
from kiosk.config import HardwareConfig, LockConfig
from kiosk.errors import KioskError
from kiosk.inputs import DoorChanged, ExitPressed, InputEvent, KeyPressed

SIM = HardwareConfig(board="sim")
LOCK = LockConfig(release_s=5)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def board(clock: FakeClock) -> Iterator[SimBoard]:
    b = open_board(SIM, LOCK, clock=clock, threads=False)
    assert isinstance(b, SimBoard)
    yield b
    b.close()


def started(board: Board) -> list[InputEvent]:
    events: list[InputEvent] = []
    board.start(events.append)
    return events


def test_pickup_code_arrives_key_by_key(board: SimBoard, clock: FakeClock) -> None:
    events = started(board)
    for key in "042815307#":
        board.press(key, advance=clock.advance)
    assert events == [KeyPressed(k) for k in "042815307#"]


def test_fast_typing_and_bounce_through_the_board(board: SimBoard, clock: FakeClock) -> None:
    events = started(board)
    keypad = board.keypad
    assert keypad is not None

    def run(seconds: float) -> None:
        for _ in range(round(seconds / 0.005)):
            clock.advance(0.005)
            keypad.scan_once()

    for key in "73*1#":
        for _ in range(2):  # bounce
            board.hold(key)
            keypad.scan_once()
            clock.advance(0.004)
            board.release(key)
            keypad.scan_once()
            clock.advance(0.004)
        board.hold(key)
        run(0.045)
        board.release(key)
        run(0.04)
    assert events == [KeyPressed(k) for k in "73*1#"]


def test_letters_of_a_4x4_keypad_are_not_posted(clock: FakeClock) -> None:
    hw = HardwareConfig(board="sim", keypad_cols=(12, 16, 20, 21))
    board = SimBoard(hw, LOCK, clock=clock, threads=False)
    try:
        events = started(board)
        for key in "1A2D#":
            board.press(key, advance=clock.advance)
        assert events == [KeyPressed("1"), KeyPressed("2"), KeyPressed("#")]
    finally:
        board.close()


@pytest.mark.parametrize("closed_is_low", [True, False])
def test_door_events_both_polarities(closed_is_low: bool, clock: FakeClock) -> None:
    hw = HardwareConfig(board="sim", door_closed_is_low=closed_is_low)
    board = SimBoard(hw, LOCK, clock=clock, threads=False)
    try:
        events = started(board)
        assert not board.door_is_open()  # the simulator starts with the door shut
        pin = board.pin(hw.door_pin)
        board.set_door(True)
        assert board.door_is_open()
        assert pin.state is closed_is_low  # open = high when closed pulls low
        board.set_door(False)
        assert events == [DoorChanged(True), DoorChanged(False)]
    finally:
        board.close()


def test_exit_button(board: SimBoard) -> None:
    events = started(board)
    board.press_exit()
    assert events == [ExitPressed()]


def test_nothing_is_posted_before_start(board: SimBoard, clock: FakeClock) -> None:
    board.press("5", advance=clock.advance)
    board.set_door(True)
    board.press_exit()
    events = started(board)
    assert events == []
    board.set_door(False)
    assert events == [DoorChanged(False)]


def test_relay_pulse_through_the_board(board: SimBoard, clock: FakeClock) -> None:
    board.lock.energize(LOCK.release_s)
    assert board.relay_active() and board.relay_pin_state()
    clock.advance(LOCK.release_s)
    board.lock.poll()
    assert not board.relay_active()


@pytest.mark.parametrize("active_high", [True, False])
def test_close_leaves_the_relay_inactive(active_high: bool, clock: FakeClock) -> None:
    hw = HardwareConfig(board="sim", relay_active_high=active_high)
    board = SimBoard(hw, LOCK, clock=clock, threads=True)
    board.lock.energize(5)
    assert board.relay_pin_state() is active_high
    board.close()
    assert board.relay_pin_state() is (not active_high)
    board.close()  # idempotent
    assert board.relay_pin_state() is (not active_high)


def test_close_releases_relay_before_anything_else(board: SimBoard) -> None:
    led_pin = board.pin(board.hw.led_pin)
    at_release: list[str] = []

    def hook(text: str) -> None:
        if text == "relay off":  # the LED (closed later) still holds its pin
            at_release.append(led_pin.function)

    board.on_activity = hook
    board.lock.energize(5)
    board.led.set("idle")
    board.close()
    assert at_release == ["output"]
    assert led_pin.function == "input"  # and it was closed afterwards


def test_activity_hook(board: SimBoard, clock: FakeClock) -> None:
    seen: list[str] = []
    board.on_activity = seen.append
    board.lock.energize(3)
    board.buzzer.play("accepted")
    board.led.set("alarm")
    clock.advance(3)
    board.lock.poll()
    assert seen == ["relay on", "buzzer accepted", "led alarm", "relay off"]


def test_press_with_the_real_scanning_thread() -> None:
    board = SimBoard(SIM, LOCK, clock=SystemClock(), threads=True)
    try:
        events = started(board)
        board.press("9")
        end = time.monotonic() + 5.0
        while not events and time.monotonic() < end:
            time.sleep(0.005)
        assert events == [KeyPressed("9")]
    finally:
        board.close()


def test_keyboard_keypad_board_has_no_matrix(clock: FakeClock) -> None:
    board = SimBoard(HardwareConfig(board="sim", keypad="keyboard"), LOCK, clock=clock)
    try:
        assert board.keypad is None and not board.has_matrix
        with pytest.raises(ValueError):
            board.press("1")
    finally:
        board.close()


def test_gpio_board_on_an_injected_factory_is_a_plain_board(clock: FakeClock) -> None:
    factory = MockFactory()
    board = open_board(
        HardwareConfig(board="gpio"), LOCK, clock=clock, pin_factory=factory, threads=False
    )
    try:
        assert type(board) is Board
        board.lock.energize(1)
        assert factory.pin(17).state
    finally:
        board.close()
    assert not factory.pin(17).state


def test_a_failed_setup_frees_the_pins_it_took(clock: FakeClock) -> None:
    factory = MockFactory()
    clash = HardwareConfig(board="gpio", led_pin=17)  # LED on the relay's pin
    with pytest.raises(HardwareError):
        open_board(clash, LOCK, clock=clock, pin_factory=factory, threads=False)
    # The relay pin was claimed first and must have been let go again.
    DigitalOutputDevice(17, pin_factory=factory).close()


@pytest.mark.skipif(bool(glob.glob("/dev/gpiochip*")), reason="this machine has GPIO")
def test_gpio_without_a_chip_says_use_the_simulator() -> None:
    with pytest.raises(HardwareError) as info:
        open_board(HardwareConfig(board="gpio"), LOCK)
    assert 'board = "sim"' in str(info.value)
    assert "no GPIO chip found" in str(info.value)
    assert isinstance(info.value, KioskError) and isinstance(info.value, OSError)
    with pytest.raises(HardwareError):
        relock(HardwareConfig(board="gpio"))


def test_lgpio_gets_a_writable_workdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LG_WD", raising=False)
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    assert ensure_lgpio_workdir() == str(tmp_path)
    assert os.environ["LG_WD"] == str(tmp_path)
    monkeypatch.setenv("LG_WD", "/somewhere/chosen")
    assert ensure_lgpio_workdir() == "/somewhere/chosen"


@pytest.mark.parametrize("active_high", [True, False])
def test_relock_drives_a_stuck_relay_inactive(active_high: bool) -> None:
    factory = MockFactory()
    hw = HardwareConfig(board="gpio", relay_active_high=active_high)
    # A daemon killed with the relay energized left the line at its active level.
    stuck = factory.pin(hw.relay_pin)
    stuck.output_with_state(active_high)
    stuck.function = "input"  # the process is gone; the line keeps its level
    relock(hw, pin_factory=factory)
    assert stuck.state is (not active_high)
    assert [s.state for s in stuck.states][-1] is (not active_high)


def test_relock_on_the_simulator_is_a_no_op() -> None:
    relock(SIM)
