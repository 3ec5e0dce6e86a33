"""The door machine: every row of the table, illegal events, timers, entrants."""

import pytest

from kiosk.door import (
    EVENTS,
    STATES,
    TRANSITIONS,
    Action,
    Collect,
    DoorMachine,
    Entrant,
    Entry,
    Event,
    Record,
    State,
    describe,
    diagram,
)

CUSTOMER = Entrant("code", "O-1")


def machine() -> DoorMachine:
    return DoorMachine(release_s=5, held_open_s=60)


def names(actions: tuple[Action, ...] | None) -> list[str] | None:
    return None if actions is None else [describe(a) for a in actions]


@pytest.mark.parametrize(("key", "row"), list(TRANSITIONS.items()), ids=str)
def test_every_transition(key: tuple[State, Event], row: tuple[State, tuple[Action, ...]]) -> None:
    state, event = key
    m = machine()
    m.state = state
    m.entrant = CUSTOMER
    got = m.handle(event, 100.0)
    assert names(got) == [describe(a) for a in row[1]]
    assert m.state is row[0]
    # records come before the physical action they announce (audit before action)
    if got and any(describe(a) == "energize" for a in got):
        assert isinstance(got[0], Record)


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, e) for s in STATES for e in EVENTS if (s, e) not in TRANSITIONS],
)
def test_illegal_events_change_nothing(state: State, event: Event) -> None:
    m = machine()
    m.state = state
    m.unlock_until, m.open_since, m.entrant = 7.0, 3.0, CUSTOMER
    assert m.handle(event, 100.0) is None
    assert (m.state, m.unlock_until, m.open_since, m.entrant) == (state, 7.0, 3.0, CUSTOMER)
    assert m.history == []


def test_unlock_for_a_customer_names_the_order_and_collects_on_close() -> None:
    m = machine()
    assert m.can_unlock()
    got = m.unlock(0.0, CUSTOMER)
    assert got is not None and got[0] == Record("door_unlocked", "O-1", (("by", "code"),))
    assert not m.can_unlock() or m.state is State.UNLOCKED
    assert m.door(1.0, True) is not None
    closed = m.door(9.0, False)
    assert closed == (Record("door_closed", "O-1"), Collect("O-1"))
    assert m.entrant is None and m.state is State.LOCKED


def test_reentry_and_exit_collect_nothing() -> None:
    for entrant in (Entrant("code", "O-1", reentry=True), Entrant("exit")):
        m = machine()
        m.unlock(0.0, entrant)
        m.door(1.0, True)
        assert [a for a in m.door(2.0, False) or () if isinstance(a, Collect)] == []


def test_a_code_accepted_while_the_door_is_open_is_collected_on_close() -> None:
    m = machine()
    m.unlock(0.0, Entrant("exit"))
    m.door(1.0, True)
    assert m.unlock(2.0, CUSTOMER) == ()  # nothing to open, but remembered
    assert Collect("O-1") in (m.door(3.0, False) or ())


def test_nothing_to_open_while_forced() -> None:
    m = machine()
    m.door(0.0, True)
    assert m.unlock(1.0, Entrant("exit")) is None
    assert m.unlock(1.0, CUSTOMER) is None


def test_pulse_ends_exactly_after_release_time() -> None:
    m = machine()
    m.unlock(10.0, Entrant("exit"))
    assert m.tick(14.999) == [] and m.state is State.UNLOCKED
    assert m.unlock_left(12.0) == 3.0
    fired = m.tick(15.0)
    assert [(e, names(a)) for e, a in fired] == [(Event.PULSE_END, ["release", "door_relocked"])]
    assert m.state is State.LOCKED


def test_nobody_entered_clears_the_entrant() -> None:
    m = machine()
    m.unlock(0.0, CUSTOMER)
    m.tick(5.0)
    assert m.entrant is None


def test_held_open_alarm_then_close() -> None:
    m = machine()
    m.unlock(0.0, CUSTOMER)
    m.door(1.0, True)
    assert m.tick(60.9) == []
    fired = m.tick(61.0)
    assert [(e, names(a)) for e, a in fired] == [(Event.HELD_TIMEOUT, ["door_held_open", "alarm"])]
    assert fired[0][1][0] == Record("door_held_open", None, (("held_s", 60),))
    assert names(m.door(70.0, False)) == ["door_closed", "alarm_off", "collect"]
    assert m.state is State.LOCKED


def test_forced_door() -> None:
    m = machine()
    assert names(m.door(0.0, True)) == ["door_forced", "alarm"]
    assert m.lock_state == "locked" and m.door_state == "open"


def test_checkpoint_and_restore() -> None:
    m = machine()
    saved = m.checkpoint()
    m.unlock(0.0, CUSTOMER)
    m.restore(saved)
    assert m.state is State.LOCKED and m.entrant is None and m.history == []


def test_diagram_lists_every_transition() -> None:
    text = diagram()
    assert text.count("-->") == len(TRANSITIONS) + 1
    assert "locked --> unlocked: unlock / door_unlocked, energize" in text


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
