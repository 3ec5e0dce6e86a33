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
from tests.support.broker import Broker
from tests.support.ctl import FakeKiosk, keygen, publish_retained, read_retained, run_ctl
from tests.support.ctl_model import KioskModel

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
    proc = publish(hub, "--order-id", "A-2", "--pickup-no", "42", "--timeout", "1")
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


# -- issue 12 item 5: numbers that can no longer open are free; codes for them are not printed


def order_file(tmp_path: Path, **fields: Any) -> Path:
    doc = {
        "v": 1,
        "site": SITE,
        "version": 1,
        "issued_at": "2026-05-12T21:04:05Z",
        "status": "ready",
        "otp": {"secret": pyotp.random_base32(32)},
        **fields,
    }
    f = tmp_path / f"{fields['order_id']}.json"
    f.write_text(json.dumps(doc))
    return f


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"status": "collected"}, "order Z-1 is collected: the door does not open"),
        ({"status": "cancelled"}, "order Z-1 is cancelled: the door does not open"),
        ({"expires_at": "2026-05-13T00:00:00Z"}, "order Z-1 expired at 2026-05-1"),
    ],
)
def test_code_is_not_printed_for_an_order_that_cannot_open(
    hub: dict[str, Any], tmp_path: Path, fields: dict[str, Any], words: str
) -> None:
    f = order_file(tmp_path, order_id="Z-1", pickup_no="321", **fields)
    for argv in (["code", "--file", str(f)], ["code", "--file", str(f), "--json"]):
        proc = run_ctl(*argv)
        assert proc.returncode == 1, proc.stdout
        assert words in proc.stderr and "prints none" in proc.stderr
        assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert run_ctl("order", "publish", "--file", str(f), env=hub["env"]).returncode == 0
    proc = run_ctl("code", "Z-1", env=hub["env"])  # from the broker's copy too
    assert proc.returncode == 1 and words in proc.stderr


def test_order_list_shows_public_fields_never_secrets(hub: dict[str, Any], tmp_path: Path) -> None:
    assert publish(hub, "--order-id", "L-2", "--pickup-no", "7", "--slot", "B3").returncode == 0
    assert (
        publish(hub, "--order-id", "L-1", "--pickup-no", "12", "--expires-in", "2").returncode == 0
    )
    f = order_file(tmp_path, order_id="L-3", pickup_no="005", expires_at="2026-05-13T00:00:00Z")
    assert run_ctl("order", "publish", "--file", str(f), env=hub["env"]).returncode == 0
    publish_retained(hub["port"], topics.order(SITE, "junk"), b'{"v": 1, "sig": "x"}')
    proc = run_ctl("order", "list", "--json", env=hub["env"])
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["order_id"] for r in rows] == ["L-3", "L-2", "L-1"]  # by pickup number
    assert set(rows[0]) == {
        "order_id",
        "pickup_no",
        "status",
        "slot",
        "version",
        "issued_at",
        "expires_at",
        "expired",
        "can_open",
    }
    assert (rows[0]["expired"], rows[0]["can_open"]) == (True, False)
    assert (rows[1]["slot"], rows[1]["status"], rows[1]["can_open"]) == ("B3", "ready", True)
    for oid in ("L-1", "L-2", "L-3"):
        doc = retained_order(hub["port"], oid)
        assert doc is not None and doc["otp"]["secret"] not in proc.stdout
    assert "order junk: not a valid order document" in proc.stderr
    table = run_ctl("order", "list", env=hub["env"])
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ORDER", "NUMBER", "STATUS", "SLOT", "VERSION", "ISSUED", "EXPIRES"]
    assert lines[1].split()[:3] == ["L-3", "005", "ready,"] and "expired" in lines[1]
    assert lines[2].split()[:5] == ["L-2", "007", "ready", "B3", "1"]
    only = run_ctl("order", "list", "--json", "--status", "collected", env=hub["env"])
    assert json.loads(only.stdout) == []


def test_number_of_an_expired_order_is_free(hub: dict[str, Any], tmp_path: Path) -> None:
    f = order_file(tmp_path, order_id="E-1", pickup_no="042", expires_at="2026-05-13T00:00:00Z")
    assert run_ctl("order", "publish", "--file", str(f), env=hub["env"]).returncode == 0
    proc = publish(hub, "--order-id", "E-2", "--pickup-no", "42", "--timeout", "1")
    assert proc.returncode == 0, proc.stderr
    assert "asking" not in proc.stderr  # the broker's copy alone frees it


@pytest.fixture
def asker(tmp_path: Path, hub: dict[str, Any]) -> dict[str, Any]:
    """An auditor key that may ask the kiosk, and the kiosk model trusting it."""
    key = tmp_path / "auditor.key"
    pub = keygen(key, role="auditor")
    env = {**hub["env"], "KIOSKCTL_QUERY_KEY": str(key)}
    return {"key": key, "pub": pub, "env": env}


def kiosk_holding(
    hub: dict[str, Any], asker: dict[str, Any], orders: dict[str, Any]
) -> tuple[FakeKiosk, KioskModel]:
    m = KioskModel(SITE, hub_keys=[hub["pub"]], auditor_keys=[asker["pub"]], orders=orders)
    return FakeKiosk(hub["port"], SITE, m), m


def test_number_held_by_a_stale_ready_copy_is_freed_by_the_kiosk(
    hub: dict[str, Any], asker: dict[str, Any]
) -> None:
    assert publish(hub, "--order-id", "S-1", "--pickup-no", "42").returncode == 0
    at = "2026-05-13T01:23:00Z"
    held = {"S-1": {"status": "collected", "version": 1, "pickup_no": "042", "collected_at": at}}
    kiosk, _ = kiosk_holding(hub, asker, held)
    try:
        proc = run_ctl(
            "order", "publish", "--order-id", "S-2", "--pickup-no", "42", env=asker["env"]
        )
    finally:
        kiosk.close()
    assert proc.returncode == 0, proc.stderr
    assert "order S-1 was collected at the kiosk at 2026-05-13" in proc.stderr
    assert "kioskctl order update S-1 --status collected" in proc.stderr
    [ask] = kiosk.commands
    assert (ask["cmd"], ask["args"]) == ("orders", {"order_ids": ["S-1"]})
    Keyring(auditor_keys=[asker["pub"]]).verify(ask, {Role.AUDITOR})
    doc = retained_order(hub["port"], "S-2")
    assert doc is not None and doc["pickup_no"] == "042"


@pytest.mark.parametrize(
    ("held", "why"),
    [
        ({"S-1": {"status": "ready", "version": 1, "pickup_no": "042"}}, "ready at the kiosk too"),
        ({"S-1": None}, "the kiosk does not hold it yet"),
    ],
)
def test_number_still_held_at_the_kiosk_is_refused(
    hub: dict[str, Any], asker: dict[str, Any], held: dict[str, Any], why: str
) -> None:
    assert publish(hub, "--order-id", "S-1", "--pickup-no", "42").returncode == 0
    kiosk, _ = kiosk_holding(hub, asker, held)
    try:
        proc = run_ctl(
            "order", "publish", "--order-id", "S-2", "--pickup-no", "42", env=asker["env"]
        )
    finally:
        kiosk.close()
    assert proc.returncode == 1
    assert f"pickup number 042 is already used by active order S-1 ({why})" in proc.stderr
    assert retained_order(hub["port"], "S-2") is None


def test_without_the_kiosks_word_the_number_is_refused_with_what_to_do(
    hub: dict[str, Any], asker: dict[str, Any]
) -> None:
    assert publish(hub, "--order-id", "S-1", "--pickup-no", "42").returncode == 0
    argv = ("order", "publish", "--order-id", "S-2", "--pickup-no", "42", "--timeout", "1")
    proc = run_ctl(*argv, env=asker["env"])
    assert proc.returncode == 1
    assert "held by order S-1 (ready per the broker)" in proc.stderr
    assert "did not say whether it was collected (no answer within 1 s)" in proc.stderr
    assert "kioskctl order update S-1 --status collected" in proc.stderr
    assert "--force" in proc.stderr
    assert retained_order(hub["port"], "S-2") is None
    forced = run_ctl(*argv, "--force", env=asker["env"])
    assert forced.returncode == 0, forced.stderr
    assert "warning: pickup number 042 is also held by order S-1" in forced.stderr
    assert retained_order(hub["port"], "S-2") is not None


def test_a_hub_key_cannot_ask_and_the_message_says_so(
    hub: dict[str, Any], asker: dict[str, Any]
) -> None:
    assert publish(hub, "--order-id", "S-1", "--pickup-no", "42").returncode == 0
    kiosk, _ = kiosk_holding(hub, asker, {"S-1": None})
    try:
        proc = publish(hub, "--order-id", "S-2", "--pickup-no", "42")  # no query key
    finally:
        kiosk.close()
    assert proc.returncode == 1
    assert "wrong_role" in proc.stderr and "set query_key" in proc.stderr
