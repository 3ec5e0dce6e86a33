"""docs/design.md rules 1 to 3 under SIGKILL: the real ``kiosk door`` process is
killed at random instants during pickups, then restarted, 50 times."""

from __future__ import annotations

import os
import random
import sqlite3
import time
from functools import partial
from pathlib import Path

import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.harness import (
    DoorProc,
    check_relay_trace,
    check_store,
    door_crash_campaign,
    import_orders,
    kiosk,
    marks,
    write_config,
)
from tests.support.polling import wait_for

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("KIOSK_CAMPAIGN_SEED", "8008"))


def test_sigkill_during_pickups_50_times(tmp_path: Path) -> None:
    print(f"seed {SEED} (set KIOSK_CAMPAIGN_SEED to replay another)")
    res = door_crash_campaign(tmp_path, kills=50, seed=SEED, orders=120)
    print(res.summary())
    assert res.kills == 50
    # The campaign really exercised the door: codes opened it and the relay moved,
    # and kills landed both during start-up and during pickups.
    assert res.outcomes["code_accepted"] >= 25
    assert res.energized >= 25 and res.kills_during_start >= 1
    # Nothing the harness typed was a wrong code, so nothing was throttled.
    assert res.outcomes["throttled"] == 0 and res.outcomes["rejected:wrong_code"] == 0


def _accepted(db: Path, order_id: str) -> int:
    con = sqlite3.connect(db)
    try:
        (n,) = con.execute(
            "SELECT count(*) FROM events WHERE type = 'code_accepted' AND order_id = ?",
            (order_id,),
        ).fetchone()
        (used,) = con.execute(
            "SELECT count(*) FROM used_steps WHERE order_id = ?", (order_id,)
        ).fetchone()
    finally:
        con.close()
    assert n == used, f"{order_id}: {n} code_accepted but {used} steps used"
    return int(n)


def test_a_code_killed_mid_entry_is_used_exactly_once_when_typed_again(tmp_path: Path) -> None:
    """SIGKILL at a random instant after a customer's code was typed (before it
    was read, while it is judged, between the commit and the relay, while the
    door is open), then the customer types the same code again at once: across
    both tries the (order, step) is accepted exactly once, its relay never
    moved without the committed unlock, and the trail verifies."""
    rng = random.Random(SEED)
    hub = Ed25519PrivateKey.generate()
    config = write_config(tmp_path, hub)
    db = tmp_path / "kiosk.db"
    docs = import_orders(config, tmp_path, hub, 12)
    outcomes = []
    for doc in docs:
        otp = pyotp.TOTP(doc["otp"]["secret"])
        code = str(doc["pickup_no"]) + otp.at(time.time())
        before = marks(db)
        door = DoorProc(config, tmp_path)
        try:
            door.wait_ready()
            door.keys(code + "#" + ("o" if rng.random() < 0.5 else ""))
            time.sleep(rng.uniform(0.0, 0.05))
        finally:
            door.kill()
        first = _accepted(db, doc["order_id"])
        check_store(db)
        check_relay_trace(db, door.stderr(), before)
        before = marks(db)
        door = DoorProc(config, tmp_path)
        try:
            door.wait_ready()
            door.keys("c" + code + "#")  # the same code again, same step
            wait_for(
                partial(_outcomes_after, db, before.seq),
                timeout=20,
                what="the retyped code's outcome",
            )
        finally:
            assert door.stop() == 0
        assert _accepted(db, doc["order_id"]) == 1, f"first try accepted {first} time(s)"
        check_store(db)
        check_relay_trace(db, door.stderr(), before)
        outcomes.append(first)
    verified = kiosk("verify-log", config=config)
    assert verified.returncode == 0, verified.stderr
    assert 0 < sum(outcomes) < len(outcomes)  # kills landed both before and after commits
    print(f"committed before the kill: {sum(outcomes)} of {len(outcomes)}")


def _outcomes_after(db: Path, seq: int) -> int:
    """Codes judged (accepted or rejected) after ``seq``."""
    con = sqlite3.connect(db)
    try:
        (n,) = con.execute(
            "SELECT count(*) FROM events WHERE seq > ? AND type IN "
            "('code_accepted', 'code_rejected')",
            (seq,),
        ).fetchone()
    finally:
        con.close()
    return int(n)
