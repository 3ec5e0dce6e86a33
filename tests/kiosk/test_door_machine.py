import pytest

from kiosk.door import EVENTS, STATES, TRANSITIONS, DoorMachine, Entry, diagram


def machine() -> DoorMachine:
    return DoorMachine(release_s=5, held_open_s=60)


@pytest.mark.parametrize(("key", "row"), list(TRANSITIONS.items()), ids=str)
def test_every_transition(key: tuple[str, str], row: tuple[str, tuple[str, ...]]) -> None:
    state, event = key
    m = machine()
    m.state = state
    assert m.handle(event, 100.0) == row[1]
    assert m.state == row[0]


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, e) for s in STATES for e in EVENTS if (s, e) not in TRANSITIONS],
)
def test_illegal_events_change_nothing(state: str, event: str) -> None:
    m = machine()
    m.state = state
    m.unlock_until, m.open_since, m.collect_order = 7.0, 3.0, "O-1"
    assert m.handle(event, 100.0) is None
    assert (m.state, m.unlock_until, m.open_since, m.collect_order) == (state, 7.0, 3.0, "O-1")
    assert m.history == []


def test_pulse_ends_exactly_after_release_time() -> None:
    m = machine()
    m.handle("unlock", 10.0)
    assert m.tick(14.999) == [] and m.state == "unlocked"
    assert m.tick(15.0) == [("pulse_end", ("release", "record:door_relocked"))]
    assert m.state == "locked"


def test_nobody_entered_clears_the_order_to_collect() -> None:
    m = machine()
    m.handle("unlock", 0.0)
    m.collect_order = "O-1"
    m.tick(5.0)
    assert m.collect_order is None


def test_held_open_alarm_then_close() -> None:
    m = machine()
    m.handle("unlock", 0.0)
    m.handle("door_open", 1.0)
    assert m.tick(60.9) == []
    assert m.tick(61.0) == [("held_timeout", ("record:door_held_open", "alarm"))]
    assert m.handle("door_close", 70.0) == ("record:door_closed", "alarm_off", "collect")
    assert m.state == "locked"


def test_forced_door() -> None:
    m = machine()
    assert m.handle("door_open", 0.0) == ("record:door_forced", "alarm")
    assert m.lock_state == "locked" and m.door_state == "open"


def test_diagram_lists_every_transition() -> None:
    text = diagram()
    assert text.count("-->") == len(TRANSITIONS) + 1


def test_entry_buffer() -> None:
    e = Entry(max_len=11)
    assert e.press("*", 0) == ("toggle_language", "")
    for k in "0421":
        assert e.press(k, 1)[0] == "typing"
    assert e.press("*", 2) == ("cleared", "")
    for k in "042123456":
        e.press(k, 3)
    assert e.press("#", 4) == ("submit", "042123456")
    assert e.digits == ""
    e.press("1", 5)
    assert e.expire(24.9) is False and e.expire(25.0) is True and e.digits == ""
    for _ in range(30):
        e.press("9", 30)
    assert len(e.digits) == 12  # capped: one more than any code, so # says bad_length
