"""Canonical JSON, base64url and Ed25519 signatures, exactly as PROTOCOL.md.

Shared by order intake (CLI and MQTT), commands and the audit chain, so it
lives in the core rather than in ``sync``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from kiosk.errors import SignatureError

ROLE_HUB = "hub"
ROLE_OWNER = "owner"


def canonical_json(doc: Mapping[str, Any]) -> bytes:
    """The protocol's canonical bytes: sorted keys, no spaces, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded (or padded) base64url; raises ValueError on bad input."""
    if not isinstance(text, str) or not _B64URL_RE.fullmatch(text):
        raise ValueError("not base64url")
    stripped = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


_B64URL_RE = re.compile(r"[A-Za-z0-9_-]+={0,2}")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key in the protocol's form (unpadded base64url of 32 bytes)."""
    raw = b64url_decode(text.strip())
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_text(key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return b64url_encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def sign_document(doc: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """Return a copy of ``doc`` with ``sig`` set over its canonical bytes."""
    body = {k: v for k, v in doc.items() if k != "sig"}
    signed = dict(body)
    signed["sig"] = b64url_encode(key.sign(canonical_json(body)))
    return signed


@dataclass(frozen=True)
class TrustedKey:
    key: Ed25519PublicKey
    role: str  # ROLE_HUB or ROLE_OWNER
    text: str


class Keyring:
    """The public keys a kiosk trusts, each with a role."""

    def __init__(self, hub_keys: Iterable[str] = (), owner_keys: Iterable[str] = ()) -> None:
        self._keys: list[TrustedKey] = []
        for text in owner_keys:
            self._keys.append(TrustedKey(parse_public_key(text), ROLE_OWNER, text))
        for text in hub_keys:
            self._keys.append(TrustedKey(parse_public_key(text), ROLE_HUB, text))

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, doc: Mapping[str, Any], need_role: str) -> str:
        """Check ``doc['sig']`` against the keyring; return the signer's role.

        Raises SignatureError (reason ``unsigned``, ``bad_signature`` or
        ``wrong_role``). An ``owner`` key satisfies a ``hub`` requirement.
        """
        sig_text = doc.get("sig")
        if sig_text is None:
            raise SignatureError("unsigned", "the document has no signature (sig)")
        try:
            sig = b64url_decode(sig_text)
        except ValueError:
            raise SignatureError("bad_signature", "sig is not base64url") from None
        if len(sig) != 64:
            raise SignatureError("bad_signature", "sig is not a 64-byte Ed25519 signature")
        body = canonical_json({k: v for k, v in doc.items() if k != "sig"})
        matched_role: str | None = None
        for trusted in self._keys:
            try:
                trusted.key.verify(sig, body)
            except InvalidSignature:
                continue
            if trusted.role == ROLE_OWNER:
                return ROLE_OWNER
            matched_role = trusted.role
        if matched_role is None:
            raise SignatureError("bad_signature", "the signature matches no trusted key")
        if need_role == ROLE_OWNER:
            raise SignatureError(
                "wrong_role", f"the signer has the {matched_role!r} role, {need_role!r} is needed"
            )
        return matched_role
