"""Ed25519 keys, signatures and roles (docs/protocol.md, "Signatures").

Signed bytes are the document without ``sig`` in canonical JSON; ``sig`` is
the unpadded base64url of the 64-byte signature; a public key is the
unpadded base64url of its raw 32 bytes, and its id is the first 16 hex
characters of SHA-256 over those bytes.

Roles, from least to most power:

- ``auditor``: may sign the ``logs`` and ``sync`` commands only. An
  always-on hub holds one to fetch what a broker lost, so it never holds a
  key that opens the door.
- ``hub``: may sign orders and staff documents.
- ``owner``: may sign orders, staff documents and every command.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from protocol.canonical import b64url_decode, b64url_encode, canonical_json
from protocol.errors import SignatureError


class Role(StrEnum):
    AUDITOR = "auditor"
    HUB = "hub"
    OWNER = "owner"


#: Who may sign what (documents by kind, commands by name).
DOCUMENT_ROLES = frozenset({Role.HUB, Role.OWNER})


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key in the protocol's form; raises ValueError."""
    if not isinstance(text, str):
        raise ValueError("a public key is a string")
    raw = b64url_decode(text.strip())
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_text(key: Ed25519PublicKey) -> str:
    return b64url_encode(raw_public(key))


def key_id(key: Ed25519PublicKey | str) -> str:
    """First 16 hex characters of SHA-256 over the raw public key."""
    pub = parse_public_key(key) if isinstance(key, str) else key
    return hashlib.sha256(raw_public(pub)).hexdigest()[:16]


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """PEM, PKCS8, unencrypted (the ``kioskctl keygen`` format)."""
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def private_key_from_pem(data: bytes) -> Ed25519PrivateKey:
    """Parse a PEM private key; raises ValueError with a reason for people."""
    if b"PRIVATE KEY" not in data:
        raise ValueError("not a PEM private key")
    try:
        key = load_pem_private_key(data, password=None)
    except TypeError:
        raise ValueError("the key is encrypted; an unencrypted key is needed") from None
    except ValueError:
        raise ValueError("not a readable PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 key (the protocol signs with Ed25519)")
    return key


def sign_document(doc: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of ``doc`` with ``sig`` set over its canonical bytes."""
    body = {k: v for k, v in doc.items() if k != "sig"}
    signed = dict(body)
    signed["sig"] = b64url_encode(key.sign(canonical_json(body)))
    return signed


@dataclass(frozen=True)
class TrustedKey:
    key: Ed25519PublicKey
    role: Role
    text: str
    key_id: str


@dataclass(frozen=True)
class Signer:
    """Who signed a verified document: the key's role and id."""

    role: Role
    key_id: str


class Keyring:
    """The public keys a receiver trusts, each with a role.

    Raises ValueError at construction for a key that is not a valid public
    key. A key listed under several roles counts with its strongest.
    """

    def __init__(
        self,
        hub_keys: Iterable[str] = (),
        owner_keys: Iterable[str] = (),
        auditor_keys: Iterable[str] = (),
    ) -> None:
        self._keys: list[TrustedKey] = []
        # Strongest first, so a key listed twice is found with its best role.
        for role, texts in (
            (Role.OWNER, owner_keys),
            (Role.HUB, hub_keys),
            (Role.AUDITOR, auditor_keys),
        ):
            for text in texts:
                pub = parse_public_key(text)
                self._keys.append(TrustedKey(pub, role, text.strip(), key_id(pub)))

    def __len__(self) -> int:
        return len(self._keys)

    def roles(self) -> dict[str, str]:
        """key id -> role, for people and the doctor."""
        out: dict[str, str] = {}
        for k in self._keys:
            out.setdefault(k.key_id, str(k.role))
        return out

    def signer(self, doc: Mapping[str, Any]) -> Signer:
        """Check ``doc['sig']``; return the matching key's role and id.

        Raises SignatureError: ``unsigned`` (no sig) or ``bad_signature``
        (malformed, or matching no trusted key).
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
        for trusted in self._keys:
            try:
                trusted.key.verify(sig, body)
            except InvalidSignature:
                continue
            return Signer(trusted.role, trusted.key_id)
        raise SignatureError("bad_signature", "the signature matches no trusted key")

    def verify(self, doc: Mapping[str, Any], allowed: Iterable[Role]) -> Signer:
        """Like :meth:`signer`, and the signer's role must be in ``allowed``.

        Raises SignatureError ``wrong_role`` otherwise, or
        ``auditor_not_allowed`` when an auditor key signed something only a
        hub or owner may sign.
        """
        signer = self.signer(doc)
        allowed = frozenset(allowed)
        if signer.role in allowed:
            return signer
        need = " or ".join(sorted(str(r) for r in allowed))
        if signer.role is Role.AUDITOR:
            raise SignatureError(
                "auditor_not_allowed",
                f"an auditor key may sign only the logs and sync commands ({need} needed)",
            )
        raise SignatureError("wrong_role", f"the signer has the {signer.role} role, {need} needed")
