"""The door as a table-driven state machine, in plain Python (docs/design.md, "Door").

Events in, actions out. Every legal transition is one row of
:data:`TRANSITIONS`; an event with no row for the current state is illegal
and changes nothing. Time is passed in; the machine never reads a clock.

Actions are small frozen dataclasses the daemon's effects interpreter
(:mod:`kiosk.effects`) performs, in order:

- :class:`Record`: append an audit event (always before the physical
  actions that follow it: audit before action)
- :class:`Energize`: pulse the relay for the release time (bounded again
  by ``hardware.devices.Lock``)
- :class:`Hold`: keep the relay energized (day mode; renewed every tick, so
  a stalled loop still relocks)
- :class:`Release`: de-energize the relay
- :class:`Alarm`: buzzer and LED on (``on=True``) or the LED back (``on=False``)
- :class:`Collect`: the customer went in: the order is collected

The machine also remembers who it let in (an :class:`Entrant`), so the
records name the order and the screens can follow the door (open after a
code, opened from inside, forced, held open).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class State(StrEnum):
    LOCKED = "locked"
    UNLOCKED = "unlocked"  # relay energized, door still closed
    OPEN = "open"  # opened after an unlock
    FORCED = "forced"  # opened while locked
    HELD = "held_open"  # open longer than allowed
    DAY = "day"  # staffed hours, lock held open, door closed
    DAY_OPEN = "day_open"


class Event(StrEnum):
    UNLOCK = "unlock"
    DOOR_OPEN = "door_open"
    DOOR_CLOSE = "door_close"
    PULSE_END = "pulse_end"
    HELD_TIMEOUT = "held_timeout"
    DAY_START = "day_start"
    DAY_END = "day_end"


@dataclass(frozen=True)
class Energize:
    pass


@dataclass(frozen=True)
class Hold:
    pass


@dataclass(frozen=True)
class Release:
    pass


@dataclass(frozen=True)
class Alarm:
    on: bool = True


@dataclass(frozen=True)
class Record:
    type: str
    order_id: str | None = None
    detail: tuple[tuple[str, Any], ...] = ()

    def detail_dict(self) -> dict[str, Any]:
        return dict(self.detail)


@dataclass(frozen=True)
class Collect:
    order_id: str = ""


Action = Energize | Hold | Release | Alarm | Record | Collect

# Templates in the table; the machine binds order ids and details when it emits them.
_ENERGIZE, _HOLD, _RELEASE = Energize(), Hold(), Release()
_ALARM, _ALARM_OFF, _COLLECT = Alarm(True), Alarm(False), Collect()


def _rec(type_: str) -> Record:
    return Record(type_)


S, E = State, Event
# (state, event) -> (next state, actions)
TRANSITIONS: dict[tuple[State, Event], tuple[State, tuple[Action, ...]]] = {
    (S.LOCKED, E.UNLOCK): (S.UNLOCKED, (_rec("door_unlocked"), _ENERGIZE)),
    (S.LOCKED, E.DOOR_OPEN): (S.FORCED, (_rec("door_forced"), _ALARM)),
    (S.LOCKED, E.DAY_START): (S.DAY, (_rec("mode_changed"), _HOLD)),
    (S.UNLOCKED, E.UNLOCK): (S.UNLOCKED, (_rec("door_unlocked"), _ENERGIZE)),
    (S.UNLOCKED, E.DOOR_OPEN): (S.OPEN, (_RELEASE, _rec("door_opened"))),
    (S.UNLOCKED, E.PULSE_END): (S.LOCKED, (_RELEASE, _rec("door_relocked"))),
    (S.UNLOCKED, E.DAY_START): (S.DAY, (_rec("mode_changed"), _HOLD)),
    (S.OPEN, E.DOOR_CLOSE): (S.LOCKED, (_rec("door_closed"), _COLLECT)),
    (S.OPEN, E.HELD_TIMEOUT): (S.HELD, (_rec("door_held_open"), _ALARM)),
    (S.OPEN, E.DAY_START): (S.DAY_OPEN, (_rec("mode_changed"), _HOLD)),
    (S.FORCED, E.DOOR_CLOSE): (S.LOCKED, (_rec("door_closed"), _ALARM_OFF)),
    (S.FORCED, E.HELD_TIMEOUT): (S.HELD, (_rec("door_held_open"), _ALARM)),
    (S.FORCED, E.DAY_START): (S.DAY_OPEN, (_rec("mode_changed"), _HOLD, _ALARM_OFF)),
    (S.HELD, E.DOOR_CLOSE): (S.LOCKED, (_rec("door_closed"), _ALARM_OFF, _COLLECT)),
    (S.HELD, E.DAY_START): (S.DAY_OPEN, (_rec("mode_changed"), _HOLD, _ALARM_OFF)),
    (S.DAY, E.DOOR_OPEN): (S.DAY_OPEN, (_rec("door_opened"),)),
    (S.DAY, E.DAY_END): (S.LOCKED, (_RELEASE, _rec("mode_changed"))),
    (S.DAY_OPEN, E.DOOR_CLOSE): (S.DAY, (_rec("door_closed"), _COLLECT)),
    (S.DAY_OPEN, E.DAY_END): (S.OPEN, (_RELEASE, _rec("mode_changed"))),
}
STATES = tuple(State)
EVENTS = tuple(Event)
#: states with the door open
OPEN_STATES = frozenset({S.OPEN, S.FORCED, S.HELD, S.DAY_OPEN})


@dataclass(frozen=True)
class Entrant:
    """Who the door was unlocked for: ``by`` is ``code``, ``exit``,
    ``command`` or ``free_entry``; ``detail`` goes into ``door_unlocked``."""

    by: str
    order_id: str | None = None
    reentry: bool = False
    detail: tuple[tuple[str, Any], ...] = ()

    @property
    def customer(self) -> bool:
        """A customer whose order is collected when the door closes behind them."""
        return self.by == "code" and self.order_id is not None and not self.reentry


@dataclass
class DoorMachine:
    """The door's state, its two timers (unlock window, open since) and its entrant."""

    release_s: float
    held_open_s: float
    state: State = State.LOCKED
    unlock_until: float | None = None
    open_since: float | None = None
    entrant: Entrant | None = None
    history: list[tuple[State, Event, State]] = field(default_factory=list)

    # ----- what the daemon asks ---------------------------------------------

    def can_unlock(self) -> bool:
        return (self.state, Event.UNLOCK) in TRANSITIONS

    @property
    def lock_state(self) -> str:
        return "unlocked" if self.state in (S.UNLOCKED, S.DAY, S.DAY_OPEN) else "locked"

    @property
    def door_state(self) -> str:
        return "open" if self.state in OPEN_STATES else "closed"

    @property
    def holding(self) -> bool:
        return self.state in (S.DAY, S.DAY_OPEN)

    def unlock_left(self, now: float) -> float:
        if self.state is not S.UNLOCKED or self.unlock_until is None:
            return 0.0
        return max(0.0, self.unlock_until - now)

    def open_for(self, now: float) -> float:
        return 0.0 if self.open_since is None else max(0.0, now - self.open_since)

    # ----- what the daemon tells ----------------------------------------------

    def unlock(self, now: float, entrant: Entrant) -> tuple[Action, ...] | None:
        """Open for ``entrant``; its actions, or None when there is nothing to open.

        A customer whose code was accepted while the door is already open (or
        held open by day mode) is remembered, so the order is collected when
        the door closes; that returns no actions.
        """
        if self.can_unlock():
            self.entrant = entrant
            return self.handle(Event.UNLOCK, now)
        if entrant.customer and self.state in (S.OPEN, S.HELD, S.DAY, S.DAY_OPEN):
            self.entrant = entrant
            return ()
        return None

    def door(self, now: float, is_open: bool) -> tuple[Action, ...] | None:
        return self.handle(Event.DOOR_OPEN if is_open else Event.DOOR_CLOSE, now)

    def day(self, now: float, on: bool) -> tuple[Action, ...] | None:
        return self.handle(Event.DAY_START if on else Event.DAY_END, now)

    def handle(self, event: Event, now: float) -> tuple[Action, ...] | None:
        """Apply one event; return its actions, or None if illegal (no change)."""
        row = TRANSITIONS.get((self.state, event))
        if row is None:
            return None
        before = self.state
        entrant = self.entrant
        self.state, templates = row
        if self.state is S.UNLOCKED:
            self.unlock_until = now + self.release_s
        else:
            self.unlock_until = None
        if self.state in (S.OPEN, S.FORCED) and before not in OPEN_STATES:
            self.open_since = now
        elif self.state not in OPEN_STATES:
            self.open_since = None
        if self.state is S.FORCED or (self.state is S.LOCKED and before is not S.LOCKED):
            self.entrant = None  # forced: nobody was let in; locked: the visit is over
        self.history.append((before, event, self.state))
        actions = tuple(bound for t in templates if (bound := self._bind(t, entrant)) is not None)
        if any(isinstance(a, Collect) for a in actions):
            self.entrant = None  # collected: the next close collects nothing again
        return actions

    def tick(self, now: float) -> list[tuple[Event, tuple[Action, ...]]]:
        """Fire due timers; return (event, actions) for each that fired."""
        fired: list[tuple[Event, tuple[Action, ...]]] = []
        if self.state is S.UNLOCKED and self.unlock_until is not None and now >= self.unlock_until:
            actions = self.handle(Event.PULSE_END, now)
            if actions is not None:
                fired.append((Event.PULSE_END, actions))
        if (
            self.state in (S.OPEN, S.FORCED)
            and self.open_since is not None
            and now - self.open_since >= self.held_open_s
        ):
            actions = self.handle(Event.HELD_TIMEOUT, now)
            if actions is not None:
                fired.append((Event.HELD_TIMEOUT, actions))
        return fired

    def checkpoint(self) -> dict[str, Any]:
        """The machine's fields, to :meth:`restore` if what followed could not be recorded."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)} | {
            "history": list(self.history)
        }

    def restore(self, saved: dict[str, Any]) -> None:
        for name, value in saved.items():
            setattr(self, name, value)

    def _bind(self, template: Action, entrant: Entrant | None) -> Action | None:
        if isinstance(template, Collect):
            if entrant is None or not entrant.customer:
                return None
            return Collect(str(entrant.order_id))
        if not isinstance(template, Record):
            return template
        order_id: str | None = None
        detail: dict[str, Any] = {}
        if template.type == "door_unlocked" and entrant is not None:
            order_id = entrant.order_id
            detail = {"by": entrant.by, **dict(entrant.detail)}
        elif template.type in ("door_opened", "door_closed") and entrant and entrant.customer:
            order_id = entrant.order_id
        elif template.type == "door_held_open":
            detail = {"held_s": self.held_open_s}
        elif template.type == "mode_changed":
            detail = {"mode": "day" if self.state in (S.DAY, S.DAY_OPEN) else "night"}
        return Record(template.type, order_id, tuple(detail.items()))


def describe(action: Action) -> str:
    """A short name for an action (the diagram and tests use it)."""
    if isinstance(action, Record):
        return action.type
    if isinstance(action, Alarm):
        return "alarm" if action.on else "alarm_off"
    return type(action).__name__.lower()


def diagram() -> str:
    """The transition table as a Mermaid state diagram (for docs)."""
    lines = ["stateDiagram-v2", f"    [*] --> {State.LOCKED}"]
    for (state, event), (nxt, actions) in TRANSITIONS.items():
        shown = ", ".join(describe(a) for a in actions)
        lines.append(f"    {state} --> {nxt}: {event} / {shown}")
    return "\n".join(lines)


@dataclass
class Entry:
    """What has been typed at the keypad; forgotten after ``idle_s``."""

    max_len: int
    idle_s: float = 20.0
    digits: str = ""
    last_key: float = 0.0

    def press(self, key: str, now: float) -> tuple[str, str]:
        """Apply one key. Returns (what, submitted) where what is one of
        ``typing``, ``cleared``, ``toggle_language``, ``submit``, ``ignored``;
        ``submitted`` is the entry for ``submit`` (and then forgotten here)."""
        self.expire(now)
        self.last_key = now
        if key.isdigit() and key.isascii() and len(key) == 1:
            if len(self.digits) > self.max_len:
                return "ignored", ""  # longer than any code: # will say bad_length
            self.digits += key
            return "typing", ""
        if key == "*":
            if not self.digits:
                return "toggle_language", ""
            self.digits = ""
            return "cleared", ""
        if key == "#":
            submitted, self.digits = self.digits, ""
            return "submit", submitted
        return "ignored", ""

    def expire(self, now: float) -> bool:
        if self.digits and now - self.last_key >= self.idle_s:
            self.digits = ""
            return True
        return False
