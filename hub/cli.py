"""``pickup-hub``: the hub's command line.

Every expected failure is one line on standard error, never a traceback.
Exit codes: 0 ok; 1 the operation failed (a gap or break for ``verify``,
rows with errors for ``orders import``, a failed check for ``doctor``);
2 bad configuration or arguments; 130 interrupted.

Config: ``--config FILE`` (before or after the subcommand), else
``$PICKUP_HUB_CONFIG``, else ``/etc/pickup-hub/hub.toml``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from hub import config as hub_config
from hub.ctl.words import clean
from hub.errors import ArchiveError, ConfigError, HubError, KeyFileError, RequestError
from protocol.orders import STATUSES

EXIT_FAIL = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"pickup-hub: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="hub.toml")
    p = _Parser(
        prog="pickup-hub",
        parents=[common],
        description="The pickup hub: archives every kiosk's events, publishes orders, alerts.",
        epilog=(
            "Exit codes: 0 ok, 1 failed, 2 bad configuration or arguments, 130 interrupted."
            " See docs/hub.md."
        ),
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser("serve", parents=[common], help="run the hub (systemd runs this)")
    s = sub.add_parser("sites", parents=[common], help="the state of each site")
    s.add_argument("--json", action="store_true", help="as JSON")
    s = sub.add_parser("events", parents=[common], help="a site's archived events")
    s.add_argument("site", help="a [[site]] id of hub.toml")
    s.add_argument("--since", type=int, default=0, metavar="SEQ", help="only events after SEQ")
    s.add_argument("--json", action="store_true", help="JSON lines, exactly as published")
    s = sub.add_parser(
        "verify", parents=[common], help="check a site's archived chain: 1..N, no gap"
    )
    s.add_argument("site", help="a [[site]] id of hub.toml")
    s = sub.add_parser("keygen", parents=[common], help="make the hub key and the auditor key")
    s.add_argument("--force", action="store_true", help="replace existing key files")
    t = sub.add_parser("token", parents=[common], help="API bearer tokens").add_subparsers(
        dest="token_cmd", required=True, metavar="ACTION"
    )
    s = t.add_parser("add", parents=[common], help="make a token (printed once)")
    s.add_argument("name", help="the integration it is for, e.g. shop-backend")
    s = t.add_parser("list", parents=[common], help="list tokens (never the tokens themselves)")
    s.add_argument("--json", action="store_true", help="as JSON")
    s = t.add_parser("revoke", parents=[common], help="revoke a token")
    s.add_argument("name", help="the token's name")
    o = sub.add_parser("orders", parents=[common], help="import or list orders").add_subparsers(
        dest="orders_cmd", required=True, metavar="ACTION"
    )
    s = o.add_parser("import", parents=[common], help="import a CSV or JSON file (all or nothing)")
    s.add_argument("file", help="FILE.csv, or FILE.json: an object, an array or JSON lines")
    s = o.add_parser("list", parents=[common], help="list orders (never their secrets)")
    s.add_argument("--site", help="only this site (default: every site)")
    s.add_argument(
        "--status",
        choices=(*STATUSES, "active", "expired"),
        metavar="STATUS",
        help="one of %(choices)s",
    )
    s.add_argument("--json", action="store_true", help="as JSON")
    s = sub.add_parser(
        "doctor", parents=[common], help="check keys, archive, broker, notifications"
    )
    s.add_argument("--json", action="store_true", help="as JSON")
    s.add_argument("--send-test", action="store_true", help="also send a test notification")
    s = sub.add_parser("backup", parents=[common], help="a consistent copy of the archive")
    s.add_argument("file", help="a new file (never overwritten)")
    cfg_sub = sub.add_parser("config", parents=[common], help="check or show hub.toml")
    c = cfg_sub.add_subparsers(dest="config_cmd", required=True, metavar="ACTION")
    c.add_parser("check", parents=[common], help="exit 0 for a valid file")
    c.add_parser("show", parents=[common], help="the effective configuration, secrets masked")
    s = sub.add_parser(
        "adduser",
        parents=[common],
        help="a console account (the password from stdin when it is not a terminal)",
    )
    s.add_argument("name", help="the account's login name")
    s.add_argument(
        "--role",
        choices=("owner", "staff"),
        required=True,
        help="owner: everything; staff: sees, cannot change",
    )
    s.add_argument(
        "--replace", action="store_true", help="set a new password and role; ends its sessions"
    )
    return p


def _open(cfg: hub_config.Config) -> Any:
    from hub.archive import SqliteArchive
    from hub.db import Database

    db = Database(cfg.hub.archive, create=False)
    return db, SqliteArchive(db, cfg.site_ids, cfg.limits)


def _site(cfg: hub_config.Config, site: str) -> str:
    if cfg.site(site) is None:
        raise ConfigError(
            f"{cfg.source}: no [[site]] with id = {site!r} (sites: {', '.join(cfg.site_ids)})"
        )
    return site


def cmd_sites(cfg: hub_config.Config, args: argparse.Namespace) -> int:
    db, archive = _open(cfg)
    rows = []
    for site in cfg.site_ids:
        status = archive.status(site)
        chain = archive.chain(site).as_dict()
        rows.append({"site": site, "status": status[0] if status else None, "chain": chain})
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for r in rows:
        st = r["status"] or {}
        online = {True: "online", False: "offline"}.get(bool(st.get("online")), "?")
        online = online if st else "no status yet"
        ch = r["chain"]
        gap = ch["gap"]
        state = (
            "verified"
            if not gap and not ch["break"]
            else (
                f"break at seq {ch['break']['seq']}"
                if ch["break"]
                else f"gap seq {gap['first']}..{gap['last']}"
            )
        )
        door = f"door {st.get('door', '?')}, {st.get('lock', '?')}" if st else ""
        print(
            f"{r['site']:<24} {online:<14} {door:<24} events 1..{ch['last_verified_seq']} {state}"
        )
    db.close()
    return 0


def cmd_events(cfg: hub_config.Config, args: argparse.Namespace) -> int:
    site = _site(cfg, args.site)
    db, archive = _open(cfg)
    out = sys.stdout.buffer
    for body in archive.events(site, max(0, args.since)):
        if args.json:
            out.write(body + b"\n")
        else:
            ev = json.loads(body)
            # The kiosk's strings, printed to a terminal: a hostile kiosk's
            # escape sequences or bidi overrides are shown, never obeyed.
            kind, oid = clean(ev["type"], 64), clean(ev.get("order_id") or "-", 64)
            line = f"{clean(ev['ts'], 40)}  #{ev['seq']:<6} {kind:<16} {oid}"
            out.write(line.encode("utf-8") + b"\n")
    out.flush()
    db.close()
    return 0


def cmd_verify(cfg: hub_config.Config, args: argparse.Namespace) -> int:
    site = _site(cfg, args.site)
    db, archive = _open(cfg)
    result = archive.verify(site)
    db.close()
    if result.ok:
        print(result.count)
        return 0
    print(f"pickup-hub: {site}: {result.message} (verified 1..{result.count})", file=sys.stderr)
    return EXIT_FAIL


def cmd_keygen(cfg: hub_config.Config, args: argparse.Namespace) -> int:
    from hub.keys import keygen

    keys = keygen(cfg.keys.hub_key, cfg.keys.auditor_key, force=args.force)
    print(f"hub key:     {cfg.keys.hub_key} (signs orders; mode 0600)")
    print(f"auditor key: {cfg.keys.auditor_key} (signs logs and sync only; mode 0600)")
    print()
    print("Add these lines to the [trust] table of each kiosk's kiosk.toml:")
    print(keys.trust_lines())
    return 0


def cmd_token(cfg: hub_config.Config, args: argparse.Namespace) -> int:
    from hub.db import Database
    from hub.tokens import Tokens

    db = Database(cfg.hub.archive)
    tokens = Tokens(db)
    now = time.time()
    action = str(args.token_cmd)
    if action == "add":
        token = tokens.add(args.name, now)
        print(token)
        print(f"(the token for {args.name!r}; it is shown only now)", file=sys.stderr)
    elif action == "revoke":
        if not tokens.revoke(args.name, now):
            print(f"pickup-hub: no active token named {args.name!r}", file=sys.stderr)
            return EXIT_FAIL
        print(f"revoked {args.name}")
    else:
        rows = [
            {"name": t.name, "created_at": _fmt(t.created_at), "revoked_at": _fmt(t.revoked_at)}
            for t in tokens.list()
        ]
        if args.json:
            print(json.dumps(rows, indent=2))
        for r in rows if not args.json else []:
            state = f"revoked {r['revoked_at']}" if r["revoked_at"] else "active"
            print(f"{r['name']:<24} created {r['created_at']}  {state}")
    db.close()
    return 0


def _fmt(t: float | None) -> str:
    from protocol.times import format_time

    return "" if t is None else format_time(t)


def cmd_orders(cfg: hub_config.Config, args: argparse.Namespace) -> int:
    from hub.db import Database
    from hub.imports import ImportFailed, import_orders
    from hub.keys import load_key
    from hub.orders import OrderBook

    db = Database(cfg.hub.archive)
    book = OrderBook(db, cfg, load_key(cfg.keys.hub_key, "keys.hub_key"))
    now = time.time()
    try:
        if args.orders_cmd == "import":
            try:
                created = import_orders(book, Path(args.file), now)
            except ImportFailed as err:
                for e in err.errors:
                    print(f"pickup-hub: {args.file}: {clean(str(e), 500)}", file=sys.stderr)
                print(f"pickup-hub: {err}", file=sys.stderr)
                return EXIT_FAIL
            for o in created:
                print(
                    f"{o['site']}/{o['order_id']}  pickup no {o['pickup_no']}  {o['customer_url']}"
                )
            print(
                f"{len(created)} order(s) stored; the running hub publishes them", file=sys.stderr
            )
            return 0
        sites = [_site(cfg, args.site)] if args.site else list(cfg.site_ids)
        rows = [o for s in sites for o in book.search(s, now, status=args.status, limit=100000)]
        if args.json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
        else:
            for o in rows:
                state = "expired" if o["expired"] else o["status"]
                slot = clean(o["slot"] or "-", 64)
                print(f"{o['site']:<20} {o['order_id']:<24} {o['pickup_no']:>6} {state:<16} {slot}")
        return 0
    finally:
        db.close()


def cmd_doctor(cfg: hub_config.Config, args: argparse.Namespace) -> int:
    from hub import doctor

    checks = doctor.run(cfg, send_test=args.send_test)
    if args.json:
        print(json.dumps([c.as_dict() for c in checks], ensure_ascii=False, indent=2))
    else:
        for c in checks:
            print(c.line())
    return 0 if all(c.ok for c in checks) else EXIT_FAIL


def cmd_backup(cfg: hub_config.Config, args: argparse.Namespace) -> int:
    from hub.db import Database

    db = Database(cfg.hub.archive, create=False)
    try:
        db.backup(args.file)
    except OSError as err:
        raise ArchiveError(f"cannot create {args.file}: {err.strerror or err}") from err
    finally:
        db.close()
    print(f"archive copied to {args.file}")
    return 0


def _read_password() -> str:
    """From the terminal (asked twice), else the first line of standard input."""
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise RequestError("the two passwords differ", "password", 422)
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_adduser(cfg: hub_config.Config, args: argparse.Namespace) -> int:
    from hub.console.accounts import Accounts, check_name, check_new_password, hash_password
    from hub.db import Database

    check_name(args.name)
    password = _read_password()
    check_new_password(password)
    db = Database(cfg.hub.archive)
    try:
        Accounts(db).add(
            args.name, args.role, hash_password(password), time.time(), replace=args.replace
        )
    finally:
        db.close()
    print(f"{'replaced' if args.replace else 'added'} console account {args.name} ({args.role})")
    return 0


def cmd_serve(cfg: hub_config.Config, _args: argparse.Namespace) -> int:
    from hub.service import serve

    return serve(cfg)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = getattr(args, "config", None)
    try:
        cfg = hub_config.load(path)
        logging.basicConfig(
            # the service logs at the configured level; one-shot commands only warn
            level=cfg.hub.log_level if args.command == "serve" else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        if args.command == "config":
            if args.config_cmd == "show":
                print(json.dumps(hub_config.describe(cfg), ensure_ascii=False, indent=2))
            else:
                print(f"{cfg.source}: ok ({len(cfg.sites)} site(s))")
            return 0
        handlers = {
            "serve": cmd_serve,
            "sites": cmd_sites,
            "events": cmd_events,
            "verify": cmd_verify,
            "keygen": cmd_keygen,
            "token": cmd_token,
            "orders": cmd_orders,
            "doctor": cmd_doctor,
            "backup": cmd_backup,
            "adduser": cmd_adduser,
        }
        return handlers[args.command](cfg, args)
    except ConfigError as err:
        print(f"pickup-hub: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyFileError, ArchiveError, RequestError, HubError, OSError) as err:
        print(f"pickup-hub: {err}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("pickup-hub: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
