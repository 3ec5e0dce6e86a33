"""Events: the audit trail's documents and the streaming chain verifier.

Each event carries ``prev_hash``, the previous event's ``hash``, and its own
``hash``: hex SHA-256 of the canonical JSON of the event without ``hash``
(docs/protocol.md, "Events"). :class:`ChainVerifier` checks a site's events
as they arrive, in any order and with duplicates, and says for each what it
is: verified, a duplicate, early (a gap before it), or a break.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from protocol.canonical import canonical_json, sha256_hex
from protocol.errors import ChainError, ValidationError
from protocol.times import format_time, parse_time
from protocol.topics import valid_site

ZERO_HASH = "0" * 64
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")

EVENT_TYPES = frozenset(
    {
        "boot",
        "shutdown",
        "code_accepted",
        "code_rejected",
        "throttled",
        "door_unlocked",
        "door_relocked",
        "door_opened",
        "door_closed",
        "door_held_open",
        "door_forced",
        "exit_pressed",
        "order_updated",
        "order_forgotten",
        "order_collected",
        "order_cancelled",
        "message_rejected",
        "rejections_summarized",
        "command",
        "clock_untrusted",
        "clock_trusted",
        "clock_conflict",
        "clock_set",
        "mode_changed",
        "store_unwritable",
        "store_recovered",
        "store_rollback",
        "seq_gap",
        "retention",
        "retention_refused",
        "display_degraded",
        "staff_updated",
        "staff_forgotten",
        "staff_entry",
    }
)
#: types that are alarms for the owner (the hub raises alerts on them)
ALARM_TYPES = frozenset(
    {
        "door_forced",
        "door_held_open",
        "store_unwritable",
        "store_rollback",
        "clock_conflict",
        "retention_refused",
        "display_degraded",
    }
)


def event_hash(event_without_hash: Mapping[str, Any]) -> str:
    return sha256_hex(canonical_json(event_without_hash))


def event_id(site: str, seq: int) -> str:
    return f"{site}:{seq}"


def build_event(
    *,
    site: str,
    seq: int,
    prev_hash: str,
    ts: float,
    clock: str,
    type_: str,
    order_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The event as published, ``hash`` included."""
    body: dict[str, Any] = {
        "v": 1,
        "site": site,
        "seq": seq,
        "event_id": event_id(site, seq),
        "ts": format_time(ts),
        "clock": clock,
        "type": type_,
        "order_id": order_id,
        "detail": dict(detail or {}),
        "prev_hash": prev_hash,
    }
    body["hash"] = event_hash(body)
    return body


def check_event(ev: Any, site: str | None = None) -> dict[str, Any]:
    """The shape a receiver needs before it stores or links an event.

    Raises ValidationError (reason ``bad_event``, or ``wrong_site``). It
    does not check the hash; the verifier does.
    """

    def bad(what: str) -> ValidationError:
        return ValidationError("bad_event", f"not an event: {what}")

    if not isinstance(ev, dict):
        raise bad("not an object")
    seq = ev.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= 2**53:
        raise bad("seq must be a whole number from 1")
    ev_site = ev.get("site")
    if not valid_site(ev_site):
        raise bad("site is not a site slug")
    if site is not None and ev_site != site:
        raise ValidationError("wrong_site", f"the event is for site {ev_site!r}, not {site!r}")
    if ev.get("event_id") != event_id(str(ev_site), seq):
        raise bad("event_id must be {site}:{seq}")
    for key in ("hash", "prev_hash"):
        value = ev.get(key)
        if not isinstance(value, str) or not _HEX64.match(value):
            raise bad(f"{key} must be 64 lowercase hex characters")
    if not isinstance(ev.get("type"), str) or not 1 <= len(ev["type"]) <= 64:
        raise bad("type must be a short string")
    try:
        parse_time(ev.get("ts"))
    except ValueError:
        raise bad("ts must be an RFC 3339 time") from None
    if not isinstance(ev.get("detail", {}), dict):
        raise bad("detail must be an object")
    return ev


def hash_ok(ev: Mapping[str, Any]) -> bool:
    return event_hash({k: v for k, v in ev.items() if k != "hash"}) == ev.get("hash")


@dataclass(frozen=True)
class Tail:
    """The last verified event of a chain: its seq and hash (0 and zeros at the start)."""

    seq: int = 0
    hash: str = ZERO_HASH


class Verdict(StrEnum):
    VERIFIED = "verified"  # extends the chain
    DUPLICATE = "duplicate"  # already verified, same contents
    CONFLICT = "conflict"  # same seq as a verified event, other contents: an alarm
    EARLY = "early"  # a gap before it; held until the gap is filled
    BREAK = "break"  # at the chain's end but does not link, or changed: an alarm


@dataclass(frozen=True)
class Link:
    verdict: Verdict
    seq: int
    message: str = ""


def link(tail: Tail, ev: Mapping[str, Any], known_hash: str | None = None) -> Link:
    """Judge one event against the tail. ``known_hash`` is the hash already
    verified for that seq, when the caller has it (for seq <= tail.seq)."""
    seq = int(ev["seq"])
    if seq <= tail.seq:
        if known_hash is not None and known_hash != ev.get("hash"):
            return Link(Verdict.CONFLICT, seq, f"seq {seq} arrived again with other contents")
        if not hash_ok(ev):
            return Link(Verdict.CONFLICT, seq, f"seq {seq}: hash does not match its contents")
        return Link(Verdict.DUPLICATE, seq)
    if seq > tail.seq + 1:
        return Link(Verdict.EARLY, seq, f"seq {tail.seq + 1} to {seq - 1} missing")
    if ev.get("prev_hash") != tail.hash:
        return Link(
            Verdict.BREAK,
            seq,
            f"seq {seq}: prev_hash does not match seq {tail.seq}'s hash "
            "(an event was changed or left out)",
        )
    if not hash_ok(ev):
        return Link(Verdict.BREAK, seq, f"seq {seq}: hash does not match its contents (changed)")
    return Link(Verdict.VERIFIED, seq)


@dataclass
class ChainVerifier:
    """Streaming verification of one site's chain, in memory.

    :meth:`feed` takes events in any order; events after a gap wait (at most
    ``max_pending``) until the gap is filled, then verify in order. The
    hub keeps the same state in its archive instead; this class serves
    kioskctl and tests, and documents the algorithm.
    """

    tail: Tail = field(default_factory=Tail)
    max_pending: int = 100_000
    pending: dict[int, dict[str, Any]] = field(default_factory=dict)
    hashes: dict[int, str] = field(default_factory=dict)
    broken: bool = False

    def missing(self) -> tuple[int, int] | None:
        """The first gap as (first missing seq, last missing seq), if any."""
        if not self.pending:
            return None
        return self.tail.seq + 1, min(self.pending) - 1

    def feed(self, ev: Mapping[str, Any]) -> list[Link]:
        """Judge one event; return what it and any events it released are."""
        seq = int(ev["seq"])
        result = link(self.tail, ev, self.hashes.get(seq))
        if result.verdict is Verdict.EARLY:
            held = self.pending.get(seq)
            if held is not None and held.get("hash") != ev.get("hash"):
                return [Link(Verdict.CONFLICT, seq, f"seq {seq} arrived twice, contents differ")]
            if len(self.pending) < self.max_pending:
                self.pending[seq] = dict(ev)
            return [result]
        if result.verdict is not Verdict.VERIFIED:
            if result.verdict in (Verdict.BREAK, Verdict.CONFLICT):
                self.broken = True
            return [result]
        out = [result]
        self._advance(ev)
        while self.tail.seq + 1 in self.pending:
            nxt = self.pending.pop(self.tail.seq + 1)
            res = link(self.tail, nxt)
            out.append(res)
            if res.verdict is not Verdict.VERIFIED:
                self.broken = True
                break
            self._advance(nxt)
        return out

    def _advance(self, ev: Mapping[str, Any]) -> None:
        self.tail = Tail(int(ev["seq"]), str(ev["hash"]))
        self.hashes[self.tail.seq] = self.tail.hash


def verify_chain(events: Iterable[Mapping[str, Any]], *, start: Tail | None = None) -> int:
    """Check an ordered run of events; return how many. Raises ChainError
    naming the first bad seq (changed, removed or reordered)."""
    tail = start or Tail()
    count = 0
    for ev in events:
        seq = ev.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ChainError(tail.seq + 1, f"event after seq {tail.seq} has no seq")
        if seq != tail.seq + 1:
            raise ChainError(
                min(seq, tail.seq + 1),
                f"seq {tail.seq + 1} expected, found {seq}: an event is missing or out of order",
            )
        result = link(tail, ev)
        if result.verdict is not Verdict.VERIFIED:
            raise ChainError(seq, result.message)
        tail = Tail(seq, str(ev["hash"]))
        count += 1
    return count
