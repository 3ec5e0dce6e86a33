"""The kiosk's one SQLite file, shared by the door daemon and the sync agent.

A small facade (docs/design.md, "Store"): dataclasses in and out,
``atomic()`` around multi-step writes (nested calls are savepoints), typed
accessors for the state the two processes share, numbered migrations each
in one transaction. The file is in WAL mode with ``synchronous=FULL`` so a
commit that returned survives a power cut, and a busy timeout so the second
writer waits instead of failing.

sqlite-utils does what it is good at: creating the tables and indexes of
the migrations from plain Python descriptions. Every statement at run time
is plain SQL through :meth:`Store._q` and :meth:`Store._x`, the one path
that maps SQLite's errors: the hot paths (a keypress, a batch of orders)
cannot afford sqlite-utils' per-call table introspection, and one path is
what lets the promise below hold.

What may escape: :class:`StoreError` for anything SQLite or the file system
refuses (disk full, read-only, locked past the timeout, corrupt file,
constraint violations), and nothing else from SQLite.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from kiosk.errors import StoreError
from protocol.events import ZERO_HASH, Tail

log = logging.getLogger(__name__)


META_DOOR_STATUS = "door_status"
META_MQTT_ONLINE = "mqtt_online"
META_CLOCK_FLOOR = "clock_floor"
META_DOC_FLOOR = "clock_doc_floor"
META_SIGNED_TIME = "signed_time"


def staff_key(staff_id: str) -> str:
    """Where a staff code's used steps are kept (beside the orders', never colliding:
    an order id cannot contain a colon)."""
    return f"staff:{staff_id}"


@dataclass(frozen=True)
class DoorStatus:
    """The door's state as the door daemon reports it to the sync agent."""

    door: str = "closed"  # closed | open
    lock: str = "locked"  # locked | unlocked
    mode: str = "night"  # night | day
    alarms: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DoorStatus:
        allowed = {
            "door": ("closed", "open"),
            "lock": ("locked", "unlocked"),
            "mode": ("night", "day"),
        }
        kw: dict[str, Any] = {k: data[k] for k, ok in allowed.items() if data.get(k) in ok}
        alarms = data.get("alarms")
        if isinstance(alarms, list):
            kw["alarms"] = tuple(a for a in alarms[:20] if isinstance(a, str) and len(a) <= 64)
        return cls(**kw)

    def as_dict(self) -> dict[str, Any]:
        return {
            "door": self.door,
            "lock": self.lock,
            "mode": self.mode,
            "alarms": list(self.alarms),
        }


def _m1(db: sqlite_utils.Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("orders").create(
        {
            "order_id": str,
            "version": int,
            "status": str,
            "pickup_no": str,
            "slot": str,
            "issued_at": float,
            "expires_at": float,
            "collected_at": float,
            "collected_locally": int,
            "otp_secret": str,
            "otp_digits": int,
            "otp_period": int,
            "backup_code": int,
            "doc": str,  # the whole accepted document, unknown fields kept
            "updated_at": float,
        },
        pk="order_id",
        not_null={"version", "status", "pickup_no", "doc"},
    )
    db.table("orders").create_index(["pickup_no"])
    db.table("orders").create_index(["status"])
    db.table("events").create(
        {
            "seq": int,
            "type": str,
            "order_id": str,
            "ts": float,
            "body": str,  # the exact JSON published, hash included
            "hash": str,
            "acked": int,
            "acked_at": float,
        },
        pk="seq",
        not_null={"type", "ts", "body", "hash", "acked"},
    )
    db.execute("CREATE INDEX idx_events_unacked ON events(seq) WHERE acked = 0")
    db.table("used_steps").create(
        {"order_id": str, "step": int, "used_at": float}, pk=("order_id", "step")
    )
    db.table("throttle").create(
        {"key": str, "failures": int, "tokens": float, "until": float, "updated": float},
        pk="key",
    )
    db.table("commands").create(
        {
            "cmd_id": str,
            "cmd": str,
            "received_at": float,
            "expires_at": float,
            "state": str,  # refused | done | pending (for the door) | failed
            "error": str,
            "args": str,
        },
        pk="cmd_id",
    )
    db.table("logs").create(
        {"seq": int, "ts": float, "level": str, "logger": str, "message": str, "acked": int},
        pk="seq",
        not_null={"ts", "level", "message", "acked"},
    )
    db.execute("CREATE INDEX idx_logs_unacked ON logs(seq) WHERE acked = 0")


def _m2(db: sqlite_utils.Database) -> None:
    """Staff and courier codes (docs/protocol.md, "Staff and courier codes")."""
    db.table("staff").create(
        {
            "staff_id": str,
            "version": int,
            "staff_no": str,
            "name": str,
            "role": str,
            "valid_from": float,
            "valid_until": float,
            "schedule": str,  # JSON list of windows
            "revoked": int,
            "otp_secret": str,
            "otp_digits": int,
            "otp_period": int,
            "doc": str,
            "updated_at": float,
        },
        pk="staff_id",
        not_null={"version", "staff_no", "otp_secret"},
    )
    db.table("staff").create_index(["staff_no"])


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (_m1, _m2)


@dataclass(frozen=True)
class OrderRow:
    order_id: str
    version: int
    status: str
    pickup_no: str
    slot: str | None
    issued_at: float | None
    expires_at: float | None
    collected_at: float | None
    collected_locally: bool
    otp_secret: str
    otp_digits: int
    otp_period: int
    backup_code: bool
    doc: dict[str, Any]
    updated_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> OrderRow:
        return cls(
            order_id=row["order_id"],
            version=row["version"],
            status=row["status"],
            pickup_no=row["pickup_no"],
            slot=row["slot"],
            issued_at=row["issued_at"],
            expires_at=row["expires_at"],
            collected_at=row["collected_at"],
            collected_locally=bool(row["collected_locally"]),
            otp_secret=row["otp_secret"],
            otp_digits=row["otp_digits"],
            otp_period=row["otp_period"],
            backup_code=bool(row["backup_code"]),
            doc=json.loads(row["doc"]),
            updated_at=row["updated_at"],
        )

    def to_row(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "version": self.version,
            "status": self.status,
            "pickup_no": self.pickup_no,
            "slot": self.slot,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "collected_at": self.collected_at,
            "collected_locally": int(self.collected_locally),
            "otp_secret": self.otp_secret,
            "otp_digits": self.otp_digits,
            "otp_period": self.otp_period,
            "backup_code": int(self.backup_code),
            "doc": json.dumps(self.doc, ensure_ascii=False, sort_keys=True),
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    type: str
    order_id: str | None
    ts: float
    body: str
    hash: str
    acked: bool

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result


@dataclass(frozen=True)
class LogRecord:
    seq: int
    ts: float
    level: str
    logger: str
    message: str


@dataclass(frozen=True)
class StaffRow:
    staff_id: str
    version: int
    staff_no: str
    name: str
    role: str
    valid_from: float | None
    valid_until: float | None
    schedule: list[dict[str, Any]]
    revoked: bool
    otp_secret: str
    otp_digits: int
    otp_period: int
    doc: dict[str, Any]
    updated_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StaffRow:
        return cls(
            staff_id=row["staff_id"],
            version=row["version"],
            staff_no=row["staff_no"],
            name=row["name"] or "",
            role=row["role"] or "staff",
            valid_from=row["valid_from"],
            valid_until=row["valid_until"],
            schedule=json.loads(row["schedule"] or "[]"),
            revoked=bool(row["revoked"]),
            otp_secret=row["otp_secret"],
            otp_digits=row["otp_digits"],
            otp_period=row["otp_period"],
            doc=json.loads(row["doc"] or "{}"),
            updated_at=row["updated_at"] or 0.0,
        )

    def to_row(self) -> dict[str, Any]:
        return {
            "staff_id": self.staff_id,
            "version": self.version,
            "staff_no": self.staff_no,
            "name": self.name,
            "role": self.role,
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "schedule": json.dumps(self.schedule, sort_keys=True),
            "revoked": int(self.revoked),
            "otp_secret": self.otp_secret,
            "otp_digits": self.otp_digits,
            "otp_period": self.otp_period,
            "doc": json.dumps(self.doc, ensure_ascii=False, sort_keys=True),
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class ThrottleRow:
    key: str
    failures: int
    tokens: float
    until: float
    updated: float


class Store:
    """One SQLite file; safe to share between threads of one process and
    between the door daemon and the sync agent."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                str(path),
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
                timeout=busy_timeout_ms / 1000,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(path) != ":memory:" and mode.lower() != "wal":
                raise StoreError(f"{path}: cannot switch the database to WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the database: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the database folder: {exc}") from exc
        self._conn = conn
        self._lock = threading.RLock()
        self._depth = 0
        self.rollbacks = 0  # nested rollbacks so far (cached tails check it)
        self.migrate()

    # ----- plumbing -------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE); nested calls are savepoints.

        Taking the write lock at BEGIN means a concurrent writer waits up to
        the busy timeout instead of failing half-way through. A nested block
        that raises rolls back only its own writes (and bumps ``rollbacks``,
        so cached reads of the chain's tail are dropped).
        """
        with self._lock:
            depth = self._depth
            name = f"sp{depth}"
            try:
                self._conn.execute(f"SAVEPOINT {name}" if depth else "BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot start a write: {exc}") from exc
            self._depth = depth + 1
            try:
                yield
            except BaseException:
                self._depth = depth
                self.rollbacks += 1
                try:
                    if depth:
                        self._conn.execute(f"ROLLBACK TO {name}")
                        self._conn.execute(f"RELEASE {name}")
                    else:
                        self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rollback failed")
                raise
            self._depth = depth
            try:
                self._conn.execute(f"RELEASE {name}" if depth else "COMMIT")
            except sqlite3.Error as exc:
                self.rollbacks += 1
                if not depth:
                    with suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                raise StoreError(f"{self.path}: cannot commit: {exc}") from exc

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            try:
                cur = self._conn.execute(sql, params)
                cols = [d[0] for d in cur.description or ()]
                return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: read failed: {exc}") from exc

    def _x(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._conn.execute(sql, params)
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: write failed: {exc}") from exc

    def _xmany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock:
            try:
                self._conn.executemany(sql, rows)
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: write failed: {exc}") from exc

    def on_statement(self, callback: Callable[[str], None] | None) -> None:
        """Call ``callback`` with every SQL statement run (benchmarks count commits)."""
        self._conn.set_trace_callback(callback)

    def checkpoint(self) -> None:
        """Fold the WAL into the main file (tests and benchmarks measure sizes)."""
        self._x("PRAGMA wal_checkpoint(TRUNCATE)")

    def pragma(self, name: str) -> Any:
        """Read one PRAGMA's value (tests and the doctor)."""
        if not name.isidentifier():
            raise ValueError(f"not a pragma name: {name!r}")
        rows = self._q(f"PRAGMA {name}")
        return next(iter(rows[0].values())) if rows else None

    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Apply pending numbered migrations, each in one transaction."""
        with self._lock:
            current = self.schema_version()
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path}: the database has schema {current}, newer than this "
                    f"program's {len(MIGRATIONS)}: upgrade pickup-kiosk"
                )
            for number in range(current + 1, len(MIGRATIONS) + 1):
                try:
                    with self.atomic():
                        MIGRATIONS[number - 1](sqlite_utils.Database(self._conn))
                        self._conn.execute(f"PRAGMA user_version = {number}")
                except sqlite3.Error as exc:
                    raise StoreError(f"{self.path}: migration {number} failed: {exc}") from exc
                log.info("store schema migrated to %d", number)

    def integrity_ok(self) -> tuple[bool, str]:
        rows = self._q("PRAGMA integrity_check")
        text = "; ".join(str(next(iter(r.values()))) for r in rows)
        return text == "ok", text

    def backup_to(self, dest: str | Path) -> None:
        """A consistent copy through SQLite's backup API (never copy the files)."""
        with self._lock:
            target = sqlite3.connect(str(dest))
            try:
                self._conn.backup(target)
            finally:
                target.close()

    # ----- meta: the state the two processes share ------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        rows = self._q("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def set_meta(self, key: str, value: str) -> None:
        with self.atomic():
            self._x(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

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

    def save_clock_floor(self, t: float) -> None:
        """Persist a lower bound on true time; it never moves back."""
        if not math.isfinite(t):
            return
        with self.atomic():
            self._x(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = max(CAST(value AS REAL), "
                "CAST(excluded.value AS REAL))",
                (META_CLOCK_FLOOR, repr(float(t))),
            )

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

    def delete_order(self, order_id: str) -> bool:
        with self.atomic():
            cur = self._x("DELETE FROM orders WHERE order_id = ?", (order_id,))
            self._x("DELETE FROM used_steps WHERE order_id = ?", (order_id,))
            return cur.rowcount > 0

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

    def delete_staff(self, staff_id: str) -> bool:
        with self.atomic():
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

    def clear_throttle(self, key: str) -> None:
        with self.atomic():
            self._x("DELETE FROM throttle WHERE key = ?", (key,))

    # ----- events (the audit trail) ---------------------------------------

    def last_event(self) -> StoredEvent | None:
        rows = self._q("SELECT * FROM events ORDER BY seq DESC LIMIT 1")
        return _event(rows[0]) if rows else None

    def last_seq(self) -> int:
        last = self.last_event()
        if last is not None:
            return last.seq
        return int(self.get_meta("chain_anchor_seq", "0") or 0)

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
        return [_event(r) for r in self._q(sql, params)]

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
        return [_event(r) for r in rows]

    def outbox_size(self) -> int:
        return int(self._q("SELECT count(*) AS n FROM events WHERE acked = 0")[0]["n"])

    def mark_events_acked(self, seqs: Sequence[int], now: float) -> None:
        if not seqs:
            return
        with self.atomic():
            self._xmany(
                "UPDATE events SET acked = 1, acked_at = ? WHERE seq = ?",
                [(now, s) for s in seqs],
            )

    # ----- log records going up ---------------------------------------------

    def append_log(self, ts: float, level: str, logger: str, message: str) -> int:
        with self.atomic():
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
        with self.atomic():
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

    def pending_door_commands(self) -> list[dict[str, Any]]:
        return self._q(
            "SELECT cmd_id, cmd, received_at, expires_at, args FROM commands "
            "WHERE state = 'pending' ORDER BY received_at"
        )

    def finish_command(self, cmd_id: str, state: str, error: str = "") -> None:
        with self.atomic():
            self._x(
                "UPDATE commands SET state = ?, error = ? WHERE cmd_id = ?", (state, error, cmd_id)
            )

    def get_command(self, cmd_id: str) -> dict[str, Any] | None:
        rows = self._q("SELECT * FROM commands WHERE cmd_id = ?", (cmd_id,))
        return rows[0] if rows else None

    # ----- retention ------------------------------------------------------

    def purge(
        self,
        now: float,
        *,
        order_retention_s: float,
        event_retention_s: float,
        log_retention_s: float | None = None,
    ) -> dict[str, int]:
        """Forget what is old enough, customer data with it.

        Orders: collected, cancelled or expired longer than the retention ago.
        Events: acknowledged and older than the retention; the last purged
        event's hash is kept as the chain anchor so verification still works.
        """
        log_retention_s = event_retention_s if log_retention_s is None else log_retention_s
        order_cut = now - order_retention_s
        with self.atomic():
            old = self._q(
                "SELECT order_id FROM orders WHERE "
                "(status IN ('collected', 'cancelled') AND updated_at < ?) "
                "OR (expires_at IS NOT NULL AND expires_at < ?)",
                (order_cut, order_cut),
            )
            ids = [r["order_id"] for r in old]
            for oid in ids:
                self._x("DELETE FROM orders WHERE order_id = ?", (oid,))
                self._x("DELETE FROM used_steps WHERE order_id = ?", (oid,))
            # Events only leave from the front of the chain, never from the middle.
            event_cut = now - event_retention_s
            first_unacked = self._q("SELECT min(seq) AS s FROM events WHERE acked = 0")[0]["s"]
            limit_seq = first_unacked - 1 if first_unacked is not None else self.last_seq()
            last_old = self._q(
                "SELECT max(seq) AS s FROM events WHERE seq <= ? AND ts < ?",
                (limit_seq, event_cut),
            )[0]["s"]
            n_events = 0
            if last_old is not None:
                anchor = self._q("SELECT hash FROM events WHERE seq = ?", (last_old,))[0]["hash"]
                n_events = self._x("DELETE FROM events WHERE seq <= ?", (last_old,)).rowcount
                for key, value in (
                    ("chain_anchor_seq", str(last_old)),
                    ("chain_anchor_hash", anchor),
                ):
                    self._x(
                        "INSERT INTO meta(key, value) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (key, value),
                    )
            n_logs = self._x(
                "DELETE FROM logs WHERE acked = 1 AND ts < ?", (now - log_retention_s,)
            ).rowcount
            # Old TOTP steps can never match again (codes are judged at or after the
            # trusted clock's floor); the backup code's marker (step -1) stays.
            self._x("DELETE FROM used_steps WHERE step >= 0 AND used_at < ?", (now - 86400 * 2,))
            self._x(
                "DELETE FROM commands WHERE received_at < ? AND state != 'pending'",
                (now - max(event_retention_s, 86400 * 7),),
            )
        return {"orders": len(ids), "events": n_events, "logs": n_logs}

    def chain_anchor(self) -> Tail:
        """Where the kept trail starts: the last purged event (or the chain's start)."""
        seq = int(self.get_meta("chain_anchor_seq", "0") or 0)
        return Tail(seq, self.get_meta("chain_anchor_hash", ZERO_HASH) or ZERO_HASH)

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

    # ----- added for the sync agent ---------------------------------------

    def fail_command_if_pending(self, cmd_id: str, error: str) -> bool:
        """Mark a command failed only if it is still pending (nobody took it).

        A compare-and-set, so the sync agent's timeout never overwrites the
        door daemon's outcome. Returns whether this call changed the row.
        """
        with self.atomic():
            cur = self._x(
                "UPDATE commands SET state = 'failed', error = ? "
                "WHERE cmd_id = ? AND state = 'pending'",
                (error, cmd_id),
            )
            return cur.rowcount == 1


def _event(row: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        seq=row["seq"],
        type=row["type"],
        order_id=row["order_id"],
        ts=row["ts"],
        body=row["body"],
        hash=row["hash"],
        acked=bool(row["acked"]),
    )
