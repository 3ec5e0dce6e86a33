"""The real ``kiosk door`` process on the simulated board, keys on stdin."""

import json
import signal
from pathlib import Path

import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.polling import wait_for
from tests.support.procs import events, kiosk, popen_kiosk, signed_orders, write_config

pytestmark = pytest.mark.slow


def test_door_process_accepts_a_code_and_refuses_a_wrong_one(tmp_path: Path) -> None:
    hub = Ed25519PrivateKey.generate()
    cfg = write_config(tmp_path, hub)
    doc = signed_orders(hub, 1)[0]
    (tmp_path / "o.json").write_text(json.dumps(doc))
    assert kiosk("orders", "import", str(tmp_path / "o.json"), config=cfg).returncode == 0
    proc = popen_kiosk("door", config=cfg)
    try:
        wait_for(lambda: any(e["type"] == "boot" for e in events(cfg)))
        code = doc["pickup_no"] + pyotp.TOTP(doc["otp"]["secret"]).now()
        assert proc.stdin is not None
        proc.stdin.write(f"{code[:4]} {code[4:]}\n#")  # whitespace is ignored
        proc.stdin.flush()
        evs = wait_for(
            lambda: [e for e in events(cfg) if e["type"] == "door_unlocked"] and events(cfg)
        )
        types = [e["type"] for e in evs]
        assert types.index("code_accepted") < types.index("door_unlocked")
        wrong = doc["pickup_no"] + ("739146" if not code.endswith("739146") else "582713")
        proc.stdin.write(wrong + "#")
        proc.stdin.write("oc")  # open and close the simulated door
        proc.stdin.flush()
        evs = wait_for(
            lambda: [e for e in events(cfg) if e["type"] == "code_rejected"] and events(cfg)
        )
        rejected = next(e for e in evs if e["type"] == "code_rejected")
        assert rejected["detail"]["reason"] == "wrong_code"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    # hashes are left out: hex digits could contain any 6 digits by chance
    plain = [{k: v for k, v in e.items() if k not in ("hash", "prev_hash")} for e in events(cfg)]
    everything = json.dumps(plain) + out + err
    assert wrong not in everything and wrong[3:] not in everything
    assert code[3:] not in everything
    assert events(cfg)[-1]["type"] == "shutdown"
    assert kiosk("verify-log", config=cfg).returncode == 0
