"""The order document (docs/protocol.md, "Order document"): validation.

Every field has an explicit domain and a reason slug; a document that fails
any rule is rejected whole. :func:`validate_order` checks shape and values,
not the signature (see :class:`protocol.keys.Keyring`), and never puts the
secret or a field's value in its message.
"""

from __future__ import annotations

import base64
import binascii
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocol.canonical import check_value
from protocol.errors import ValidationError
from protocol.times import parse_time
from protocol.topics import ID_RE, valid_site

STATUSES = ("pending_payment", "paid", "ready", "collected", "cancelled")
#: statuses in which an order holds its pickup number
ACTIVE_STATUSES = ("pending_payment", "paid", "ready")
MAX_ITEMS = 100
MAX_QTY = 100_000
MAX_VERSION = 2**53
NAME_LEN = 64
UNIT_LEN = 16
SLOT_LEN = 16
DIGITS = (6, 7, 8)
PERIOD_RANGE = (15, 300)


def fail(reason: str, message: str) -> ValidationError:
    return ValidationError(reason, message)


def printable(value: str) -> bool:
    """No control characters (C0, C1, DEL) and no unassigned surrogates."""
    return not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)


def text_field(
    value: Any, name: str, reason: str, *, max_len: int, min_len: int = 1, optional: bool = False
) -> str | None:
    """A string of min_len..max_len printable characters (None allowed if optional)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not min_len <= len(value) <= max_len or not printable(value):
        raise fail(
            reason,
            f"{name} must be a string of {min_len} to {max_len} printable characters",
        )
    return value


def int_field(value: Any, name: str, reason: str, lo: int, hi: int) -> int:
    """A JSON integer (not a boolean, not 1.0) from lo to hi."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise fail(reason, f"{name} must be a whole number from {lo} to {hi}")
    return int(value)


def time_field(value: Any, name: str, reason: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise fail(
            reason, f"{name} must be an RFC 3339 UTC time like 2026-05-12T21:04:05Z ({exc})"
        ) from None


def validate_secret(secret: Any) -> str:
    """A base32 secret of at least 128 bits; returns it normalized (upper, no padding)."""
    if not isinstance(secret, str) or not 26 <= len(secret) <= 256:
        raise fail("bad_otp_secret", "otp.secret must be base32 of at least 128 bits")
    norm = secret.strip().upper().rstrip("=")
    if not norm.isascii():
        raise fail("bad_otp_secret", "otp.secret is not valid base32")
    try:
        raw = base64.b32decode(norm + "=" * (-len(norm) % 8))
    except (binascii.Error, ValueError):
        raise fail("bad_otp_secret", "otp.secret is not valid base32") from None
    if len(raw) < 16:
        raise fail("bad_otp_secret", "otp.secret must hold at least 128 bits")
    return norm


@dataclass(frozen=True)
class Item:
    name: str
    qty: float
    unit: str = ""


@dataclass(frozen=True)
class Otp:
    secret: str
    digits: int = 6
    period: int = 30


@dataclass(frozen=True)
class Order:
    """A valid order document's values. ``public`` is the document without
    ``sig`` and ``otp`` (unknown fields kept), safe to show and store."""

    order_id: str
    version: int
    issued_at: float
    status: str
    pickup_no: str
    slot: str | None
    customer_name: str
    phone_tail: str
    items: tuple[Item, ...]
    otp: Otp
    backup_code: bool
    expires_at: float | None
    public: dict[str, Any]


def _customer(doc: Mapping[str, Any]) -> tuple[str, str]:
    customer = doc.get("customer")
    if customer is None:
        return "", ""
    if not isinstance(customer, dict):
        raise fail("bad_customer", "customer must be an object or null")
    name = text_field(
        customer.get("name"),
        "customer.name",
        "bad_customer",
        max_len=NAME_LEN,
        min_len=0,
        optional=True,
    )
    tail = customer.get("phone_tail")
    if tail is not None and (
        not isinstance(tail, str)
        or len(tail) > 4
        or (tail and not (tail.isascii() and tail.isdigit()))
    ):
        raise fail("bad_customer", "customer.phone_tail must be a string of at most 4 digits")
    return name or "", tail or ""


def _qty(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_QTY:
        raise fail("bad_items", f"each item's qty must be a number above 0 and at most {MAX_QTY}")
    return float(value) if isinstance(value, float) else int(value)


def _items(doc: Mapping[str, Any]) -> tuple[Item, ...]:
    items = doc.get("items")
    if items is None:
        return ()
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise fail("bad_items", f"items must be a list of at most {MAX_ITEMS} entries")
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise fail("bad_items", "each item must be an object with name, qty and unit")
        name = text_field(item.get("name"), "each item's name", "bad_items", max_len=NAME_LEN)
        qty = _qty(item.get("qty", 1))
        unit = text_field(
            item.get("unit", ""), "each item's unit", "bad_items", max_len=UNIT_LEN, min_len=0
        )
        out.append(Item(name or "", qty, unit or ""))
    return tuple(out)


def validate_order(doc: Any, *, site: str, width: int, order_id: str | None = None) -> Order:
    """Check an order document's shape and values (not its signature).

    ``order_id``, when given, is the id from the topic and must match.
    Raises ValidationError; the message never contains the secret.
    """
    if not isinstance(doc, dict):
        raise fail("malformed", "an order must be a JSON object")
    check_value(doc)
    v = doc.get("v")
    if isinstance(v, bool) or not isinstance(v, int) or v != 1:
        raise fail("bad_v", "v must be the integer 1 (this kiosk speaks protocol v1)")
    doc_site = doc.get("site")
    if not valid_site(doc_site) or doc_site != site:
        raise fail("wrong_site", f"site must be {site!r}; this document is for another site")
    oid = doc.get("order_id")
    if not isinstance(oid, str) or not ID_RE.match(oid):
        raise fail("bad_order_id", "order_id must match [A-Za-z0-9_.-]{1,64}")
    if order_id is not None and oid != order_id:
        raise fail("order_id_mismatch", "order_id differs from the topic's")
    version = int_field(doc.get("version"), "version", "bad_version", 1, MAX_VERSION)
    issued_at = time_field(doc.get("issued_at"), "issued_at", "bad_issued_at")
    assert issued_at is not None
    status = doc.get("status")
    if status not in STATUSES:
        raise fail("bad_status", "status must be one of " + ", ".join(STATUSES))
    pickup_no = doc.get("pickup_no")
    if (
        not isinstance(pickup_no, str)
        or len(pickup_no) != width
        or not pickup_no.isascii()
        or not pickup_no.isdigit()
    ):
        raise fail("bad_pickup_no", f"pickup_no must be a string of exactly {width} digits")
    slot = text_field(doc.get("slot"), "slot", "bad_slot", max_len=SLOT_LEN, optional=True)
    name, tail = _customer(doc)
    items = _items(doc)
    otp = doc.get("otp")
    if not isinstance(otp, dict):
        raise fail("bad_otp", "otp must be an object with secret, digits and period")
    secret = validate_secret(otp.get("secret"))
    digits = int_field(otp.get("digits", 6), "otp.digits", "bad_otp_digits", 6, 8)
    period = int_field(otp.get("period", 30), "otp.period", "bad_otp_period", *PERIOD_RANGE)
    backup = doc.get("backup_code", False)
    if not isinstance(backup, bool):
        raise fail("bad_backup_code", "backup_code must be true or false")
    expires_at = time_field(doc.get("expires_at"), "expires_at", "bad_expires_at", optional=True)
    return Order(
        order_id=oid,
        version=version,
        issued_at=issued_at,
        status=str(status),
        pickup_no=pickup_no,
        slot=slot,
        customer_name=name,
        phone_tail=tail,
        items=items,
        otp=Otp(secret, digits, period),
        backup_code=backup,
        expires_at=expires_at,
        public={k: v for k, v in doc.items() if k not in ("sig", "otp")},
    )
