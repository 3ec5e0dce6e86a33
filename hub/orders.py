"""Orders in: the hub creates, changes and forgets orders, and publishes them.

For a shop without its own backend the hub is where orders come from; for
one with it, the bridge. Every change is one transaction on the archive
file and becomes a new signed version of the order document
(docs/protocol.md, "Order document"), which :class:`hub.ingest.Publisher`
publishes retained, QoS 1, on ``pickup/v1/{site}/orders/{order_id}``. A
change is stored first and published after, so a broker that is down loses
nothing: unpublished versions go out when it is back.

- the OTP secret: 160 random bits (:func:`protocol.otp.new_secret`);
- the pickup number: unique among the site's active orders (pending,
  paid, ready and not expired), allocated round-robin so that a freed
  number (collected, cancelled, expired) is reused as late as possible;
- the customer link: ``{public_url}/c/{token}``, token 192 random bits,
  revocable (a new one replaces it);
- collections: learned from the kiosk's ``order_collected`` (and
  ``order_cancelled``) events, then published as a new version so the
  retained document agrees with the door.

Every input is judged with the protocol's own domains before anything is
signed, and the final document passes :func:`protocol.orders.validate_order`
before it is stored. Errors are :class:`hub.errors.RequestError` naming the
field; nothing partial is ever stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.config import Config, SiteSection
from hub.db import Database
from hub.errors import RequestError
from protocol import topics
from protocol.canonical import canonical_json, check_value, dumps
from protocol.errors import ValidationError
from protocol.keys import sign_document
from protocol.orders import ACTIVE_STATUSES, STATUSES, text_field, time_field, validate_order
from protocol.otp import new_secret
from protocol.times import format_time
from protocol.topics import ID_RE

log = logging.getLogger(__name__)

CREATE_FIELDS = (
    "order_id",
    "status",
    "slot",
    "customer",
    "items",
    "pickup_no",
    "expires_at",
    "backup_code",
)
PATCH_FIELDS = ("status", "slot")
CREATE_STATUSES = ("pending_payment", "paid", "ready")
FINAL_STATUSES = ("collected", "cancelled")
IDEMPOTENCY_KEY_LEN = 128
IDEMPOTENCY_KEEP_S = 7 * 86400

# a protocol reason slug -> the request field it is about
_REASON_FIELD = {
    "bad_order_id": "order_id",
    "bad_status": "status",
    "bad_slot": "slot",
    "bad_customer": "customer",
    "bad_items": "items",
    "bad_pickup_no": "pickup_no",
    "bad_expires_at": "expires_at",
    "bad_backup_code": "backup_code",
    "bad_text": None,
    "bad_number": None,
    "too_deep": None,
    "duplicate_key": None,
}


@dataclass(frozen=True)
class Result:
    """An API outcome: the HTTP status and the JSON body."""

    status: int
    body: dict[str, Any]


def _field_error(err: ValidationError) -> RequestError:
    return RequestError(str(err), _REASON_FIELD.get(err.reason), 422)


class OrderBook:
    """The orders of every configured site, in the archive's file."""

    def __init__(self, db: Database, cfg: Config, hub_key: Ed25519PrivateKey) -> None:
        self.db = db
        self.cfg = cfg
        self.key = hub_key

    # ----- reading -------------------------------------------------------------

    def _site(self, site: str) -> SiteSection:
        return self.cfg.require_site(site)

    def customer_url(self, token: str) -> str:
        return f"{self.cfg.hub.base_url}/c/{token}"

    def view(self, row: sqlite3.Row | Mapping[str, Any], now: float) -> dict[str, Any]:
        """An order as the API shows it: never the OTP secret."""
        doc = json.loads(row["doc"])
        expired = (
            row["status"] in ACTIVE_STATUSES
            and row["expires_at"] is not None
            and row["expires_at"] <= now
        )
        return {
            "site": row["site"],
            "order_id": row["order_id"],
            "pickup_no": row["pickup_no"],
            "status": row["status"],
            "expired": expired,
            "slot": row["slot"],
            "customer": doc.get("customer"),
            "items": doc.get("items", []),
            "backup_code": bool(doc.get("backup_code", False)),
            "version": row["version"],
            "published": row["published_version"] >= row["version"],
            "created_at": format_time(row["created_at"]),
            "updated_at": format_time(row["updated_at"]),
            "expires_at": None if row["expires_at"] is None else format_time(row["expires_at"]),
            "customer_url": self.customer_url(row["token"]),
        }

    def _row(self, site: str, order_id: str) -> sqlite3.Row:
        row = self.db.one(
            "SELECT * FROM orders WHERE site = ? AND order_id = ? AND forgotten = 0",
            (site, order_id),
        )
        if row is None:
            raise RequestError(f"no order {order_id!r} at site {site!r}", "order_id", 404)
        return row

    def get(self, site: str, order_id: str, now: float) -> dict[str, Any]:
        self._site(site)
        return self.view(self._row(site, order_id), now)

    def search(
        self,
        site: str,
        now: float,
        *,
        status: str | None = None,
        pickup_no: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        self._site(site)
        sql = "SELECT * FROM orders WHERE site = ? AND forgotten = 0"
        params: list[Any] = [site]
        if status is not None:
            if status not in (*STATUSES, "active", "expired"):
                raise RequestError(
                    "status must be one of " + ", ".join((*STATUSES, "active", "expired")),
                    "status",
                )
            if status in ("active", "expired"):
                sql += " AND status IN ('pending_payment', 'paid', 'ready')"
                sql += (
                    " AND (expires_at IS NULL OR expires_at > ?)"
                    if status == "active"
                    else (" AND expires_at <= ?")
                )
                params.append(now)
            else:
                sql += " AND status = ?"
                params.append(status)
        if pickup_no is not None:
            sql += " AND pickup_no = ?"
            params.append(pickup_no)
        if after is not None:
            sql += " AND order_id > ?"
            params.append(after)
        sql += " ORDER BY order_id LIMIT ?"
        params.append(limit)
        return [self.view(r, now) for r in self.db.query(sql, tuple(params))]

    def by_token(self, token: str) -> sqlite3.Row | None:
        if not isinstance(token, str) or not 16 <= len(token) <= 64:
            return None
        return self.db.one("SELECT * FROM orders WHERE token = ? AND forgotten = 0", (token,))

    # ----- validation ----------------------------------------------------------

    def _check_create(self, site: SiteSection, body: Mapping[str, Any]) -> dict[str, Any]:
        unknown = [k for k in body if k not in CREATE_FIELDS]
        if unknown:
            raise RequestError(
                f"unknown field {unknown[0]!r}; an order takes: " + ", ".join(CREATE_FIELDS),
                unknown[0],
                422,
            )
        try:
            check_value(dict(body))
        except ValidationError as err:
            raise _field_error(err) from None
        oid = body.get("order_id")
        if not isinstance(oid, str) or not ID_RE.match(oid):
            raise RequestError("order_id must match [A-Za-z0-9_.-]{1,64}", "order_id", 422)
        if "status" not in body:
            raise RequestError("status is required: " + ", ".join(CREATE_STATUSES), "status", 422)
        if body["status"] not in CREATE_STATUSES:
            raise RequestError(
                "a new order's status must be one of " + ", ".join(CREATE_STATUSES), "status", 422
            )
        pickup_no = body.get("pickup_no")
        if pickup_no is not None and (
            not isinstance(pickup_no, str)
            or len(pickup_no) != site.pickup_no_width
            or not (pickup_no.isascii() and pickup_no.isdigit())
        ):
            raise RequestError(
                f"pickup_no must be {site.pickup_no_width} digits, or left out (the hub "
                "allocates one)",
                "pickup_no",
                422,
            )
        try:
            text_field(body.get("slot"), "slot", "bad_slot", max_len=16, optional=True)
            time_field(body.get("expires_at"), "expires_at", "bad_expires_at", optional=True)
        except ValidationError as err:
            raise _field_error(err) from None
        if not isinstance(body.get("backup_code", False), bool):
            raise RequestError("backup_code must be true or false", "backup_code", 422)
        return dict(body)

    def _document(
        self, site: SiteSection, fields: Mapping[str, Any], *, version: int, secret: str, now: float
    ) -> dict[str, Any]:
        """The signed order document, checked with the kiosk's own rules."""
        expires = fields.get("expires_at") or format_time(now + site.order_expiry_days * 86400)
        doc: dict[str, Any] = {
            "v": 1,
            "site": site.id,
            "order_id": fields["order_id"],
            "version": version,
            "issued_at": format_time(now),
            "status": fields["status"],
            "pickup_no": fields["pickup_no"],
            "slot": fields.get("slot"),
            "customer": fields.get("customer"),
            "items": fields.get("items") or [],
            "otp": {"secret": secret, "digits": site.code_digits, "period": 30},
            "backup_code": bool(fields.get("backup_code", False)),
            "expires_at": expires,
        }
        try:
            validate_order(doc, site=site.id, width=site.pickup_no_width)
        except ValidationError as err:
            raise _field_error(err) from None
        signed = sign_document(doc, self.key)
        validate_order(signed, site=site.id, width=site.pickup_no_width, order_id=doc["order_id"])
        return signed

    # ----- pickup numbers ------------------------------------------------------

    def _held_numbers(self, c: sqlite3.Connection, site: str, now: float) -> set[str]:
        rows = c.execute(
            "SELECT pickup_no FROM orders WHERE site = ? AND forgotten = 0 "
            "AND status IN ('pending_payment', 'paid', 'ready') "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (site, now),
        ).fetchall()
        return {r[0] for r in rows}

    def _allocate(self, c: sqlite3.Connection, site: SiteSection, now: float) -> str:
        width = site.pickup_no_width
        top = 10**width - 1  # numbers 1..top; 0 is never given out
        held = self._held_numbers(c, site.id, now)
        row = c.execute("SELECT next_no FROM pickup_numbers WHERE site = ?", (site.id,)).fetchone()
        start = int(row[0]) if row else 1
        for i in range(top):
            n = (start - 1 + i) % top + 1
            text = str(n).zfill(width)
            if text not in held:
                c.execute(
                    "INSERT INTO pickup_numbers(site, next_no) VALUES (?, ?) "
                    "ON CONFLICT(site) DO UPDATE SET next_no = excluded.next_no",
                    (site.id, n % top + 1),
                )
                return text
        raise RequestError(
            f"every pickup number of site {site.id} is held by an active order", "pickup_no", 409
        )

    # ----- changes -------------------------------------------------------------

    def create(
        self,
        site_id: str,
        body: Mapping[str, Any],
        now: float,
        *,
        client: str = "",
        idempotency_key: str | None = None,
    ) -> Result:
        """Create an order; 201 with the order's view. Raises RequestError."""
        site = self._site(site_id)
        if idempotency_key is not None and (
            not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_LEN
            or not idempotency_key.isascii()
            or not idempotency_key.isprintable()
        ):
            raise RequestError(
                f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LEN} printable ASCII characters",
                "Idempotency-Key",
            )
        with self.db.atomic() as c:
            request_hash = ""
            if idempotency_key is not None:
                request_hash = hashlib.sha256(
                    site_id.encode() + b"\0" + canonical_json(dict(body))
                ).hexdigest()
                row = c.execute(
                    "SELECT request_hash, status, response FROM idempotency "
                    "WHERE client = ? AND key = ?",
                    (client, idempotency_key),
                ).fetchone()
                if row is not None:
                    if row[0] != request_hash:
                        raise RequestError(
                            "this Idempotency-Key was used for another request",
                            "Idempotency-Key",
                            422,
                        )
                    return Result(int(row[1]), json.loads(row[2]))
            fields = self._check_create(site, body)
            exists = c.execute(
                "SELECT forgotten FROM orders WHERE site = ? AND order_id = ?",
                (site_id, fields["order_id"]),
            ).fetchone()
            if exists is not None:
                raise RequestError(
                    f"order {fields['order_id']!r} exists at site {site_id}; change it with PATCH",
                    "order_id",
                    409,
                )
            if fields.get("pickup_no") is None:
                fields["pickup_no"] = self._allocate(c, site, now)
            elif fields["pickup_no"] in self._held_numbers(c, site_id, now):
                raise RequestError(
                    f"pickup_no {fields['pickup_no']} is held by another active order",
                    "pickup_no",
                    409,
                )
            doc = self._document(site, fields, version=1, secret=new_secret(), now=now)
            token = secrets.token_urlsafe(24)
            self._write(c, doc, now, token=token, created_by=client)
            row = c.execute(
                "SELECT * FROM orders WHERE site = ? AND order_id = ?", (site_id, doc["order_id"])
            ).fetchone()
            result = Result(201, self.view(row, now))
            if idempotency_key is not None:
                c.execute(
                    "DELETE FROM idempotency WHERE created_at < ?", (now - IDEMPOTENCY_KEEP_S,)
                )
                c.execute(
                    "INSERT INTO idempotency(client, key, site, request_hash, status, response, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        client,
                        idempotency_key,
                        site_id,
                        request_hash,
                        result.status,
                        dumps(result.body).decode(),
                        now,
                    ),
                )
        log.info(
            "order %s/%s created (pickup number %s)", site_id, doc["order_id"], doc["pickup_no"]
        )
        return result

    def _write(
        self,
        c: sqlite3.Connection,
        doc: Mapping[str, Any],
        now: float,
        *,
        token: str | None = None,
        created_by: str = "",
    ) -> None:
        expires = time_field(doc.get("expires_at"), "expires_at", "bad_expires_at", optional=True)
        if token is not None:
            c.execute(
                "INSERT INTO orders(site, order_id, version, status, pickup_no, slot, doc, token, "
                "created_at, updated_at, expires_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    doc["site"],
                    doc["order_id"],
                    doc["version"],
                    doc["status"],
                    doc["pickup_no"],
                    doc.get("slot"),
                    json.dumps(doc, ensure_ascii=False),
                    token,
                    now,
                    now,
                    expires,
                    created_by,
                ),
            )
        else:
            c.execute(
                "UPDATE orders SET version = ?, status = ?, slot = ?, doc = ?, updated_at = ? "
                "WHERE site = ? AND order_id = ?",
                (
                    doc["version"],
                    doc["status"],
                    doc.get("slot"),
                    json.dumps(doc, ensure_ascii=False),
                    now,
                    doc["site"],
                    doc["order_id"],
                ),
            )

    def update(self, site_id: str, order_id: str, body: Mapping[str, Any], now: float) -> Result:
        """Change status and/or slot (a new signed version). Raises RequestError."""
        site = self._site(site_id)
        unknown = [k for k in body if k not in PATCH_FIELDS]
        if unknown:
            raise RequestError(
                f"unknown field {unknown[0]!r}; a change takes: " + ", ".join(PATCH_FIELDS),
                unknown[0],
                422,
            )
        if not body:
            raise RequestError("nothing to change: give status or slot", "status", 422)
        if "status" in body and body["status"] not in STATUSES:
            raise RequestError("status must be one of " + ", ".join(STATUSES), "status", 422)
        if "slot" in body:
            try:
                text_field(body["slot"], "slot", "bad_slot", max_len=16, optional=True)
            except ValidationError as err:
                raise _field_error(err) from None
        with self.db.atomic() as c:
            row = self._row(site_id, order_id)
            if (
                row["status"] in FINAL_STATUSES
                and body.get("status", row["status"]) != row["status"]
            ):
                raise RequestError(
                    f"order {order_id} is {row['status']}; it cannot change status any more",
                    "status",
                    409,
                )
            doc = json.loads(row["doc"])
            new_status = body.get("status", row["status"])
            if new_status in ACTIVE_STATUSES and row["status"] not in ACTIVE_STATUSES:
                raise RequestError(f"order {order_id} is {row['status']}", "status", 409)
            fields = {**doc, **{k: body[k] for k in PATCH_FIELDS if k in body}}
            if fields == doc:
                return Result(200, self.view(row, now))
            signed = self._document(
                site, fields, version=int(row["version"]) + 1, secret=doc["otp"]["secret"], now=now
            )
            self._write(c, signed, now)
            row = c.execute(
                "SELECT * FROM orders WHERE site = ? AND order_id = ?", (site_id, order_id)
            ).fetchone()
            return Result(200, self.view(row, now))

    def cancel(self, site_id: str, order_id: str, now: float) -> Result:
        return self.update(site_id, order_id, {"status": "cancelled"}, now)

    def forget(self, site_id: str, order_id: str, now: float) -> Result:
        """Forget an order: the kiosk drops it (an empty retained payload)."""
        self._site(site_id)
        with self.db.atomic() as c:
            self._row(site_id, order_id)
            c.execute(
                "UPDATE orders SET forgotten = 1, updated_at = ?, published_version = 0, "
                "version = version + 1 WHERE site = ? AND order_id = ?",
                (now, site_id, order_id),
            )
        return Result(200, {"site": site_id, "order_id": order_id, "forgotten": True})

    def new_link(self, site_id: str, order_id: str, now: float) -> Result:
        """Revoke the customer link and make a new one."""
        self._site(site_id)
        with self.db.atomic() as c:
            self._row(site_id, order_id)
            c.execute(
                "UPDATE orders SET token = ?, updated_at = ? WHERE site = ? AND order_id = ?",
                (secrets.token_urlsafe(24), now, site_id, order_id),
            )
        return Result(200, self.get(site_id, order_id, now))

    def learn(self, site_id: str, events: Iterable[Mapping[str, Any]], now: float) -> int:
        """Take collections (and cancellations) the kiosk recorded; return how many."""
        site = self.cfg.site(site_id)
        if site is None:
            return 0
        changed = 0
        with self.db.atomic() as c:
            for ev in events:
                kind = ev.get("type")
                if kind not in ("order_collected", "order_cancelled"):
                    continue
                oid = ev.get("order_id")
                if not isinstance(oid, str):
                    continue
                row = c.execute(
                    "SELECT * FROM orders WHERE site = ? AND order_id = ? AND forgotten = 0",
                    (site_id, oid),
                ).fetchone()
                status = "collected" if kind == "order_collected" else "cancelled"
                if row is None or row["status"] in FINAL_STATUSES:
                    continue
                doc = json.loads(row["doc"])
                doc["status"] = status
                signed = self._document(
                    site, doc, version=int(row["version"]) + 1, secret=doc["otp"]["secret"], now=now
                )
                self._write(c, signed, now)
                changed += 1
                log.info("order %s/%s %s at the kiosk", site_id, oid, status)
        return changed

    # ----- publishing ----------------------------------------------------------

    def republish_all(self) -> int:
        """Mark every order the broker should hold retained as not yet published
        (the broker lost its retained messages); how many."""
        with self.db.atomic() as c:
            cur = c.execute(
                "UPDATE orders SET published_version = version - 1 "
                "WHERE forgotten = 0 AND published_version >= version"
            )
            return cur.rowcount

    def unpublished(self, limit: int = 500) -> list[tuple[str, str, int, str, bytes]]:
        """(site, order_id, version, topic, payload) of versions not yet published.

        A forgotten order's payload is empty (retained empty = forget).
        """
        rows = self.db.query(
            "SELECT site, order_id, version, doc, forgotten FROM orders "
            "WHERE published_version < version LIMIT ?",
            (limit,),
        )
        out = []
        for r in rows:
            payload = b"" if r["forgotten"] else dumps(json.loads(r["doc"]))
            out.append(
                (
                    r["site"],
                    r["order_id"],
                    r["version"],
                    topics.order(r["site"], r["order_id"]),
                    payload,
                )
            )
        return out

    def published(self, site: str, order_id: str, version: int) -> None:
        with self.db.atomic() as c:
            c.execute(
                "UPDATE orders SET published_version = ? WHERE site = ? AND order_id = ? "
                "AND version = ?",
                (version, site, order_id, version),
            )
            c.execute(
                "DELETE FROM orders WHERE site = ? AND order_id = ? AND forgotten = 1 "
                "AND published_version >= version",
                (site, order_id),
            )

    def secret_doc(self, site: str, order_id: str) -> dict[str, Any]:
        """The full signed document, secret included (for the customer page, issue 15)."""
        return dict(json.loads(self._row(site, order_id)["doc"]))
