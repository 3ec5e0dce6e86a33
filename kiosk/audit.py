"""The audit trail: gap-free, hash-chained events (PROTOCOL.md "Events").

``Audit.record`` builds the event, chains it to the previous one and commits
it durably in one transaction before returning, so callers can rely on
"audit before action" (DESIGN.md rule 1). Two processes may record at once:
``BEGIN IMMEDIATE`` serializes them, so seq stays gap-free and unique.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kiosk.clock import ClockSnapshot
from kiosk.errors import ChainError
from kiosk.store import ZERO_HASH, Store, StoredEvent
from kiosk.wire import canonical_json, sha256_hex

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
        "command",
        "clock_untrusted",
        "clock_trusted",
        "mode_changed",
        "store_unwritable",
        "store_recovered",
    }
)


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """RFC 3339 to Unix seconds; raises ValueError. Naive times are refused."""
    if not isinstance(text, str) or len(text) > 40:
        raise ValueError("not an RFC 3339 time")
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError("RFC 3339 times need a zone (Z or +hh:mm)")
    return dt.timestamp()


def event_hash(event_without_hash: Mapping[str, Any]) -> str:
    return sha256_hex(canonical_json(event_without_hash))


@dataclass
class Audit:
    store: Store
    site: str
    _tail: tuple[int, str] | None = field(default=None, init=False, repr=False)
    _batching: bool = field(default=False, init=False, repr=False)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Record many events in one transaction, remembering the chain's tail.

        Inside one write transaction no other process can append, so the last
        seq and hash need not be read back for every event.
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
            if self._tail is not None:
                seq, prev = self._tail[0] + 1, self._tail[1]
            else:
                last = self.store.last_event()
                if last is not None:
                    seq, prev = last.seq + 1, last.hash
                else:
                    anchor_seq, anchor_hash = self.store.chain_anchor()
                    seq, prev = anchor_seq + 1, anchor_hash
            body: dict[str, Any] = {
                "v": 1,
                "site": self.site,
                "seq": seq,
                "event_id": f"{self.site}:{seq}",
                "ts": rfc3339(clock.now),
                "clock": clock.state,
                "type": type_,
                "order_id": order_id,
                "detail": dict(detail or {}),
                "prev_hash": prev,
            }
            body["hash"] = event_hash(body)
            self.store.insert_event_row(
                seq,
                type_,
                order_id=order_id,
                ts=clock.now,
                body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                hash_=body["hash"],
            )
            if self._batching:
                self._tail = (seq, body["hash"])
        return body


def verify_chain(
    events: Iterable[Mapping[str, Any]], *, start_seq: int = 0, start_hash: str = ZERO_HASH
) -> int:
    """Check seq continuity and the hash chain; return the number checked.

    Raises ChainError naming the first bad seq (a changed, removed or
    reordered event).
    """
    expect_seq = start_seq + 1
    prev = start_hash
    count = 0
    for ev in events:
        seq = ev.get("seq")
        if not isinstance(seq, int):
            raise ChainError(expect_seq, f"event after seq {expect_seq - 1} has no seq")
        if seq != expect_seq:
            raise ChainError(
                min(seq, expect_seq),
                f"seq {expect_seq} expected, found {seq}: an event is missing or out of order",
            )
        if ev.get("prev_hash") != prev:
            raise ChainError(seq, f"seq {seq}: prev_hash does not match the previous event's hash")
        body = {k: v for k, v in ev.items() if k != "hash"}
        if event_hash(body) != ev.get("hash"):
            raise ChainError(seq, f"seq {seq}: hash does not match its contents (changed)")
        prev = str(ev["hash"])
        expect_seq += 1
        count += 1
    return count


def verify_store(store: Store) -> int:
    """Verify the whole trail kept in the store (from its retention anchor)."""
    anchor_seq, anchor_hash = store.chain_anchor()

    def dicts(rows: Iterable[StoredEvent]) -> Iterable[dict[str, Any]]:
        for row in rows:
            ev = row.as_dict()
            if ev.get("seq") != row.seq:
                raise ChainError(row.seq, f"seq {row.seq}: stored row and body disagree")
            yield ev

    return verify_chain(
        dicts(store.iter_events(anchor_seq)), start_seq=anchor_seq, start_hash=anchor_hash
    )
