"""Per-site chain state: the last verified event, what is held, what broke.

The hub verifies each site's hash chain as events arrive, with the
protocol's own judge (:func:`protocol.events.link`). This module holds the
state that judgement needs and the words for it; :mod:`hub.archive` keeps
it in the archive so that a restart resumes exactly where the last commit
left off.

- ``tail``: the last verified event (seq and hash). Every event up to it is
  in the archive and verified.
- early events: seq beyond ``tail + 1``; held unverified (bounded) and
  verified in order once the gap before them is filled.
- ``status_last_seq``: the newest seq the kiosk's retained status reported;
  a tail behind it is a gap at the end, which only a fetch can fill.
- a break: an event at ``tail + 1`` that does not link, or one that
  contradicts a verified event. Never accepted; kept as evidence and
  raised as an alarm. The verified copy is never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.events import Tail


@dataclass
class ChainState:
    site: str
    tail: Tail
    bytes: int = 0
    early: int = 0
    early_min: int = 0
    early_max: int = 0
    status_last_seq: int = 0
    break_seq: int | None = None
    break_message: str = ""
    duplicates: int = 0
    gap_since: float | None = None
    evidence: int = 0

    @property
    def target(self) -> int:
        """The newest seq the hub knows exists."""
        return max(self.tail.seq, self.early_max, self.status_last_seq)

    def missing(self) -> tuple[int, int] | None:
        """The first gap, as (first missing seq, last missing seq), if any."""
        if self.target <= self.tail.seq:
            return None
        first = self.tail.seq + 1
        if self.early and self.early_min > first:
            return first, self.early_min - 1
        if self.early and self.early_min == first:
            # Held events at tail+1 did not link: that is a break, not a gap.
            return first, first
        return first, self.target

    def as_dict(self) -> dict[str, Any]:
        gap = self.missing()
        return {
            "site": self.site,
            "last_verified_seq": self.tail.seq,
            "last_hash": self.tail.hash,
            "held_early": self.early,
            "status_last_seq": self.status_last_seq,
            "gap": None if gap is None else {"first": gap[0], "last": gap[1]},
            "gap_since": self.gap_since,
            "break": None
            if self.break_seq is None
            else {"seq": self.break_seq, "message": self.break_message},
            "duplicates": self.duplicates,
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class VerifyResult:
    """What ``pickup-hub verify`` says: ok with N, or the first problem."""

    ok: bool
    count: int
    message: str
