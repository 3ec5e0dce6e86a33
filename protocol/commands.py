"""Signed owner commands (docs/protocol.md, "Commands"): checks and builders.

A receiver judges a command in this order, the first failure winning:
:func:`check_command` (shape, site, id, signature, role, times as written),
then, with its own clock and memory, :func:`check_times` (expiry, the
future bound, age), then :func:`check_args`. Every failure is a
:class:`CommandRefused` whose ``reason`` is a key of :data:`REFUSALS`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.canonical import check_value, decode_json_object
from protocol.errors import SignatureError, ValidationError
from protocol.keys import Keyring, Role, Signer, sign_document
from protocol.orders import printable
from protocol.times import format_time, parse_time
from protocol.topics import ID_RE

#: who may sign each command
COMMAND_ROLES: dict[str, frozenset[Role]] = {
    "unlock": frozenset({Role.OWNER}),
    "cancel": frozenset({Role.OWNER}),
    "time": frozenset({Role.OWNER}),
    "logs": frozenset({Role.OWNER, Role.AUDITOR}),
    "sync": frozenset({Role.OWNER, Role.AUDITOR}),
    "orders": frozenset({Role.OWNER, Role.AUDITOR}),
}
COMMANDS = tuple(COMMAND_ROLES)
MAX_LIFETIME_S = 600.0  # expires_at - issued_at
FUTURE_SKEW_S = 300.0  # issued_at may be this far ahead of the receiver's time
COMMAND_MEMORY_S = 7 * 86400.0  # receivers remember command ids at least this long
MAX_AGE_S = COMMAND_MEMORY_S - MAX_LIFETIME_S  # older issued_at: refused (too_old)
DEFAULT_TTL_S = 60.0  # what kioskctl and the hub give a command by default
PAGE_SIZE = 200  # events and log records per `logs` result page (each)
MAX_REASON_LEN = 200
MAX_ACCOUNT_LEN = 64
MAX_ORDER_IDS = 100

REFUSALS: dict[str, str] = {
    "retained": "a retained command is never executed (publish commands with retain=false)",
    "malformed": "the payload is not a UTF-8 JSON command object of at most 64 KiB",
    "bad_version": "v must be the integer 1 (this kiosk speaks protocol v1)",
    "wrong_site": "the command is for another site",
    "cmd_id_mismatch": "cmd_id differs from the topic's",
    "unsigned": "the command has no signature (sig); commands are always signed",
    "bad_signature": "the signature matches no trusted key",
    "wrong_role": "the signer's role may not send this command (unlock, cancel and time "
    "need an owner key)",
    "auditor_not_allowed": "an auditor key may sign only the logs, sync and orders commands",
    "bad_time": "issued_at and expires_at must be RFC 3339 UTC times from 2020 to 2100, "
    "expires_at after issued_at",
    "too_long_lived": f"a command may live at most {MAX_LIFETIME_S:.0f} s (expires_at - issued_at)",
    "bad_args": "args must be an object with the fields the command takes",
    "replayed": "this cmd_id was seen before (a replay); use a new cmd_id",
    "cancelled": "this cmd_id was withdrawn by a cancel command before it arrived",
    "issued_in_future": f"issued_at is more than {FUTURE_SKEW_S:.0f} s ahead of the kiosk's time",
    "too_old": "issued_at is older than the kiosk remembers command ids",
    "expired": "the command expired (expires_at is not after the kiosk's time)",
    "unknown_cmd": "unknown cmd; this kiosk knows " + ", ".join(COMMANDS),
    "clock_conflict": "the command's signed time is further ahead than the kiosk can account "
    'for (see docs/protocol.md, "Time"); it was not adopted',
    "internal": "the kiosk could not judge this command (a defect, logged by class)",
}


class CommandRefused(ValidationError):
    """A command that must not run; ``reason`` is a key of :data:`REFUSALS`.

    ``signer`` is set when the signature was verified (so the refusal's
    event can name the key).
    """

    def __init__(
        self, reason: str, message: str | None = None, *, signer: Signer | None = None
    ) -> None:
        super().__init__(reason, message or REFUSALS[reason])
        self.signer = signer


@dataclass(frozen=True)
class Command:
    cmd_id: str
    cmd: str  # may be unknown: check_times/check_args refuse it after the id is recorded
    issued_at: float
    expires_at: float
    signer: Signer
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def reason_text(self) -> str:
        """The owner's reason (``args.reason``) when it is a short string, else ""."""
        r = self.args.get("reason")
        return r if isinstance(r, str) and len(r) <= MAX_REASON_LEN and printable(r) else ""


def parse_command(payload: bytes | Mapping[str, Any]) -> dict[str, Any]:
    """The payload as a JSON object; CommandRefused ``malformed`` otherwise."""
    try:
        if isinstance(payload, (bytes, str)):
            return decode_json_object(payload)
        doc = dict(payload)
        check_value(doc)
        return doc
    except ValidationError:
        raise CommandRefused("malformed") from None


def check_command(
    payload: bytes | Mapping[str, Any], *, topic_cmd_id: str, site: str, keyring: Keyring
) -> Command:
    """Shape, site, id, signature, role and written times; raises CommandRefused."""
    doc = parse_command(payload)
    v = doc.get("v")
    if isinstance(v, bool) or v != 1 or not isinstance(v, int):
        raise CommandRefused("bad_version")
    if doc.get("site") != site:
        raise CommandRefused("wrong_site")
    if doc.get("cmd_id") != topic_cmd_id:
        raise CommandRefused("cmd_id_mismatch")
    try:
        signer = keyring.signer(doc)
    except SignatureError as err:
        raise CommandRefused(err.reason) from None
    cmd = doc.get("cmd")
    name = cmd if isinstance(cmd, str) and len(cmd) <= 64 and printable(cmd) else ""
    allowed = COMMAND_ROLES.get(name, frozenset({Role.OWNER}))
    if signer.role not in allowed:
        reason = "auditor_not_allowed" if signer.role is Role.AUDITOR else "wrong_role"
        raise CommandRefused(reason, signer=signer)
    try:
        issued = parse_time(doc.get("issued_at"))
        expires = parse_time(doc.get("expires_at"))
    except ValueError:
        raise CommandRefused("bad_time", signer=signer) from None
    if expires <= issued:
        raise CommandRefused("bad_time", signer=signer)
    if expires - issued > MAX_LIFETIME_S:
        raise CommandRefused("too_long_lived", signer=signer)
    args = doc.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise CommandRefused("bad_args", "args must be a JSON object", signer=signer)
    return Command(topic_cmd_id, name, issued, expires, signer, args)


def check_times(command: Command, now: float) -> None:
    """Expiry, the future bound and age against the receiver's judged time."""
    if command.issued_at > now + FUTURE_SKEW_S:
        raise CommandRefused("issued_in_future", signer=command.signer)
    if command.issued_at < now - MAX_AGE_S:
        raise CommandRefused("too_old", signer=command.signer)
    if command.expires_at <= now:
        raise CommandRefused("expired", signer=command.signer)


def _text_arg(args: Mapping[str, Any], key: str, max_len: int, signer: Signer) -> str:
    value = args.get(key, "")
    if not isinstance(value, str) or len(value) > max_len or not printable(value):
        raise CommandRefused(
            "bad_args",
            f"args.{key} must be a string of at most {max_len} printable characters",
            signer=signer,
        )
    return value


def _seq_arg(args: Mapping[str, Any], key: str, signer: Signer) -> int:
    value = args.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**53:
        raise CommandRefused("bad_args", f"args.{key} must be a whole number >= 0", signer=signer)
    return int(value)


def check_args(command: Command) -> dict[str, Any]:
    """The args a known command takes, normalized; raises CommandRefused."""
    args, signer = command.args, command.signer
    if command.cmd not in COMMAND_ROLES:
        raise CommandRefused("unknown_cmd", signer=signer)
    if command.cmd == "unlock":
        out = {"reason": _text_arg(args, "reason", MAX_REASON_LEN, signer)}
        account = _text_arg(args, "account", MAX_ACCOUNT_LEN, signer)
        if account:
            out["account"] = account
        return out
    if command.cmd == "logs":
        return {k: _seq_arg(args, k, signer) for k in ("since_seq", "since_log_seq")}
    if command.cmd == "cancel":
        target = args.get("cmd_id")
        if not isinstance(target, str) or not ID_RE.match(target) or target == command.cmd_id:
            raise CommandRefused(
                "bad_args", "args.cmd_id must be the id of another command", signer=signer
            )
        return {"cmd_id": target, "reason": _text_arg(args, "reason", MAX_REASON_LEN, signer)}
    if command.cmd == "orders":
        ids = args.get("order_ids")
        if (
            not isinstance(ids, list)
            or not 1 <= len(ids) <= MAX_ORDER_IDS
            or not all(isinstance(i, str) and ID_RE.match(i) for i in ids)
        ):
            raise CommandRefused(
                "bad_args",
                f"args.order_ids must be a list of 1 to {MAX_ORDER_IDS} order ids",
                signer=signer,
            )
        return {"order_ids": list(dict.fromkeys(ids))}
    if command.cmd == "time" and "lower_from" in args:
        floor = lower_from(command)
        if floor is None:
            raise CommandRefused(
                "bad_args", "args.lower_from must be an RFC 3339 time", signer=signer
            )
        return {"lower_from": floor}
    return {}  # sync, time


def lower_from(command: Command) -> float | None:
    """A ``time`` command's ``args.lower_from`` (the clock floor it repairs, as
    the kiosk reported it when it refused a ``time`` as expired), or None.

    Binding a lowering to the kiosk's current floor is what stops a captured
    old ``time`` replayed under a spoofed wall clock from lowering it
    (docs/protocol.md, "Commands").
    """
    value = command.args.get("lower_from")
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except (ValueError, ValidationError):  # garbage, or outside 2020..2100
        return None


def refusal(cmd_id: str, err: ValidationError) -> dict[str, Any]:
    """The ``cmd_result`` body of a refused command."""
    return {"cmd_id": cmd_id, "ok": False, "error": f"{err.reason}: {err}", "reason": err.reason}


def success(cmd_id: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """The ``cmd_result`` body of a command that ran."""
    return {"cmd_id": cmd_id, "ok": True, "result": dict(result)}


def new_cmd_id(cmd: str, now: float) -> str:
    """Unique and matching [A-Za-z0-9_.-]{1,64}."""
    return f"{cmd[:16]}-{int(now)}-{secrets.token_hex(6)}"


def build_command(
    site: str,
    cmd: str,
    args: Mapping[str, Any],
    key: Ed25519PrivateKey,
    *,
    now: float,
    ttl: float = DEFAULT_TTL_S,
    cmd_id: str | None = None,
) -> dict[str, Any]:
    """A signed command document. ``ttl`` is capped at :data:`MAX_LIFETIME_S`."""
    ttl = min(max(1.0, ttl), MAX_LIFETIME_S)
    doc = {
        "v": 1,
        "site": site,
        "cmd_id": cmd_id or new_cmd_id(cmd, now),
        "cmd": cmd,
        "issued_at": format_time(now),
        "expires_at": format_time(now + ttl),
        "args": dict(args),
    }
    return sign_document(doc, key)
