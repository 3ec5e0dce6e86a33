"""The store's trail queries: where the kept chain starts, and what retention may free.

A mixin of :class:`kiosk.store.Store`. The policy (when, how much, at which
judged time) is :mod:`kiosk.retention`'s and the chain logic
:mod:`kiosk.trail`'s; here is only SQL, each call its own short write
transaction so the door's commits never wait long behind one.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from kiosk.schema import StoredEvent, event_from_row
from kiosk.storebase import StoreBase
from protocol.events import ZERO_HASH, Tail

META_STATUS_KEY = "status_key"
META_ANCHOR_SEQ = "chain_anchor_seq"
META_ANCHOR_HASH = "chain_anchor_hash"
META_ANCHOR_WHY = "chain_anchor_reason"
META_ANCHOR_AT = "chain_anchor_at"


@dataclass(frozen=True)
class Anchor:
    """Where the kept trail starts: the last event purged (seq 0: nothing purged)."""

    seq: int
    hash: str
    reason: str  # "" | retention | disk_full
    at: float


class TrailQueries(StoreBase):
    def last_event(self) -> StoredEvent | None:
        rows = self._q("SELECT * FROM events ORDER BY seq DESC LIMIT 1")
        return event_from_row(rows[0]) if rows else None

    def last_seq(self) -> int:
        last = self.last_event()
        if last is not None:
            return last.seq
        return self.chain_anchor().seq

    # ----- the chain's start ------------------------------------------------

    def chain_anchor(self) -> Tail:
        """Where the kept trail starts: the last purged event (or the chain's start)."""
        a = self.anchor()
        return Tail(a.seq, a.hash)

    def anchor(self) -> Anchor:
        rows = self._q(
            "SELECT key, value FROM meta WHERE key IN (?, ?, ?, ?)",
            (META_ANCHOR_SEQ, META_ANCHOR_HASH, META_ANCHOR_WHY, META_ANCHOR_AT),
        )
        meta = {r["key"]: r["value"] for r in rows}
        try:
            seq = int(meta.get(META_ANCHOR_SEQ) or 0)
            at = float(meta.get(META_ANCHOR_AT) or 0)
        except ValueError:
            seq, at = 0, 0.0
        return Anchor(
            seq,
            meta.get(META_ANCHOR_HASH) or ZERO_HASH,
            meta.get(META_ANCHOR_WHY) or ("retention" if seq else ""),
            at if math.isfinite(at) else 0.0,
        )

    def status_key(self) -> bytes:
        """This store's secret for sealing the status it publishes (kiosk.trail)."""
        key = self.get_meta(META_STATUS_KEY)
        if not key:
            with self.atomic(low=False):
                self._x(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)",
                    (META_STATUS_KEY, secrets.token_hex(32)),
                )
            key = self.get_meta(META_STATUS_KEY) or ""
        return bytes.fromhex(key)

    def replace_events_from(
        self, seq: int, rows: Sequence[tuple[int, str, str | None, float, str, str]]
    ) -> int:
        """Low level (kiosk.trail, inside its transaction): drop events from
        ``seq`` on and insert ``rows`` (seq, type, order_id, ts, body, hash) unacknowledged."""
        n = self._x("DELETE FROM events WHERE seq >= ?", (seq,)).rowcount
        self._xmany(
            "INSERT INTO events(seq, type, order_id, ts, body, hash, acked) "
            "VALUES (?, ?, ?, ?, ?, ?, 0)",
            rows,
        )
        return int(n)

    def latest_of(self, types: Sequence[str]) -> StoredEvent | None:
        """The newest kept event of one of these types."""
        marks = ",".join("?" for _ in types)
        rows = self._q(
            f"SELECT * FROM events WHERE type IN ({marks}) ORDER BY seq DESC LIMIT 1",  # noqa: S608
            list(types),
        )
        return event_from_row(rows[0]) if rows else None

    def first_unacked_seq(self) -> int | None:
        s = self._q("SELECT min(seq) AS s FROM events WHERE acked = 0")[0]["s"]
        return None if s is None else int(s)

    def event_hash(self, seq: int) -> str | None:
        """The stored hash of ``seq`` (the anchor's when ``seq`` is the anchor)."""
        rows = self._q("SELECT hash FROM events WHERE seq = ?", (seq,))
        if rows:
            return str(rows[0]["hash"])
        anchor = self.chain_anchor()
        return anchor.hash if seq == anchor.seq and seq else None

    def count_events(self) -> int:
        return int(self._q("SELECT count(*) AS n FROM events")[0]["n"])

    def count_logs(self) -> int:
        return int(self._q("SELECT count(*) AS n FROM logs")[0]["n"])

    # ----- retention (the policy is kiosk.retention's) ------------------------

    def purgeable_order_ids(self, *, done_before: float, expired_before: float) -> list[str]:
        """Collected or cancelled orders last changed before ``done_before``, and
        orders of any other status whose ``expires_at`` is before ``expired_before``."""
        rows = self._q(
            "SELECT order_id FROM orders WHERE "
            "(status IN ('collected', 'cancelled') AND updated_at < ?) "
            "OR (status NOT IN ('collected', 'cancelled') AND expires_at IS NOT NULL "
            "AND expires_at < ?) ORDER BY order_id",
            (done_before, expired_before),
        )
        return [str(r["order_id"]) for r in rows]

    def _bury(self, kind: str, table: str, key: str, ids: Sequence[str], now: float) -> None:
        """Inside the caller's transaction: remember the version each of ``ids``
        had (the larger of it and an older tombstone's) before it is deleted."""
        marks = ",".join("?" for _ in ids)
        self._x(
            f"INSERT INTO tombstones(kind, id, version, at) "  # noqa: S608
            f"SELECT ?, {key}, version, ? FROM {table} WHERE {key} IN ({marks}) "
            "ON CONFLICT(kind, id) DO UPDATE SET "
            "version = max(version, excluded.version), at = excluded.at",
            [kind, now, *ids],
        )

    def purge_orders(self, ids: Sequence[str], now: float = 0.0) -> int:
        """Forget these orders and their one-time-code state, in one transaction
        (their tombstones stay: see :meth:`purge_tombstones`)."""
        if not ids:
            return 0
        with self.atomic(low=False):
            self._bury("order", "orders", "order_id", ids, now)
            marks = ",".join("?" for _ in ids)
            n = self._x(f"DELETE FROM orders WHERE order_id IN ({marks})", list(ids)).rowcount  # noqa: S608
            self._x(f"DELETE FROM used_steps WHERE order_id IN ({marks})", list(ids))  # noqa: S608
        return int(n)

    def acked_front(self, before_ts: float | None = None) -> tuple[int, int]:
        """The acknowledged run at the chain's front: (last seq that may go, how many).

        Events leave only from the front and only while every event up to
        them is acknowledged; with ``before_ts``, only those recorded earlier.
        (0, 0) when nothing may go.
        """
        first_unacked = self.first_unacked_seq()
        limit = first_unacked - 1 if first_unacked is not None else self.last_seq()
        if before_ts is None:
            last = limit
        else:
            row = self._q(
                "SELECT max(seq) AS s FROM events WHERE seq <= ? AND ts < ?", (limit, before_ts)
            )[0]["s"]
            last = int(row) if row is not None else 0
        anchor = self.chain_anchor().seq
        if last <= anchor:
            return 0, 0
        n = self._q("SELECT count(*) AS n FROM events WHERE seq > ? AND seq <= ?", (anchor, last))[
            0
        ]["n"]
        return last, int(n)

    def purge_events_through(self, seq: int, *, reason: str, at: float) -> int:
        """Delete the front of the trail up to ``seq`` (only acknowledged events;
        stops before the first one that is not) and move the anchor there."""
        with self.atomic(low=False):
            first_unacked = self.first_unacked_seq()
            if first_unacked is not None:
                seq = min(seq, first_unacked - 1)
            rows = self._q("SELECT hash FROM events WHERE seq = ?", (seq,))
            if not rows:
                return 0
            n = self._x("DELETE FROM events WHERE seq <= ?", (seq,)).rowcount
            for key, value in (
                (META_ANCHOR_SEQ, str(seq)),
                (META_ANCHOR_HASH, str(rows[0]["hash"])),
                (META_ANCHOR_WHY, reason),
                (META_ANCHOR_AT, repr(float(at))),
            ):
                self._x(
                    "INSERT INTO meta(key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
        return int(n)

    def purgeable_logs(self, before_ts: float | None = None) -> int:
        if before_ts is None:
            rows = self._q("SELECT count(*) AS n FROM logs WHERE acked = 1")
        else:
            rows = self._q(
                "SELECT count(*) AS n FROM logs WHERE acked = 1 AND ts < ?", (before_ts,)
            )
        return int(rows[0]["n"])

    def purge_logs(self, before_ts: float | None, limit: int) -> int:
        """Delete up to ``limit`` acknowledged log records (older than ``before_ts``)."""
        cut = math.inf if before_ts is None else before_ts
        with self.atomic(low=False):
            return int(
                self._x(
                    "DELETE FROM logs WHERE seq IN (SELECT seq FROM logs WHERE acked = 1 "
                    "AND ts < ? ORDER BY seq LIMIT ?)",
                    (cut, limit),
                ).rowcount
            )

    def purge_used_steps(self, before: float) -> int:
        """TOTP steps used before ``before`` (the backup code's marker, step -1, stays)."""
        with self.atomic(low=False):
            return int(
                self._x(
                    "DELETE FROM used_steps WHERE step >= 0 AND used_at < ?", (before,)
                ).rowcount
            )

    def purge_tombstones(self, before: float) -> int:
        """Order tombstones laid before ``before``; a staff code's are kept for good
        (few, and a revocation must never be undone by a replay)."""
        with self.atomic(low=False):
            return int(
                self._x(
                    "DELETE FROM tombstones WHERE kind = 'order' AND at < ?", (before,)
                ).rowcount
            )

    def purge_commands(self, before: float) -> int:
        """Forget command ids whose reception and expiry are both before ``before``
        (never one the door may still carry out)."""
        with self.atomic(low=False):
            return int(
                self._x(
                    "DELETE FROM commands WHERE state NOT IN ('pending', 'running') "
                    "AND max(received_at, coalesce(expires_at, received_at)) < ?",
                    (before,),
                ).rowcount
            )

    def count_purgeable_commands(self, before: float) -> int:
        rows = self._q(
            "SELECT count(*) AS n FROM commands WHERE state NOT IN ('pending', 'running') "
            "AND max(received_at, coalesce(expires_at, received_at)) < ?",
            (before,),
        )
        return int(rows[0]["n"])
