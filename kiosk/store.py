"""The kiosk's one SQLite file, shared by the door daemon and the sync agent.

A small facade (docs/design.md, "Store"): dataclasses in and out,
``atomic()`` around multi-step writes (nested calls are savepoints), typed
accessors for the state the two processes share. The plumbing (files 0600
from the first byte, WAL with ``synchronous=FULL``, race-free numbered
migrations, the space policy, the one error path) is
:class:`kiosk.storebase.StoreBase`; the trail and retention queries are
:class:`kiosk.storetrail.TrailQueries`; the rows are :mod:`kiosk.schema`.

What may escape: :class:`StoreError` (and its leaf :class:`StoreFull`) for
anything SQLite or the file system refuses (disk full, read-only, locked
past the timeout, corrupt file, constraint violations), and nothing else
from SQLite.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

from kiosk.schema import (
    MIGRATIONS,
    DoorStatus,
    LogRecord,
    OrderRow,
    StaffRow,
    StoredEvent,
    ThrottleRow,
    event_from_row,
    staff_key,
)
from kiosk.storebase import DOOR_HEADROOM, LOW_WATER, StoreFull
from kiosk.storetrail import Anchor, TrailQueries

__all__ = [
    "DOOR_HEADROOM",
    "LOW_WATER",
    "MIGRATIONS",
    "Anchor",
    "DoorStatus",
    "LogRecord",
    "OrderRow",
    "StaffRow",
    "Store",
    "StoreFull",
    "StoredEvent",
    "ThrottleRow",
    "staff_key",
]

log = logging.getLogger(__name__)

META_DOOR_STATUS = "door_status"
META_MQTT_ONLINE = "mqtt_online"
META_CLOCK_FLOOR = "clock_floor"
META_DOC_FLOOR = "clock_doc_floor"
META_SIGNED_TIME = "signed_time"
META_CLOCK_EPOCH = "clock_epoch"
COMMAND_STATES = ("pending", "running", "done", "failed", "refused", "cancelled", "blocked")


class Store(TrailQueries):
    """One SQLite file; safe to share between threads of one process and
    between the door daemon and the sync agent."""

    # ----- meta: the state the two processes share ------------------------

    def _meta_float(self, key: str) -> float:
        try:
            value = float(self.get_meta(key, "0") or 0)
        except ValueError:
            return 0.0
        return value if math.isfinite(value) else 0.0

    def door_status(self) -> DoorStatus:
        """What the door daemon last reported (defaults when absent or garbled)."""
        raw = self.get_meta(META_DOOR_STATUS)
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        return DoorStatus.from_dict(data if isinstance(data, dict) else {})

    def set_door_status(self, status: DoorStatus) -> None:
        self.set_meta(META_DOOR_STATUS, json.dumps(status.as_dict(), sort_keys=True))

    def mqtt_online(self) -> bool:
        return self.get_meta(META_MQTT_ONLINE) == "1"

    def set_mqtt_online(self, online: bool) -> None:
        self.set_meta(META_MQTT_ONLINE, "1" if online else "0")

    def clock_floor(self) -> float:
        """The persisted evidence floor (docs/protocol.md, "Time")."""
        return self._meta_float(META_CLOCK_FLOOR)

    def clock_epoch(self) -> int:
        """How many times the owner lowered the floor (:meth:`lower_clock_floor`)."""
        return int(self._meta_float(META_CLOCK_EPOCH))

    def save_clock_floor(self, t: float, epoch: int | None = None) -> None:
        """Persist a lower bound on true time; it never moves back. With ``epoch``
        (the one the caller's floor belongs to), nothing is written once the owner
        has lowered the floor since: a stale process must not push it back up."""
        if not math.isfinite(t):
            return
        with self.atomic(low=False):
            if epoch is not None and epoch != self.clock_epoch():
                return
            self._x(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = max(CAST(value AS REAL), "
                "CAST(excluded.value AS REAL))",
                (META_CLOCK_FLOOR, repr(float(t))),
            )

    def lower_clock_floor(self, t: float) -> int:
        """The owner's repair of a floor that is too far ahead (docs/protocol.md,
        "Time"): set it to ``t``, clear the document floor, and start a new epoch
        that the door daemon adopts. Returns the new epoch."""
        with self.atomic(low=False):
            epoch = self.clock_epoch() + 1
            for key, value in (
                (META_CLOCK_FLOOR, repr(float(t))),
                (META_DOC_FLOOR, repr(0.0)),
                (META_CLOCK_EPOCH, str(epoch)),
            ):
                self.set_meta(key, value)
        return epoch

    def doc_floor(self) -> float:
        """The floor signed documents raised (0: none, or discarded)."""
        return self._meta_float(META_DOC_FLOOR)

    def save_doc_floor(self, t: float) -> None:
        """Set (or with 0, clear) the document floor; it is bounded before it gets here."""
        if math.isfinite(t):
            self.set_meta(META_DOC_FLOOR, repr(float(t)))

    def signed_time(self) -> float:
        """The latest signed time the sync agent saw (the door confirms its clock with it)."""
        return self._meta_float(META_SIGNED_TIME)

    def save_signed_time(self, t: float) -> None:
        if math.isfinite(t):
            self.set_meta(META_SIGNED_TIME, repr(float(t)))

    # ----- orders ---------------------------------------------------------

    def get_order(self, order_id: str) -> OrderRow | None:
        rows = self._q("SELECT * FROM orders WHERE order_id = ?", (order_id,))
        return OrderRow.from_row(rows[0]) if rows else None

    def orders_by_pickup_no(self, pickup_no: str) -> list[OrderRow]:
        """Orders holding this pickup number, newest issue first (index look-up)."""
        rows = self._q(
            "SELECT * FROM orders WHERE pickup_no = ? ORDER BY issued_at DESC, version DESC",
            (pickup_no,),
        )
        return [OrderRow.from_row(r) for r in rows]

    def list_orders(self, status: str | None = None) -> list[OrderRow]:
        if status:
            rows = self._q("SELECT * FROM orders WHERE status = ? ORDER BY pickup_no", (status,))
        else:
            rows = self._q("SELECT * FROM orders ORDER BY pickup_no, order_id")
        return [OrderRow.from_row(r) for r in rows]

    def count_orders(self, status: str | None = None) -> int:
        if status:
            rows = self._q("SELECT count(*) AS n FROM orders WHERE status = ?", (status,))
        else:
            rows = self._q("SELECT count(*) AS n FROM orders")
        return int(rows[0]["n"])

    def put_order(self, order: OrderRow) -> None:
        with self.atomic():
            row = order.to_row()
            cols = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            self._x(f"INSERT OR REPLACE INTO orders ({cols}) VALUES ({marks})", list(row.values()))  # noqa: S608

    def delete_order(self, order_id: str, now: float = 0.0) -> bool:
        """Forget an order and its one-time-code state, keeping its tombstone."""
        with self.atomic(low=False):
            self._bury("order", "orders", "order_id", [order_id], now)
            cur = self._x("DELETE FROM orders WHERE order_id = ?", (order_id,))
            self._x("DELETE FROM used_steps WHERE order_id = ?", (order_id,))
            return cur.rowcount > 0

    # ----- tombstones: the version each forgotten document had ---------------

    def forgotten_version(self, kind: str, ident: str) -> int | None:
        """The version held when ``ident`` (kind ``order`` or ``staff``) was forgotten."""
        rows = self._q("SELECT version FROM tombstones WHERE kind = ? AND id = ?", (kind, ident))
        return int(rows[0]["version"]) if rows else None

    # ----- one-time use ---------------------------------------------------

    def step_used(self, order_id: str, step: int) -> bool:
        rows = self._q(
            "SELECT 1 AS x FROM used_steps WHERE order_id = ? AND step = ?", (order_id, step)
        )
        return bool(rows)

    def mark_step_used(self, order_id: str, step: int, now: float) -> bool:
        """Record (order, step) as used; False if it already was."""
        with self.atomic():
            cur = self._x(
                "INSERT OR IGNORE INTO used_steps(order_id, step, used_at) VALUES (?, ?, ?)",
                (order_id, step, now),
            )
            return cur.rowcount == 1

    # ----- throttle -------------------------------------------------------

    # ----- staff and courier codes -----------------------------------------

    def get_staff(self, staff_id: str) -> StaffRow | None:
        rows = self._q("SELECT * FROM staff WHERE staff_id = ?", (staff_id,))
        return StaffRow.from_row(rows[0]) if rows else None

    def staff_by_no(self, staff_no: str) -> list[StaffRow]:
        rows = self._q("SELECT * FROM staff WHERE staff_no = ?", (staff_no,))
        return [StaffRow.from_row(r) for r in rows]

    def list_staff(self) -> list[StaffRow]:
        return [StaffRow.from_row(r) for r in self._q("SELECT * FROM staff ORDER BY staff_no")]

    def count_staff(self) -> int:
        return int(self._q("SELECT count(*) AS n FROM staff WHERE revoked = 0")[0]["n"])

    def put_staff(self, staff: StaffRow) -> None:
        with self.atomic():
            row = staff.to_row()
            cols = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            self._x(f"INSERT OR REPLACE INTO staff ({cols}) VALUES ({marks})", list(row.values()))  # noqa: S608

    def delete_staff(self, staff_id: str, now: float = 0.0) -> bool:
        """Forget a staff code and its used steps, keeping its tombstone."""
        with self.atomic():
            self._bury("staff", "staff", "staff_id", [staff_id], now)
            cur = self._x("DELETE FROM staff WHERE staff_id = ?", (staff_id,))
            self._x("DELETE FROM used_steps WHERE order_id = ?", (staff_key(staff_id),))
            return cur.rowcount > 0

    def get_throttle(self, key: str) -> ThrottleRow | None:
        rows = self._q("SELECT * FROM throttle WHERE key = ?", (key,))
        return ThrottleRow(**rows[0]) if rows else None

    def put_throttle(self, row: ThrottleRow) -> None:
        with self.atomic():
            self._x(
                "INSERT OR REPLACE INTO throttle(key, failures, tokens, until, updated) "
                "VALUES (?, ?, ?, ?, ?)",
                (row.key, row.failures, row.tokens, row.until, row.updated),
            )

    def rebase_throttle(self, now: float) -> int:
        """Rows written later than ``now`` (the clock was put back): each wait
        counts again from now and each bucket refills from now (kiosk.throttle)."""
        with self.atomic():
            return int(
                self._x(
                    "UPDATE throttle SET until = CASE WHEN until > updated "
                    "THEN ? + (until - updated) ELSE 0 END, updated = ? WHERE updated > ?",
                    (now, now, now),
                ).rowcount
            )

    def clear_throttle(self, key: str) -> None:
        with self.atomic():
            self._x("DELETE FROM throttle WHERE key = ?", (key,))

    # ----- events (the audit trail) ---------------------------------------

    def insert_event_row(
        self, seq: int, type_: str, *, order_id: str | None, ts: float, body: str, hash_: str
    ) -> None:
        """Low level: used by kiosk.audit inside its own transaction."""
        self._x(
            "INSERT INTO events(seq, type, order_id, ts, body, hash, acked) "
            "VALUES (?, ?, ?, ?, ?, ?, 0)",
            (seq, type_, order_id, ts, body, hash_),
        )

    def events_since(self, seq: int = 0, limit: int | None = None) -> list[StoredEvent]:
        sql = "SELECT * FROM events WHERE seq > ? ORDER BY seq"
        params: list[Any] = [seq]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [event_from_row(r) for r in self._q(sql, params)]

    def iter_events(self, since: int = 0, batch: int = 1000) -> Iterator[StoredEvent]:
        while True:
            chunk = self.events_since(since, batch)
            if not chunk:
                return
            yield from chunk
            since = chunk[-1].seq

    def outbox(self, limit: int = 100, after_seq: int = 0) -> list[StoredEvent]:
        rows = self._q(
            "SELECT * FROM events WHERE acked = 0 AND seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        return [event_from_row(r) for r in rows]

    def outbox_size(self) -> int:
        return int(self._q("SELECT count(*) AS n FROM events WHERE acked = 0")[0]["n"])

    def mark_events_acked(self, seqs: Sequence[int], now: float) -> None:
        if not seqs:
            return
        with self.atomic(low=False):  # acknowledged rows are what retention may free
            self._xmany(
                "UPDATE events SET acked = 1, acked_at = ? WHERE seq = ?",
                [(now, s) for s in seqs],
            )

    # ----- log records going up ---------------------------------------------

    def append_log(self, ts: float, level: str, logger: str, message: str) -> int:
        """Queue a log record; StoreFull when the card is nearly full (records
        are the first thing to go without: journald has them too)."""
        with self.atomic(low=True):
            cur = self._x(
                "INSERT INTO logs(ts, level, logger, message, acked) VALUES (?, ?, ?, ?, 0)",
                (ts, level, logger, message),
            )
            return int(cur.lastrowid or 0)

    def logs_since(
        self, seq: int = 0, limit: int = 100, unacked_only: bool = False
    ) -> list[LogRecord]:
        where = "seq > ?" + (" AND acked = 0" if unacked_only else "")
        rows = self._q(
            f"SELECT seq, ts, level, logger, message FROM logs WHERE {where} ORDER BY seq LIMIT ?",  # noqa: S608
            (seq, limit),
        )
        return [LogRecord(**r) for r in rows]

    def mark_logs_acked(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        with self.atomic(low=False):
            self._xmany("UPDATE logs SET acked = 1 WHERE seq = ?", [(s,) for s in seqs])

    def logs_outbox_size(self) -> int:
        return int(self._q("SELECT count(*) AS n FROM logs WHERE acked = 0")[0]["n"])

    # ----- commands -------------------------------------------------------

    def command_seen(self, cmd_id: str) -> bool:
        return bool(self._q("SELECT 1 AS x FROM commands WHERE cmd_id = ?", (cmd_id,)))

    def record_command(
        self,
        cmd_id: str,
        cmd: str,
        *,
        received_at: float,
        expires_at: float,
        state: str,
        error: str = "",
        args: dict[str, Any] | None = None,
    ) -> bool:
        """Remember a command id; False if it was already known (a replay)."""
        with self.atomic():
            cur = self._x(
                "INSERT OR IGNORE INTO commands(cmd_id, cmd, received_at, expires_at, state, "
                "error, args) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    cmd_id,
                    cmd,
                    received_at,
                    expires_at,
                    state,
                    error,
                    json.dumps(args or {}, ensure_ascii=False),
                ),
            )
            return cur.rowcount == 1

    def command_state(self, cmd_id: str) -> str | None:
        rows = self._q("SELECT state FROM commands WHERE cmd_id = ?", (cmd_id,))
        return str(rows[0]["state"]) if rows else None

    def pending_commands(self) -> list[dict[str, Any]]:
        """Commands waiting for the door or being carried out (read only)."""
        return self._q(
            "SELECT cmd_id, cmd, received_at, expires_at, args, state FROM commands "
            "WHERE state IN ('pending', 'running') ORDER BY received_at"
        )

    def pending_door_commands(self) -> list[dict[str, Any]]:
        """The door takes the pending unlocks: each row moves to ``running`` as
        it is read, in one statement, so a ``cancel`` either withdraws an unlock
        before the door saw it or finds it taken, never both."""
        with self.atomic():
            rows = self._q(
                "UPDATE commands SET state = 'running' WHERE state = 'pending' AND cmd = 'unlock' "
                "RETURNING cmd_id, cmd, received_at, expires_at, args"
            )
        return sorted(rows, key=lambda r: (r["received_at"], r["cmd_id"]))

    def finish_command(self, cmd_id: str, state: str, error: str = "") -> None:
        if state not in COMMAND_STATES:
            raise ValueError(f"not a command state: {state!r}")
        with self.atomic(low=False):
            self._x(
                "UPDATE commands SET state = ?, error = ? WHERE cmd_id = ?", (state, error, cmd_id)
            )

    def get_command(self, cmd_id: str) -> dict[str, Any] | None:
        rows = self._q("SELECT * FROM commands WHERE cmd_id = ?", (cmd_id,))
        return rows[0] if rows else None

    def fail_command_if(self, cmd_id: str, states: Sequence[str], error: str) -> bool:
        """Mark a command failed only if it is still in one of ``states``.

        A compare-and-set, so the sync agent's timeout never overwrites the
        door daemon's outcome. Returns whether this call changed the row.
        """
        marks = ",".join("?" for _ in states)
        with self.atomic(low=False):
            cur = self._x(
                f"UPDATE commands SET state = 'failed', error = ? "  # noqa: S608
                f"WHERE cmd_id = ? AND state IN ({marks})",
                (error, cmd_id, *states),
            )
            return cur.rowcount == 1

    def fail_command_if_pending(self, cmd_id: str, error: str) -> bool:
        return self.fail_command_if(cmd_id, ("pending",), error)

    def cancel_command(
        self, target: str, *, by: str, received_at: float, remember_until: float
    ) -> str:
        """Withdraw ``target`` for a ``cancel`` command, atomically; return its state.

        ``cancelled``: it was pending and now never runs. ``blocked``: it was
        not seen yet; a tombstone makes it refused (``cancelled``) if it comes.
        ``running``: the door has it right now. Anything else (``done``,
        ``failed``, ``refused``): there was nothing left to withdraw.
        """
        error = f"cancelled by {by}"
        with self.atomic(low=False):
            state = self.command_state(target)
            if state is None:
                self._x(
                    "INSERT INTO commands(cmd_id, cmd, received_at, expires_at, state, error, "
                    "args) VALUES (?, '', ?, ?, 'blocked', ?, '{}')",
                    (target, received_at, remember_until, error),
                )
                return "blocked"
            if state == "pending":
                self._x(
                    "UPDATE commands SET state = 'cancelled', error = ? "
                    "WHERE cmd_id = ? AND state = 'pending'",
                    (error, target),
                )
                return "cancelled"
            return state

    def refuse_blocked(self, cmd_id: str, cmd: str, expires_at: float) -> bool:
        """A command that arrives after its tombstone: remember it refused."""
        with self.atomic(low=False):
            cur = self._x(
                "UPDATE commands SET cmd = ?, state = 'refused', error = 'cancelled', "
                "expires_at = max(coalesce(expires_at, 0), ?) "
                "WHERE cmd_id = ? AND state = 'blocked'",
                (cmd, expires_at, cmd_id),
            )
            return cur.rowcount == 1

    def purge(self, now: float, **_retention: float | None) -> dict[str, int]:
        """Retention moved to :mod:`kiosk.retention` (run by the sync agent),
        which knows whether the clock is trusted; this entry point, kept for
        callers that only have a time, deletes nothing."""
        log.debug("Store.purge(%.0f) ignored: kiosk.retention runs retention", now)
        return {"orders": 0, "events": 0, "logs": 0}

    def held_order_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` the store holds (one query per 500)."""
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = list(ids[i : i + 500])
            marks = ",".join("?" for _ in chunk)
            rows = self._q(
                f"SELECT order_id FROM orders WHERE order_id IN ({marks})",  # noqa: S608
                chunk,
            )
            found.update(str(r["order_id"]) for r in rows)
        return found
