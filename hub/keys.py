"""The hub's two signing keys: loading them, and ``pickup-hub keygen``.

- the **hub key** signs orders (role ``hub`` on the kiosk);
- the **auditor key** signs the ``logs`` and ``sync`` commands only (role
  ``auditor``), which is how the hub fetches what a broker lost.

The hub never holds an ``owner`` key: a key that opens doors stays with the
owner (kioskctl on her laptop), so a stolen hub cannot open a door
(docs/hub.md, "Keys and roles"). Key files are PEM PKCS8 Ed25519, the
``kioskctl keygen`` format, written mode 0600 from their first byte.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.errors import KeyFileError
from protocol.keys import (
    generate_private_key,
    key_id,
    private_key_from_pem,
    private_key_pem,
    public_key_text,
)


@dataclass(frozen=True)
class HubKeys:
    hub: Ed25519PrivateKey
    auditor: Ed25519PrivateKey

    @property
    def hub_public(self) -> str:
        return public_key_text(self.hub.public_key())

    @property
    def auditor_public(self) -> str:
        return public_key_text(self.auditor.public_key())

    def trust_lines(self) -> str:
        """The lines for each kiosk's ``[trust]`` table."""
        return f'hub_keys = ["{self.hub_public}"]\nauditor_keys = ["{self.auditor_public}"]'


def load_key(path: str | os.PathLike[str], what: str) -> Ed25519PrivateKey:
    """Read one PEM Ed25519 private key; KeyFileError names the file and the fix."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(
            f"{what} {file} does not exist (make the hub's keys with `pickup-hub keygen`)"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} {file}: {exc.strerror}") from None
    try:
        return private_key_from_pem(data)
    except ValueError as exc:
        raise KeyFileError(f"{what} {file}: {exc}") from None


def load_keys(hub_key: str, auditor_key: str) -> HubKeys:
    keys = HubKeys(load_key(hub_key, "keys.hub_key"), load_key(auditor_key, "keys.auditor_key"))
    if key_id(keys.hub.public_key()) == key_id(keys.auditor.public_key()):
        raise KeyFileError(
            "keys.hub_key and keys.auditor_key are the same key; the auditor key must be its "
            "own (it may sign logs and sync only)"
        )
    return keys


def write_private(path: Path, key: Ed25519PrivateKey, *, force: bool = False) -> None:
    """Write a key file 0600 from its first byte (via a temporary file and rename)."""
    if path.exists() and not force:
        raise KeyFileError(f"{path} already exists; pass --force to replace it")
    if not path.parent.is_dir():
        raise KeyFileError(f"directory {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_key_pem(key))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise KeyFileError(f"cannot write {path}: {exc.strerror}") from None


def keygen(hub_key: str, auditor_key: str, *, force: bool = False) -> HubKeys:
    """Make both keys (refusing to overwrite unless ``force``)."""
    paths = (Path(hub_key), Path(auditor_key))
    if not force:
        for p in paths:
            if p.exists():
                raise KeyFileError(f"{p} already exists; pass --force to replace it")
    keys = HubKeys(generate_private_key(), generate_private_key())
    write_private(paths[0], keys.hub, force=force)
    write_private(paths[1], keys.auditor, force=force)
    return keys
