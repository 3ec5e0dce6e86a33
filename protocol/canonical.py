"""Canonical JSON, strict decoding of untrusted payloads, base64url, SHA-256.

:func:`canonical_json` is the byte form that signatures and event hashes
cover (docs/protocol.md, "Signatures").

:func:`decode_json_object` and :func:`loads_documents` are the only way
untrusted JSON enters the project. Python's ``json`` accepts lone surrogate
escapes (which then fail to encode as UTF-8), integers of any length (which
then fail to print past 4,300 digits), ``NaN`` and ``Infinity``, and nesting
deep enough to exhaust the stack; each of those has crashed code that used a
value long after it was accepted. Here they are refused at the door, each
with its own reason, and a bad value in one document of a batch never stops
the others from being read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from protocol.errors import ValidationError

MAX_PAYLOAD = 64 * 1024  # bytes of one MQTT payload or one document
MAX_DEPTH = 16  # nesting of objects and arrays
MAX_INT_DIGITS = 20  # any integer in a document: enough for 2**64
_SURROGATE = re.compile("[\ud800-\udfff]")
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]+={0,2}")


def canonical_json(doc: Mapping[str, Any]) -> bytes:
    """The protocol's canonical bytes: sorted keys, no spaces, raw UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, key order kept (payloads the project publishes)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded (or padded) base64url; raises ValueError on bad input."""
    if not isinstance(text, str) or len(text) > 4096 or not _B64URL_RE.fullmatch(text):
        raise ValueError("not base64url")
    stripped = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


class _Refused:
    """A value the decoder would not take; the walk turns it into a reason."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_int(text: str) -> Any:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        return _Refused("bad_number")
    return int(text)


def _parse_float(text: str) -> Any:
    if len(text) > 64:
        return _Refused("bad_number")
    value = float(text)
    return value if math.isfinite(value) else _Refused("bad_number")


def _parse_constant(_name: str) -> Any:
    return _Refused("bad_number")  # NaN, Infinity, -Infinity are not JSON


def _object(pairs: list[tuple[str, Any]]) -> Any:
    # A repeated key means one thing to Python (the last wins) and another to
    # a reader that takes the first: an archive of such bytes could be read
    # back as an event other than the one whose hash was checked.
    obj = dict(pairs)
    return obj if len(obj) == len(pairs) else _Refused("duplicate_key")


_MESSAGES = {
    "bad_number": "a number is not finite or has more than 20 digits",
    "bad_text": "a string holds a lone surrogate (not encodable as UTF-8)",
    "too_deep": f"objects and arrays nest deeper than {MAX_DEPTH} levels",
    "duplicate_key": "an object names the same key twice",
}


def check_value(value: Any, depth: int = 0) -> None:
    """Raise ValidationError if a decoded value holds anything refused above."""
    if isinstance(value, _Refused):
        raise ValidationError(value.reason, _MESSAGES[value.reason])
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise ValidationError("bad_text", _MESSAGES["bad_text"])
        return
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise ValidationError("too_deep", _MESSAGES["too_deep"])
        for key, item in value.items():
            if _SURROGATE.search(key):
                raise ValidationError("bad_text", _MESSAGES["bad_text"])
            check_value(item, depth + 1)
    elif isinstance(value, list):
        if depth >= MAX_DEPTH:
            raise ValidationError("too_deep", _MESSAGES["too_deep"])
        for item in value:
            check_value(item, depth + 1)


def _loads(text: str) -> Any:
    """json.loads with the refusing hooks; raises JSONDecodeError/RecursionError."""
    return json.loads(
        text,
        parse_int=_parse_int,
        parse_float=_parse_float,
        parse_constant=_parse_constant,
        object_pairs_hook=_object,
    )


def decode_json_object(payload: bytes | str, *, max_bytes: int = MAX_PAYLOAD) -> dict[str, Any]:
    """Untrusted bytes (or text) to a JSON object whose every value is safe.

    Raises ValidationError with reason ``too_large``, ``not_utf8``,
    ``malformed``, ``not_object``, ``bad_number``, ``bad_text``,
    ``duplicate_key`` or ``too_deep``; the message never echoes the payload.
    """
    size = len(payload) if isinstance(payload, bytes) else len(payload.encode("utf-8", "replace"))
    if size > max_bytes:
        raise ValidationError("too_large", f"payloads are limited to {max_bytes} bytes")
    if isinstance(payload, bytes):
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError("not_utf8", "the payload is not UTF-8 text") from None
    else:
        text = payload
    try:
        value = _loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError):
        raise ValidationError("malformed", "the payload is not valid JSON") from None
    if isinstance(value, _Refused) and value.reason == "duplicate_key":
        check_value(value)  # an object, refused (a bare NaN stays "not an object")
    if not isinstance(value, dict):
        raise ValidationError("not_object", "the payload must be a JSON object")
    check_value(value)
    return value


def loads_documents(text: str) -> list[Any]:
    """One JSON object, a JSON array of them, or JSON lines, for a file import.

    Each document is returned as decoded, *not* checked: the caller judges
    each alone with :func:`check_value` (a lone surrogate in one line must
    not stop the others). A line that is not JSON is returned as a
    :class:`ValidationError` in its place. Raises ValidationError
    (``malformed``) only when the text as a whole cannot be split.
    """
    stripped = text.strip()
    if not stripped:
        return []
    try:
        value = _loads(stripped)
    except RecursionError:
        raise ValidationError("too_deep", _MESSAGES["too_deep"]) from None
    except (json.JSONDecodeError, ValueError):
        docs: list[Any] = []
        for number, line in enumerate(stripped.splitlines(), 1):
            if not line.strip():
                continue
            try:
                docs.append(_loads(line))
            except json.JSONDecodeError as exc:
                where = f"{exc.msg} at column {exc.colno}"
                docs.append(ValidationError("malformed", f"line {number}: not JSON ({where})"))
            except ValueError:
                docs.append(ValidationError("malformed", f"line {number}: not JSON"))
            except RecursionError:
                docs.append(ValidationError("too_deep", f"line {number}: {_MESSAGES['too_deep']}"))
        return docs
    return value if isinstance(value, list) else [value]
