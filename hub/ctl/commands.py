"""Signed owner commands: send one, wait for its result; ``sync`` and ``time``.

The result topic is subscribed to before the command is published, so a
fast kiosk cannot answer into the void. Every command is valid for a short
time (``--ttl``, default :data:`protocol.commands.DEFAULT_TTL_S`, at most
:data:`protocol.commands.MAX_LIFETIME_S`), and kioskctl says until when.

Results come from the broker, so from anyone who may publish there: a
result is taken only from this command's own ``cmd_result/{cmd_id}`` topic,
as a strictly decoded JSON object of at most :data:`hub.ctl.mqtt.MAX_MESSAGE`
bytes whose ``cmd_id`` is this command's and whose ``ok`` is a boolean;
anything else is ignored with a warning (the first few only).

Exit codes: 0 done, 1 refused by the kiosk, 2 no answer within the timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.ctl.config import Settings, SubParsers
from hub.ctl.keys import load_private_key
from hub.ctl.mqtt import MAX_MESSAGE, Connection, CtlError, Message, UsageError
from hub.ctl.words import Times, clean, slug_words, to_unix
from protocol import topics
from protocol.canonical import decode_json_object
from protocol.commands import DEFAULT_TTL_S, MAX_LIFETIME_S, build_command
from protocol.errors import ValidationError
from protocol.times import parse_time

EXIT_REFUSED = 1
EXIT_NO_ANSWER = 2
MAX_WARNINGS = 3


class Refused(CtlError):
    """The kiosk answered ok: false (or kioskctl itself will not send)."""

    exit_code = EXIT_REFUSED


class NoAnswer(CtlError):
    """The kiosk did not answer in time."""

    exit_code = EXIT_NO_ANSWER


class Interrupted(CtlError):
    """Ctrl-C after a command was sent: say what may still happen."""

    exit_code = 130


@dataclass(frozen=True)
class Outgoing:
    """A command as sent: its id and validity (Unix seconds)."""

    site: str
    cmd: str
    cmd_id: str
    issued_at: float
    expires_at: float
    args: Mapping[str, Any]

    @property
    def ttl(self) -> float:
        return self.expires_at - self.issued_at


def check_ttl(ttl: float) -> float:
    if not 1 <= ttl <= MAX_LIFETIME_S:
        raise UsageError(
            f"--ttl must be from 1 to {MAX_LIFETIME_S:.0f} seconds (a kiosk refuses "
            f"commands that live longer)"
        )
    return ttl


def check_timeout(timeout: float) -> float:
    if not timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")
    return timeout


def send_command(
    conn: Connection,
    site: str,
    cmd: str,
    args: Mapping[str, Any],
    key: Ed25519PrivateKey,
    *,
    ttl: float = DEFAULT_TTL_S,
    also_subscribe: Iterable[str] = (),
    before_publish: Callable[[Outgoing], None] | None = None,
) -> Outgoing:
    """Subscribe to the result (and ``also_subscribe``), then publish once.

    ``before_publish`` runs between signing and publishing (to remember the
    command before it can run). Never retried: a second publish would be a
    second command only if it had a new id, and it never gets one here.
    """
    now = time.time()
    doc = build_command(site, cmd, args, key, now=now, ttl=ttl)
    # The signed times are whole seconds: keep those, they are what the kiosk judges.
    issued, expires = to_unix(doc["issued_at"]), to_unix(doc["expires_at"])
    assert issued is not None and expires is not None
    sent = Outgoing(site, cmd, str(doc["cmd_id"]), issued, expires, args)
    conn.subscribe([topics.cmd_result(site, sent.cmd_id), *also_subscribe])
    if before_publish is not None:
        before_publish(sent)
    payload = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    conn.publish(topics.cmd(site, sent.cmd_id), payload, retain=False)
    return sent


class ResultReader:
    """Picks this command's results out of the messages; warns a few times."""

    def __init__(self, site: str, cmd_id: str) -> None:
        self.topic = topics.cmd_result(site, cmd_id)
        self.cmd_id = cmd_id
        self.ignored = 0

    def _ignore(self, why: str) -> None:
        self.ignored += 1
        if self.ignored <= MAX_WARNINGS:
            print(f"warning: ignored a message on {self.topic}: {why}", file=sys.stderr)

    def read(self, msg: Message) -> dict[str, Any] | None:
        """The result document if ``msg`` is this command's, else None."""
        if msg.topic != self.topic:
            return None
        if msg.retain:
            self._ignore("it is retained (a kiosk never retains results)")
            return None
        try:
            doc = decode_json_object(msg.payload, max_bytes=MAX_MESSAGE)
        except ValidationError as err:
            self._ignore(f"{err} ({err.reason})")
            return None
        if doc.get("cmd_id") != self.cmd_id:
            self._ignore("its cmd_id is not this command's")
            return None
        if not isinstance(doc.get("ok"), bool):
            self._ignore("it has no ok: true or false")
            return None
        if "result" in doc and not isinstance(doc["result"], dict):
            self._ignore("its result is not an object")
            return None
        return doc


def wait_result(
    conn: Connection,
    reader: ResultReader,
    deadline: float,
    *,
    other: Callable[[Message], None] | None = None,
) -> dict[str, Any] | None:
    """The first result before ``deadline`` (a ``time.monotonic()``), or None."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        msg = conn.get(left)
        if msg is None:
            continue
        result = reader.read(msg)
        if result is not None:
            return result
        if other is not None:
            other(msg)


def refusal_text(result: Mapping[str, Any]) -> str:
    """The kiosk's reason for ok: false, cleaned for the terminal."""
    error = result.get("error")
    reason = result.get("reason")
    if isinstance(error, str) and error:
        return clean(error)
    return slug_words(reason) if isinstance(reason, str) and reason else "no reason given"


def validity(sent: Outgoing, times: Times) -> str:
    return f"valid until {times.clock(sent.expires_at)} ({sent.ttl:.0f} s)"


def print_json(result: Mapping[str, Any]) -> None:
    print(json.dumps(result, ensure_ascii=False))


# -- sync and time ------------------------------------------------------------


def _simple(
    args: argparse.Namespace, settings: Settings, cmd: str, body: dict[str, Any] | None = None
) -> tuple[Outgoing, dict[str, Any]]:
    site = settings.need_site()
    ttl, timeout = check_ttl(args.ttl), check_timeout(args.timeout)
    key = load_private_key(settings.need_key())
    times = Times(getattr(args, "utc", False))
    with Connection(settings.broker, timeout=settings.timeout) as conn:
        sent = send_command(conn, site, cmd, body or {}, key, ttl=ttl)
        print(f"sent {cmd} {sent.cmd_id} to {site}; {validity(sent, times)}", file=sys.stderr)
        result = wait_result(conn, ResultReader(site, sent.cmd_id), time.monotonic() + timeout)
    if result is None:
        raise NoAnswer(
            f"no answer from {site} within {timeout:g} s (command {sent.cmd_id}); is the "
            f"kiosk online? see kioskctl status --site {site}"
        )
    if args.json:
        print_json(result)
    if result["ok"] is not True:
        raise Refused(f"{site} refused the {cmd} command: {refusal_text(result)}")
    return sent, result


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    sent, _result = _simple(args, settings, "sync")
    if not args.json:
        print(f"{sent.site}: status republished (see kioskctl status --site {sent.site})")
    return 0


def cmd_time(args: argparse.Namespace, settings: Settings) -> int:
    body = {} if args.lower_from is None else {"lower_from": args.lower_from}
    sent, result = _simple(args, settings, "time", body)
    if args.json:
        return 0
    body = result.get("result") or {}
    times = Times(args.utc)
    floor = to_unix(body.get("floor"))
    clock = body.get("clock")
    trust = {"synced": "trusted", "untrusted": "not trusted"}.get(
        clock if isinstance(clock, str) else "", f"{clean(clock, 32)}" if clock else "not reported"
    )
    at = times.stamp(floor) if floor is not None else "a time it did not report"
    print(f"{sent.site}: the kiosk's clock floor is now {at}; its clock is {trust}")
    return 0


def _rfc3339(text: str) -> str:
    """An argparse type: the text if it is an RFC 3339 time the protocol takes."""
    try:
        parse_time(text)
    except ValueError as err:  # ValidationError, or what fromisoformat raises
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time ({err})") from None
    return text


def add_ttl_flags(p: argparse.ArgumentParser, *, timeout: float = 20.0) -> None:
    p.add_argument(
        "--ttl",
        type=float,
        default=DEFAULT_TTL_S,
        metavar="S",
        help=f"seconds the command stays valid (default {DEFAULT_TTL_S:.0f}, "
        f"at most {MAX_LIFETIME_S:.0f})",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=timeout,
        metavar="S",
        help=f"seconds to wait for the kiosk's answer (default {timeout:g})",
    )
    p.add_argument("--json", action="store_true", help="print the kiosk's result as JSON")
    p.add_argument("--utc", action="store_true", help="show times in UTC, not local time")


def add_parsers(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "sync",
        parents=[common],
        help="ask a kiosk to republish its status (signed owner command)",
        description="Exit 0 done, 1 refused, 2 no answer in time.",
    )
    p.add_argument("--site")
    add_ttl_flags(p)
    p.set_defaults(func="sync")

    p = sub.add_parser(
        "time",
        parents=[common],
        help="set a kiosk's clock floor to now (signed owner command)",
        description="For a kiosk without network time after a long power cut: sets its "
        "clock floor (its lower bound on true time) to now, as signed in this command. "
        "Run it from a computer whose clock is right. Exit 0 done, 1 refused, 2 no "
        "answer in time.",
    )
    p.add_argument("--site")
    p.add_argument(
        "--lower-from",
        metavar="TIME",
        type=_rfc3339,
        help="the kiosk's clock floor to repair, as its refusal named it (RFC 3339): "
        "only for a floor that a wrong clock set too far ahead; the kiosk's own clock "
        "must agree with this computer's",
    )
    add_ttl_flags(p)
    p.set_defaults(func="time")
