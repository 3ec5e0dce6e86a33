"""The store's schema: numbered migrations and the rows that go in and out.

Kept apart from :mod:`kiosk.store` (the facade and its one error path) so
each module has one job. Migrations are plain Python descriptions that
sqlite-utils turns into tables; :class:`kiosk.store.Store` applies each in
its own write transaction, re-reading the schema version inside it, so two
processes opening a fresh file at once never both apply one.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlite_utils


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
    # The door polls pending commands twice a second; the table keeps a week of ids.
    db.execute("CREATE INDEX idx_commands_state ON commands(state)")
    # The key that seals the retained status this store published (kiosk.trail),
    # so the agent recognizes its own claims about seq after a rollback.
    db.execute(
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('status_key', ?)", (secrets.token_hex(32),)
    )


def _m3(db: sqlite_utils.Database) -> None:
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


def _m4(db: sqlite_utils.Database) -> None:
    """What the kiosk forgot (an empty retained payload, retention), by the version
    it held: a captured older document replayed afterwards must not bring a
    collected order or a revoked staff code back (docs/protocol.md, "Order document")."""
    db.table("tombstones").create(
        {"kind": str, "id": str, "version": int, "at": float},
        pk=("kind", "id"),
        not_null={"version"},
    )


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (_m1, _m2, _m3, _m4)


def staff_key(staff_id: str) -> str:
    """Where a staff code's used steps are kept (beside the orders', never colliding:
    an order id cannot contain a colon)."""
    return f"staff:{staff_id}"


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


def event_from_row(row: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        seq=row["seq"],
        type=row["type"],
        order_id=row["order_id"],
        ts=row["ts"],
        body=row["body"],
        hash=row["hash"],
        acked=bool(row["acked"]),
    )
