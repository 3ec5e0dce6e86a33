"""Door contact, exit button, buzzer and status LED on gpiozero mock pins."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from gpiozero.pins.mock import MockFactory

from hardware.devices import (
    BUZZER_PATTERNS,
    LED_PATTERNS,
    Buzzer,
    DoorContact,
    ExitButton,
    StatusLed,
)

DOOR, EXIT, BUZZER, LED = 27, 22, 23, 24


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def test_door_closed_pulls_low() -> None:
    factory = MockFactory()
    seen: list[bool] = []
    door = DoorContact(DOOR, closed_is_low=True, pin_factory=factory, on_change=seen.append)
    pin = factory.pin(DOOR)
    assert pin.pull == "up"
    assert door.is_open  # pulled up, nothing closing the switch: open (or a cut wire)
    pin.drive_low()
    assert not door.is_open
    pin.drive_high()
    assert door.is_open
    pin.drive_low()
    assert seen == [False, True, False]
    door.close()


def test_door_closed_is_high() -> None:
    factory = MockFactory()
    seen: list[bool] = []
    door = DoorContact(DOOR, closed_is_low=False, pin_factory=factory, on_change=seen.append)
    pin = factory.pin(DOOR)
    assert not door.is_open
    pin.drive_low()
    assert door.is_open
    pin.drive_high()
    assert not door.is_open
    assert seen == [True, False]
    door.close()


def test_door_reports_changes_only() -> None:
    factory = MockFactory()
    seen: list[bool] = []
    door = DoorContact(DOOR, pin_factory=factory, on_change=seen.append)
    pin = factory.pin(DOOR)
    pin.drive_low()
    pin.drive_low()
    pin.drive_high()
    pin.drive_high()
    assert seen == [False, True]
    door.close()


def test_door_contact_is_debounced_by_the_pin() -> None:
    factory = MockFactory()
    door = DoorContact(DOOR, debounce_s=0.05, pin_factory=factory)
    assert factory.pin(DOOR).bounce == pytest.approx(0.05)
    door.close()


def test_exit_button_calls_back_once_per_press() -> None:
    factory = MockFactory()
    presses: list[None] = []
    button = ExitButton(EXIT, pin_factory=factory, on_press=lambda: presses.append(None))
    pin = factory.pin(EXIT)
    assert pin.pull == "up" and not button.is_pressed
    pin.drive_low()
    assert button.is_pressed
    pin.drive_high()
    assert len(presses) == 1
    pin.drive_low()
    pin.drive_high()
    assert len(presses) == 2
    button.close()


@pytest.mark.parametrize(
    ("pattern", "states"),
    [
        ("key", [False, True, False]),
        ("accepted", [False, True, False, True, False]),
        ("refused", [False, True, False]),
    ],
)
def test_buzzer_patterns(pattern: str, states: list[bool]) -> None:
    factory = MockFactory()
    seen: list[str] = []
    buzzer = Buzzer(BUZZER, pin_factory=factory, notify=seen.append)
    buzzer.play(pattern, wait=True)
    assert [s.state for s in factory.pin(BUZZER).states] == states
    assert seen == [f"buzzer {pattern}"]
    buzzer.close()


def test_buzzer_patterns_are_distinct() -> None:
    assert set(BUZZER_PATTERNS) == {"key", "accepted", "refused", "alarm"}
    assert len(set(BUZZER_PATTERNS.values())) == len(BUZZER_PATTERNS)


def test_buzzer_alarm_repeats_until_silenced_without_blocking() -> None:
    factory = MockFactory()
    buzzer = Buzzer(BUZZER, pin_factory=factory)
    pin = factory.pin(BUZZER)
    buzzer.play("alarm")  # returns at once
    assert wait_until(lambda: [s.state for s in pin.states][:4] == [False, True, False, True])
    buzzer.silence()
    assert not pin.state and not buzzer.is_on
    buzzer.close()


def test_buzzer_refuses_unknown_pattern_and_waiting_forever() -> None:
    buzzer = Buzzer(BUZZER, pin_factory=MockFactory())
    with pytest.raises(ValueError):
        buzzer.play("fanfare")
    with pytest.raises(ValueError):
        buzzer.play("alarm", wait=True)
    buzzer.close()


def test_led_states() -> None:
    factory = MockFactory()
    seen: list[str] = []
    led = StatusLed(LED, pin_factory=factory, notify=seen.append)
    pin = factory.pin(LED)
    assert not pin.state
    led.set("idle")
    assert pin.state and led.is_lit  # steady
    led.set("idle")  # no-op: not reported again
    led.set("alarm")
    pin.clear_states()
    assert wait_until(lambda: len(pin.states) >= 4), "alarm does not blink"
    led.set("idle")
    assert pin.state
    assert led.state == "idle"
    assert seen == ["led idle", "led alarm", "led idle"]
    with pytest.raises(ValueError):
        led.set("disco")
    led.close()


def test_led_patterns_are_distinct() -> None:
    assert set(LED_PATTERNS) == {"idle", "unlocked", "alarm", "offline", "fault"}
    assert len(set(LED_PATTERNS.values())) == len(LED_PATTERNS)
