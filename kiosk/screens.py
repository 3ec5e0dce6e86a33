"""What the shelf display shows: screen models, pure data.

The door daemon decides which screen is current; ``hardware.display``
draws it (pygame) and ``render_text`` gives a plain-text rendering for the
terminal and logs. No text here is final wording: every human string comes
from the message catalogs (``kiosk.i18n``) keyed by ``kind`` and
``reason``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Refusal reasons: one per failure of the code engine, plus the door's own.
REASONS = (
    "bad_length",  # the entry has the wrong number of digits
    "unknown_number",  # no active order has this pickup number
    "wrong_code",  # the one-time value does not match
    "replayed",  # this code was already used
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
    - ``door_released``: unlocked by the exit button or the owner.
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
