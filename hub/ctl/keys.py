"""Keys and signatures for kioskctl: keygen, key-id, key loading, sign.

The private key never leaves its file through this module: nothing here
prints or logs it. Public keys are written in the protocol's form (unpadded
base64url of the raw 32 bytes), which is what a kiosk's ``[trust]`` wants;
a key's id (:func:`protocol.keys.key_id`) is what the kiosk's ``command``
events name, so ``keygen`` prints it and ``key-id`` recomputes it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.ctl.config import DEFAULT_CONFIG, SubParsers, valid_key_name
from hub.ctl.mqtt import CtlError, UsageError
from protocol.keys import (
    generate_private_key,
    key_id,
    parse_public_key,
    private_key_from_pem,
    private_key_pem,
    public_key_text,
    sign_document,
)

#: keygen --role -> the kiosk's [trust] list that takes the public key
TRUST_LISTS = {"owner": "owner_keys", "hub": "hub_keys", "auditor": "auditor_keys"}
ROLE_WORDS = {
    "owner": "an owner key may sign orders and every command, including unlock",
    "hub": "a hub key may sign orders only; it cannot open the door",
    "auditor": "an auditor key may sign only the logs, sync and orders commands",
}


def load_private_key(path: str) -> Ed25519PrivateKey:
    """Read an Ed25519 private key (PEM, PKCS8). Raises CtlError, never echoing it."""
    file = Path(path).expanduser()
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise CtlError(f"key file {file} does not exist (make one with kioskctl keygen)") from None
    except OSError as exc:
        raise CtlError(f"cannot read key file {file}: {exc.strerror or exc}") from None
    if b"PRIVATE KEY" not in data and (file.suffix == ".pub" or len(data.strip()) == 43):
        raise CtlError(f"key file {file} holds a public key; --key needs the private key file")
    try:
        return private_key_from_pem(data)
    except ValueError as exc:
        raise CtlError(f"key file {file}: {exc}") from None


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (and its parents) when missing; the last one 0700.

    An existing directory is left as it is: it may be shared on purpose.
    """
    if directory.exists():
        if not directory.is_dir():
            raise CtlError(f"{directory} exists and is not a directory")
        return
    try:
        directory.mkdir(parents=True, mode=0o700)
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise CtlError(f"cannot create directory {directory}: {exc.strerror or exc}") from None


def write_keypair(out: Path, *, force: bool) -> str:
    """Create ``out`` (private, 0600) and ``out.pub``; return the public key text."""
    pub_path = Path(f"{out}.pub")
    for existing in (out, pub_path):
        if existing.exists() and not force:
            raise CtlError(f"{existing} already exists; pass --force to replace it")
    make_private_dir(out.parent)
    key = generate_private_key()
    pub = public_key_text(key.public_key())
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    try:
        # Created 0600 from the start: the key is never readable by others.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_key_pem(key))
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
        pub_path.write_text(pub + "\n", encoding="ascii")
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CtlError(f"cannot write {out}: {exc.strerror or exc}") from None
    return pub


def default_key_name(out: Path) -> str:
    """``owner on li-laptop``: tells one owner's devices apart in the logs."""
    host = socket.gethostname().split(".")[0] or "this computer"
    name = f"{out.stem} on {host}"[:64]
    return name if valid_key_name(name) else out.stem[:64] or "key"


def cmd_keygen(args: argparse.Namespace) -> int:
    out = Path(args.out).expanduser()
    if args.name is not None and not valid_key_name(args.name):
        raise UsageError("--name must be 1 to 64 printable characters")
    pub = write_keypair(out, force=args.force)
    kid = key_id(pub)
    name = args.name or default_key_name(out)
    print(f"private key: {out} (mode 0600; keep it secret, never copy it to a kiosk)")
    print(f"public key:  {out}.pub")
    print(pub)
    print(f"key id:      {kid}")
    print()
    print("Add this line to the [trust] table of each kiosk's kiosk.toml")
    print(f"({ROLE_WORDS[args.role]}):")
    print(f'{TRUST_LISTS[args.role]} = ["{pub}"]')
    print()
    print(f"To see this key by name in kioskctl logs, add to {DEFAULT_CONFIG}:")
    print("[keys]")
    print(f"{kid} = {json.dumps(name, ensure_ascii=False)}")
    return 0


def read_public_key(item: str) -> tuple[str, str]:
    """(key id, where) for a public key text, a .pub file or a private key file."""
    if len(item.strip()) == 43 and not Path(item).exists():
        try:
            return key_id(item.strip()), "public key"
        except ValueError:
            raise UsageError(f"{item!r} is not a public key in the protocol's form") from None
    file = Path(item).expanduser()
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise CtlError(f"cannot read {file}: {exc.strerror or exc}") from None
    if b"PRIVATE KEY" in data:
        return key_id(load_private_key(str(file)).public_key()), str(file)
    try:
        return key_id(parse_public_key(data.decode("ascii").strip())), str(file)
    except (UnicodeDecodeError, ValueError):
        raise CtlError(f"{file} holds neither a public nor a private key") from None


def cmd_key_id(args: argparse.Namespace, names: dict[str, str]) -> int:
    for item in args.keys:
        kid, where = read_public_key(item)
        name = names.get(kid)
        print(f"{kid}  {where}" + (f"  ({name})" if name else ""))
    return 0


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
        description="Write an Ed25519 private key (PEM, PKCS8, mode 0600) to PATH and its "
        "public key to PATH.pub, creating PATH's directory (mode 0700) when missing. "
        "Prints the public key, its key id and the kiosk.toml line for the role.",
    )
    p.add_argument("--out", required=True, metavar="PATH", help="private key file to create")
    p.add_argument(
        "--role",
        choices=tuple(TRUST_LISTS),
        default="owner",
        help="which trust list the printed kiosk.toml line is for (default owner)",
    )
    p.add_argument(
        "--name",
        help="what kioskctl logs calls this key (default: 'FILE on HOST'); printed as a "
        "[keys] line for kioskctl's config",
    )
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.set_defaults(func="keygen")

    p = sub.add_parser(
        "key-id",
        parents=[common],
        help="print the key id of public or private keys (as events name them)",
    )
    p.add_argument(
        "keys", nargs="+", metavar="KEY", help="a .pub file, a private key file or a public key"
    )
    p.set_defaults(func="key_id")

    p = sub.add_parser(
        "sign", parents=[common], help="print a signed copy of a JSON document (for hub developers)"
    )
    p.add_argument("file", metavar="FILE", help="JSON object or array of objects ('-' = stdin)")
    p.add_argument("--compact", action="store_true", help="one line instead of indented")
    p.set_defaults(func="sign")
