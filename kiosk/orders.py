"""Order intake, shared by ``kiosk orders import`` and the sync agent.

Validation per PROTOCOL.md "Order document", Ed25519 signatures with roles,
and the version rules: a document whose version is not greater than the one
held is ignored; a collection the kiosk recorded itself is never undone by a
document the hub issued before it knew. A document that fails is rejected
whole: nothing of it is stored, and a ``message_rejected`` event says why
without echoing any secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kiosk.audit import Audit, parse_rfc3339
from kiosk.clock import ClockSnapshot
from kiosk.errors import SignatureError, ValidationError
from kiosk.store import OrderRow, Store
from kiosk.wire import ROLE_HUB, Keyring

log = logging.getLogger(__name__)

ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
STATUSES = ("pending_payment", "paid", "ready", "collected", "cancelled")
MAX_DOC_BYTES = 64 * 1024
MAX_ITEMS = 100


@dataclass(frozen=True)
class IntakeResult:
    outcome: str  # stored | ignored | rejected | forgotten
    order_id: str | None
    reason: str = ""
    message: str = ""


def _fail(reason: str, message: str) -> ValidationError:
    return ValidationError(reason, message)


def _str_field(
    doc: Mapping[str, Any], key: str, max_len: int, *, optional: bool = False
) -> str | None:
    value = doc.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise _fail(
            f"bad_{key}", f"{key} must be a non-empty string of at most {max_len} characters"
        )
    return value


def _time_field(doc: Mapping[str, Any], key: str, *, optional: bool = False) -> float | None:
    value = doc.get(key)
    if value is None and optional:
        return None
    try:
        return parse_rfc3339(str(value)) if isinstance(value, str) else parse_rfc3339("")
    except (ValueError, TypeError):
        raise _fail(
            f"bad_{key}", f"{key} must be an RFC 3339 UTC time like 2026-05-12T21:04:05Z"
        ) from None


def _int_field(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(
            f"bad_{name.replace('.', '_')}", f"{name} must be a whole number from {lo} to {hi}"
        )
    return int(value)


def validate_secret(secret: Any) -> str:
    """A base32 secret of at least 128 bits; returns it normalized (upper, no padding)."""
    if not isinstance(secret, str) or not 26 <= len(secret) <= 256:
        raise _fail("bad_otp_secret", "otp.secret must be base32 of at least 128 bits")
    norm = secret.strip().upper().rstrip("=")
    try:
        raw = base64.b32decode(norm + "=" * (-len(norm) % 8))
    except (binascii.Error, ValueError):
        raise _fail("bad_otp_secret", "otp.secret is not valid base32") from None
    if len(raw) < 16:
        raise _fail("bad_otp_secret", "otp.secret must hold at least 128 bits")
    return norm


def validate_order(doc: Any, *, site: str, width: int, order_id: str | None = None) -> OrderRow:
    """Check an order document's shape and values (not its signature).

    ``order_id``, when given, is the id from the topic and must match.
    Raises ValidationError; the message never contains the secret.
    """
    if not isinstance(doc, dict):
        raise _fail("malformed", "an order must be a JSON object")
    if doc.get("v") != 1:
        raise _fail("bad_v", "v must be 1 (this kiosk speaks protocol v1)")
    doc_site = doc.get("site")
    if doc_site != site:
        raise _fail("wrong_site", f"site must be {site!r}; this document is for another site")
    oid = doc.get("order_id")
    if not isinstance(oid, str) or not ID_RE.match(oid):
        raise _fail("bad_order_id", "order_id must match [A-Za-z0-9_.-]{1,64}")
    if order_id is not None and oid != order_id:
        raise _fail("order_id_mismatch", "order_id differs from the topic's")
    version = _int_field(doc.get("version"), "version", 1, 2**53)
    issued_at = _time_field(doc, "issued_at")
    status = doc.get("status")
    if status not in STATUSES:
        raise _fail("bad_status", "status must be one of " + ", ".join(STATUSES))
    pickup_no = doc.get("pickup_no")
    if (
        not isinstance(pickup_no, str)
        or len(pickup_no) != width
        or not pickup_no.isdigit()
        or not pickup_no.isascii()
    ):
        raise _fail("bad_pickup_no", f"pickup_no must be a string of exactly {width} digits")
    slot = doc.get("slot")
    if slot is not None and (not isinstance(slot, str) or not 1 <= len(slot) <= 16):
        raise _fail("bad_slot", "slot must be null or a string of 1 to 16 characters")
    customer = doc.get("customer", {})
    if customer is None:
        customer = {}
    if not isinstance(customer, dict):
        raise _fail("bad_customer", "customer must be an object")
    name = customer.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 64):
        raise _fail("bad_customer", "customer.name must be a string of at most 64 characters")
    tail = customer.get("phone_tail")
    if tail is not None and (not isinstance(tail, str) or len(tail) > 4 or not tail.isdigit()):
        raise _fail("bad_customer", "customer.phone_tail must be at most 4 digits")
    items = doc.get("items", [])
    if items is None:
        items = []
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise _fail("bad_items", f"items must be a list of at most {MAX_ITEMS} entries")
    for item in items:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("name"), str)
            or len(item["name"]) > 64
            or isinstance(item.get("qty"), bool)
            or not isinstance(item.get("qty", 1), (int, float))
            or not isinstance(item.get("unit", ""), str)
        ):
            raise _fail("bad_items", "each item needs a name (string), qty (number), unit (string)")
    otp = doc.get("otp")
    if not isinstance(otp, dict):
        raise _fail("bad_otp", "otp must be an object with secret, digits and period")
    secret = validate_secret(otp.get("secret"))
    digits = _int_field(otp.get("digits", 6), "otp.digits", 6, 8)
    period = _int_field(otp.get("period", 30), "otp.period", 15, 300)
    backup = doc.get("backup_code", False)
    if not isinstance(backup, bool):
        raise _fail("bad_backup_code", "backup_code must be true or false")
    expires_at = _time_field(doc, "expires_at", optional=True)
    return OrderRow(
        order_id=oid,
        version=version,
        status=status,
        pickup_no=pickup_no,
        slot=slot,
        issued_at=issued_at,
        expires_at=expires_at,
        collected_at=None,
        collected_locally=False,
        otp_secret=secret,
        otp_digits=digits,
        otp_period=period,
        backup_code=backup,
        doc={k: v for k, v in doc.items() if k not in ("sig", "otp")},
        updated_at=0.0,
    )


def parse_documents(text: str) -> list[Any]:
    """One JSON object, a JSON array, or JSON lines; raises ValidationError."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        docs = []
        for number, line in enumerate(stripped.splitlines(), 1):
            if not line.strip():
                continue
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValidationError(
                    "malformed", f"line {number}: not JSON ({exc.msg} at column {exc.colno})"
                ) from None
        return docs
    return value if isinstance(value, list) else [value]


class Intake:
    """Takes order documents into the store, whatever brought them."""

    def __init__(
        self,
        store: Store,
        audit: Audit,
        keyring: Keyring,
        *,
        site: str,
        width: int,
        allow_unsigned: bool = False,
    ) -> None:
        self.store = store
        self.audit = audit
        self.keyring = keyring
        self.site = site
        self.width = width
        self.allow_unsigned = allow_unsigned

    def check(self, doc: Any, *, order_id: str | None = None) -> OrderRow:
        """Validate shape and signature; return the row to store."""
        row = validate_order(doc, site=self.site, width=self.width, order_id=order_id)
        if "sig" in doc or not self.allow_unsigned:
            self.keyring.verify(doc, ROLE_HUB)
        return row

    def reject(
        self,
        clock: ClockSnapshot,
        err: ValidationError,
        *,
        source: str,
        order_id: object = None,
        topic: str | None = None,
    ) -> IntakeResult:
        detail: dict[str, Any] = {"source": source, "reason": err.reason, "message": str(err)}
        if topic:
            detail["topic"] = topic
        safe_id = order_id if isinstance(order_id, str) and ID_RE.match(order_id) else None
        self.audit.record("message_rejected", clock, order_id=safe_id, detail=detail)
        log.warning("rejected an order document from %s: %s", source, err)
        return IntakeResult("rejected", safe_id, err.reason, str(err))

    def accept(
        self,
        doc: Any,
        clock: ClockSnapshot,
        *,
        source: str,
        order_id: str | None = None,
        topic: str | None = None,
    ) -> IntakeResult:
        """Validate, verify and store one document. Raises StoreError only."""
        return self.accept_many([(doc, order_id, topic)], clock, source=source)[0]

    def accept_many(
        self,
        docs: Iterable[tuple[Any, str | None, str | None]],
        clock: ClockSnapshot,
        *,
        source: str,
    ) -> list[IntakeResult]:
        """Like accept, for a batch, in one transaction (fast on connect)."""
        results: list[IntakeResult] = []
        with self.audit.batch():
            for doc, order_id, topic in docs:
                guess = doc.get("order_id") if isinstance(doc, dict) else None
                try:
                    if isinstance(doc, (bytes, str)) and len(doc) > MAX_DOC_BYTES:
                        raise _fail("too_large", f"documents are limited to {MAX_DOC_BYTES} bytes")
                    row = self.check(doc, order_id=order_id)
                except (ValidationError, SignatureError) as err:
                    results.append(
                        self.reject(
                            clock, err, source=source, order_id=order_id or guess, topic=topic
                        )
                    )
                    continue
                results.append(self._store(row, clock))
        return results

    def _store(self, row: OrderRow, clock: ClockSnapshot) -> IntakeResult:
        held = self.store.get_order(row.order_id)
        if held is not None and row.version <= held.version:
            log.debug(
                "order %s version %d ignored (holding %d)", row.order_id, row.version, held.version
            )
            return IntakeResult(
                "ignored",
                row.order_id,
                "stale_version",
                f"version {row.version} is not newer than {held.version}",
            )
        status = row.status
        collected_at = None
        collected_locally = False
        if held is not None and held.collected_locally and held.collected_at is not None:
            collected_at = held.collected_at
            collected_locally = True
            issued = row.issued_at or 0.0
            if status in ("pending_payment", "paid", "ready") and issued < held.collected_at:
                status = "collected"  # the hub had not heard of the pickup yet
        if status == "collected" and collected_at is None:
            collected_at = row.issued_at
        stored = OrderRow(
            **{
                **row.__dict__,
                "status": status,
                "collected_at": collected_at,
                "collected_locally": collected_locally,
                "updated_at": clock.now,
            }
        )
        self.store.put_order(stored)
        self.audit.record(
            "order_updated",
            clock,
            order_id=row.order_id,
            detail={
                "version": row.version,
                "status": status,
                "pickup_no": row.pickup_no,
                "slot": row.slot,
            },
        )
        return IntakeResult("stored", row.order_id)

    def forget(self, order_id: str, clock: ClockSnapshot) -> IntakeResult:
        """The hub cleared the retained order: forget it and its secret."""
        with self.store.atomic():
            if not self.store.delete_order(order_id):
                return IntakeResult("ignored", order_id, "unknown", "no such order")
            self.audit.record("order_forgotten", clock, order_id=order_id)
        return IntakeResult("forgotten", order_id)


def public_view(order: OrderRow) -> dict[str, Any]:
    """What ``orders list --json`` prints: everything but the secret."""
    doc = dict(order.doc)
    doc.pop("otp", None)
    doc.update(
        {
            "order_id": order.order_id,
            "version": order.version,
            "status": order.status,
            "pickup_no": order.pickup_no,
            "slot": order.slot,
            "otp": {"digits": order.otp_digits, "period": order.otp_period},
            "collected_locally": order.collected_locally,
        }
    )
    return doc
