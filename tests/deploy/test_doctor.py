"""kiosk doctor on a good simulated setup and on broken ones.

Each broken setup must fail the named check, say how to fix it, and leave
every other check alone. The broker checks run against a real Mosquitto.
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

import hardware.health as hw_health
from kiosk import config as config_mod
from kiosk import health
from kiosk.cli import doctor
from kiosk.store import MIGRATIONS, Store
from protocol.keys import public_key_text
from tests.support.broker import Broker, free_port
from tests.support.deploy import REPO

PASSWORD = "correct-horse-battery-4711"
KEY = public_key_text(Ed25519PrivateKey.generate().public_key())


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return str(path)


def good_sections(tmp_path: Path) -> dict[str, dict[str, Any]]:
    return {
        "site": {"id": "shop-01"},
        "store": {"path": str(tmp_path / "state" / "kiosk.db")},
        "trust": {"hub_keys": [KEY], "owner_keys": [KEY]},
        "hardware": {"board": "sim"},
        "display": {"enabled": True, "driver": "dummy"},
        # no prompts are built here; tests/hardware/test_voice.py checks that warning
        "voice": {"enabled": False},
    }


def run(cfg_path: str) -> tuple[int, dict[str, Any], dict[str, dict[str, Any]]]:
    out = io.StringIO()
    code = doctor.main(cfg_path, as_json=True, out=out)
    report = json.loads(out.getvalue())
    return code, report, {c["name"]: c for c in report["checks"]}


@pytest.fixture(autouse=True)
def no_installed_unit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Whatever this machine has in /etc/systemd/system must not matter.
    monkeypatch.setattr(health, "UNIT_PATHS", (tmp_path / "nowhere.service",))


def assert_only_failure(checks: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    failed = sorted(n for n, c in checks.items() if not c["ok"])
    assert failed == [name]
    bad = checks[name]
    assert bad["fix"], f"{name} fails without saying how to fix it"
    return bad


def test_good_sim_setup_passes(tmp_path: Path) -> None:
    code, report, checks = run(write_config(tmp_path / "k.toml", good_sections(tmp_path)))
    assert code == 0 and report["ok"] is True
    assert all(c["ok"] for c in checks.values()), checks
    # Only the clock may warn: this machine may or may not be NTP-synchronized.
    assert [n for n, c in checks.items() if c["warning"]] in ([], ["clock"])
    assert checks["gpio"]["detail"].startswith("simulated board")
    assert checks["store schema"]["detail"] == f"schema {len(MIGRATIONS)} (current)"
    assert checks["broker"]["detail"] == "no [mqtt] section: offline only"
    # The store it was pointed at now exists, as the daemon would have made it.
    with Store(tmp_path / "state" / "kiosk.db") as store:
        assert store.schema_version() == len(MIGRATIONS)
        assert store.last_seq() == 0, "the probe write must be rolled back"


def test_text_table_and_exit_code(tmp_path: Path) -> None:
    sections = good_sections(tmp_path)
    sections["trust"] = {}
    out = io.StringIO()
    assert doctor.main(write_config(tmp_path / "k.toml", sections), False, out=out) == 1
    text = out.getvalue()
    assert "FAIL  trusted keys" in text
    assert "fix: add the hub's public key" in text
    assert "1 failed" in text


def test_bad_config_key(tmp_path: Path) -> None:
    sections = good_sections(tmp_path)
    sections["hardware"]["bord"] = "sim"
    code, report, checks = run(write_config(tmp_path / "k.toml", sections))
    assert code == 1 and report["ok"] is False
    bad = assert_only_failure(checks, "config")
    assert "hardware.bord" in bad["detail"] and 'did you mean "board"' in bad["detail"]
    assert "edit" in bad["fix"]


def test_missing_config_file(tmp_path: Path) -> None:
    code, _, checks = run(str(tmp_path / "absent.toml"))
    assert code == 1
    bad = assert_only_failure(checks, "config")
    assert "no such config file" in bad["detail"]
    assert "example.toml" in bad["fix"]


def test_unwritable_store(tmp_path: Path) -> None:
    # The tests run as root, for whom every folder is writable: make the
    # store's folder a regular file instead, which fails for root too.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    sections = good_sections(tmp_path)
    sections["store"]["path"] = str(blocker / "kiosk.db")
    code, _, checks = run(write_config(tmp_path / "k.toml", sections))
    assert code == 1
    bad = assert_only_failure(checks, "store writable")
    assert str(blocker) in bad["detail"]
    assert "writ" in bad["fix"] and "[store] path" in bad["fix"]


def test_corrupt_store(tmp_path: Path) -> None:
    sections = good_sections(tmp_path)
    db = Path(sections["store"]["path"])
    db.parent.mkdir()
    db.write_bytes(b"this is not an SQLite database, it is a text file " * 100)
    code, _, checks = run(write_config(tmp_path / "k.toml", sections))
    assert code == 1
    bad = assert_only_failure(checks, "store integrity")
    assert "not a database" in bad["detail"]
    assert "restore the last backup" in bad["fix"]


def test_store_from_a_newer_program(tmp_path: Path) -> None:
    sections = good_sections(tmp_path)
    db = Path(sections["store"]["path"])
    Store(db).close()
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    code, _, checks = run(write_config(tmp_path / "k.toml", sections))
    assert code == 1
    bad = assert_only_failure(checks, "store schema")
    assert "newer" in bad["detail"] and "upgrade" in bad["fix"]


def test_allow_unsigned_is_a_warning_only(tmp_path: Path) -> None:
    sections = good_sections(tmp_path)
    sections["trust"] = {"allow_unsigned": True}
    code, report, checks = run(write_config(tmp_path / "k.toml", sections))
    assert code == 0 and report["ok"] is True
    trust = checks["trusted keys"]
    assert trust["ok"] and trust["warning"]
    assert "lab bench only" in trust["detail"]


def test_missing_keys_fail(tmp_path: Path) -> None:
    sections = good_sections(tmp_path)
    sections["trust"] = {"hub_keys": [], "owner_keys": []}
    code, _, checks = run(write_config(tmp_path / "k.toml", sections))
    assert code == 1
    bad = assert_only_failure(checks, "trusted keys")
    assert "kioskctl keygen" in bad["fix"]


def test_gpio_board_without_gpiochip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hw_health, "GPIOCHIP", tmp_path / "gpiochip0")
    sections = good_sections(tmp_path)
    sections["hardware"]["board"] = "gpio"
    sections["display"]["enabled"] = False
    code, _, checks = run(write_config(tmp_path / "k.toml", sections))
    assert code == 1
    bad = assert_only_failure(checks, "gpio")
    assert "does not exist" in bad["detail"]
    assert 'board = "sim"' in bad["fix"]


def test_gpio_work_dir_must_be_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chip = tmp_path / "gpiochip0"
    chip.write_text("")  # stands in for the device node: root can open it
    monkeypatch.setattr(hw_health, "GPIOCHIP", chip)
    monkeypatch.setenv("LG_WD", str(tmp_path / "no-such-dir"))
    sections = good_sections(tmp_path)
    sections["hardware"]["board"] = "gpio"
    sections["display"]["enabled"] = False
    _, _, checks = run(write_config(tmp_path / "k.toml", sections))
    assert checks["gpio"]["ok"]
    bad = assert_only_failure(checks, "gpio work dir")
    assert "RuntimeDirectory" in bad["fix"]


def test_kmsdrm_without_drm_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hw_health, "DRI_GLOB", str(tmp_path / "dri" / "card*"))
    sections = good_sections(tmp_path)
    sections["display"]["driver"] = "kmsdrm"
    code, _, checks = run(write_config(tmp_path / "k.toml", sections))
    assert code == 1
    bad = assert_only_failure(checks, "display driver")
    assert "vc4-kms-v3d" in bad["fix"]


def test_no_cjk_font(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hardware.fonts

    monkeypatch.setattr(hardware.fonts, "CANDIDATES", ())
    monkeypatch.setattr(hardware.fonts, "FC_MATCH", "")
    code, _, checks = run(write_config(tmp_path / "k.toml", good_sections(tmp_path)))
    assert code == 1
    bad = assert_only_failure(checks, "display font")
    assert "fonts-wqy-microhei" in bad["fix"]


def test_no_cjk_font_without_hardware_fonts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback when hardware.fonts cannot be imported: the usual paths."""
    monkeypatch.setitem(sys.modules, "hardware.fonts", None)  # import now raises ImportError
    monkeypatch.setattr(hw_health, "FALLBACK_FONTS", (tmp_path / "none.ttc",))
    _, _, checks = run(write_config(tmp_path / "k.toml", good_sections(tmp_path)))
    assert_only_failure(checks, "display font")
    font = tmp_path / "font.ttc"
    font.write_bytes(b"")
    monkeypatch.setattr(hw_health, "FALLBACK_FONTS", (tmp_path / "none.ttc", font))
    code, _, checks = run(write_config(tmp_path / "k.toml", good_sections(tmp_path)))
    assert code == 0 and checks["display font"]["detail"] == str(font)


def test_unusable_configured_font_warns(tmp_path: Path) -> None:
    sections = good_sections(tmp_path)
    sections["display"]["font"] = str(tmp_path / "missing.ttc")
    _, _, checks = run(write_config(tmp_path / "k.toml", sections))
    font = checks["display font"]
    if not font["ok"]:
        pytest.skip("no CJK font on this machine to fall back to")
    assert font["warning"] and "missing.ttc" in font["detail"]


def test_relock_step_in_the_unit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unit = REPO / "systemd" / "pickup-kiosk-door.service"
    monkeypatch.setattr(health, "UNIT_PATHS", (unit,))
    assert health.check_unit().ok
    stripped = tmp_path / unit.name
    stripped.write_text(
        "\n".join(
            line for line in unit.read_text().splitlines() if not line.startswith("ExecStopPost=")
        )
    )
    monkeypatch.setattr(health, "UNIT_PATHS", (stripped,))
    result = health.check_unit()
    assert not result.ok and "install.sh" in result.fix


def test_clock_without_ntp_or_rtc_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "RTC_DEVICE", tmp_path / "rtc0")
    cfg = config_mod.from_mapping({"hardware": {"board": "sim"}})
    result = health.check_clock(cfg, synchronized=lambda: False)
    assert result.ok and result.warning and "timedatectl set-ntp true" in result.fix
    (tmp_path / "rtc0").write_text("")
    assert not health.check_clock(cfg, synchronized=lambda: False).warning
    assert not health.check_clock(cfg, synchronized=lambda: True).warning


# ----- broker ----------------------------------------------------------------


def mqtt_sections(tmp_path: Path, url: str, **extra: Any) -> dict[str, dict[str, Any]]:
    sections = good_sections(tmp_path)
    sections["mqtt"] = {"url": url, "username": "shop-01", "password": PASSWORD, **extra}
    return sections


def mosquitto_passwd(path: Path, user: str, password: str) -> None:
    exe = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([exe, "-c", "-b", str(path), user, password], check=True, capture_output=True)


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[Broker]:
    pw = tmp_path / "passwd"
    mosquitto_passwd(pw, "shop-01", PASSWORD)
    # "user root": mosquitto started as root otherwise drops to the mosquitto
    # user, who cannot read a password file under pytest's private tmp_path.
    b = Broker(
        tmp_path / "broker",
        extra_conf=["user root", f"password_file {pw}", "allow_anonymous false"],
    )
    b.start()
    try:
        yield b
    finally:
        b.stop()


def test_broker_unreachable(tmp_path: Path) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    code, _, checks = run(write_config(tmp_path / "k.toml", mqtt_sections(tmp_path, url)))
    assert code == 1
    bad = assert_only_failure(checks, "broker")
    assert "unreachable" in bad["detail"]
    assert "credentials" not in bad["detail"] and "TLS" not in bad["detail"]


@pytest.mark.broker
def test_broker_good_credentials(tmp_path: Path, auth_broker: Broker) -> None:
    code, report, checks = run(
        write_config(tmp_path / "k.toml", mqtt_sections(tmp_path, auth_broker.url))
    )
    assert code == 0, checks["broker"]
    assert "accepted as 'shop-01'" in checks["broker"]["detail"]
    assert PASSWORD not in json.dumps(report)


@pytest.mark.broker
def test_broker_bad_credentials(tmp_path: Path, auth_broker: Broker) -> None:
    sections = mqtt_sections(tmp_path, auth_broker.url)
    sections["mqtt"]["password"] = "wrong-" + PASSWORD
    code, report, checks = run(write_config(tmp_path / "k.toml", sections))
    assert code == 1
    bad = assert_only_failure(checks, "broker")
    assert "refused the credentials" in bad["detail"]
    assert "unreachable" not in bad["detail"]
    assert "mosquitto_passwd" in bad["fix"]
    text = io.StringIO()
    doctor.main(str(tmp_path / "k.toml"), False, out=text)
    for output in (json.dumps(report), text.getvalue()):
        assert PASSWORD not in output


def _tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test CA"))
        .issuer_name(name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.mark.broker
@pytest.mark.slow
def test_broker_tls(tmp_path: Path) -> None:
    ca, cert, key = _tls_files(tmp_path)
    pw = tmp_path / "passwd"
    mosquitto_passwd(pw, "shop-01", PASSWORD)
    broker = Broker(
        tmp_path / "broker",
        extra_conf=[
            "user root",
            f"cafile {ca}",
            f"certfile {cert}",
            f"keyfile {key}",
            f"password_file {pw}",
            "allow_anonymous false",
        ],
    ).start()
    plain = Broker(tmp_path / "plain").start()
    try:
        tls_url = f"mqtts://127.0.0.1:{broker.port}"

        def broker_check(url: str, **extra: Any) -> dict[str, Any]:
            path = write_config(tmp_path / "k.toml", mqtt_sections(tmp_path, url, **extra))
            return run(path)[2]["broker"]

        good = broker_check(tls_url, ca_file=str(ca))
        assert good["ok"], good
        assert "over TLS" in good["detail"]

        untrusted = broker_check(tls_url)  # the system CAs do not know our test CA
        assert not untrusted["ok"]
        assert "certificate not trusted" in untrusted["detail"]
        assert "ca_file" in untrusted["fix"]

        wrong_pw = broker_check(tls_url, ca_file=str(ca), password="nope")
        assert not wrong_pw["ok"] and "refused the credentials" in wrong_pw["detail"]

        not_tls = broker_check(f"mqtts://127.0.0.1:{plain.port}", ca_file=str(ca))
        assert not not_tls["ok"]
        assert "TLS failed" in not_tls["detail"]
    finally:
        broker.stop()
        plain.stop()


@pytest.mark.slow
def test_cli_entry_points(tmp_path: Path) -> None:
    """`kiosk doctor` and `python -m kiosk.cli doctor` agree.

    The config comes through $KIOSK_CONFIG, as under systemd.
    """
    good = write_config(tmp_path / "good.toml", good_sections(tmp_path))
    sections = good_sections(tmp_path)
    sections["trust"] = {}
    bad = write_config(tmp_path / "bad.toml", sections)
    py = sys.executable
    for argv in ([str(Path(py).parent / "kiosk"), "doctor"], [py, "-m", "kiosk.cli", "doctor"]):
        env = {**os.environ, "KIOSK_CONFIG": good}
        ok = subprocess.run(
            [*argv, "--json"],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=60,
            check=False,
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert json.loads(ok.stdout)["ok"] is True
        env["KIOSK_CONFIG"] = bad
        failed = subprocess.run(
            argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=60, check=False
        )
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "FAIL  trusted keys" in failed.stdout


def test_every_config_problem_at_once_then_the_other_checks(tmp_path: Path) -> None:
    sections = good_sections(tmp_path)
    sections["hardware"]["bord"] = "sim"
    sections["lock"] = {"release_s": 1}
    sections["site"]["id"] = "Bad Id"
    code, _, _ = run(write_config(tmp_path / "k.toml", sections))
    out = io.StringIO()
    doctor.main(write_config(tmp_path / "k.toml", sections), True, out=out)
    checks = json.loads(out.getvalue())["checks"]
    config = [c for c in checks if c["name"] == "config"]
    assert code == 1 and len(config) == 3
    text = " ".join(c["detail"] for c in config)
    assert "hardware.bord" in text and "lock.release_s" in text and "site.id" in text
    # ... and the rest still ran, on defaults where keys were wrong
    names = {c["name"] for c in checks}
    assert {"store writable", "gpio", "display font", "trusted keys"} <= names


def test_the_install_guides_two_mistakes(tmp_path: Path) -> None:
    sections = good_sections(tmp_path)
    sections["site"]["id"] = "demo-site"
    _, _, checks = run(write_config(tmp_path / "k.toml", sections))
    assert not checks["site id"]["ok"] and "demo-site" in checks["site id"]["detail"]
    sections = good_sections(tmp_path)
    sections["mqtt"] = {"url": "mqtt://127.0.0.1:1", "username": "other-shop"}
    _, _, checks = run(write_config(tmp_path / "k.toml", sections))
    assert not checks["mqtt user"]["ok"]
    assert 'username = "shop-01"' in checks["mqtt user"]["fix"]


def test_a_config_the_user_cannot_read_says_how_to_run_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(write_config(tmp_path / "k.toml", good_sections(tmp_path)))
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == path:  # as a login user reads the 0640 root:pickup-kiosk file
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    code, _, checks = run(str(path))
    assert code == 1
    bad = assert_only_failure(checks, "config")
    assert "permission denied" in bad["detail"]
    assert bad["fix"] == "run the doctor as the service user: sudo -u pickup-kiosk kiosk doctor"
