"""The lock relay on gpiozero mock pins: bounded pulses, leases, cap, guard."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from hardware.devices import HardwareError, Lock, max_energized_s
from kiosk.clock import FakeClock, SystemClock
from kiosk.config import HardwareConfig, LockConfig

RELAY = 17


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` on real time; generous bound, never a tight assertion."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def lock(factory: MockFactory, clock: FakeClock) -> Iterator[Lock]:
    lk = Lock(RELAY, clock=clock, max_s=6.0, pin_factory=factory, guard=False)
    yield lk
    lk.close()


def test_relay_is_off_from_the_first_instant(factory: MockFactory, clock: FakeClock) -> None:
    lk = Lock(RELAY, clock=clock, pin_factory=factory, guard=False)
    pin = factory.pin(RELAY)
    assert pin.function == "output"
    assert [s.state for s in pin.states] == [False]  # never went high
    assert not lk.energized
    lk.close()


def test_active_low_relay_idles_high(factory: MockFactory, clock: FakeClock) -> None:
    lk = Lock(RELAY, clock=clock, active_high=False, pin_factory=factory, guard=False)
    pin = factory.pin(RELAY)
    assert pin.state is True and not lk.energized
    lk.energize(3)
    assert pin.state is False and lk.energized
    clock.advance(3)
    lk.poll()
    assert pin.state is True
    lk.close()


def test_pulse_lasts_exactly_its_duration(
    lock: Lock, factory: MockFactory, clock: FakeClock
) -> None:
    pin = factory.pin(RELAY)
    lock.energize(5)
    assert pin.state and lock.energized
    clock.advance(4.5)
    lock.poll()
    assert pin.state, "released before the deadline"
    clock.advance(0.5)
    lock.poll()
    assert not pin.state, "still energized at the deadline"
    assert [s.state for s in pin.states] == [False, True, False]


def test_energize_again_extends_the_deadline(
    lock: Lock, factory: MockFactory, clock: FakeClock
) -> None:
    pin = factory.pin(RELAY)
    lock.energize(5)
    clock.advance(3)
    lock.energize(5)  # deadline now 8 s after the first call
    clock.advance(4.5)
    lock.poll()
    assert pin.state
    clock.advance(0.5)
    lock.poll()
    assert not pin.state
    # One continuous energization: the relay did not drop in between.
    assert [s.state for s in pin.states] == [False, True, False]


def test_a_shorter_renewal_never_shortens(
    lock: Lock, factory: MockFactory, clock: FakeClock
) -> None:
    lock.energize(5)
    clock.advance(1)
    lock.energize(1)
    clock.advance(3.5)
    lock.poll()
    assert lock.energized
    clock.advance(0.5)
    lock.poll()
    assert not lock.energized


def test_lease_holds_while_renewed_then_lapses(
    lock: Lock, factory: MockFactory, clock: FakeClock
) -> None:
    for _ in range(20):  # day mode: renewed every 2 s for 40 s
        lock.energize(3)
        clock.advance(2)
        lock.poll()
        assert lock.energized
    clock.advance(1)  # renewals stop: 3 s after the last one it locks
    lock.poll()
    assert not lock.energized


def test_pulse_is_capped(lock: Lock, factory: MockFactory, clock: FakeClock) -> None:
    lock.energize(30)
    clock.advance(5.5)
    lock.poll()
    assert lock.energized
    clock.advance(0.5)  # max_s = 6
    lock.poll()
    assert not lock.energized


def test_cap_comes_from_config() -> None:
    assert max_energized_s(LockConfig(release_s=5, max_energized_s=0)) == 6
    assert max_energized_s(LockConfig(release_s=5, max_energized_s=10)) == 10
    lk = Lock.from_config(
        HardwareConfig(),
        LockConfig(release_s=4, max_energized_s=0),
        clock=FakeClock(),
        pin_factory=MockFactory(),
        guard=False,
    )
    assert lk.max_s == 5
    lk.close()


def test_release_locks_at_once(lock: Lock, factory: MockFactory) -> None:
    lock.energize(5)
    lock.release()
    assert not factory.pin(RELAY).state
    assert lock.deadline is None


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_bad_pulse_is_refused(lock: Lock, bad: float) -> None:
    with pytest.raises(ValueError):
        lock.energize(bad)
    assert not lock.energized


def test_close_releases_and_is_idempotent(lock: Lock, factory: MockFactory) -> None:
    lock.energize(5)
    lock.close()
    lock.close()
    assert not factory.pin(RELAY).state
    assert not lock.energized
    with pytest.raises(HardwareError):
        lock.energize(1)


def test_activity_hook_reports_transitions(factory: MockFactory, clock: FakeClock) -> None:
    seen: list[str] = []
    lk = Lock(RELAY, clock=clock, pin_factory=factory, guard=False, notify=seen.append)
    lk.energize(3)
    lk.energize(3)  # extension: no second "on"
    clock.advance(3)
    lk.poll()
    lk.poll()
    assert seen == ["relay on", "relay off"]
    lk.close()


def test_guard_releases_while_main_loop_is_blocked(factory: MockFactory) -> None:
    lk = Lock(RELAY, clock=SystemClock(), max_s=6.0, pin_factory=factory, guard=True)
    pin = factory.pin(RELAY)
    try:
        lk.energize(0.2)
        assert pin.state
        # The "main loop" is stuck: nobody calls poll() or release().
        assert wait_until(lambda: not pin.state, timeout=5.0), "guard did not release"
    finally:
        lk.close()


def test_guard_releases_on_fake_time_too(factory: MockFactory, clock: FakeClock) -> None:
    lk = Lock(RELAY, clock=clock, pin_factory=factory, guard=True)
    pin = factory.pin(RELAY)
    try:
        lk.energize(3)
        clock.advance(3)  # deadline reached; only the guard thread can notice
        assert wait_until(lambda: not pin.state, timeout=5.0)
    finally:
        lk.close()
