"""The hub's side of orders: publish, update, cancel, forget, and codes.

Every document is checked with the kiosk's own ``validate_order`` before it
is signed, so what kioskctl publishes is exactly what a kiosk accepts. The
retained documents on the broker are the hub's memory here: ``update`` reads
the current one back, and ``publish`` reads the site's orders to refuse a
pickup number that another active order already holds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from hub.ctl.config import Settings, SubParsers
from hub.ctl.keys import load_private_key
from hub.ctl.mqtt import Connection, CtlError, UsageError
from protocol import topics
from protocol.errors import ValidationError
from protocol.keys import sign_document
from protocol.orders import ACTIVE_STATUSES, STATUSES, validate_order
from protocol.otp import backup_code as otp_backup_code
from protocol.otp import new_secret, pickup_code, seconds_left
from protocol.otp import otpauth_uri as otp_uri
from protocol.times import format_time as rfc3339
from protocol.topics import ID_RE

ACTIVE = ACTIVE_STATUSES


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


def parse_retained(site: str, found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Order id -> document from retained messages; empty or broken ones skipped."""
    docs: dict[str, dict[str, Any]] = {}
    for topic, msg in found.items():
        parsed = topics.parse(topic)
        if parsed is None or parsed.site != site or parsed.kind != topics.ORDERS:
            continue
        if not topics.valid_id(parsed.ident):
            continue
        if not msg.payload:
            continue
        try:
            doc = json.loads(msg.payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(doc, dict):
            docs[str(parsed.ident)] = doc
    return docs


def fetch_orders(
    conn: Connection, site: str, order_id: str | None = None
) -> dict[str, dict[str, Any]]:
    """The retained orders of a site (or just one), as the broker holds them."""
    filt = topics.order(site, order_id) if order_id else topics.orders_filter(site)
    return parse_retained(site, conn.collect_retained([filt]))


def pickup_conflict(doc: dict[str, Any], held: dict[str, dict[str, Any]]) -> str | None:
    """The id of another active order holding ``doc``'s pickup number, if any."""
    if doc.get("status") not in ACTIVE:
        return None
    for oid, other in sorted(held.items()):
        if oid == doc.get("order_id"):
            continue
        if other.get("status") in ACTIVE and other.get("pickup_no") == doc.get("pickup_no"):
            return oid
    return None


def current_code(doc: dict[str, Any], now: float) -> tuple[str, int]:
    """(pickup_no + TOTP at ``now``, seconds left in its step)."""
    otp = doc["otp"]
    period = int(otp.get("period", 30))
    code = pickup_code(doc["pickup_no"], otp["secret"], now, int(otp.get("digits", 6)), period)
    return code, seconds_left(now, period)


def backup_code(doc: dict[str, Any]) -> str:
    otp = doc["otp"]
    return otp_backup_code(doc["pickup_no"], otp["secret"], int(otp.get("digits", 6)))


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


def refuse_conflicts(doc: dict[str, Any], held: dict[str, dict[str, Any]]) -> None:
    other = pickup_conflict(doc, held)
    if other is not None:
        raise CtlError(
            f"pickup number {doc['pickup_no']} is already used by active order {other} at "
            f"site {doc['site']}; choose another (or --no-check to skip this check)"
        )
    mine = held.get(str(doc["order_id"]))
    if (
        mine is not None
        and isinstance(mine.get("version"), int)
        and mine["version"] >= doc["version"]
    ):
        raise CtlError(
            f"the broker already holds version {mine['version']} of order {doc['order_id']}; "
            f"a kiosk ignores version {doc['version']}: use 'kioskctl order update' "
            f"or --version {mine['version'] + 1}"
        )


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
            refuse_conflicts(doc, fetch_orders(conn, site))
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
        held = fetch_orders(conn, site, None if args.no_check else args.order)
        current = held.get(args.order)
        if current is None:
            raise CtlError(f"the broker holds no order {args.order} for site {site}")
        check_order(current, site, settings.pickup_no_width)
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
            refuse_conflicts(doc, held)
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
        with Connection(settings.broker, timeout=settings.timeout) as conn:
            doc = fetch_orders(conn, site, args.order).get(args.order) or {}
        if not doc:
            raise CtlError(f"the broker holds no order {args.order} for site {site}")
    check_order(doc, site, settings.pickup_no_width)
    now = time.time()
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
    if doc.get("status") != "ready":
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


def add_order_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--width",
        dest="pickup_no_width",
        type=int,
        metavar="W",
        help="the site's pickup number width (default 3; config pickup_no_width)",
    )


def add_parsers(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    order = sub.add_parser("order", help="publish, update, cancel or forget orders (hub side)")
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
    add_order_flags(p)
    p.set_defaults(func="order_update")

    p = osub.add_parser("cancel", parents=[common], help="set an order's status to cancelled")
    p.add_argument("order", metavar="ORDER")
    p.add_argument("--site")
    p.add_argument("--no-check", dest="no_check", action="store_true", help=argparse.SUPPRESS)
    add_order_flags(p)
    p.set_defaults(func="order_cancel")

    p = osub.add_parser(
        "forget", parents=[common], help="clear the retained order (kiosks drop it and its secret)"
    )
    p.add_argument("order", metavar="ORDER")
    p.add_argument("--site")
    p.set_defaults(func="order_forget")

    p = sub.add_parser("code", parents=[common], help="print a customer's current pickup code")
    p.add_argument("order", metavar="ORDER", nargs="?")
    p.add_argument("--site")
    p.add_argument("--file", metavar="FILE", help="read the order document from a file")
    p.add_argument("--qr", action="store_true", help="show the otpauth:// URI as a QR code")
    p.add_argument("--uri", action="store_true", help="print the otpauth:// URI")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_order_flags(p)
    p.set_defaults(func="code")
