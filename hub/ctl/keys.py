"""Keys and signatures for kioskctl: keygen, key loading, sign, commands.

The private key never leaves its file through this module: nothing here
prints or logs it. Public keys are written in the protocol's form (unpadded
base64url of the raw 32 bytes), which is what a kiosk's ``[trust]`` wants.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.ctl.config import SubParsers
from hub.ctl.mqtt import CtlError, UsageError
from protocol.keys import public_key_text, sign_document
from protocol.times import format_time as rfc3339

COMMAND_TTL = 60.0


def load_private_key(path: str) -> Ed25519PrivateKey:
    """Read an Ed25519 private key (PEM, PKCS8). Raises CtlError, never echoing it."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    file = Path(path).expanduser()
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise CtlError(f"key file {file} does not exist (make one with kioskctl keygen)") from None
    except OSError as exc:
        raise CtlError(f"cannot read key file {file}: {exc.strerror or exc}") from None
    if b"PRIVATE KEY" not in data:
        if file.suffix == ".pub" or len(data.strip()) == 43:
            raise CtlError(f"key file {file} holds a public key; --key needs the private key file")
        raise CtlError(f"key file {file} is not a PEM private key")
    try:
        key = load_pem_private_key(data, password=None)
    except TypeError:
        raise CtlError(f"key file {file} is encrypted; kioskctl needs an unencrypted key") from None
    except ValueError:
        raise CtlError(f"key file {file} is not a readable PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CtlError(f"key file {file} is not an Ed25519 key (the protocol signs with Ed25519)")
    return key


def write_keypair(out: Path, *, force: bool) -> str:
    """Create ``out`` (private, 0600) and ``out.pub``; return the public key text."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    pub_path = Path(f"{out}.pub")
    for existing in (out, pub_path):
        if existing.exists() and not force:
            raise CtlError(f"{existing} already exists; pass --force to replace it")
    if out.parent and not out.parent.exists():
        raise CtlError(f"directory {out.parent} does not exist")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    pub = public_key_text(key.public_key())
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    try:
        # Created 0600 from the start: the key is never readable by others.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
        pub_path.write_text(pub + "\n", encoding="ascii")
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CtlError(f"cannot write {out}: {exc.strerror or exc}") from None
    return pub


def cmd_keygen(args: argparse.Namespace) -> int:
    out = Path(args.out).expanduser()
    pub = write_keypair(out, force=args.force)
    role = "owner_keys" if args.role == "owner" else "hub_keys"
    print(f"private key: {out} (mode 0600; keep it secret, never copy it to a kiosk)")
    print(f"public key:  {out}.pub")
    print(pub)
    print()
    print("Add this line to the [trust] table of each kiosk's kiosk.toml:")
    print(f'{role} = ["{pub}"]')
    return 0


def new_cmd_id(cmd: str) -> str:
    """Unique and matching [A-Za-z0-9_.-]{1,64}."""
    return f"{cmd}-{int(time.time())}-{secrets.token_hex(6)}"


def build_command(
    site: str,
    cmd: str,
    args: dict[str, Any],
    key: Ed25519PrivateKey,
    *,
    now: float,
    ttl: float = COMMAND_TTL,
) -> dict[str, Any]:
    """A signed command document (docs/protocol.md, "Commands")."""
    doc = {
        "v": 1,
        "site": site,
        "cmd_id": new_cmd_id(cmd),
        "cmd": cmd,
        "issued_at": rfc3339(now),
        "expires_at": rfc3339(now + ttl),
        "args": args,
    }
    return sign_document(doc, key)


def cmd_sign(args: argparse.Namespace, key_path: str) -> int:
    """Print a signed copy of a JSON document (or of each in a JSON array)."""
    key = load_private_key(key_path)
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CtlError(f"cannot read {args.file}: {exc}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CtlError(f"{args.file} is not JSON: {exc.msg} at line {exc.lineno}") from None
    docs = value if isinstance(value, list) else [value]
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise UsageError(f"{args.file} must hold a JSON object or an array of objects")
    signed = [sign_document(d, key) for d in docs]
    out: Any = signed if isinstance(value, list) else signed[0]
    print(json.dumps(out, ensure_ascii=False, indent=None if args.compact else 2))
    return 0


def add_parsers(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "keygen",
        help="make an Ed25519 key pair for signing orders or commands",
        description="Write an Ed25519 private key (PEM, PKCS8, mode 0600) to "
        "PATH and its public key to PATH.pub.",
    )
    p.add_argument("--out", required=True, metavar="PATH", help="private key file to create")
    p.add_argument(
        "--role",
        choices=("owner", "hub"),
        default="owner",
        help="which trust list the printed config line is for (default owner)",
    )
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.set_defaults(func="keygen")

    p = sub.add_parser(
        "sign", parents=[common], help="print a signed copy of a JSON document (for hub developers)"
    )
    p.add_argument("file", metavar="FILE", help="JSON object or array of objects ('-' = stdin)")
    p.add_argument("--compact", action="store_true", help="one line instead of indented")
    p.set_defaults(func="sign")
