"""kioskctl staff add, list and revoke over a real Mosquitto."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.ctl.mqtt import UsageError
from hub.ctl.staff import parse_hours
from protocol.canonical import decode_json_object
from protocol.keys import Keyring, Role
from protocol.staff import validate_staff
from tests.support.broker import Broker
from tests.support.ctl import keygen, read_retained, run_ctl

pytestmark = pytest.mark.slow
SITE = "staff-site"


def test_hours_in_words() -> None:
    assert parse_hours("Mon-Sat 05:00-07:00") == {
        "days": [1, 2, 3, 4, 5, 6],
        "from": "05:00",
        "until": "07:00",
    }
    assert parse_hours("sat-mon 22:00-02:00")["days"] == [6, 7, 1]
    with pytest.raises(UsageError, match="Mon-Sat 05:00-07:00"):
        parse_hours("weekdays early")


def test_add_list_revoke(broker: Broker, tmp_path: Path) -> None:
    pub = keygen(tmp_path / "owner.key")
    common = ["--broker", broker.url, "--site", SITE, "--key", str(tmp_path / "owner.key")]
    added = run_ctl(
        "staff", "add", "林师傅", "--number", "42", "--role", "courier",
        "--hours", "Mon-Sat 05:00-07:00", "--until", "2099-12-31", "--uri", *common,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "staff number: 0042" in added.stdout
    assert "otpauth://totp/" in added.stdout and "digits=8" in added.stdout
    listed = run_ctl("staff", "list", "--json", *common)
    rows = json.loads(listed.stdout)
    assert [(r["staff_no"], r["revoked"], r["name"]) for r in rows] == [("0042", False, "林师傅")]
    assert "secret" not in listed.stdout
    raw = read_retained(broker.port, f"pickup/v1/{SITE}/staff/{rows[0]['staff_id']}")
    assert raw is not None
    doc = decode_json_object(raw)
    staff = validate_staff(doc, site=SITE, width=3)
    assert staff.role == "courier" and staff.schedule[0].days == (1, 2, 3, 4, 5, 6)
    assert Keyring(owner_keys=[pub]).verify(doc, {Role.OWNER}).role is Role.OWNER
    revoked = run_ctl("staff", "revoke", rows[0]["staff_id"], *common)
    assert revoked.returncode == 0, revoked.stderr
    rows = json.loads(run_ctl("staff", "list", "--json", *common).stdout)
    assert rows[0]["revoked"] is True and rows[0]["version"] == 2
    clash = run_ctl("staff", "add", "Wang", "--number", "0042", *common)
    assert clash.returncode == 0  # a revoked holder frees its number
    again = run_ctl("staff", "add", "Zhao", "--number", "0042", *common)
    assert again.returncode == 1 and "already" in again.stderr
