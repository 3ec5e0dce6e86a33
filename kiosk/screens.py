"""What the shelf display shows: screen models and which one is current, pure.

:func:`compose` turns the door daemon's state (a :class:`DoorView`) into the
:class:`Screen` of this instant, so the screen follows the door: the idle
screen only while the door is closed and locked, its own screen for a door
opened after a code, opened from inside, forced or held open.
``hardware.display`` draws a screen (pygame) and ``kiosk.i18n.render_text``
gives a plain-text rendering for the terminal and logs. No text here is
final wording: every human string comes from the message catalogs
(``kiosk.i18n``) keyed by ``kind`` and ``reason``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from kiosk.door import State

# Refusal reasons: one per failure of the code engine, plus the door's own.
REASONS = (
    "bad_length",  # the entry has the wrong number of digits
    "unknown_number",  # no active order has this pickup number
    "wrong_code",  # the one-time value does not match
    "replayed",  # this code was already used
    "backup_used",  # this order's backup code was already used (it never changes)
    "full_code_needed",  # many wrong tries tonight: type all 8 digits of the code
    "staff_revoked",  # a staff code that was withdrawn
    "staff_outside_window",  # a staff code before its first or after its last day
    "staff_outside_hours",  # a staff code outside its weekly hours
    "day_toggle_not_now",  # day mode can be switched at the door only in staffed hours
    "not_paid",  # status pending_payment
    "not_ready",  # status paid: not on the shelf yet
    "cancelled",
    "already_collected",  # collected longer ago than the re-entry grace
    "expired",  # past expires_at
    "throttled",  # too many failures: wait
    "clock_untrusted",  # the kiosk's clock is not set; TOTP cannot be judged
    "out_of_service",  # the store cannot be written
)


@dataclass(frozen=True)
class StatusCorner:
    """The small corner for the owner: link and upload state, clock."""

    online: bool = False
    outbox: int = 0
    clock_trusted: bool = True
    mode: str = "night"  # night or day


@dataclass(frozen=True)
class Item:
    name: str
    qty: float
    unit: str = ""


@dataclass(frozen=True)
class Screen:
    """One screen. ``kind`` is one of:

    - ``idle``: how to enter a code; ``site_name``, ``contact``, ``clock_text``.
    - ``typing``: ``typed`` digits so far (shown masked), ``expected`` length.
    - ``checking``: the code is being checked.
    - ``accepted``: ``slot``, ``items``, ``customer`` (already masked),
      ``seconds_left`` of the unlock, ``reentry`` for a second entry.
    - ``refused``: ``reason`` (see REASONS), ``collected_at`` ("01:23") for
      already_collected, ``seconds_left`` for throttled.
    - ``door_released``: unlocked by the owner or free entry, still closed;
      ``seconds_left`` of the unlock.
    - ``door_open``: open after a code or an unlock: take your goods and close
      the door behind you; ``slot`` when a customer's code opened it.
    - ``exit_open``: unlocked or opened by the inside exit button.
    - ``forced``: the door was opened while locked: the alarm screen.
    - ``staff_open``: a staff or courier code unlocked the door; ``customer``
      is their masked name.
    - ``close_door``: the door has been open too long; ``seconds_left`` is how
      long it has been open.
    - ``out_of_service``: the store cannot be written; exit still works.
    - ``day_open``: staffed hours, the door is open or # opens it.
    """

    kind: str
    lang: str = "zh"
    status: StatusCorner = field(default_factory=StatusCorner)
    site_name: str = ""
    contact: str = ""
    clock_text: str = ""
    typed: int = 0
    expected: int = 0
    slot: str = ""
    items: tuple[Item, ...] = ()
    customer: str = ""
    seconds_left: int = 0
    reentry: bool = False
    reason: str = ""
    collected_at: str = ""
    day_mode: str = ""


KINDS = (
    "idle",
    "typing",
    "checking",
    "accepted",
    "refused",
    "door_released",
    "door_open",
    "exit_open",
    "forced",
    "staff_open",
    "close_door",
    "out_of_service",
    "day_open",
)


def mask_name(name: str) -> str:
    """Mask a customer's name for a public screen: 李少云 -> 李*云, Ann Lee -> A***e.

    One-character names become "*"; the full name is never returned for
    names of two characters or more.
    """
    name = name.strip()
    if len(name) <= 1:
        return "*" if name else ""
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


@dataclass(frozen=True)
class DoorView:
    """What :func:`compose` needs to know of the door daemon at one instant."""

    lang: str
    status: StatusCorner
    site_name: str = ""
    contact: str = ""
    clock_text: str = ""
    store_ok: bool = True
    door: State = State.LOCKED
    entrant: str | None = None  # who the door was unlocked for (Entrant.by)
    unlock_left: float = 0.0
    open_for: float = 0.0
    visit: Screen | None = None  # the accepted customer's screen (slot, items, name)
    overlay: Screen | None = None  # a refusal, shown for a few seconds
    overlay_left: float = 0.0
    typed: int = 0
    expected: int = 0
    day: bool = False
    day_mode: str = "off"


def _secs(x: float) -> int:
    return max(0, int(x + 0.999))


def compose(v: DoorView) -> Screen:
    """The screen for this instant; total (never raises for any view)."""

    def mk(kind: str, **kw: Any) -> Screen:
        return dataclasses.replace(
            Screen(kind=kind, lang=v.lang, status=v.status, contact=v.contact), **kw
        )

    if not v.store_ok:
        return mk("out_of_service")
    if v.door is State.HELD:
        return mk("close_door", seconds_left=int(v.open_for))
    if v.door is State.FORCED:
        return mk("forced")
    if v.overlay is not None and v.overlay_left > 0:
        keep = ("throttled", "full_code_needed")
        left = v.overlay.seconds_left if v.overlay.reason in keep else 0
        return dataclasses.replace(
            v.overlay, seconds_left=left, lang=v.lang, status=v.status, contact=v.contact
        )
    if v.typed:
        return mk("typing", typed=v.typed, expected=v.expected)
    visit = v.visit if v.entrant == "code" else None
    if v.door is State.UNLOCKED:
        left = _secs(v.unlock_left)
        if v.entrant == "exit":
            return mk("exit_open", seconds_left=left)
        if v.entrant == "staff":
            name = v.visit.customer if v.visit else ""
            return mk("staff_open", customer=name, seconds_left=left)
        if visit is not None:
            return dataclasses.replace(
                visit, seconds_left=left, lang=v.lang, status=v.status, contact=v.contact
            )
        return mk("door_released", seconds_left=left)
    if v.door is State.OPEN:
        if v.entrant == "exit":
            return mk("exit_open")
        return mk("door_open", slot=visit.slot if visit else "")
    if v.door in (State.DAY, State.DAY_OPEN) or (v.day and v.day_mode != "off"):
        return mk("day_open", day_mode=v.day_mode, site_name=v.site_name)
    return mk("idle", site_name=v.site_name, clock_text=v.clock_text, day_mode=v.day_mode)


def fallback(kind: str, lang: str = "en") -> Screen:
    """A plain screen of ``kind`` with no data, for when building the real one failed."""
    return Screen(kind=kind if kind in KINDS else "idle", lang=lang)
