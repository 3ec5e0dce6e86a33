"""kioskctl unlock, wait and cancel against a real Mosquitto and the kiosk model.

Issue 12 item 2: an unlock reported as failed opened the door later, and an
owner who retried opened it twice. These tests hold kioskctl to: a short,
stated validity; "no answer" saying whether and until when the kiosk may
still unlock; never a second unlock from one action; wait and cancel.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from protocol.keys import Keyring, Role, key_id
from protocol.times import parse_time
from tests.support.broker import Broker
from tests.support.ctl import ROOT, FakeKiosk, keygen, run_ctl
from tests.support.ctl_model import KioskModel
from tests.support.polling import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SITE = "shop-1"


@pytest.fixture
def owner(tmp_path: Path, broker: Broker) -> dict[str, Any]:
    key = tmp_path / "owner.key"
    pub = keygen(key)
    state = tmp_path / "state"
    env = {
        "KIOSKCTL_BROKER": broker.url,
        "KIOSKCTL_KEY": str(key),
        "KIOSKCTL_SITE": SITE,
        "KIOSKCTL_STATE_DIR": str(state),
    }
    return {"key": key, "pub": pub, "env": env, "port": broker.port, "state": state}


def model(owner: dict[str, Any], **kw: Any) -> KioskModel:
    return KioskModel(SITE, owner_keys=[owner["pub"]], **kw)


def clock(t: float) -> str:
    """How kioskctl shows a time of today: local HH:MM:SS."""
    when = datetime.fromtimestamp(t)
    if when.date() != datetime.now().date():
        return when.strftime("%Y-%m-%d %H:%M:%S")
    return when.strftime("%H:%M:%S")


def unlocks(kiosk: FakeKiosk) -> list[dict[str, Any]]:
    return [c for c in kiosk.commands if c["cmd"] == "unlock"]


def state_file(owner: dict[str, Any]) -> dict[str, dict[str, Any]]:
    data = json.loads((owner["state"] / "commands.json").read_text())
    return {c["cmd_id"]: c for c in data["commands"]}


def test_unlock_round_trip_states_validity_and_words(owner: dict[str, Any]) -> None:
    m = model(owner)
    kiosk = FakeKiosk(owner["port"], SITE, m)
    try:
        proc = run_ctl("unlock", "--reason", "courier at the door", "--yes", env=owner["env"])
    finally:
        kiosk.close()
    assert proc.returncode == 0, proc.stderr
    [cmd] = unlocks(kiosk)
    signer = Keyring(owner_keys=[owner["pub"]]).verify(cmd, {Role.OWNER})
    assert signer.key_id == key_id(owner["pub"])
    assert cmd["args"] == {"reason": "courier at the door"}
    issued, expires = parse_time(cmd["issued_at"]), parse_time(cmd["expires_at"])
    assert expires - issued == 60
    assert f"sent unlock {cmd['cmd_id']} to {SITE}" in proc.stderr
    assert f"valid until {clock(expires)} (60 s)" in proc.stderr
    assert proc.stdout == f"{SITE}: door unlocked by {cmd['cmd_id']}\n"
    assert m.states[cmd["cmd_id"]] == "done"
    # remembered, privately, with its outcome
    assert stat.S_IMODE(owner["state"].stat().st_mode) == 0o700
    assert stat.S_IMODE((owner["state"] / "commands.json").stat().st_mode) == 0o600
    assert state_file(owner)[cmd["cmd_id"]]["state"] == "done"


@pytest.mark.parametrize(
    ("ttl", "ok"), [("120", True), ("600", True), ("601", False), ("0", False)]
)
def test_ttl_is_bounded_by_the_protocol(owner: dict[str, Any], ttl: str, ok: bool) -> None:
    kiosk = FakeKiosk(owner["port"], SITE, model(owner))
    try:
        proc = run_ctl("unlock", "--reason", "x", "--yes", "--ttl", ttl, env=owner["env"])
    finally:
        kiosk.close()
    if not ok:
        assert proc.returncode == 64 and "--ttl must be from 1 to 600" in proc.stderr
        assert kiosk.commands == []
        return
    assert proc.returncode == 0, proc.stderr
    [cmd] = kiosk.commands
    assert parse_time(cmd["expires_at"]) - parse_time(cmd["issued_at"]) == int(ttl)


def test_refused_unlock_exits_1_with_the_kiosks_reason(
    owner: dict[str, Any], tmp_path: Path
) -> None:
    other = tmp_path / "stranger.key"
    keygen(other)
    kiosk = FakeKiosk(owner["port"], SITE, model(owner))
    try:
        proc = run_ctl("unlock", "--reason", "x", "--yes", "--key", str(other), env=owner["env"])
    finally:
        kiosk.close()
    assert proc.returncode == 1
    assert "refused the unlock" in proc.stderr and "bad_signature" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_failed_unlock_says_failed(owner: dict[str, Any]) -> None:
    kiosk = FakeKiosk(owner["port"], SITE, model(owner, door="fail"))
    try:
        proc = run_ctl("unlock", "--reason", "x", "--yes", env=owner["env"])
    finally:
        kiosk.close()
    assert proc.returncode == 1
    assert "failed" in proc.stderr and "door daemon not running" in proc.stderr


def no_answer(owner: dict[str, Any], *extra: str) -> tuple[subprocess.CompletedProcess[str], str]:
    proc = run_ctl(
        "unlock", "--reason", "locked out", "--yes", "--timeout", "1", *extra, env=owner["env"]
    )
    assert proc.returncode == 2, proc.stderr
    cmd_id = proc.stderr.split("sent unlock ")[1].split()[0]
    return proc, cmd_id


def test_no_answer_says_until_when_the_kiosk_may_still_unlock(owner: dict[str, Any]) -> None:
    m = model(owner)
    kiosk = FakeKiosk(owner["port"], SITE, m, persistent=True)
    kiosk.stop()  # the agent is stopped; the broker keeps its session
    try:
        proc, cmd_id = no_answer(owner)
        expires = state_file(owner)[cmd_id]["expires_at"]
        assert (
            f"no answer yet from {SITE} within 1 s; the kiosk may still unlock until "
            f"{clock(expires)} — `kioskctl wait {cmd_id}` to keep waiting, "
            f"`kioskctl cancel {cmd_id}` to withdraw it"
        ) in proc.stderr
        assert state_file(owner)[cmd_id]["state"] == "sent"
        # ... and indeed it does, when the agent comes back: once
        kiosk.start()
        wait_for(lambda: m.states.get(cmd_id) == "done", what="the queued unlock")
        assert [c["cmd_id"] for c in unlocks(kiosk)] == [cmd_id]
    finally:
        kiosk.close()


def test_a_second_unlock_while_the_first_may_run_is_refused(owner: dict[str, Any]) -> None:
    m = model(owner)
    kiosk = FakeKiosk(owner["port"], SITE, m, persistent=True)
    kiosk.stop()
    try:
        _, first = no_answer(owner)
        again = run_ctl("unlock", "--reason", "locked out", "--yes", env=owner["env"])
        assert again.returncode == 1
        assert f"an earlier unlock of {SITE} has no answer yet ({first}" in again.stderr
        assert "--again" in again.stderr and f"kioskctl cancel {first}" in again.stderr
        assert "sent unlock" not in again.stderr  # nothing was published
        # with --again the owner may, knowingly
        _, second = no_answer(owner, "--again")
        kiosk.start()
        wait_for(lambda: len(unlocks(kiosk)) == 2, what="both unlocks")
        assert [c["cmd_id"] for c in unlocks(kiosk)] == [first, second]
    finally:
        kiosk.close()


def test_wait_gets_the_answer_when_the_kiosk_comes_back(owner: dict[str, Any]) -> None:
    m = model(owner)
    kiosk = FakeKiosk(owner["port"], SITE, m, persistent=True)
    kiosk.stop()
    try:
        _, cmd_id = no_answer(owner)
        timer = threading.Timer(1.5, kiosk.start)
        timer.start()
        proc = run_ctl("wait", cmd_id, "--timeout", "20", env=owner["env"])
        timer.join()
    finally:
        kiosk.close()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{SITE}: door unlocked by {cmd_id}\n"
    assert state_file(owner)[cmd_id]["state"] == "done"
    # now settled: a new unlock is not held back
    kiosk = FakeKiosk(owner["port"], SITE, m)
    try:
        proc = run_ctl("unlock", "--reason", "again", "--yes", env=owner["env"])
    finally:
        kiosk.close()
    assert proc.returncode == 0, proc.stderr


def test_wait_finds_an_answer_nobody_heard_in_the_trail(owner: dict[str, Any]) -> None:
    m = model(owner)
    kiosk = FakeKiosk(owner["port"], SITE, m, persistent=True)
    kiosk.stop()
    try:
        _, cmd_id = no_answer(owner)
        kiosk.start()  # answers while no kioskctl listens: the result is lost
        wait_for(lambda: m.states.get(cmd_id) == "done", what="the unlock")
        proc = run_ctl("wait", cmd_id, "--timeout", "20", env=owner["env"])
    finally:
        kiosk.close()
    assert proc.returncode == 0, proc.stderr
    assert f"{SITE}: {cmd_id} ran: the door was unlocked for it at " in proc.stdout
    assert "from the audit trail" in proc.stdout


def test_wait_without_any_news_says_it_may_still_run(owner: dict[str, Any]) -> None:
    kiosk = FakeKiosk(owner["port"], SITE, model(owner), persistent=True)
    kiosk.stop()
    try:
        _, cmd_id = no_answer(owner)
        proc = run_ctl("wait", cmd_id, "--timeout", "1", env=owner["env"])
    finally:
        kiosk.close()
    assert proc.returncode == 2
    assert (
        "the kiosk may still unlock until" in proc.stderr
        and f"kioskctl cancel {cmd_id}" in proc.stderr
    )


def test_wait_after_expiry_says_it_will_not_run_any_more(owner: dict[str, Any]) -> None:
    kiosk = FakeKiosk(owner["port"], SITE, model(owner), persistent=True)
    kiosk.stop()
    try:
        _, cmd_id = no_answer(owner, "--ttl", "1")
        expires = state_file(owner)[cmd_id]["expires_at"]
        wait_for(lambda: datetime.now().timestamp() > expires + 0.1, what="the expiry")
        proc = run_ctl("wait", cmd_id, "--timeout", "1", env=owner["env"])
    finally:
        kiosk.close()
    assert proc.returncode == 2
    assert (
        f"{cmd_id} expired at {clock(expires)}, so the kiosk will not run it any more"
        in proc.stderr
    )


def test_cancel_withdraws_a_pending_unlock(owner: dict[str, Any]) -> None:
    m = model(owner, door="hold")  # the door daemon has not taken it yet
    kiosk = FakeKiosk(owner["port"], SITE, m)
    try:
        _, cmd_id = no_answer(owner)
        assert m.states[cmd_id] == "pending"
        proc = run_ctl("cancel", cmd_id, "--reason", "sent by mistake", env=owner["env"])
        assert m.release() == []  # it does not run any more
    finally:
        kiosk.close()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{SITE}: withdrawn: {cmd_id} was pending and will not run\n"
    [cancel] = [c for c in kiosk.commands if c["cmd"] == "cancel"]
    Keyring(owner_keys=[owner["pub"]]).verify(cancel, {Role.OWNER})
    assert cancel["args"] == {"cmd_id": cmd_id, "reason": "sent by mistake"}
    assert parse_time(cancel["expires_at"]) - parse_time(cancel["issued_at"]) == 60
    assert m.states[cmd_id] == "cancelled"
    assert state_file(owner)[cmd_id]["state"] == "cancelled"
    # withdrawn, so a new unlock is not held back
    m.door = "auto"
    kiosk = FakeKiosk(owner["port"], SITE, m)
    try:
        assert run_ctl("unlock", "--reason", "now", "--yes", env=owner["env"]).returncode == 0
    finally:
        kiosk.close()


def test_cancel_of_a_command_not_seen_yet_blocks_it(owner: dict[str, Any]) -> None:
    m = model(owner)
    kiosk = FakeKiosk(owner["port"], SITE, m)
    try:
        proc = run_ctl("cancel", "unlock-1700000000-aaaaaaaaaaaa", env=owner["env"])
    finally:
        kiosk.close()
    assert proc.returncode == 0, proc.stderr
    assert "withdrawn before it arrived" in proc.stdout and "refused (cancelled)" in proc.stdout
    assert "unlock-1700000000-aaaaaaaaaaaa" in m.blocked


def test_cancel_too_late_and_nothing_to_withdraw(owner: dict[str, Any]) -> None:
    m = model(owner)
    kiosk = FakeKiosk(owner["port"], SITE, m, persistent=True)
    try:
        done = run_ctl("unlock", "--reason", "x", "--yes", "--json", env=owner["env"])
        done_id = json.loads(done.stdout)["cmd_id"]
        late = run_ctl("cancel", done_id, env=owner["env"])
        # the agent comes back after the command expired: refused
        kiosk.stop()
        _, expired_id = no_answer(owner, "--ttl", "1")
        expires = state_file(owner)[expired_id]["expires_at"]
        wait_for(lambda: datetime.now().timestamp() > expires + 0.1, what="the expiry")
        kiosk.start()
        wait_for(lambda: m.states.get(expired_id) == "refused", what="the refusal")
        nothing = run_ctl("cancel", expired_id, env=owner["env"])
    finally:
        kiosk.close()
    assert late.returncode == 1 and late.stdout == f"{SITE}: too late: {done_id} already ran\n"
    assert nothing.returncode == 0, nothing.stderr
    assert nothing.stdout == f"{SITE}: nothing to withdraw: the kiosk had refused {expired_id}\n"
    assert state_file(owner)[expired_id]["state"] == "refused"


def test_interrupted_unlock_says_it_may_still_run(owner: dict[str, Any]) -> None:
    kiosk = FakeKiosk(owner["port"], SITE, model(owner), persistent=True)
    kiosk.stop()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSKCTL_")}
    env.update(owner["env"], HOME=str(owner["state"].parent), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.ctl.cli", "unlock", "--reason", "x", "--yes"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("sent unlock "), line
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        kiosk.close()
    assert proc.returncode == 130
    assert "interrupted; the kiosk may still unlock until" in err and "Traceback" not in err


def test_hostile_results_are_ignored_until_the_real_one(owner: dict[str, Any]) -> None:
    """Forged results on the command's topic: not JSON, another cmd_id, no ok, retained."""

    def answer(cmd: dict[str, Any]) -> list[dict[str, Any]]:
        cid = cmd["cmd_id"]
        return [
            {"cmd_id": "someone-else", "ok": True, "result": {"state": "done"}},
            {"cmd_id": cid, "ok": "yes"},
            {"cmd_id": cid, "ok": True, "result": "done"},
            {"cmd_id": cid, "ok": False, "error": "\x1b[2J\x1b[31mforged", "reason": "expired"},
        ]

    kiosk = FakeKiosk(owner["port"], SITE, answer)
    try:
        proc = run_ctl("unlock", "--reason", "x", "--yes", env=owner["env"])
    finally:
        kiosk.close()
    assert proc.returncode == 1  # the first well-formed result is taken
    assert proc.stderr.count("warning: ignored a message") == 3
    assert "\x1b" not in proc.stderr and "\\u001b[2J" in proc.stderr


def test_time_sets_the_floor_and_says_so(owner: dict[str, Any]) -> None:
    m = model(owner)
    kiosk = FakeKiosk(owner["port"], SITE, m)
    try:
        proc = run_ctl("time", env=owner["env"])
    finally:
        kiosk.close()
    assert proc.returncode == 0, proc.stderr
    [cmd] = kiosk.commands
    assert cmd["cmd"] == "time" and cmd["args"] == {}
    Keyring(owner_keys=[owner["pub"]]).verify(cmd, {Role.OWNER})
    assert m.floor == parse_time(cmd["issued_at"])
    floor = datetime.fromtimestamp(m.floor).strftime("%Y-%m-%d %H:%M:%S")
    assert proc.stdout == f"{SITE}: the kiosk's clock floor is now {floor}; its clock is trusted\n"
