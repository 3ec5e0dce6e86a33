"""kioskctl staff: codes for people, not orders (docs/protocol.md, "Staff and courier codes").

``staff add`` makes a secret, signs a staff document with the owner's (or
hub's) key, publishes it retained on ``staff/{id}`` and prints the person's
``otpauth://`` QR code: any authenticator app then shows their 8-digit
code. At the door they type their staff number, that code and ``#``.
``staff revoke`` publishes a newer version with ``"revoked": true``, which
stops the code at once on every kiosk that gets it; ``staff list`` reads
the retained documents (never a secret).
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from typing import Any

from hub.ctl.config import Settings, SubParsers
from hub.ctl.keys import load_private_key
from hub.ctl.mqtt import Connection, CtlError, UsageError
from hub.ctl.words import clean
from protocol import staff as staff_doc
from protocol import topics
from protocol.canonical import decode_json_object
from protocol.errors import ValidationError
from protocol.keys import sign_document
from protocol.otp import new_secret, otpauth_uri
from protocol.staff import ACTION_KEYS, ROLES, STAFF_DIGITS, validate_staff
from protocol.topics import ID_RE


def parse_hours(text: str) -> dict[str, Any]:
    """``Mon-Sat 05:00-07:00`` (or ``Sun 09:00-12:00``) to a schedule window."""
    try:
        return staff_doc.parse_hours(text)
    except ValidationError as err:
        raise UsageError(f"--hours {text!r}: {err}") from None


def parse_when(text: str, flag: str) -> float:
    """An RFC 3339 time, or a date YYYY-MM-DD (midnight UTC)."""
    try:
        return staff_doc.parse_when(text)
    except ValidationError as err:
        raise UsageError(f"{flag} {text!r}: {err}") from None


def fetch_staff(conn: Connection, site: str, width: int) -> dict[str, dict[str, Any]]:
    found = conn.collect_retained([topics.staff_filter(site)])
    out: dict[str, dict[str, Any]] = {}
    for topic, msg in found.items():
        parsed = topics.parse(topic)
        if parsed is None or parsed.kind != topics.STAFF or not msg.payload:
            continue
        try:
            doc = decode_json_object(msg.payload)
            validate_staff(doc, site=site, width=width, staff_id=parsed.ident)
        except ValidationError:
            continue
        out[str(parsed.ident)] = doc
    return out


def publish(conn: Connection, doc: dict[str, Any], key_path: str) -> dict[str, Any]:
    signed = sign_document(doc, load_private_key(key_path))
    payload = json.dumps(signed, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    conn.publish(topics.staff(str(doc["site"]), str(doc["staff_id"])), payload, retain=True)
    return signed


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    key_path = settings.need_key()
    load_private_key(key_path)
    site = settings.need_site()
    width = settings.pickup_no_width
    number = args.number.zfill(width + 1) if args.number.isdigit() else args.number
    staff_id = args.id or f"S-{number}-{secrets.token_hex(2)}"
    if not ID_RE.match(staff_id):
        raise UsageError(f"--id {staff_id!r} is not valid ([A-Za-z0-9_.-]{{1,64}})")
    doc = staff_doc.staff_document(
        site=site,
        staff_id=staff_id,
        staff_no=number,
        name=args.name,
        role=args.role,
        secret=new_secret(),
        issued_at=time.time(),
        valid_from=parse_when(args.valid_from, "--from") if args.valid_from else None,
        valid_until=parse_when(args.valid_until, "--until") if args.valid_until else None,
        schedule=[parse_hours(h) for h in args.hours or ()],
    )
    try:
        validate_staff(doc, site=site, width=width)
    except ValidationError as err:
        raise CtlError(f"invalid staff code: {err}") from None
    with Connection(settings.broker, timeout=settings.timeout) as conn:
        held = fetch_staff(conn, site, width)
        clash = [
            i
            for i, d in held.items()
            if d.get("staff_no") == doc["staff_no"] and i != staff_id and not d_revoked(d)
        ]
        if clash:
            raise CtlError(f"staff number {doc['staff_no']} is already {clash[0]}'s: --number N")
        if staff_id in held:
            doc["version"] = int(held[staff_id]["version"]) + 1
        publish(conn, doc, key_path)
    uri = otpauth_uri(
        doc["otp"]["secret"], label=f"{args.name} ({site})", issuer=site, digits=STAFF_DIGITS
    )
    print(f"staff code {staff_id} for {args.name} ({args.role}) published to site {site}")
    print(f"staff number: {doc['staff_no']}")
    print(
        f"at the door: {doc['staff_no']} + the {STAFF_DIGITS}-digit code from the app + #"
        f"  (then {ACTION_KEYS['day_on']} before # switches day mode on, "
        f"{ACTION_KEYS['day_off']} off, in staffed hours)"
    )
    if args.qr:
        import segno

        print("scan with any authenticator app (it shows the code):")
        segno.make(uri, error="m").terminal(compact=True)
    if args.uri:
        print(uri)
    return 0


def d_revoked(doc: dict[str, Any]) -> bool:
    return doc.get("revoked") is True


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    key_path = settings.need_key()
    site = settings.need_site()
    with Connection(settings.broker, timeout=settings.timeout) as conn:
        held = fetch_staff(conn, site, settings.pickup_no_width)
        doc = held.get(args.staff_id)
        if doc is None:
            raise CtlError(f"the broker holds no staff code {args.staff_id} for site {site}")
        new = staff_doc.revocation(doc, time.time())
        publish(conn, new, key_path)
    print(f"staff code {args.staff_id} revoked (version {new['version']}): it no longer opens")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    site = settings.need_site()
    with Connection(settings.broker, timeout=settings.timeout) as conn:
        held = fetch_staff(conn, site, settings.pickup_no_width)
    rows = [
        {
            "staff_id": i,
            "staff_no": d["staff_no"],
            "name": d.get("name", ""),
            "role": d.get("role", ""),
            "valid_from": d.get("valid_from"),
            "valid_until": d.get("valid_until"),
            "schedule": d.get("schedule") or [],
            "revoked": d_revoked(d),
            "version": d["version"],
        }
        for i, d in sorted(held.items(), key=lambda kv: str(kv[1]["staff_no"]))
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    if not rows:
        print(f"no staff codes for site {site}")
        return 0
    for r in rows:
        hours = "; ".join(
            f"{','.join(str(d) for d in w['days'])} {w['from']}-{w['until']}" for w in r["schedule"]
        )
        state = "revoked" if r["revoked"] else "active"
        print(
            f"{r['staff_no']:<6} {clean(str(r['name']))[:20]:<20} {r['role']:<8} {state:<8} "
            f"{hours or 'any hour'}  {r['staff_id']}"
        )
    return 0


def add_parsers(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    staff = sub.add_parser("staff", help="codes for staff and couriers (not orders)")
    ssub = staff.add_subparsers(dest="staff_cmd", metavar="ACTION", required=True)

    p = ssub.add_parser("add", parents=[common], help="make and publish a staff code")
    p.add_argument("name", metavar="NAME", help="the person's name, as the audit trail shows it")
    p.add_argument(
        "--number", required=True, help="staff number (one digit more than pickup numbers)"
    )
    p.add_argument("--role", choices=ROLES, default="staff")
    p.add_argument("--id", help="staff id (default S-<number>-<random>)")
    p.add_argument("--from", dest="valid_from", metavar="WHEN", help="first valid (date or time)")
    p.add_argument("--until", dest="valid_until", metavar="WHEN", help="valid until (date or time)")
    p.add_argument(
        "--hours",
        action="append",
        metavar="'Mon-Sat 05:00-07:00'",
        help="weekly hours in the site's local time; repeat for several",
    )
    p.add_argument("--qr", action="store_true", help="print the otpauth:// QR code")
    p.add_argument("--uri", action="store_true", help="print the otpauth:// URI")
    p.add_argument("--site")
    p.set_defaults(func="staff_add")

    p = ssub.add_parser("revoke", parents=[common], help="stop a staff code now")
    p.add_argument("staff_id", metavar="STAFF_ID")
    p.add_argument("--site")
    p.set_defaults(func="staff_revoke")

    p = ssub.add_parser("list", parents=[common], help="the site's staff codes (no secrets)")
    p.add_argument("--site")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func="staff_list")
