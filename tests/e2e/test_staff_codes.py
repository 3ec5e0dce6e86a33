"""Staff codes end to end: kioskctl staff add, a real broker, real kiosk door and sync."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.keys import private_key_from_pem
from protocol.otp import hotp
from tests.support.broker import Broker
from tests.support.ctl import keygen, run_ctl
from tests.support.polling import wait_for
from tests.support.procs import SITE, events, popen_kiosk, write_config

pytestmark = [pytest.mark.slow, pytest.mark.broker]


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)


def test_a_staff_code_opens_in_its_hours_and_not_after_revocation(
    broker: Broker, tmp_path: Path
) -> None:
    keygen(tmp_path / "owner.key")
    owner = private_key_from_pem((tmp_path / "owner.key").read_bytes())
    cfg = write_config(tmp_path, Ed25519PrivateKey.generate(), owner, mqtt_url=broker.url)
    cfg.write_text(cfg.read_text().replace(f'id = "{SITE}"', f'id = "{SITE}"\ntimezone = "UTC"'))
    now = datetime.now(UTC)
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    today = days[now.weekday()]
    start, end = now - timedelta(minutes=30), now + timedelta(minutes=90)
    hours = f"{today} {start:%H:%M}-{min(end, now.replace(hour=23, minute=59)):%H:%M}"
    if start.date() != now.date():
        hours = f"{today} 00:00-{end:%H:%M}"
    door = popen_kiosk("door", config=cfg)
    sync = popen_kiosk("sync", config=cfg)
    common = ["--broker", broker.url, "--site", SITE, "--key", str(tmp_path / "owner.key")]
    try:
        added = run_ctl(
            "staff", "add", "Lin", "--number", "0042", "--role", "courier",
            "--hours", hours, "--uri", *common,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        uri = next(line for line in added.stdout.splitlines() if line.startswith("otpauth://"))
        secret = parse_qs(urlsplit(uri).query)["secret"][0]
        wait_for(lambda: any(e["type"] == "staff_updated" for e in events(cfg)), 30)
        wait_for(lambda: any(e["type"] == "boot" for e in events(cfg)), 30)

        def type_code(extra: str = "") -> None:
            code = "0042" + hotp(secret, int(time.time() // 30), 8) + extra
            assert door.stdin is not None
            door.stdin.write(code + "#")
            door.stdin.flush()

        type_code()
        entry = wait_for(lambda: [e for e in events(cfg) if e["type"] == "staff_entry"], 30)
        assert entry[0]["detail"]["name"] == "Lin" and entry[0]["detail"]["role"] == "courier"
        unlocked = [e for e in events(cfg) if e["type"] == "door_unlocked"]
        assert unlocked and unlocked[-1]["detail"]["by"] == "staff"

        staff_id = entry[0]["detail"]["staff_id"]
        assert run_ctl("staff", "revoke", staff_id, *common).returncode == 0
        wait_for(
            lambda: any(
                e["type"] == "staff_updated" and e["detail"]["revoked"] for e in events(cfg)
            ),
            30,
        )
        type_code()  # even in the same step: revoked says so before "already used"
        refused = wait_for(
            lambda: [
                e
                for e in events(cfg)
                if e["type"] == "code_rejected" and e["detail"].get("staff_id") == staff_id
            ],
            30,
        )
        assert refused[0]["detail"]["reason"] == "staff_revoked"
    finally:
        stop(door)
        stop(sync)
