"""Signed owner commands: send one, wait for its result (unlock, sync).

The result topic is subscribed to before the command is published, so a
fast kiosk cannot answer into the void. Exit codes: 0 done, 1 refused by the
kiosk, 2 no answer within the timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.ctl.config import Settings, SubParsers
from hub.ctl.keys import build_command, load_private_key
from hub.ctl.mqtt import Connection, CtlError, Message, UsageError
from protocol import topics

EXIT_REFUSED = 1
EXIT_NO_ANSWER = 2


class Refused(CtlError):
    """The kiosk answered ok: false."""

    exit_code = EXIT_REFUSED


class NoAnswer(CtlError):
    """The kiosk did not answer in time."""

    exit_code = EXIT_NO_ANSWER


def send_command(
    conn: Connection,
    site: str,
    cmd: str,
    args: dict[str, Any],
    key: Ed25519PrivateKey,
    *,
    also_subscribe: Iterable[str] = (),
) -> str:
    """Subscribe to the result (and ``also_subscribe``), then publish; return cmd_id."""
    doc = build_command(site, cmd, args, key, now=time.time())
    cmd_id = str(doc["cmd_id"])
    conn.subscribe([topics.cmd_result(site, cmd_id), *also_subscribe])
    payload = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    conn.publish(topics.cmd(site, cmd_id), payload, retain=False)
    return cmd_id


def parse_result(msg: Message, site: str, cmd_id: str) -> dict[str, Any] | None:
    """The result document if ``msg`` is this command's, else None."""
    if msg.topic != topics.cmd_result(site, cmd_id):
        return None
    try:
        doc = json.loads(msg.payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        print(f"warning: ignored a result for {cmd_id} that is not JSON", file=sys.stderr)
        return None
    if not isinstance(doc, dict) or doc.get("cmd_id") not in (None, cmd_id):
        print(f"warning: ignored a malformed result on {msg.topic}", file=sys.stderr)
        return None
    return doc


def wait_result(
    conn: Connection,
    site: str,
    cmd_id: str,
    timeout: float,
    *,
    other: Callable[[Message], None] | None = None,
) -> dict[str, Any]:
    """The first result for ``cmd_id``; raises NoAnswer after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise NoAnswer(
                f"no answer from site {site} within {timeout:g} s (command {cmd_id}); "
                f"is the kiosk online? see kioskctl status --site {site}"
            )
        msg = conn.get(left)
        if msg is None:
            continue
        result = parse_result(msg, site, cmd_id)
        if result is not None:
            return result
        if other is not None:
            other(msg)


def confirm(question: str, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(
            "refusing to unlock without confirmation: stdin is not a terminal; "
            "pass --yes to confirm from a script"
        )
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_unlock(args: argparse.Namespace, settings: Settings) -> int:
    site = settings.need_site()
    reason = args.reason.strip()
    if not reason:
        raise UsageError("--reason must say why the door is opened (it goes into the audit trail)")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    key = load_private_key(settings.need_key())
    if not confirm(f"Unlock the door of {site} now (reason: {reason})?", args.yes):
        print("not unlocked", file=sys.stderr)
        return 1
    with Connection(settings.broker, timeout=settings.timeout) as conn:
        cmd_id = send_command(conn, site, "unlock", {"reason": reason}, key)
        print(f"sent unlock {cmd_id} to {site}; waiting up to {args.timeout:g} s", file=sys.stderr)
        result = wait_result(conn, site, cmd_id, args.timeout)
    return report(site, "unlock", result, json_out=args.json)


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    site = settings.need_site()
    key = load_private_key(settings.need_key())
    with Connection(settings.broker, timeout=settings.timeout) as conn:
        cmd_id = send_command(conn, site, "sync", {}, key)
        result = wait_result(conn, site, cmd_id, args.timeout)
    return report(site, "sync", result, json_out=args.json)


def report(site: str, cmd: str, result: dict[str, Any], *, json_out: bool) -> int:
    if json_out:
        print(json.dumps(result, ensure_ascii=False))
    if result.get("ok") is True:
        if not json_out:
            detail = result.get("result")
            extra = f": {json.dumps(detail, ensure_ascii=False)}" if detail else ""
            done = "door unlocked" if cmd == "unlock" else f"{cmd} done"
            print(f"{site}: {done}{extra}")
        return 0
    error = result.get("error") or "no reason given"
    raise Refused(f"{site} refused the {cmd} command: {error}")


def add_parsers(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "unlock",
        parents=[common],
        help="open the door once, remotely (signed owner command)",
        description="Exit 0 unlocked, 1 refused, 2 no answer in time.",
    )
    p.add_argument("--site")
    p.add_argument("--reason", required=True, help="why (recorded in the audit trail)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        metavar="S",
        help="seconds to wait for the kiosk's answer (default 20)",
    )
    p.add_argument("--json", action="store_true", help="print the kiosk's result as JSON")
    p.set_defaults(func="unlock")

    p = sub.add_parser(
        "sync", parents=[common], help="ask a kiosk to republish its status (signed owner command)"
    )
    p.add_argument("--site")
    p.add_argument("--timeout", type=float, default=20.0, metavar="S")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func="sync")
