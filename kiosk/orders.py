"""Order intake, shared by ``kiosk orders import`` and the sync agent.

Validation is the protocol's (:func:`protocol.orders.validate_order`, every
field bounded), signatures need the ``hub`` or ``owner`` role, and the
version rules hold: a document whose version is not greater than the one
held is ignored; a collection the kiosk recorded itself is never undone by a
document the hub issued before it knew.

Each document is judged alone (docs/design.md, rule 4): whatever one holds,
and whatever the code judging it raises, it is rejected alone with a
``message_rejected`` event (reason ``internal`` and the exception class for
a defect) inside its own savepoint, and the others of the batch are stored.
The event never echoes the document or its secret.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kiosk.audit import Audit
from kiosk.clock import ClockSnapshot
from kiosk.errors import StoreError, ValidationError
from kiosk.store import OrderRow, Store
from protocol.canonical import MAX_PAYLOAD, canonical_json, loads_documents
from protocol.keys import DOCUMENT_ROLES, Keyring
from protocol.orders import validate_order
from protocol.topics import valid_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntakeResult:
    outcome: str  # stored | ignored | rejected | forgotten
    order_id: str | None
    reason: str = ""
    message: str = ""


def to_row(doc: Any, *, site: str, width: int, order_id: str | None = None) -> OrderRow:
    """Validate a document (not its signature) into the row the store keeps."""
    order = validate_order(doc, site=site, width=width, order_id=order_id)
    return OrderRow(
        order_id=order.order_id,
        version=order.version,
        status=order.status,
        pickup_no=order.pickup_no,
        slot=order.slot,
        issued_at=order.issued_at,
        expires_at=order.expires_at,
        collected_at=None,
        collected_locally=False,
        otp_secret=order.otp.secret,
        otp_digits=order.otp.digits,
        otp_period=order.otp.period,
        backup_code=order.backup_code,
        doc=order.public,
        updated_at=0.0,
    )


def parse_documents(text: str) -> list[Any]:
    """One JSON object, a JSON array, or JSON lines (see protocol.canonical).

    A line that is not JSON comes back as a ValidationError in its place, to
    be rejected alone; raises ValidationError when the text cannot be split.
    """
    return loads_documents(text)


def internal_error(exc: BaseException) -> ValidationError:
    return ValidationError(
        "internal", f"the kiosk could not judge this document ({type(exc).__name__})"
    )


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
        self.signed_times: list[float] = []  # issued_at of verified documents (clock floor)

    def check(self, doc: Any, *, order_id: str | None = None) -> OrderRow:
        """Validate shape and signature; return the row to store."""
        if isinstance(doc, ValidationError):
            raise doc
        row = to_row(doc, site=self.site, width=self.width, order_id=order_id)
        if len(canonical_json(doc)) > MAX_PAYLOAD:
            raise ValidationError("too_large", f"documents are limited to {MAX_PAYLOAD} bytes")
        if "sig" in doc or not self.allow_unsigned:
            self.keyring.verify(doc, DOCUMENT_ROLES)
            if row.issued_at is not None:
                self.signed_times.append(row.issued_at)
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
        """Record a ``message_rejected`` event for one document (StoreError may escape)."""
        detail: dict[str, Any] = {"source": source, "reason": err.reason, "message": str(err)}
        if topic:
            detail["topic"] = topic[:256]
        safe_id = order_id if valid_id(order_id) else None
        assert safe_id is None or isinstance(safe_id, str)
        self.audit.reject(clock, detail, order_id=safe_id)
        log.warning("rejected an order document from %s: %s: %s", source, err.reason, err)
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
        """Like accept, for a batch, in one transaction (fast on connect).

        Each document is judged in its own savepoint; only StoreError (the
        store refusing writes) escapes, and then nothing of the batch is kept.
        """
        results: list[IntakeResult] = []
        with self.audit.batch():
            for doc, order_id, topic in docs:
                guess = doc.get("order_id") if isinstance(doc, dict) else None
                results.append(self._one(doc, order_id, topic, guess, clock, source))
        return results

    def _one(
        self,
        doc: Any,
        order_id: str | None,
        topic: str | None,
        guess: Any,
        clock: ClockSnapshot,
        source: str,
    ) -> IntakeResult:
        err: ValidationError
        try:
            with self.store.atomic():
                return self._store(self.check(doc, order_id=order_id), clock)
        except StoreError:
            raise
        except ValidationError as exc:
            err = exc
        except Exception as exc:  # a defect met by this document: it alone is refused
            log.exception("judging an order document failed")
            err = internal_error(exc)
        return self.reject(clock, err, source=source, order_id=order_id or guess, topic=topic)

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
