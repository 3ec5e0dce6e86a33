"""kioskctl order publish/update/cancel/forget and code, against a real Mosquitto."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest

from kiosk.orders import validate_order
from protocol import topics
from protocol.keys import Keyring, Role
from protocol.times import parse_time as parse_rfc3339
from tests.broker import Broker
from tests.ctl import keygen, publish_retained, read_retained, run_ctl

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SITE = "wuhan-caidian-01"


@pytest.fixture
def hub(tmp_path: Path, broker: Broker) -> dict[str, Any]:
    key = tmp_path / "hub.key"
    pub = keygen(key, role="hub")
    env = {"KIOSKCTL_BROKER": broker.url, "KIOSKCTL_KEY": str(key), "KIOSKCTL_SITE": SITE}
    return {"key": key, "pub": pub, "env": env, "port": broker.port}


def retained_order(port: int, order_id: str) -> dict[str, Any] | None:
    raw = read_retained(port, topics.order(SITE, order_id))
    return json.loads(raw) if raw else None


def publish(hub: dict[str, Any], *args: str) -> Any:
    return run_ctl("order", "publish", *args, env=hub["env"])


def test_published_order_is_valid_signed_and_retained(hub: dict[str, Any]) -> None:
    before = time.time()
    proc = publish(
        hub,
        "--order-id",
        "HM-0042",
        "--pickup-no",
        "42",
        "--slot",
        "B3",
        "--customer-name",
        "李少云",
        "--phone-tail",
        "1234",
        "--item",
        "红提:1:盒",
        "--item",
        "milk:2:bottle",
        "--expires-in",
        "36",
    )
    assert proc.returncode == 0, proc.stderr
    doc = retained_order(hub["port"], "HM-0042")
    assert doc is not None
    row = validate_order(doc, site=SITE, width=3, order_id="HM-0042")
    assert Keyring(hub_keys=[hub["pub"]]).verify(doc, {Role.HUB}).role is Role.HUB
    assert (row.version, row.status, row.pickup_no, row.slot) == (1, "ready", "042", "B3")
    assert doc["items"] == [
        {"name": "红提", "qty": 1, "unit": "盒"},
        {"name": "milk", "qty": 2, "unit": "bottle"},
    ]
    assert doc["customer"] == {"name": "李少云", "phone_tail": "1234"}
    assert doc["issued_at"].endswith("Z")
    assert int(before) <= parse_rfc3339(doc["issued_at"]) <= time.time()
    assert parse_rfc3339(doc["expires_at"]) - parse_rfc3339(doc["issued_at"]) == 36 * 3600
    secret = doc["otp"]["secret"]
    assert len(secret) == 32 and pyotp.TOTP(secret).now()  # 160 bits of base32
    assert (doc["otp"]["digits"], doc["otp"]["period"]) == (6, 30)
    assert "pickup number: 042" in proc.stdout
    assert secret not in proc.stdout + proc.stderr


def test_publish_from_file_keeps_secret_and_fields(hub: dict[str, Any], tmp_path: Path) -> None:
    secret = pyotp.random_base32(32)
    src = {
        "site": SITE,
        "order_id": "F-1",
        "status": "paid",
        "pickup_no": "007",
        "otp": {"secret": secret, "digits": 8, "period": 60},
        "backup_code": True,
        "note": "unknown fields are kept",
    }
    f = tmp_path / "order.json"
    f.write_text(json.dumps(src))
    proc = run_ctl("order", "publish", "--file", str(f), "--version", "4", env=hub["env"])
    assert proc.returncode == 0, proc.stderr
    doc = retained_order(hub["port"], "F-1")
    assert doc is not None
    validate_order(doc, site=SITE, width=3)
    Keyring(hub_keys=[hub["pub"]]).verify(doc, {Role.HUB})
    assert doc["otp"] == {"secret": secret, "digits": 8, "period": 60}
    assert (doc["version"], doc["status"], doc["note"], doc["v"]) == (4, "paid", src["note"], 1)


def test_update_bumps_version_keeps_secret_and_cancel(hub: dict[str, Any]) -> None:
    assert publish(hub, "--order-id", "U-1", "--pickup-no", "5").returncode == 0
    first = retained_order(hub["port"], "U-1")
    assert first is not None and first["slot"] is None
    proc = run_ctl("order", "update", "U-1", "--slot", "C2", "--status", "ready", env=hub["env"])
    assert proc.returncode == 0, proc.stderr
    second = retained_order(hub["port"], "U-1")
    assert second is not None
    assert (second["version"], second["slot"]) == (2, "C2")
    assert second["otp"] == first["otp"]
    assert second["sig"] != first["sig"]
    Keyring(hub_keys=[hub["pub"]]).verify(second, {Role.HUB})
    proc = run_ctl("order", "cancel", "U-1", env=hub["env"])
    assert proc.returncode == 0, proc.stderr
    third = retained_order(hub["port"], "U-1")
    assert third is not None
    assert (third["version"], third["status"]) == (3, "cancelled")
    validate_order(third, site=SITE, width=3)
    Keyring(hub_keys=[hub["pub"]]).verify(third, {Role.HUB})


def test_update_of_unknown_order_is_an_error(hub: dict[str, Any]) -> None:
    proc = run_ctl("order", "update", "NOPE", "--status", "paid", env=hub["env"])
    assert proc.returncode == 1
    assert "no order NOPE" in proc.stderr and "Traceback" not in proc.stderr


def test_forget_clears_the_retained_message(hub: dict[str, Any]) -> None:
    assert publish(hub, "--order-id", "G-1", "--pickup-no", "9").returncode == 0
    assert retained_order(hub["port"], "G-1") is not None
    proc = run_ctl("order", "forget", "G-1", env=hub["env"])
    assert proc.returncode == 0, proc.stderr
    assert retained_order(hub["port"], "G-1") is None


def test_duplicate_pickup_number_is_refused(hub: dict[str, Any]) -> None:
    assert publish(hub, "--order-id", "A-1", "--pickup-no", "042").returncode == 0
    proc = publish(hub, "--order-id", "A-2", "--pickup-no", "42")
    assert proc.returncode == 1
    assert "042" in proc.stderr and "A-1" in proc.stderr and "Traceback" not in proc.stderr
    assert retained_order(hub["port"], "A-2") is None
    # a pickup number of a collected order may be reused
    assert (
        run_ctl("order", "update", "A-1", "--status", "collected", env=hub["env"]).returncode == 0
    )
    proc = publish(hub, "--order-id", "A-2", "--pickup-no", "42")
    assert proc.returncode == 0, proc.stderr


def test_republishing_an_old_version_is_refused(hub: dict[str, Any]) -> None:
    assert publish(hub, "--order-id", "V-1", "--pickup-no", "1").returncode == 0
    proc = publish(hub, "--order-id", "V-1", "--pickup-no", "1")
    assert proc.returncode == 1 and "order update" in proc.stderr


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--digits", "9"], "otp.digits"),
        (["--period", "5"], "otp.period"),
        (["--phone-tail", "12345"], "phone_tail"),
        (["--pickup-no", "12345"], "pickup_no"),
        (["--order-id", "bad id"], "order_id"),
    ],
)
def test_invalid_fields_are_refused_before_publishing(
    hub: dict[str, Any], flags: list[str], words: str
) -> None:
    base = {"--order-id": "I-1", "--pickup-no": "3"}
    base.update(dict(zip(flags[::2], flags[1::2], strict=True)))
    args = [x for kv in base.items() for x in kv]
    proc = publish(hub, *args)
    assert proc.returncode == 1
    assert "invalid order" in proc.stderr and words in proc.stderr
    assert "Traceback" not in proc.stderr
    assert retained_order(hub["port"], "I-1") is None


def test_code_is_pyotp_totp_of_the_published_secret(hub: dict[str, Any]) -> None:
    assert (
        publish(
            hub, "--order-id", "C-1", "--pickup-no", "77", "--backup-code", "--digits", "8"
        ).returncode
        == 0
    )
    doc = retained_order(hub["port"], "C-1")
    assert doc is not None
    totp = pyotp.TOTP(doc["otp"]["secret"], digits=8)
    t0 = time.time()
    proc = run_ctl("code", "C-1", "--json", env=hub["env"])
    t1 = time.time()
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    expected = {"077" + totp.at(t) for t in range(int(t0), int(t1) + 1)}
    assert out["code"] in expected
    assert out["code"] == "077" + totp.at(out["at"])
    assert out["backup_code"] == "077" + pyotp.HOTP(doc["otp"]["secret"], digits=8).at(0)
    assert 1 <= out["seconds_left"] <= 30
    proc = run_ctl("code", "C-1", "--uri", env=hub["env"])
    assert proc.returncode == 0, proc.stderr
    assert f"secret={doc['otp']['secret']}" in proc.stdout
    assert "digits=8" in proc.stdout and proc.stdout.startswith("otpauth://totp/")
    assert "code: 077" in proc.stdout


def test_code_from_file_needs_no_broker(tmp_path: Path) -> None:
    secret = pyotp.random_base32(32)
    f = tmp_path / "o.json"
    f.write_text(
        json.dumps(
            {
                "v": 1,
                "site": SITE,
                "order_id": "X",
                "version": 1,
                "issued_at": "2026-05-12T21:04:05Z",
                "status": "ready",
                "pickup_no": "123",
                "otp": {"secret": secret},
            }
        )
    )
    t0 = time.time()
    proc = run_ctl("code", "--file", str(f), "--broker", "mqtt://127.0.0.1:1")
    t1 = time.time()
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.splitlines()[0]
    assert line in {f"code: 123{pyotp.TOTP(secret).at(t)}#" for t in range(int(t0), int(t1) + 1)}


def test_publish_without_key_is_a_clear_error(broker: Broker) -> None:
    proc = run_ctl(
        "order",
        "publish",
        "--broker",
        broker.url,
        "--site",
        SITE,
        "--order-id",
        "K-1",
        "--pickup-no",
        "1",
    )
    assert proc.returncode == 64
    assert "--key" in proc.stderr and "Traceback" not in proc.stderr


def test_retained_documents_from_others_do_not_break_the_check(hub: dict[str, Any]) -> None:
    publish_retained(hub["port"], topics.order(SITE, "junk"), b"not json")
    proc = publish(hub, "--order-id", "J-1", "--pickup-no", "2")
    assert proc.returncode == 0, proc.stderr


def test_qr_without_segno_is_a_clear_message(tmp_path: Path) -> None:
    fake = tmp_path / "nosegno" / "segno"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('segno is not installed')\n")
    f = tmp_path / "o.json"
    f.write_text(
        json.dumps(
            {
                "v": 1,
                "site": SITE,
                "order_id": "Q",
                "version": 1,
                "issued_at": "2026-05-12T21:04:05Z",
                "status": "ready",
                "pickup_no": "123",
                "otp": {"secret": pyotp.random_base32(32)},
            }
        )
    )
    proc = run_ctl("code", "--file", str(f), "--qr", env={"PYTHONPATH": str(fake.parent)})
    assert proc.returncode == 1
    assert "segno" in proc.stderr and "--uri" in proc.stderr and "Traceback" not in proc.stderr
