"""The door as a table-driven state machine, in plain Python (STYLE.md 2).

Events in (``unlock``, ``door_open``, ``door_close``, ``pulse_end``,
``held_timeout``, ``day_start``, ``day_end``), actions out. Every legal
transition is one row of ``TRANSITIONS``; an event with no row for the
current state is illegal and changes nothing. Time is passed in; the
machine never reads a clock. The daemon performs the actions:

- ``energize``: pulse the relay for the release time (bounded by hardware.Lock)
- ``hold``: keep the relay energized (day mode; renewed every tick, so a
  stalled loop still relocks)
- ``release``: de-energize the relay
- ``alarm`` / ``alarm_off``: buzzer and LED
- ``collect``: the customer went in: record ``order_collected``
- ``record:TYPE``: append an audit event of that type
"""

from __future__ import annotations

from dataclasses import dataclass, field

LOCKED = "locked"
UNLOCKED = "unlocked"  # relay energized, door still closed
OPEN = "open"  # opened after an unlock
FORCED = "forced"  # opened while locked
HELD = "held_open"  # open longer than allowed
DAY = "day"  # staffed hours, lock held open, door closed
DAY_OPEN = "day_open"

STATES = (LOCKED, UNLOCKED, OPEN, FORCED, HELD, DAY, DAY_OPEN)
EVENTS = ("unlock", "door_open", "door_close", "pulse_end", "held_timeout", "day_start", "day_end")

# (state, event) -> (next state, actions)
TRANSITIONS: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    (LOCKED, "unlock"): (UNLOCKED, ("energize",)),
    (LOCKED, "door_open"): (FORCED, ("record:door_forced", "alarm")),
    (LOCKED, "day_start"): (DAY, ("hold", "record:mode_changed")),
    (UNLOCKED, "unlock"): (UNLOCKED, ("energize",)),
    (UNLOCKED, "door_open"): (OPEN, ("release", "record:door_opened")),
    (UNLOCKED, "pulse_end"): (LOCKED, ("release", "record:door_relocked")),
    (UNLOCKED, "day_start"): (DAY, ("hold", "record:mode_changed")),
    (OPEN, "door_close"): (LOCKED, ("record:door_closed", "collect")),
    (OPEN, "held_timeout"): (HELD, ("record:door_held_open", "alarm")),
    (OPEN, "day_start"): (DAY_OPEN, ("hold", "record:mode_changed")),
    (FORCED, "door_close"): (LOCKED, ("record:door_closed", "alarm_off")),
    (FORCED, "held_timeout"): (HELD, ("record:door_held_open", "alarm")),
    (FORCED, "day_start"): (DAY_OPEN, ("hold", "alarm_off", "record:mode_changed")),
    (HELD, "door_close"): (LOCKED, ("record:door_closed", "alarm_off", "collect")),
    (HELD, "day_start"): (DAY_OPEN, ("hold", "alarm_off", "record:mode_changed")),
    (DAY, "door_open"): (DAY_OPEN, ("record:door_opened",)),
    (DAY, "day_end"): (LOCKED, ("release", "record:mode_changed")),
    (DAY_OPEN, "door_close"): (DAY, ("record:door_closed",)),
    (DAY_OPEN, "day_end"): (OPEN, ("release", "record:mode_changed")),
}


@dataclass
class DoorMachine:
    """The door's state and its two timers (unlock window, open since)."""

    release_s: float
    held_open_s: float
    state: str = LOCKED
    unlock_until: float | None = None
    open_since: float | None = None
    collect_order: str | None = None  # order whose customer was let in
    history: list[tuple[str, str, str]] = field(default_factory=list)

    def handle(self, event: str, now: float) -> tuple[str, ...] | None:
        """Apply one event; return its actions, or None if illegal (no change)."""
        row = TRANSITIONS.get((self.state, event))
        if row is None:
            return None
        before = self.state
        self.state, actions = row
        if "energize" in actions:
            self.unlock_until = now + self.release_s
        if self.state != UNLOCKED:
            self.unlock_until = None
        if self.state in (OPEN, FORCED) and before not in (OPEN, FORCED, HELD):
            self.open_since = now
        elif self.state in (LOCKED, DAY, UNLOCKED):
            self.open_since = None
        if self.state == LOCKED and before == UNLOCKED:
            self.collect_order = None  # the window ended and nobody went in
        self.history.append((before, event, self.state))
        return actions

    def tick(self, now: float) -> list[tuple[str, tuple[str, ...]]]:
        """Fire due timers; return (event, actions) for each that fired."""
        fired: list[tuple[str, tuple[str, ...]]] = []
        if self.state == UNLOCKED and self.unlock_until is not None and now >= self.unlock_until:
            actions = self.handle("pulse_end", now)
            if actions is not None:
                fired.append(("pulse_end", actions))
        if (
            self.state in (OPEN, FORCED)
            and self.open_since is not None
            and now - self.open_since >= self.held_open_s
        ):
            actions = self.handle("held_timeout", now)
            if actions is not None:
                fired.append(("held_timeout", actions))
        return fired

    @property
    def lock_state(self) -> str:
        return "unlocked" if self.state in (UNLOCKED, DAY, DAY_OPEN) else "locked"

    @property
    def door_state(self) -> str:
        return "open" if self.state in (OPEN, FORCED, HELD, DAY_OPEN) else "closed"

    @property
    def holding(self) -> bool:
        return self.state in (DAY, DAY_OPEN)


def diagram() -> str:
    """The transition table as a Mermaid state diagram (for docs)."""
    lines = ["stateDiagram-v2", f"    [*] --> {LOCKED}"]
    for (state, event), (nxt, actions) in TRANSITIONS.items():
        shown = ", ".join(a.replace("record:", "") for a in actions)
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
