"""The broker's retained orders, and who holds a pickup number.

The retained documents are the hub's memory for kioskctl: ``update`` reads
the current one back, ``code`` and ``order list`` show them, and
``publish`` refuses a pickup number another order still holds. Only an
order that can still open the door holds its number: status
``pending_payment``, ``paid`` or ``ready`` and not past ``expires_at``.

A retained document can be stale: when the kiosk records a collection, the
hub is not there to publish ``collected``, so the broker still says
``ready``. When the only holders of a number are such documents, kioskctl
asks the kiosk with the signed ``orders`` command and frees the number if
the kiosk says ``collected`` or ``cancelled``; without an answer it refuses
and says what to do.

Everything here is read from the broker: each retained payload is strictly
decoded and checked with the kiosk's own :func:`validate_order`; an invalid
one holds nothing (the kiosk rejects it too) and is reported by id.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.ctl.commands import ResultReader, refusal_text, send_command, wait_result
from hub.ctl.config import Settings
from hub.ctl.keys import load_private_key
from hub.ctl.mqtt import MAX_MESSAGE, Connection, CtlError, Message
from hub.ctl.words import Times, clean, to_unix
from protocol import topics
from protocol.canonical import decode_json_object
from protocol.commands import MAX_ORDER_IDS
from protocol.errors import ValidationError
from protocol.orders import ACTIVE_STATUSES, STATUSES, validate_order

FREE_AT_KIOSK = ("collected", "cancelled")


@dataclass
class Retained:
    """A site's retained orders: valid documents by id, and the invalid ones' reasons."""

    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)


def parse_retained(site: str, found: Mapping[str, Message], width: int) -> Retained:
    out = Retained()
    for topic, msg in sorted(found.items()):
        parsed = topics.parse(topic)
        if parsed is None or parsed.site != site or parsed.kind != topics.ORDERS:
            continue
        oid = parsed.ident
        if not topics.valid_id(oid) or not msg.payload:
            continue  # an empty retained payload is a forgotten order
        assert oid is not None
        try:
            doc = decode_json_object(msg.payload, max_bytes=MAX_MESSAGE)
            validate_order(doc, site=site, width=width, order_id=oid)
        except ValidationError as err:
            out.invalid[oid] = f"{clean(err)} ({err.reason})"
            continue
        out.docs[oid] = doc
    return out


def fetch_orders(conn: Connection, site: str, width: int, order_id: str | None = None) -> Retained:
    """The retained orders of a site (or just one), as the broker holds them."""
    filt = topics.order(site, order_id) if order_id else topics.orders_filter(site)
    return parse_retained(site, conn.collect_retained([filt]), width)


def expired(doc: Mapping[str, Any], now: float) -> bool:
    t = to_unix(doc.get("expires_at"))
    return t is not None and t <= now


def can_open(doc: Mapping[str, Any], now: float) -> bool:
    """Whether the door would still open for this order's code."""
    return doc.get("status") in ACTIVE_STATUSES and not expired(doc, now)


def holders(doc: Mapping[str, Any], held: Mapping[str, Mapping[str, Any]], now: float) -> list[str]:
    """Other orders that hold ``doc``'s pickup number, per the broker."""
    if not can_open(doc, now):
        return []
    return [
        oid
        for oid, other in sorted(held.items())
        if oid != doc.get("order_id")
        and other.get("pickup_no") == doc.get("pickup_no")
        and can_open(other, now)
    ]


# -- asking the kiosk -------------------------------------------------------------


class NoWord(CtlError):
    """The kiosk did not say (no answer, or refused the question)."""


def parse_orders_answer(
    result: Mapping[str, Any], ids: list[str]
) -> dict[str, dict[str, Any] | None]:
    """ID -> what the kiosk holds (``status``, ``version``, ...) or None (unknown).

    An entry that is not of that shape counts as not said (left out).
    """
    body = result.get("result")
    orders = body.get("orders") if isinstance(body, dict) else None
    if not isinstance(orders, dict):
        raise NoWord("its answer to the orders command holds no orders")
    out: dict[str, dict[str, Any] | None] = {}
    for oid in ids:
        if oid not in orders:
            continue
        entry = orders[oid]
        if entry is None:
            out[oid] = None
        elif isinstance(entry, dict) and entry.get("status") in STATUSES:
            out[oid] = entry
    return out


def ask_kiosk(
    conn: Connection, site: str, ids: list[str], settings: Settings, timeout: float
) -> dict[str, dict[str, Any] | None]:
    """The kiosk's own view of some orders (signed ``orders`` command). Raises NoWord."""
    key_path = settings.query_key or settings.need_key()
    key = load_private_key(key_path)
    sent = send_command(conn, site, "orders", {"order_ids": ids[:MAX_ORDER_IDS]}, key)
    print(f"asking {site} whether order {', '.join(ids)} was collected ...", file=sys.stderr)
    result = wait_result(conn, ResultReader(site, sent.cmd_id), time.monotonic() + timeout)
    if result is None:
        raise NoWord(f"no answer within {timeout:g} s")
    if result["ok"] is not True:
        hint = ""
        if result.get("reason") == "wrong_role":
            hint = (
                " (a hub key may not sign the orders command: set query_key to an owner "
                "or auditor key)"
            )
        raise NoWord(f"it refused the question: {refusal_text(result)}{hint}")
    return parse_orders_answer(result, ids)


def check_pickup_number(
    conn: Connection,
    doc: Mapping[str, Any],
    held: Mapping[str, Mapping[str, Any]],
    settings: Settings,
    *,
    force: bool,
    timeout: float,
) -> None:
    """Refuse (CtlError) a pickup number another order can still open with."""
    now = time.time()
    others = holders(doc, held, now)
    if not others:
        return
    no, site = doc["pickup_no"], doc["site"]
    named = ", ".join(f"order {o} ({held[o].get('status')} per the broker)" for o in others)
    if force:
        print(f"warning: pickup number {no} is also held by {named}; --force", file=sys.stderr)
        return
    todo = (
        f"if it was collected, record that with kioskctl order update {others[0]} --status "
        f"collected; or publish anyway with --force"
    )
    try:
        kiosk = ask_kiosk(conn, site, others, settings, timeout)
    except NoWord as err:
        raise CtlError(
            f"pickup number {no} is held by {named}, and {site} did not say whether it was "
            f"collected ({err}). {todo[0].upper()}{todo[1:]}"
        ) from None
    times = Times()
    still = []
    for oid in others:
        entry = kiosk.get(oid)
        status = entry.get("status") if entry else None
        if entry is not None and status in FREE_AT_KIOSK:
            at = to_unix(entry.get("collected_at"))
            when = f" at {times.stamp(at)}" if at is not None else ""
            print(
                f"note: order {oid} was {status} at the kiosk{when} (the broker's copy still "
                f"says {held[oid].get('status')}): pickup number {no} is free. To update the "
                f"broker's copy: kioskctl order update {oid} --status {status}",
                file=sys.stderr,
            )
            continue
        if oid not in kiosk:
            why = "the kiosk did not say"
        elif entry is None:
            why = "the kiosk does not hold it yet"
        else:
            why = f"{clean(status, 32)} at the kiosk too"
        still.append(f"{oid} ({why})")
    if still:
        raise CtlError(
            f"pickup number {no} is already used by active order {', '.join(still)} at "
            f"site {site}; choose another number ({todo})"
        )
