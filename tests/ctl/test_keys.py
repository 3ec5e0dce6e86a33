"""kioskctl keygen and sign: file modes, the public key format, signatures that verify."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from kiosk.errors import SignatureError
from protocol.keys import Keyring, Role, key_id, parse_public_key, public_key_text
from tests.support.ctl import keygen, run_ctl

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


# -- issue 12 items 1 and 8 ---------------------------------------------------------


def test_keygen_creates_the_missing_directory_0700(tmp_path: Path) -> None:
    out = tmp_path / "home" / ".config" / "kioskctl" / "owner.key"
    proc = run_ctl("keygen", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    # an existing directory keeps its mode
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    assert run_ctl("keygen", "--out", str(shared / "k")).returncode == 0
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    # a file in the way is a clear error
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run_ctl("keygen", "--out", str(blocker / "k"))
    assert proc.returncode == 1 and "is not a directory" in proc.stderr


@pytest.mark.parametrize(
    ("role", "line"),
    [("owner", "owner_keys"), ("hub", "hub_keys"), ("auditor", "auditor_keys")],
)
def test_keygen_prints_key_id_and_the_trust_line_for_each_role(
    tmp_path: Path, role: str, line: str
) -> None:
    out = tmp_path / f"{role}.key"
    proc = run_ctl("keygen", "--out", str(out), "--role", role, "--name", "li's laptop")
    assert proc.returncode == 0, proc.stderr
    pub = Path(f"{out}.pub").read_text().strip()
    kid = key_id(pub)
    assert f"key id:      {kid}\n" in proc.stdout
    assert f'\n{line} = ["{pub}"]\n' in proc.stdout
    assert f'[keys]\n{kid} = "li\'s laptop"\n' in proc.stdout
    # what keygen printed is what key-id computes, from either file
    for path in (out, Path(f"{out}.pub")):
        again = run_ctl("key-id", str(path))
        assert again.returncode == 0, again.stderr
        assert again.stdout.split()[0] == kid


def test_key_id_names_a_key_from_the_config(tmp_path: Path) -> None:
    pub = keygen(tmp_path / "k")
    kid = key_id(pub)
    conf = tmp_path / "ctl.toml"
    conf.write_text(f'[keys]\n{kid} = "phone"\n')
    proc = run_ctl("key-id", pub, "--config", str(conf))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{kid}  public key  (phone)\n"
    # one key in 64 starts with '-' (this test once failed on such a random key)
    dash = "-" + pub[1:]
    proc = run_ctl("key-id", dash, "--config", str(conf))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{key_id(dash)}  public key")


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ('[keys]\nlaptop = "x"\n', "is not a key id"),
        ('[keys]\n0123456789abcdef = ""\n', "1 to 64 printable"),
        ("[keys]\n0123456789abcdef = 3\n", "1 to 64 printable"),
        ('keys = "laptop"\n', "keys must be a table"),
    ],
)
def test_bad_keys_table_is_a_clear_error(tmp_path: Path, table: str, words: str) -> None:
    conf = tmp_path / "ctl.toml"
    conf.write_text(table)
    proc = run_ctl("status", "--config", str(conf))
    assert proc.returncode == 64
    assert words in proc.stderr and str(conf) in proc.stderr and "Traceback" not in proc.stderr
