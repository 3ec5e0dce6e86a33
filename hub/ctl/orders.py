"""The hub's side of orders: publish, update, cancel, forget, list, and codes.

Every document is checked with the kiosk's own ``validate_order`` before it
is signed, so what kioskctl publishes is exactly what a kiosk accepts. The
retained documents on the broker are read through :mod:`hub.ctl.holders`
(strictly decoded and validated; who holds a pickup number).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from hub.ctl.config import Settings, SubParsers
from hub.ctl.holders import Retained, can_open, check_pickup_number, expired, fetch_orders
from hub.ctl.keys import load_private_key
from hub.ctl.mqtt import Connection, CtlError, UsageError
from hub.ctl.words import Times, clean
from protocol import topics
from protocol.errors import ValidationError
from protocol.keys import sign_document
from protocol.orders import STATUSES, validate_order
from protocol.otp import document_backup_code, document_code, new_secret
from protocol.otp import otpauth_uri as otp_uri
from protocol.times import format_time as rfc3339
from protocol.topics import ID_RE


def parse_item(text: str) -> dict[str, Any]:
    """``name[:qty[:unit]]``; the name may itself contain colons."""
    parts = text.rsplit(":", 2)
    if len(parts) == 3:
        name, qty_text, unit = parts
    elif len(parts) == 2:
        (name, qty_text), unit = parts, ""
    else:
        name, qty_text, unit = text, "1", ""
    try:
        qty: int | float = int(qty_text)
    except ValueError:
        try:
            qty = float(qty_text)
        except ValueError:
            raise UsageError(f"--item {text!r}: expected name:qty:unit with a number qty") from None
    if not name.strip():
        raise UsageError(f"--item {text!r}: the name is empty")
    return {"name": name, "qty": qty, "unit": unit}


def pad_pickup_no(value: str, width: int) -> str:
    value = value.strip()
    if value.isdigit() and value.isascii() and len(value) < width:
        return value.zfill(width)
    return value


def load_doc_file(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CtlError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CtlError(f"{path} is not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(doc, dict):
        raise CtlError(f"{path} must hold one JSON object (an order document)")
    return doc


def check_order(doc: dict[str, Any], site: str, width: int) -> None:
    """The kiosk's own validation; a failure is a one-line CtlError."""
    try:
        validate_order(doc, site=site, width=width)
    except ValidationError as err:
        raise CtlError(f"invalid order: {err}") from None


current_code = document_code
backup_code = document_backup_code


def otpauth_uri(doc: dict[str, Any]) -> str:
    otp = doc["otp"]
    return otp_uri(
        otp["secret"],
        label=f"{doc['pickup_no']} {doc['order_id']}",
        issuer=str(doc.get("site", "pickup")),
        digits=int(otp.get("digits", 6)),
        period=int(otp.get("period", 30)),
    )


def print_code(doc: dict[str, Any], now: float) -> None:
    code, left = current_code(doc, now)
    period = int(doc["otp"].get("period", 30))
    print(f"code: {code}#")
    print(
        f"  pickup number {doc['pickup_no']} + one-time value {code[len(doc['pickup_no']) :]}"
        f", {left} s left of {period}"
    )
    if doc.get("backup_code") is True:
        print(f"backup code (works without the clock): {backup_code(doc)}#")


def apply_flags(doc: dict[str, Any], args: argparse.Namespace, width: int) -> None:
    """Flags given on the command line override the document's fields."""
    simple = {"order_id": args.order_id, "status": args.status, "slot": args.slot}
    for key, value in simple.items():
        if value is not None:
            doc[key] = None if key == "slot" and value in ("", "-", "none") else value
    if args.pickup_no is not None:
        doc["pickup_no"] = args.pickup_no
    if isinstance(doc.get("pickup_no"), str):
        doc["pickup_no"] = pad_pickup_no(doc["pickup_no"], width)
    elif isinstance(doc.get("pickup_no"), int) and not isinstance(doc.get("pickup_no"), bool):
        doc["pickup_no"] = str(doc["pickup_no"]).zfill(width)
    if args.customer_name is not None or args.phone_tail is not None:
        customer = dict(doc.get("customer") or {})
        if args.customer_name is not None:
            customer["name"] = args.customer_name
        if args.phone_tail is not None:
            customer["phone_tail"] = args.phone_tail
        doc["customer"] = customer
    if args.item:
        doc["items"] = [parse_item(text) for text in args.item]
    otp = dict(doc.get("otp") or {})
    if args.digits is not None:
        otp["digits"] = args.digits
    if args.period is not None:
        otp["period"] = args.period
    otp.setdefault("digits", 6)
    otp.setdefault("period", 30)
    if not otp.get("secret"):
        otp["secret"] = new_secret()
    doc["otp"] = otp
    if args.backup_code:
        doc["backup_code"] = True
    doc.setdefault("backup_code", False)


def publish_signed(conn: Connection, doc: dict[str, Any], key_path: str) -> dict[str, Any]:
    signed = sign_document(doc, load_private_key(key_path))
    payload = json.dumps(signed, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    conn.publish(topics.order(str(doc["site"]), str(doc["order_id"])), payload, retain=True)
    return signed


def refuse_old_version(doc: dict[str, Any], retained: Retained) -> None:
    mine = retained.docs.get(str(doc["order_id"]))
    if mine is not None and mine["version"] >= doc["version"]:
        raise CtlError(
            f"the broker already holds version {mine['version']} of order {doc['order_id']}; "
            f"a kiosk ignores version {doc['version']}: use 'kioskctl order update' "
            f"or --version {mine['version'] + 1}"
        )


def current_doc(retained: Retained, order_id: str, site: str) -> dict[str, Any]:
    """The broker's valid document for ``order_id``; CtlError if none."""
    if order_id in retained.invalid:
        raise CtlError(
            f"the broker's copy of order {order_id} is not a valid order: "
            f"{retained.invalid[order_id]}"
        )
    doc = retained.docs.get(order_id)
    if doc is None:
        raise CtlError(f"the broker holds no order {order_id} for site {site}")
    return doc


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    key_path = settings.need_key()
    load_private_key(key_path)  # fail on a bad key before touching the broker
    doc: dict[str, Any] = load_doc_file(args.file) if args.file else {}
    doc.pop("sig", None)
    if args.site and doc.get("site") and doc["site"] != args.site:
        raise UsageError(f"--site {args.site} differs from the file's site {doc['site']!r}")
    site = doc.get("site") or settings.need_site()
    now = time.time()
    apply_flags(doc, args, settings.pickup_no_width)
    if not doc.get("order_id"):
        raise UsageError("an order id is needed: --order-id ID (or order_id in the file)")
    if doc.get("pickup_no") is None:
        raise UsageError("a pickup number is needed: --pickup-no N (or pickup_no in the file)")
    doc["v"] = 1
    doc["site"] = site
    doc["version"] = args.version or doc.get("version") or 1
    doc["issued_at"] = rfc3339(now)
    doc.setdefault("status", "ready")
    doc.setdefault("slot", None)
    if args.expires_in is not None:
        if args.expires_in <= 0:
            raise UsageError("--expires-in must be a positive number of hours")
        doc["expires_at"] = rfc3339(now + args.expires_in * 3600)
    check_order(doc, site, settings.pickup_no_width)
    with Connection(settings.broker, timeout=settings.timeout) as conn:
        if not args.no_check:
            retained = fetch_orders(conn, site, settings.pickup_no_width)
            refuse_old_version(doc, retained)
            check_pickup_number(
                conn, doc, retained.docs, settings, force=args.force, timeout=args.timeout
            )
        publish_signed(conn, doc, key_path)
    print(
        f"published order {doc['order_id']} to site {site} "
        f"(version {doc['version']}, status {doc['status']})"
    )
    print(f"pickup number: {doc['pickup_no']}")
    print_code(doc, time.time())
    return 0


def cmd_update(args: argparse.Namespace, settings: Settings, *, status: str | None = None) -> int:
    key_path = settings.need_key()
    load_private_key(key_path)
    site = settings.need_site()
    if not ID_RE.match(args.order):
        raise UsageError(f"order id {args.order!r} is not valid ([A-Za-z0-9_.-]{{1,64}})")
    new_status = status or getattr(args, "status", None)
    slot = getattr(args, "slot", None)
    if new_status is None and slot is None and getattr(args, "expires_in", None) is None:
        raise UsageError("nothing to change: give --status, --slot or --expires-in")
    with Connection(settings.broker, timeout=settings.timeout) as conn:
        width = settings.pickup_no_width
        retained = fetch_orders(conn, site, width, args.order if args.no_check else None)
        current = current_doc(retained, args.order, site)
        doc = {k: v for k, v in current.items() if k != "sig"}
        now = time.time()
        if new_status is not None:
            doc["status"] = new_status
        if slot is not None:
            doc["slot"] = None if slot in ("", "-", "none") else slot
        if getattr(args, "expires_in", None) is not None:
            doc["expires_at"] = rfc3339(now + args.expires_in * 3600)
        doc["version"] = int(current["version"]) + 1
        doc["issued_at"] = rfc3339(now)
        check_order(doc, site, settings.pickup_no_width)
        if not args.no_check:
            check_pickup_number(
                conn,
                doc,
                retained.docs,
                settings,
                force=getattr(args, "force", False),
                timeout=getattr(args, "timeout", 10.0),
            )
        publish_signed(conn, doc, key_path)
    print(
        f"order {doc['order_id']} at site {site}: version {doc['version']}, "
        f"status {doc['status']}, slot {doc.get('slot') or '-'}"
    )
    return 0


def cmd_forget(args: argparse.Namespace, settings: Settings) -> int:
    site = settings.need_site()
    if not ID_RE.match(args.order):
        raise UsageError(f"order id {args.order!r} is not valid ([A-Za-z0-9_.-]{{1,64}})")
    with Connection(settings.broker, timeout=settings.timeout) as conn:
        conn.publish(topics.order(site, args.order), b"", retain=True)
    print(
        f"order {args.order} at site {site}: retained document cleared; "
        f"kiosks forget it and its secret"
    )
    return 0


def cmd_code(args: argparse.Namespace, settings: Settings) -> int:
    if args.file:
        doc = load_doc_file(args.file)
        site = str(doc.get("site") or settings.site or "")
        if args.order and doc.get("order_id") != args.order:
            raise UsageError(f"{args.file} holds order {doc.get('order_id')!r}, not {args.order}")
    else:
        if not args.order:
            raise UsageError("which order? kioskctl code --site SITE ORDER (or --file FILE)")
        site = settings.need_site()
        if not ID_RE.match(args.order):
            raise UsageError(f"order id {args.order!r} is not valid ([A-Za-z0-9_.-]{{1,64}})")
        with Connection(settings.broker, timeout=settings.timeout) as conn:
            retained = fetch_orders(conn, site, settings.pickup_no_width, args.order)
        doc = current_doc(retained, args.order, site)
    check_order(doc, site, settings.pickup_no_width)
    now = time.time()
    refuse_closed(doc, now)
    if args.json:
        code, left = current_code(doc, now)
        out = {
            "order_id": doc["order_id"],
            "pickup_no": doc["pickup_no"],
            "code": code,
            "otp": code[len(doc["pickup_no"]) :],
            "seconds_left": left,
            "period": int(doc["otp"].get("period", 30)),
            "at": int(now),
        }
        if doc.get("backup_code") is True:
            out["backup_code"] = backup_code(doc)
        print(json.dumps(out))
        return 0
    if doc.get("status") != "ready":  # pending_payment or paid: it will be ready later
        print(
            f"note: order {doc['order_id']} is {doc.get('status')}; the door opens only "
            f"for ready orders",
            file=sys.stderr,
        )
    uri = otpauth_uri(doc)
    if args.qr:
        try:
            import segno
        except ImportError:
            raise CtlError(
                "--qr needs the segno package (pip install segno); "
                "--uri prints the otpauth:// URI instead"
            ) from None
        segno.make(uri, error="m").terminal(compact=True)
    if args.uri:
        print(uri)
    print_code(doc, now)
    return 0


def refuse_closed(doc: dict[str, Any], now: float) -> None:
    """No code for an order the door will never open for again."""
    oid, status = doc["order_id"], doc.get("status")
    if status in ("collected", "cancelled"):
        raise CtlError(
            f"order {oid} is {status}: the door does not open for its code any more, so "
            f"kioskctl prints none"
        )
    if expired(doc, now):
        at = Times().stamp(doc.get("expires_at"))
        raise CtlError(
            f"order {oid} expired at {at}: the door does not open for its code any more, "
            f"so kioskctl prints none (kioskctl order update {oid} --expires-in HOURS extends it)"
        )


# -- order list -------------------------------------------------------------------


def order_rows(retained: Retained, now: float) -> list[dict[str, Any]]:
    """The public fields of each order; never the secret."""
    rows = []
    for oid, doc in retained.docs.items():
        rows.append(
            {
                "order_id": oid,
                "pickup_no": doc["pickup_no"],
                "status": doc["status"],
                "slot": doc.get("slot"),
                "version": doc["version"],
                "issued_at": doc["issued_at"],
                "expires_at": doc.get("expires_at"),
                "expired": expired(doc, now),
                "can_open": can_open(doc, now),
            }
        )
    # by number; of orders sharing one, the one that can still open first
    rows.sort(key=lambda r: (r["pickup_no"], not r["can_open"], r["order_id"]))
    return rows


def order_table(rows: list[dict[str, Any]], times: Times) -> str:
    head = ["ORDER", "NUMBER", "STATUS", "SLOT", "VERSION", "ISSUED", "EXPIRES"]
    table = [head]
    for r in rows:
        status = r["status"] + (", expired" if r["expired"] else "")
        table.append(
            [
                clean(r["order_id"], 64),
                r["pickup_no"],
                status,
                clean(r["slot"], 16) if r["slot"] else "-",
                str(r["version"]),
                times.stamp(r["issued_at"]),
                times.stamp(r["expires_at"]),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    )


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    site = settings.need_site()
    with Connection(settings.broker, timeout=settings.timeout) as conn:
        retained = fetch_orders(conn, site, settings.pickup_no_width)
    for oid, why in sorted(retained.invalid.items()):
        print(f"warning: order {clean(oid)}: not a valid order document: {why}", file=sys.stderr)
    rows = order_rows(retained, time.time())
    if args.status:
        rows = [r for r in rows if r["status"] == args.status]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    elif rows:
        print(order_table(rows, Times(args.utc)))
    else:
        print(f"no orders for site {site} on the broker", file=sys.stderr)
    return 0


def add_order_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--width",
        dest="pickup_no_width",
        type=int,
        metavar="W",
        help="the site's pickup number width (default 3; config pickup_no_width)",
    )


def add_holder_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force",
        action="store_true",
        help="publish even if another order that can still open holds the pickup number",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait for the kiosk when asking whether a holder was collected "
        "(default 10)",
    )


def add_parsers(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    order = sub.add_parser(
        "order", help="publish, update, cancel, list or forget orders (hub side)"
    )
    osub = order.add_subparsers(dest="order_cmd", metavar="ACTION", required=True)

    p = osub.add_parser("publish", parents=[common], help="sign and publish an order (retained)")
    p.add_argument("--file", metavar="FILE", help="order document (JSON); flags override it")
    p.add_argument("--site")
    p.add_argument("--order-id", dest="order_id")
    p.add_argument("--pickup-no", dest="pickup_no", metavar="N", help="zero-padded to the width")
    p.add_argument("--slot", help="shelf slot, e.g. B3 (omit while not on the shelf)")
    p.add_argument("--customer-name", dest="customer_name")
    p.add_argument("--phone-tail", dest="phone_tail", metavar="DIGITS")
    p.add_argument(
        "--item", action="append", metavar="NAME:QTY:UNIT", help="an item line; repeat for several"
    )
    p.add_argument("--status", choices=STATUSES, help="default ready")
    p.add_argument("--digits", type=int, help="one-time value digits, 6-8 (default 6)")
    p.add_argument("--period", type=int, help="TOTP step in seconds, 15-300 (default 30)")
    p.add_argument(
        "--backup-code",
        dest="backup_code",
        action="store_true",
        help="also accept HOTP(secret, 0), which needs no clock",
    )
    p.add_argument("--expires-in", dest="expires_in", type=float, metavar="HOURS")
    p.add_argument("--version", type=int, help="document version (default 1 or the file's)")
    p.add_argument(
        "--no-check",
        dest="no_check",
        action="store_true",
        help="skip reading the site's orders (pickup number and version checks)",
    )
    add_holder_flags(p)
    add_order_flags(p)
    p.set_defaults(func="order_publish")

    p = osub.add_parser(
        "update", parents=[common], help="change status/slot of a published order (bumps version)"
    )
    p.add_argument("order", metavar="ORDER")
    p.add_argument("--site")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--slot", help="new slot ('none' clears it)")
    p.add_argument("--expires-in", dest="expires_in", type=float, metavar="HOURS")
    p.add_argument(
        "--no-check", dest="no_check", action="store_true", help="skip the pickup number check"
    )
    add_holder_flags(p)
    add_order_flags(p)
    p.set_defaults(func="order_update")

    p = osub.add_parser("cancel", parents=[common], help="set an order's status to cancelled")
    p.add_argument("order", metavar="ORDER")
    p.add_argument("--site")
    p.add_argument("--no-check", dest="no_check", action="store_true", help=argparse.SUPPRESS)
    add_order_flags(p)
    p.set_defaults(func="order_cancel")

    p = osub.add_parser(
        "list",
        parents=[common],
        help="the site's orders as the broker holds them (never their secrets)",
    )
    p.add_argument("--site")
    p.add_argument("--status", choices=STATUSES, help="only orders in this status")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--utc", action="store_true", help="show times in UTC, not local time")
    add_order_flags(p)
    p.set_defaults(func="order_list")

    p = osub.add_parser(
        "forget", parents=[common], help="clear the retained order (kiosks drop it and its secret)"
    )
    p.add_argument("order", metavar="ORDER")
    p.add_argument("--site")
    p.set_defaults(func="order_forget")

    p = sub.add_parser(
        "code",
        parents=[common],
        help="print a customer's current pickup code",
        description="Prints the pickup code (pickup number + TOTP now) of an order from the "
        "broker's retained copy or --file. No code for an order that is collected, "
        "cancelled or expired (exit 1): the door no longer opens for it.",
    )
    p.add_argument("order", metavar="ORDER", nargs="?")
    p.add_argument("--site")
    p.add_argument("--file", metavar="FILE", help="read the order document from a file")
    p.add_argument("--qr", action="store_true", help="show the otpauth:// URI as a QR code")
    p.add_argument("--uri", action="store_true", help="print the otpauth:// URI")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_order_flags(p)
    p.set_defaults(func="code")
