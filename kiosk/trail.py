"""The kept trail as a whole: where it starts, its explained gaps, rollbacks.

:func:`verify_trail` walks the events the store keeps, from the retention
anchor (docs/protocol.md, "Events"), and tells apart what is explained from
what is broken:

- the *start*: events before the anchor were purged after the broker
  acknowledged them (or to make room on a full card); the anchor's seq and
  hash are kept, so the first kept event still links;
- a *gap*: a ``seq_gap`` event stands where seqs ``from`` to ``to`` are
  missing from this store; its ``prev_hash`` is the hash the kiosk had
  *published* for seq ``to`` (so a receiver's chain still verifies) and is
  taken as the link here;
- a *break*: anything else (a changed, missing or reordered event).

:func:`check_published` is the other half of "a disk that lies": given what
the kiosk's own retained status on the broker claims (``last_seq`` and
``last_hash``, sealed with this store's key), it notices when the store is
behind what was already published and continues the chain after the
published seq, so no seq is ever published twice with different contents:
a ``seq_gap`` at published ``last_seq`` + 1 (``prev_hash`` = published
``last_hash``), the store's not-yet-acknowledged events re-chained after it
(each keeps its time, type and detail, plus ``rechained_from``), then a
``store_rollback`` alarm.

What may escape: StoreError from the store.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from kiosk.clock import ClockSnapshot
from kiosk.errors import ChainError
from kiosk.store import Anchor, Store
from protocol.events import Tail, Verdict, build_event, hash_ok, link
from protocol.times import format_time, parse_time

log = logging.getLogger(__name__)

MAX_UNSEALED_JUMP = 1_000_000  # seqs an unsealed claim may make this store skip


# ----- verification -----------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    seq: int  # the seq_gap event
    first: int  # seqs first..last are not in this store
    last: int
    reason: str


@dataclass
class TrailReport:
    anchor: Anchor
    count: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    gaps: list[Gap] = field(default_factory=list)
    rollbacks: list[dict[str, Any]] = field(default_factory=list)  # store_rollback details
    broken: ChainError | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def lines(self) -> list[str]:
        """What ``kiosk verify-log`` prints (one fact a line)."""
        a = self.anchor
        out = []
        if a.seq:
            why = {
                "disk_full": "freed to make room on a full card after the broker acknowledged them",
                "retention": "purged by retention after the broker acknowledged them",
            }.get(a.reason, f"purged ({a.reason})")
            when = f" at {format_time(a.at)}" if a.at else ""
            out.append(
                f"trail starts after seq {a.seq}: seqs 1 to {a.seq} were {why}{when}; "
                f"anchor hash {a.hash}"
            )
        else:
            out.append("trail starts at seq 1 (nothing purged)")
        for g in self.gaps:
            out.append(
                f"gap: seqs {g.first} to {g.last} are not in this store "
                f"(seq_gap at seq {g.seq}, reason {g.reason}); the chain continues from "
                "the hash the kiosk had published"
            )
        for r in self.rollbacks:
            out.append(
                f"rollback: at seq {r.get('seq')} the store was behind what it had published "
                f"(published seq {r.get('published_seq')}, store seq {r.get('local_seq')}; "
                f"{r.get('rechained', 0)} unacknowledged events renumbered)"
            )
        return out


def _rows(store: Store, since: int) -> Any:
    for row in store.iter_events(since):
        try:
            ev = row.as_dict()
        except ValueError:
            yield row.seq, None
            continue
        yield row.seq, ev


def _gap_explains(ev: dict[str, Any], tail: Tail) -> Gap | None:
    if ev.get("type") != "seq_gap" or not hash_ok(ev):
        return None
    d = ev.get("detail") or {}
    first, last = d.get("from"), d.get("to")
    if not isinstance(first, int) or not isinstance(last, int):
        return None
    seq = int(ev["seq"])
    if first != tail.seq + 1 or last != seq - 1:
        return None
    return Gap(seq, first, last, str(d.get("reason", "")))


def verify_trail(store: Store) -> TrailReport:
    """Verify the kept trail; never raises ChainError (see ``report.broken``)."""
    anchor = store.anchor()
    report = TrailReport(anchor)
    tail = Tail(anchor.seq, anchor.hash)
    for seq, ev in _rows(store, anchor.seq):
        if ev is None or ev.get("seq") != seq:
            report.broken = ChainError(seq, f"seq {seq}: stored row and body disagree")
            return report
        if seq != tail.seq + 1 or link(tail, ev).verdict is not Verdict.VERIFIED:
            gap = _gap_explains(ev, tail)
            if gap is None:
                if seq != tail.seq + 1:
                    msg = f"seq {tail.seq + 1} expected, found {seq}: an event is missing"
                    report.broken = ChainError(min(seq, tail.seq + 1), msg)
                else:
                    report.broken = ChainError(seq, link(tail, ev).message)
                return report
            report.gaps.append(gap)
        if ev.get("type") == "store_rollback":
            report.rollbacks.append({"seq": seq, **(ev.get("detail") or {})})
        tail = Tail(seq, str(ev["hash"]))
        report.count += 1
        report.first_seq = report.first_seq or seq
        report.last_seq = seq
    return report


def verify_store(store: Store) -> int:
    """The number of kept events verified; ChainError at the first real break
    (explained gaps and the retention anchor are not breaks)."""
    report = verify_trail(store)
    if report.broken is not None:
        raise report.broken
    return report.count


# ----- what was published -------------------------------------------------------


def seal(key: bytes, site: str, seq: int, hash_: str) -> str:
    """The seal on a status's (last_seq, last_hash): only this store's key makes it."""
    msg = f"pickup-kiosk status v1\n{site}\n{seq}\n{hash_}".encode()
    return hmac.new(key, msg, sha256).hexdigest()[:32]


def tail_claim(store: Store, site: str) -> dict[str, Any]:
    """``last_seq``, ``last_hash`` and ``seal`` for the status this store publishes."""
    tail = store.last_event()
    seq, hash_ = (
        (tail.seq, tail.hash) if tail else (store.chain_anchor().seq, store.chain_anchor().hash)
    )
    return {"last_seq": seq, "last_hash": hash_, "seal": seal(store.status_key(), site, seq, hash_)}


@dataclass(frozen=True)
class Claim:
    seq: int
    hash: str | None
    sealed: bool  # the seal verified with this store's key


def read_claim(doc: Any, site: str, key: bytes) -> Claim | None:
    """The (seq, hash) a retained status claims was published, or None."""
    if not isinstance(doc, dict) or doc.get("site") not in (site, None):
        return None
    seq = doc.get("last_seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= 2**53:
        return None
    h = doc.get("last_hash")
    hash_ = (
        h
        if isinstance(h, str) and len(h) == 64 and all(c in "0123456789abcdef" for c in h)
        else None
    )
    mark = doc.get("seal")
    sealed = (
        hash_ is not None
        and isinstance(mark, str)
        and hmac.compare_digest(mark, seal(key, site, seq, hash_))
    )
    return Claim(seq, hash_, sealed)


@dataclass(frozen=True)
class Outcome:
    what: str  # consistent | unknown | ignored | rollback | conflict
    detail: dict[str, Any] = field(default_factory=dict)


def check_published(store: Store, site: str, claim: Claim, snap: ClockSnapshot) -> Outcome:
    """Compare the store with what its retained status says was published; on
    a rollback continue the chain after it (module docstring)."""
    local = store.last_seq()
    if claim.seq <= local:
        if not claim.sealed or claim.hash is None:
            return Outcome("unknown", {"reason": "unsealed claim at or below the store's seq"})
        held = store.event_hash(claim.seq)
        if held is None:
            return Outcome("unknown", {"reason": "the claimed seq was purged here"})
        if held == claim.hash:
            return Outcome("consistent")
    elif not claim.sealed and claim.seq - local > MAX_UNSEALED_JUMP:
        log.warning(
            "ignored a retained status claiming seq %d (this store is at %d): not sealed "
            "by this store, and further ahead than %d",
            claim.seq,
            local,
            MAX_UNSEALED_JUMP,
        )
        return Outcome("ignored", {"published_seq": claim.seq, "local_seq": local})
    return _rollback(store, site, claim, snap, local)


def _rollback(store: Store, site: str, claim: Claim, snap: ClockSnapshot, local: int) -> Outcome:
    published = Tail(claim.seq, claim.hash or "0" * 64)
    with store.atomic(low=False):
        local = store.last_seq()
        first_unacked = store.first_unacked_seq()
        start = first_unacked if first_unacked is not None else local + 1
        base = {
            "published_seq": claim.seq,
            "published_hash": claim.hash,
            "local_seq": local,
            "verified": claim.sealed,
        }
        if start > claim.seq and claim.seq <= local:
            # The store's acknowledged events disagree with the claim: nothing
            # unpublished to move; say so and continue as we are.
            detail = {**base, "rechained": 0, "reason": "acknowledged_events_differ"}
            _append(store, site, snap, "store_rollback", detail)
            return Outcome("conflict", detail)
        moved = [e.as_dict() for e in store.events_since(start - 1)]
        rows: list[tuple[int, str, str | None, float, str, str]] = []
        tail = published
        gap = build_event(
            site=site,
            seq=tail.seq + 1,
            prev_hash=tail.hash,
            ts=snap.now,
            clock=snap.state,
            type_="seq_gap",
            detail={"from": start, "to": claim.seq, "reason": "store_rollback"},
        )
        rows.append(_row(gap, snap.now))
        tail = Tail(gap["seq"], gap["hash"])
        for old in moved:
            ts = _ts(old, snap)
            ev = build_event(
                site=site,
                seq=tail.seq + 1,
                prev_hash=tail.hash,
                ts=ts,
                clock=str(old.get("clock", snap.state)),
                type_=str(old["type"]),
                order_id=old.get("order_id"),
                detail={**(old.get("detail") or {}), "rechained_from": old["seq"]},
            )
            rows.append(_row(ev, ts))
            tail = Tail(ev["seq"], ev["hash"])
        store.replace_events_from(start, rows)
        detail = {**base, "rechained": len(moved), "gap_seq": gap["seq"]}
        _append(store, site, snap, "store_rollback", detail)
    log.error(
        "the store is behind what this kiosk published (published seq %d, store seq %d): "
        "continuing after seq %d; %d unacknowledged events renumbered",
        claim.seq,
        local,
        claim.seq,
        len(moved),
    )
    return Outcome("rollback", detail)


def _ts(ev: dict[str, Any], snap: ClockSnapshot) -> float:
    try:
        return parse_time(ev.get("ts"))
    except ValueError:
        return snap.now


def _row(ev: dict[str, Any], ts: float) -> tuple[int, str, str | None, float, str, str]:
    body = json.dumps(ev, ensure_ascii=False, separators=(",", ":"))
    return (ev["seq"], ev["type"], ev.get("order_id"), ts, body, ev["hash"])


def _append(
    store: Store, site: str, snap: ClockSnapshot, type_: str, detail: dict[str, Any]
) -> None:
    last = store.last_event()
    tail = Tail(last.seq, last.hash) if last else store.chain_anchor()
    ev = build_event(
        site=site,
        seq=tail.seq + 1,
        prev_hash=tail.hash,
        ts=snap.now,
        clock=snap.state,
        type_=type_,
        detail=detail,
    )
    store.insert_event_row(
        ev["seq"], type_, order_id=None, ts=snap.now, body=_row(ev, snap.now)[4], hash_=ev["hash"]
    )
