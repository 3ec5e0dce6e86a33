"""Payloads of the MQTT protocol (PROTOCOL.md): decoding, command checks, builders.

Pure functions on bytes and dicts, no paho and no store, so every rule here is
tested without a broker. What may escape: :class:`CommandRefused` (a
ValidationError) from :func:`check_command`, ValidationError from
:func:`decode_json_object`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kiosk.audit import parse_rfc3339, rfc3339
from kiosk.errors import SignatureError, ValidationError
from kiosk.store import LogRecord
from kiosk.wire import ROLE_OWNER, Keyring
from sync.topics import ID_RE

MAX_PAYLOAD = 64 * 1024
COMMANDS = ("unlock", "logs", "sync")
FUTURE_SKEW_S = 300.0  # a command issued further ahead of the kiosk's time is refused
PAGE_SIZE = 200  # events and log records per `logs` result page (each)
MAX_REASON_LEN = 200

# The refusal reasons of cmd_result (the `reason` field; `error` starts with it).
REFUSALS: dict[str, str] = {
    "retained": "a retained command is never executed (publish commands with retain=false)",
    "malformed": "the payload is not a UTF-8 JSON command object of at most 64 KiB",
    "bad_version": "v must be 1 (this kiosk speaks protocol v1)",
    "wrong_site": "the command is for another site",
    "cmd_id_mismatch": "cmd_id differs from the topic's",
    "unsigned": "the command has no signature (sig); commands are always signed",
    "bad_signature": "the signature matches no trusted key",
    "wrong_role": "the signer lacks the owner role (only owner keys may send commands)",
    "bad_time": "issued_at and expires_at must be RFC 3339 UTC times",
    "expired": "the command expired (expires_at is not after the kiosk's time)",
    "issued_in_future": "issued_at is more than 5 minutes ahead of the kiosk's time",
    "replayed": "this cmd_id was seen before (a replay); use a new cmd_id",
    "unknown_cmd": "unknown cmd; this kiosk knows " + ", ".join(COMMANDS),
    "bad_args": "args must be an object with the fields the command takes",
}


class CommandRefused(ValidationError):
    """A command that must not run; ``reason`` is a key of :data:`REFUSALS`."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(reason, message or REFUSALS[reason])


def decode_json_object(payload: bytes) -> dict[str, Any]:
    """Bytes of an MQTT payload to a JSON object; raises ValidationError.

    The reason is ``too_large``, ``not_utf8``, ``malformed`` or ``not_object``;
    the message never echoes the payload.
    """
    if len(payload) > MAX_PAYLOAD:
        raise ValidationError("too_large", f"payloads are limited to {MAX_PAYLOAD} bytes")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("not_utf8", "the payload is not UTF-8 text") from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, ValueError, RecursionError):
        raise ValidationError("malformed", "the payload is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValidationError("not_object", "the payload must be a JSON object")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@dataclass(frozen=True)
class Command:
    cmd_id: str
    cmd: str
    issued_at: float
    expires_at: float
    args: dict[str, Any] = field(default_factory=dict)


def command_id_ok(cmd_id: str | None) -> bool:
    return cmd_id is not None and bool(ID_RE.match(cmd_id))


def check_command(payload: bytes, *, topic_cmd_id: str, site: str, keyring: Keyring
                  ) -> Command:
    """Shape, site, id and signature of a command; raises CommandRefused.

    Returns the signature-verified command, whose ``cmd`` may still be
    unknown (the caller refuses it after recording the signed id). The time
    rules need the kiosk's clock, see :func:`check_times`.
    """
    try:
        doc = decode_json_object(payload)
    except ValidationError:
        raise CommandRefused("malformed") from None
    if doc.get("v") != 1:
        raise CommandRefused("bad_version")
    if doc.get("site") != site:
        raise CommandRefused("wrong_site")
    if doc.get("cmd_id") != topic_cmd_id:
        raise CommandRefused("cmd_id_mismatch")
    try:
        keyring.verify(doc, ROLE_OWNER)
    except SignatureError as err:
        reason = err.reason if err.reason in REFUSALS else "bad_signature"
        raise CommandRefused(reason) from None
    try:
        issued = parse_rfc3339(doc.get("issued_at"))  # type: ignore[arg-type]
        expires = parse_rfc3339(doc.get("expires_at"))  # type: ignore[arg-type]
    except (ValueError, TypeError):
        raise CommandRefused("bad_time") from None
    cmd = doc.get("cmd")
    args = doc.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise CommandRefused("bad_args", "args must be a JSON object")
    name = cmd if isinstance(cmd, str) and len(cmd) <= 64 else ""
    return Command(topic_cmd_id, name, issued, expires, args)


def check_times(command: Command, now: float) -> None:
    """Expiry and the future bound, against the kiosk's trusted time."""
    if command.issued_at > now + FUTURE_SKEW_S:
        raise CommandRefused("issued_in_future")
    if command.expires_at <= now:
        raise CommandRefused("expired")


def check_args(command: Command) -> dict[str, Any]:
    """The args a known command takes, normalized; raises CommandRefused."""
    args = command.args
    if command.cmd == "unlock":
        reason = args.get("reason", "")
        if not isinstance(reason, str) or len(reason) > MAX_REASON_LEN:
            raise CommandRefused("bad_args", f"args.reason must be a string of at most "
                                             f"{MAX_REASON_LEN} characters")
        return {"reason": reason}
    if command.cmd == "logs":
        out: dict[str, Any] = {}
        for key in ("since_seq", "since_log_seq"):
            value = args.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise CommandRefused("bad_args", f"args.{key} must be a whole number >= 0")
            out[key] = value
        return out
    return {}


def refusal(cmd_id: str, err: ValidationError) -> dict[str, Any]:
    return {"cmd_id": cmd_id, "ok": False, "error": f"{err.reason}: {err}", "reason": err.reason}


def log_payload(site: str, rec: LogRecord) -> dict[str, Any]:
    return {"v": 1, "site": site, "seq": rec.seq, "ts": rfc3339(rec.ts), "level": rec.level,
            "logger": rec.logger, "message": rec.message}


def dumps(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
