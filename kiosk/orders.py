"""Order intake, shared by ``kiosk orders import`` and the sync agent.

Validation is the protocol's (:func:`protocol.orders.validate_order`, every
field bounded), signatures need the ``hub`` or ``owner`` role, and the
version rules hold: a document whose version is not greater than the one
held is ignored; a collection the kiosk recorded itself is never undone by a
document the hub issued before it knew.

Each document is judged alone (docs/design.md, rule 4): whatever one holds,
and whatever the code judging it raises, it is rejected alone with a
``message_rejected`` event (reason ``internal`` and the exception class for
a defect), and the others of the batch are stored. The signature check runs
outside any write transaction, and writes go in short transactions, so a
batch never holds the door's commits back for long. Rejections pass the
audit's flood limiter (kiosk.audit): beyond its rate they are counted in a
summary instead of recorded and logged one by one. The event never echoes
the document or its secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kiosk.audit import Audit
from kiosk.clock import ClockSnapshot
from kiosk.errors import StoreError, ValidationError
from kiosk.logutil import describe_defect
from kiosk.store import OrderRow, Store
from protocol.canonical import MAX_PAYLOAD, canonical_json, loads_documents
from protocol.keys import DOCUMENT_ROLES, Keyring
from protocol.orders import validate_order
from protocol.topics import valid_id

log = logging.getLogger(__name__)

MAX_WRITES = 64  # documents per write transaction
MAX_WRITE_S = 0.02  # ... and at most this long, so the door's commit never waits long
MAX_MESSAGE = 200  # characters of a rejection's sentence in its event
MAX_TOPIC = 256


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


def _guess(doc: Any) -> Any:
    return doc.get("order_id") if isinstance(doc, dict) else None


def internal_error(exc: BaseException) -> ValidationError:
    """The rejection for a defect some document met; the defect rides along
    (``__cause__``) so its log line can say where it happened."""
    err = ValidationError(
        "internal", f"the kiosk could not judge this document ({type(exc).__name__})"
    )
    err.__cause__ = exc
    return err


def _log_rejection(source: str, err: ValidationError) -> None:
    """Only for rejections the flood limiter admitted (bounded); never the payload."""
    if err.reason == "internal" and err.__cause__ is not None:
        log.error("judging an order document failed: %s", describe_defect(err.__cause__))
        log.debug("the defect in full", exc_info=err.__cause__)
    else:
        log.warning("rejected an order document from %s: %s: %s", source, err.reason, err)


@dataclass(frozen=True)
class Incoming:
    """One document to judge: decoded (or the ValidationError its decoding
    raised, to be rejected in its place), with where it came from."""

    doc: Any
    order_id: str | None = None  # the topic's, when it came over MQTT
    topic: str | None = None
    forget: bool = False  # an empty retained payload: forget order_id


def _safe_text(text: str, limit: int) -> str:
    """A bounded, printable rendering of attacker-chosen text for an event."""
    return "".join(ch if ch.isprintable() else "?" for ch in text[:limit])


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

    def _detail(self, err: ValidationError, source: str, topic: str | None) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "source": source,
            "reason": err.reason[:64],
            "message": _safe_text(str(err), MAX_MESSAGE),
        }
        if topic:
            detail["topic"] = _safe_text(topic, MAX_TOPIC)
        return detail

    def reject(
        self,
        clock: ClockSnapshot,
        err: ValidationError,
        *,
        source: str,
        order_id: object = None,
        topic: str | None = None,
    ) -> IntakeResult:
        """A ``message_rejected`` event for one document, or a count for the next
        summary when rejections are flooding (StoreError may escape)."""
        safe_id = order_id if valid_id(order_id) else None
        assert safe_id is None or isinstance(safe_id, str)
        if self.audit.reject(clock, self._detail(err, source, topic), order_id=safe_id):
            _log_rejection(source, err)
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
        return self.accept_many([Incoming(doc, order_id, topic)], clock, source=source)[0]

    def accept_many(
        self,
        docs: Iterable[Incoming | tuple[Any, str | None, str | None]],
        clock: ClockSnapshot,
        *,
        source: str,
    ) -> list[IntakeResult]:
        """Like accept, for a batch, in arrival order.

        Each document is judged alone, outside any write transaction (the
        signature check is the slow part), and whatever judging one raises
        is its own rejection. The writes then go in transactions of at most
        ``MAX_WRITES`` documents and ``MAX_WRITE_S`` seconds, so the door's
        commits never wait long behind a batch; a rejection held back by
        the flood limiter writes nothing. Only StoreError escapes (the
        store refusing writes): what was committed before it stays.
        """
        items = [d if isinstance(d, Incoming) else Incoming(*d) for d in docs]
        verdicts = [self._judge(item) for item in items]
        results: list[IntakeResult | None] = [None] * len(items)
        writes: list[int] = []
        for i, (item, verdict) in enumerate(zip(items, verdicts, strict=True)):
            if isinstance(verdict, OrderRow) or item.forget:
                writes.append(i)
                continue
            err = verdict
            safe_id = item.order_id or _guess(item.doc)
            safe = safe_id if valid_id(safe_id) else None
            if self.audit.admit(clock, source, err.reason):
                writes.append(i)
            results[i] = IntakeResult("rejected", safe, err.reason, str(err))
        pos = 0
        while pos < len(writes):
            started = time.perf_counter()
            with self.audit.batch():
                while pos < len(writes):
                    i = writes[pos]
                    results[i] = self._write(items[i], verdicts[i], clock, source)
                    pos += 1
                    if pos % MAX_WRITES == 0 or time.perf_counter() - started > MAX_WRITE_S:
                        break
        return [r for r in results if r is not None]

    def _judge(self, item: Incoming) -> OrderRow | ValidationError:
        """Shape and signature of one document; never raises."""
        if item.forget:
            return ValidationError("forget", "")
        try:
            return self.check(item.doc, order_id=item.order_id)
        except ValidationError as exc:
            return exc
        except Exception as exc:  # a defect met by this document: it alone is refused
            return internal_error(exc)

    def _write(
        self, item: Incoming, verdict: OrderRow | ValidationError, clock: ClockSnapshot, source: str
    ) -> IntakeResult:
        """Inside the batch's transaction: store, forget, or record the rejection."""
        if item.forget:
            assert item.order_id is not None
            return self.forget(item.order_id, clock)
        if isinstance(verdict, OrderRow):
            try:
                with self.store.atomic():
                    return self._store(verdict, clock)
            except StoreError:
                raise
            except Exception as exc:  # a defect met by this document: it alone is refused
                return self.reject(
                    clock,
                    internal_error(exc),
                    source=source,
                    order_id=verdict.order_id,
                    topic=item.topic,
                )
        safe_id = item.order_id or _guess(item.doc)
        safe = safe_id if valid_id(safe_id) else None
        assert safe is None or isinstance(safe, str)
        self.audit.record(
            "message_rejected",
            clock,
            order_id=safe,
            detail=self._detail(verdict, source, item.topic),
        )
        _log_rejection(source, verdict)
        return IntakeResult("rejected", safe, verdict.reason, str(verdict))

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
        if held is None:
            buried = self.store.forgotten_version("order", row.order_id)
            if buried is not None and row.version <= buried:
                # A captured older document replayed after a forget or a purge:
                # it must not bring a collected order (and its code) back.
                return IntakeResult(
                    "ignored",
                    row.order_id,
                    "stale_version",
                    f"version {row.version} is not newer than the forgotten {buried}",
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
            if not self.store.delete_order(order_id, clock.now):
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
