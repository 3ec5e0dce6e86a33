"""The kiosk's audit trail: gap-free, hash-chained events in the store.

The event documents and their hashes are the protocol's
(:func:`protocol.events.build_event`); this module numbers them, chains
them to the stored tail and commits each durably before returning, so
callers can rely on "audit before action" (docs/design.md, rule 1). Two
processes may record at once: ``BEGIN IMMEDIATE`` serializes them, so seq
stays gap-free and unique.

Rejections (``message_rejected``) cost a bounded amount whatever a sender
does (docs/design.md, rule 4): the first ``REJECT_BURST`` and then
``REJECT_PER_MIN`` a minute are recorded one by one; the rest are counted
per source and reason and written as one ``rejections_summarized`` event
per minute (:meth:`Audit.flush_rejections`). The same decision governs the
log line of a rejection, so a flood costs a bounded number of log records
too. While the card is nearly full (``limiter.quiet``) every rejection is
only counted.

Verifying the kept trail is :mod:`kiosk.trail`'s (``verify_store`` is
re-exported here for its callers).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kiosk.clock import ClockSnapshot
from kiosk.store import Store
from protocol.events import EVENT_TYPES, Tail, build_event

log = logging.getLogger(__name__)

REJECT_BURST = 20
REJECT_PER_MIN = 10.0
SUMMARY_EVERY_S = 60.0
MAX_HELD_KEYS = 32  # distinct (source, reason) pairs counted; the rest as "other"

# What one row can cost at most in the store (row, index entries, page slack),
# every field at its longest: the flood bound of docs/protocol.md, "Limits".
MAX_REJECTION_BYTES = 4096  # a message_rejected, or a command event of a keyless refusal
MAX_SUMMARY_BYTES = 8192  # a rejections_summarized (at most MAX_HELD_KEYS counts)
MAX_LOG_BYTES = 1024  # the log record of one rejection or summary


def flood_bound_bytes(seconds: float) -> int:
    """The most a flood of ``seconds`` can add to the store, whatever it holds
    and on whichever topic: individual rejections at the limiter's rate, one
    summary a minute, and one log record for each of those."""
    individual = REJECT_BURST + math.ceil(REJECT_PER_MIN * seconds / 60)
    summaries = math.ceil(seconds / SUMMARY_EVERY_S) + 1
    return (
        individual * MAX_REJECTION_BYTES
        + summaries * MAX_SUMMARY_BYTES
        + (individual + summaries) * MAX_LOG_BYTES
    )


@dataclass
class RejectionLimiter:
    """A token bucket over individual rejection events, and what it held back."""

    burst: float = REJECT_BURST
    per_min: float = REJECT_PER_MIN
    tokens: float = REJECT_BURST
    last: float | None = None
    held: Counter[tuple[str, str]] = field(default_factory=Counter)
    held_since: float | None = None
    quiet: bool = False  # the card is nearly full: count every rejection, record none

    def allow(self, now_mono: float) -> bool:
        if self.quiet:
            return False
        if self.last is not None:
            self.tokens = min(self.burst, self.tokens + (now_mono - self.last) * self.per_min / 60)
        self.last = now_mono
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def hold(self, source: str, reason: str, now_mono: float) -> None:
        if not self.held:
            self.held_since = now_mono
        key = (source[:32], reason[:64])
        if key not in self.held and len(self.held) >= MAX_HELD_KEYS:
            key = ("other", "other")
        self.held[key] += 1

    @property
    def flooding(self) -> bool:
        return bool(self.held)


@dataclass
class Audit:
    store: Store
    site: str
    limiter: RejectionLimiter = field(default_factory=RejectionLimiter)
    _tail: tuple[int, Tail] | None = field(default=None, init=False, repr=False)
    _batching: bool = field(default=False, init=False, repr=False)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Record many events in one transaction, remembering the chain's tail.

        Inside one write transaction no other process can append, so the last
        seq and hash need not be read back for every event. The memory is
        tied to the store's rollback count, so a savepoint rolled back inside
        the batch makes the next event read the tail again.
        """
        with self.store.atomic():
            if self._batching:
                yield
                return
            self._batching, self._tail = True, None
            try:
                yield
            finally:
                self._batching, self._tail = False, None

    def tail(self) -> Tail:
        """The stored chain's tail (or its retention anchor)."""
        if self._tail is not None and self._tail[0] == self.store.rollbacks:
            return self._tail[1]
        last = self.store.last_event()
        if last is not None:
            return Tail(last.seq, last.hash)
        return self.store.chain_anchor()

    def record(
        self,
        type_: str,
        clock: ClockSnapshot,
        *,
        order_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Append one event and commit it durably; return the event as published.

        Raises StoreError if it could not be committed (then nothing was).
        """
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        with self.store.atomic():
            tail = self.tail()
            body = build_event(
                site=self.site,
                seq=tail.seq + 1,
                prev_hash=tail.hash,
                ts=clock.now,
                clock=clock.state,
                type_=type_,
                order_id=order_id,
                detail=detail,
            )
            self.store.insert_event_row(
                body["seq"],
                type_,
                order_id=order_id,
                ts=clock.now,
                body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                hash_=body["hash"],
            )
            if self._batching:
                self._tail = (self.store.rollbacks, Tail(body["seq"], body["hash"]))
        return body

    def admit(self, clock: ClockSnapshot, source: str, reason: str) -> bool:
        """Whether one rejection may be recorded on its own now; if not, it is
        counted for the next summary. Callers log a rejection only when admitted."""
        if self.limiter.allow(clock.mono):
            return True
        self.limiter.hold(source, reason, clock.mono)
        return False

    def reject(
        self,
        clock: ClockSnapshot,
        detail: Mapping[str, Any],
        *,
        order_id: str | None = None,
        type_: str = "message_rejected",
    ) -> bool:
        """A ``message_rejected`` (or ``type_``) event, or a count for the next
        summary. Returns whether it was recorded individually."""
        if not self.admit(clock, str(detail.get("source", "")), str(detail.get("reason", ""))):
            return False
        self.record(type_, clock, order_id=order_id, detail=detail)
        return True

    def flush_rejections(self, clock: ClockSnapshot, *, force: bool = False) -> int:
        """Write the held-back rejections as one summary when a minute has passed."""
        lim = self.limiter
        if not lim.held or lim.held_since is None:
            return 0
        if not force and clock.mono - lim.held_since < SUMMARY_EVERY_S:
            return 0
        counts = [{"source": s, "reason": r, "count": n} for (s, r), n in sorted(lim.held.items())][
            :64
        ]
        total = sum(lim.held.values())
        self.record(
            "rejections_summarized",
            clock,
            detail={
                "total": total,
                "seconds": round(clock.mono - lim.held_since),
                "counts": counts,
            },
        )
        lim.held.clear()
        lim.held_since = None
        top = ", ".join(f"{c['reason']} x{c['count']}" for c in counts[:5])
        log.warning("%d rejected messages summarized in one event (%s)", total, top)
        return total


def verify_store(store: Store) -> int:
    """The number of kept events verified; ChainError at the first real break."""
    from kiosk.trail import verify_store as verify

    return verify(store)
