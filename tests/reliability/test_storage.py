"""docs/design.md, rule 1 when the SD card is full or read-only: a small real
filesystem made for the test (tmpfs, root only), the real DoorDaemon on the
simulated board with an injected clock."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.audit import verify_store
from kiosk.daemon import STORE_RETRY_S
from kiosk.inputs import ExitPressed
from tests.support.disk import fill, tmpfs
from tests.support.door import Rig
from tests.support.harness import DoorProc, import_orders, write_config
from tests.support.polling import wait_for

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None, reason="mounting a tmpfs needs root"
)


def code(rig: Rig, doc: dict[str, object]) -> str:
    otp = doc["otp"]
    assert isinstance(otp, dict)
    return str(doc["pickup_no"]) + pyotp.TOTP(otp["secret"]).at(rig.w.clock.wall())


@needs_root
def test_disk_full_refuses_codes_keeps_exit_and_recovers_alone(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "sd") as sd:
        rig = Rig(sd)
        try:
            doc = rig.w.add()
            # An empty WAL, so the next commit needs new blocks on the full disk.
            rig.w.store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            before = len(rig.w.events())
            junk = fill(sd)

            rig.type(code(rig, doc) + "#")
            assert not rig.board.relay_active()
            assert rig.screens[-1].kind == "out_of_service"
            assert rig.board.led.state == "fault"

            rig.d.post(ExitPressed())
            rig.d.drain()
            assert rig.board.relay_active(), "the exit button must work with the store full"
            rig.advance(rig.cfg.lock.release_s)
            assert not rig.board.relay_active()

            rig.advance(STORE_RETRY_S)  # still full: still out of service, nothing written
            assert rig.screens[-1].kind == "out_of_service"
            assert len(rig.w.events()) == before

            junk.unlink()  # space is back: the daemon notices by itself
            rig.advance(STORE_RETRY_S)
            types = rig.types()[before:]
            assert types[0] == "store_unwritable"  # the alarm, stamped when it began
            assert types[-1] == "store_recovered"
            assert "exit_pressed" in types
            rejected = [
                e
                for e in rig.w.events("code_rejected")
                if e["detail"]["reason"] == "out_of_service"
            ]
            assert len(rejected) == 1
            by_exit = [e for e in rig.w.events("door_unlocked") if e["detail"]["by"] == "exit"]
            assert len(by_exit) == 1
            recovered = rig.w.events("store_recovered")[-1]
            assert recovered["detail"]["kept"] == len(types) - 1
            alarm = rig.w.events("store_unwritable")[-1]
            assert alarm["seq"] < recovered["seq"] and alarm["ts"] <= recovered["ts"]

            rig.w.clock.advance(30)  # a fresh step: the same customer gets in now
            rig.type(code(rig, doc) + "#")
            assert rig.board.relay_active()
            assert rig.screens[-1].kind == "accepted"
            assert verify_store(rig.w.store) == len(rig.w.events())
            assert rig.w.store.integrity_ok()[0]
        finally:
            rig.board.close()
            rig.w.store.close()


@needs_root
@pytest.mark.slow
def test_door_starts_on_a_read_only_store_refuses_codes_and_exit_works(tmp_path: Path) -> None:
    hub = Ed25519PrivateKey.generate()
    with tmpfs(tmp_path / "sd", size="4m") as sd:
        config = write_config(sd, hub)
        import_orders(config, sd, hub, 1)
        subprocess.run(["mount", "-o", "remount,ro", str(sd)], check=True, capture_output=True)
        door = DoorProc(config, tmp_path)
        try:
            door.wait_ready(timeout=10)
            door.keys("x")
            wait_for(lambda: "relay energized" in door.stderr(), timeout=10)
        finally:
            door.kill()
