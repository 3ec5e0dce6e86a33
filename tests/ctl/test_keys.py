"""kioskctl keygen and sign: file modes, the public key format, signatures that verify."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from kiosk.errors import SignatureError
from protocol.keys import Keyring, Role, parse_public_key, public_key_text
from tests.ctl import keygen, run_ctl

pytestmark = pytest.mark.slow


def test_keygen_writes_private_0600_and_public_in_protocol_form(tmp_path: Path) -> None:
    out = tmp_path / "owner.key"
    proc = run_ctl("keygen", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    pem = out.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8
    key = load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    pub = Path(f"{out}.pub").read_text().strip()
    assert len(pub) == 43 and "=" not in pub  # unpadded base64url of 32 bytes
    assert public_key_text(key.public_key()) == pub
    parse_public_key(pub)
    assert f'owner_keys = ["{pub}"]' in proc.stdout
    assert "PRIVATE KEY" not in proc.stdout + proc.stderr


def test_public_key_verifies_a_signature_made_with_the_private_key(tmp_path: Path) -> None:
    pub = keygen(tmp_path / "hub.key", role="hub")
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps({"v": 1, "hello": "世界", "n": [1, 2]}, ensure_ascii=False))
    proc = run_ctl("sign", str(doc), "--key", str(tmp_path / "hub.key"))
    assert proc.returncode == 0, proc.stderr
    signed = json.loads(proc.stdout)
    assert Keyring(hub_keys=[pub]).verify(signed, {Role.HUB}).role is Role.HUB
    with pytest.raises(SignatureError):  # a hub key may not sign commands
        Keyring(hub_keys=[pub]).verify(signed, {Role.OWNER})
    signed["hello"] = "changed"
    with pytest.raises(SignatureError):
        Keyring(hub_keys=[pub]).verify(signed, {Role.HUB})


def test_keygen_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "k"
    first = keygen(out)
    proc = run_ctl("keygen", "--out", str(out))
    assert proc.returncode != 0
    assert "already exists" in proc.stderr and "--force" in proc.stderr
    assert Path(f"{out}.pub").read_text().strip() == first
    proc = run_ctl("keygen", "--out", str(out), "--force", "--role", "hub")
    assert proc.returncode == 0, proc.stderr
    assert Path(f"{out}.pub").read_text().strip() != first
    assert "hub_keys = [" in proc.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.parametrize("which", ["missing", "public", "garbage"])
def test_bad_key_file_is_one_line_error(tmp_path: Path, which: str) -> None:
    keygen(tmp_path / "k")
    doc = tmp_path / "doc.json"
    doc.write_text("{}")
    path = {"missing": tmp_path / "nope.key", "public": tmp_path / "k.pub", "garbage": doc}[which]
    proc = run_ctl("sign", str(doc), "--key", str(path))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert str(path) in proc.stderr


def test_bad_arguments_exit_64_without_traceback() -> None:
    proc = run_ctl("order", "publish", "--pickup-no")
    assert proc.returncode == 64
    assert "Traceback" not in proc.stderr
    proc = run_ctl("status", "--broker", "http://example")
    assert proc.returncode == 64
    assert "mqtt://" in proc.stderr and "Traceback" not in proc.stderr
