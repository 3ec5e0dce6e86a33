"""kioskctl: the shop owner's and the hub's side of the pickup protocol.

The reference implementation of docs/protocol.md for everything that is not the
kiosk: signing keys, order documents, owner commands, status and the audit
trail. Subcommands live in ``hub/ctl/*.py`` by job; this module parses the
command line, resolves settings and turns every expected failure into one
line on stderr and an exit code (never a traceback):

    0   done
    1   refused by the kiosk, or a failure of the command itself
    2   no answer from the kiosk within the timeout (the command may still run:
        the message says until when)
    3   audit chain problem (gap, reorder or changed event)
    4   broker unreachable, credentials refused, or no acknowledgement
    64  bad arguments or settings
    130 interrupted
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from hub.ctl import chain as ctl_chain
from hub.ctl import commands as ctl_commands
from hub.ctl import keys as ctl_keys
from hub.ctl import orders as ctl_orders
from hub.ctl import staff as ctl_staff
from hub.ctl import unlock as ctl_unlock
from hub.ctl import watch as ctl_watch
from hub.ctl.config import Settings, add_common_flags, resolve
from hub.ctl.mqtt import CtlError, UsageError

EXIT_USAGE = UsageError.exit_code


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage; 2 means "no answer" here, so use 64."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"kioskctl: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kioskctl",
        description="Owner and hub tool for pickup kiosks: keys, orders, codes, status, "
        "logs and remote unlock over MQTT (pickup protocol v1, docs/protocol.md).",
        epilog="Exit codes: 0 ok, 1 refused/failed, 2 no answer (yet), 3 audit chain "
        "problem, 4 broker problem, 64 bad arguments, 130 interrupted. See docs/owner.md.",
    )
    try:
        from importlib.metadata import version

        ver = version("pickup-kiosk")
    except Exception:  # not installed: still answer --version
        ver = "unknown"
    parser.add_argument("--version", action="version", version=f"kioskctl {ver}")
    common = _Parser(add_help=False)
    add_common_flags(common)
    # Subparsers inherit the parser class, so every level exits 64 on bad usage.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    ctl_keys.add_parsers(sub, common)
    ctl_orders.add_parsers(sub, common)
    ctl_unlock.add_parsers(sub, common)
    ctl_commands.add_parsers(sub, common)
    ctl_watch.add_parsers(sub, common)
    ctl_chain.add_parsers(sub, common)
    ctl_staff.add_parsers(sub, common)
    return parser


def dispatch(args: argparse.Namespace) -> int:
    func = args.func
    if func == "keygen":
        return ctl_keys.cmd_keygen(args)
    if func == "verify_events":
        return ctl_chain.cmd_verify_events(args)
    settings: Settings = resolve(args)
    if func == "sign":
        return ctl_keys.cmd_sign(args, settings.need_key())
    if func == "key_id":
        return ctl_keys.cmd_key_id(args, dict(settings.key_names))
    handlers = {
        "order_publish": ctl_orders.cmd_publish,
        "order_update": ctl_orders.cmd_update,
        "order_forget": ctl_orders.cmd_forget,
        "order_list": ctl_orders.cmd_list,
        "code": ctl_orders.cmd_code,
        "unlock": ctl_unlock.cmd_unlock,
        "wait": ctl_unlock.cmd_wait,
        "cancel": ctl_unlock.cmd_cancel,
        "sync": ctl_commands.cmd_sync,
        "time": ctl_commands.cmd_time,
        "status": ctl_watch.cmd_status,
        "logs": ctl_watch.cmd_logs,
        "staff_add": ctl_staff.cmd_add,
        "staff_revoke": ctl_staff.cmd_revoke,
        "staff_list": ctl_staff.cmd_list,
    }
    if func == "order_cancel":
        return ctl_orders.cmd_update(args, settings, status="cancelled")
    return handlers[func](args, settings)


_KEY_TEXT = re.compile(r"^-[A-Za-z0-9_-]{42}\Z")  # an unpadded base64url Ed25519 key


def _keys_as_positionals(argv: list[str]) -> list[str]:
    """``key-id`` KEY arguments that start with '-' (one key in 64 does) are
    keys, not options: argparse would refuse them ("KEY is required")."""
    if not argv or argv[0] != "key-id" or "--" in argv:
        return argv
    keys = [a for a in argv[1:] if _KEY_TEXT.match(a)]
    if not keys:
        return argv
    return [argv[0], *(a for a in argv[1:] if a not in keys), "--", *keys]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_keys_as_positionals(list(sys.argv[1:] if argv is None else argv)))
    try:
        return dispatch(args)
    except CtlError as err:
        print(f"kioskctl: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("kioskctl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `kioskctl logs | head`: stop quietly, without a flush error at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
