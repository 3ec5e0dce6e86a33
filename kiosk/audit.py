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
per minute (:meth:`Audit.flush_rejections`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kiosk.clock import ClockSnapshot
from kiosk.errors import ChainError
from kiosk.store import Store, StoredEvent
from protocol.events import EVENT_TYPES, Tail, build_event, verify_chain

REJECT_BURST = 20
REJECT_PER_MIN = 10.0
SUMMARY_EVERY_S = 60.0


@dataclass
class RejectionLimiter:
    """A token bucket over individual rejection events, and what it held back."""

    burst: float = REJECT_BURST
    per_min: float = REJECT_PER_MIN
    tokens: float = REJECT_BURST
    last: float | None = None
    held: Counter[tuple[str, str]] = field(default_factory=Counter)
    held_since: float | None = None

    def allow(self, now_mono: float) -> bool:
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
        self.held[(source, reason)] += 1

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

    def reject(
        self, clock: ClockSnapshot, detail: Mapping[str, Any], *, order_id: str | None = None
    ) -> bool:
        """A ``message_rejected`` event, or a count for the next summary.

        Returns whether it was recorded individually.
        """
        mono = clock.mono
        if self.limiter.allow(mono):
            self.record("message_rejected", clock, order_id=order_id, detail=detail)
            return True
        self.limiter.hold(str(detail.get("source", "")), str(detail.get("reason", "")), mono)
        return False

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
        return total


def verify_store(store: Store) -> int:
    """Verify the whole trail kept in the store (from its retention anchor)."""

    def dicts(rows: Iterable[StoredEvent]) -> Iterable[dict[str, Any]]:
        for row in rows:
            ev = row.as_dict()
            if ev.get("seq") != row.seq:
                raise ChainError(row.seq, f"seq {row.seq}: stored row and body disagree")
            yield ev

    anchor = store.chain_anchor()
    return verify_chain(dicts(store.iter_events(anchor.seq)), start=anchor)
