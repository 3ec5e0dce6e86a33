"""kioskctl status, unlock and logs against a real Mosquitto and an in-test kiosk."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from protocol import topics
from protocol.keys import Keyring, Role, key_id
from tests.support.broker import Broker, free_port
from tests.support.ctl import FakeKiosk, keygen, make_chain, publish_retained, run_ctl

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SITE = "shop-1"


@pytest.fixture
def owner(tmp_path: Path, broker: Broker) -> dict[str, Any]:
    key = tmp_path / "owner.key"
    pub = keygen(key)
    env = {"KIOSKCTL_BROKER": broker.url, "KIOSKCTL_KEY": str(key), "KIOSKCTL_SITE": SITE}
    return {"key": key, "pub": pub, "env": env, "port": broker.port}


def status_doc(**over: Any) -> dict[str, Any]:
    doc = {
        "online": True,
        "ts": "2026-05-13T01:12:09Z",
        "version": "0.1.0",
        "door": "closed",
        "lock": "locked",
        "mode": "night",
        "orders_ready": 12,
        "outbox": 0,
        "clock": "synced",
        "last_seq": 1842,
    }
    doc.update(over)
    return doc


# -- status ---------------------------------------------------------------------


def test_status_all_json_over_two_sites(owner: dict[str, Any]) -> None:
    publish_retained(owner["port"], topics.status("shop-b"), status_doc(outbox=3, door="open"))
    publish_retained(owner["port"], topics.status("shop-a"), status_doc())
    publish_retained(owner["port"], topics.status("shop-c"), {"online": False})
    proc = run_ctl("status", "--all", "--json", env=owner["env"])
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["site"] for r in rows] == ["shop-a", "shop-b", "shop-c"]
    assert rows[0] == {"site": "shop-a", **status_doc()}
    assert (rows[1]["outbox"], rows[1]["door"]) == (3, "open")
    assert rows[2] == {"site": "shop-c", "online": False}
    proc = run_ctl("status", "--all", env=owner["env"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["SITE", "ONLINE", "LAST"]
    assert lines[1].split()[:2] == ["shop-a", "yes"] and "12" in lines[1].split()
    assert lines[3].split()[:3] == ["shop-c", "no", "-"]


def test_status_of_one_site_and_of_an_unknown_site(owner: dict[str, Any]) -> None:
    publish_retained(owner["port"], topics.status("shop-a"), status_doc())
    publish_retained(owner["port"], topics.status(SITE), status_doc(orders_ready=4))
    proc = run_ctl("status", "--json", env=owner["env"])  # KIOSKCTL_SITE picks one
    assert [r["site"] for r in json.loads(proc.stdout)] == [SITE]
    proc = run_ctl("status", "--site", "nowhere", env=owner["env"])
    assert proc.returncode == 1 and "nowhere" in proc.stderr


# -- logs ---------------------------------------------------------------------------


EVENTS = [
    ("boot", None, {}),
    ("code_rejected", None, {"reason": "wrong_code"}),
    ("code_accepted", "HM-42", {}),
    ("door_unlocked", "HM-42", {}),
    ("door_opened", None, {}),
    ("door_closed", None, {}),
]
LOGS = [
    {
        "v": 1,
        "site": SITE,
        "seq": 7,
        "ts": "2026-05-13T01:03:30Z",
        "level": "WARNING",
        "logger": "kiosk.door",
        "message": "keypad throttled",
    }
]


def serve_logs(
    events: list[dict[str, Any]], page_size: int = 4
) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    """A kiosk's answer to ``logs``: the events after since_seq in pages."""

    def answer(cmd: dict[str, Any]) -> list[dict[str, Any]]:
        if cmd["cmd"] != "logs":
            return [{"cmd_id": cmd["cmd_id"], "ok": False, "error": "unexpected"}]
        since = cmd["args"]["since_seq"]
        wanted = [e for e in events if e["seq"] > since]
        pages = [wanted[i : i + page_size] for i in range(0, len(wanted), page_size)] or [[]]
        # numbered from 1 like sync/agent.py; kioskctl also accepts 0
        return [
            {
                "cmd_id": cmd["cmd_id"],
                "ok": True,
                "page": n,
                "last": n == len(pages),
                "events": page,
                "logs": LOGS if n == 1 else [],
            }
            for n, page in enumerate(pages, 1)
        ]

    return answer


def test_logs_of_a_correct_chain(owner: dict[str, Any]) -> None:
    events = make_chain(SITE, EVENTS)
    kiosk = FakeKiosk(owner["port"], SITE, serve_logs(events))
    try:
        proc = run_ctl("logs", "--since", "0", env=owner["env"])
        jproc = run_ctl("logs", "--since", "0", "--json", env=owner["env"])
    finally:
        kiosk.close()
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr
    assert proc.stderr.startswith("times are this computer's local time (UTC")
    lines = proc.stdout.splitlines()
    assert len(lines) == 7  # six events, one log record
    rejected = next(line for line in lines if "#2 " in line)
    assert rejected.endswith("code refused: the one-time value was wrong")
    assert any(line.endswith("door unlocked for order HM-42") for line in lines)
    assert any("keypad throttled" in line and "kiosk.door" in line for line in lines)
    printed = [json.loads(line) for line in jproc.stdout.splitlines()]
    assert [p for p in printed if "hash" in p] == events  # exactly as published
    cmd = kiosk.commands[0]
    Keyring(owner_keys=[owner["pub"]]).verify(cmd, {Role.OWNER})
    assert cmd["args"] == {"since_seq": 0, "since_log_seq": 0}


def test_logs_default_window_comes_from_status(owner: dict[str, Any]) -> None:
    events = make_chain(SITE, EVENTS)
    publish_retained(owner["port"], topics.status(SITE), status_doc(last_seq=6))
    kiosk = FakeKiosk(owner["port"], SITE, serve_logs(events))
    try:
        proc = run_ctl("logs", "--last", "2", env=owner["env"])
    finally:
        kiosk.close()
    assert proc.returncode == 0, proc.stderr
    assert kiosk.commands[0]["args"]["since_seq"] == 4
    seqs = [w for line in proc.stdout.splitlines() for w in line.split() if w.startswith("#")]
    assert seqs == ["#5", "#6"]


def test_logs_tampered_event_is_loud_and_exits_3(owner: dict[str, Any]) -> None:
    events = make_chain(SITE, EVENTS)
    events[3]["order_id"] = "SOMEONE-ELSE"  # changed after it was hashed
    kiosk = FakeKiosk(owner["port"], SITE, serve_logs(events))
    try:
        proc = run_ctl("logs", "--since", "0", env=owner["env"])
    finally:
        kiosk.close()
    assert proc.returncode == 3
    assert "AUDIT CHAIN WARNING" in proc.stderr
    assert "seq 4" in proc.stderr and "changed" in proc.stderr
    assert "seq 5" not in proc.stderr  # the chain after it still links


def test_logs_gap_is_loud_and_exits_3(owner: dict[str, Any]) -> None:
    events = make_chain(SITE, EVENTS)
    del events[2]
    kiosk = FakeKiosk(owner["port"], SITE, serve_logs(events))
    try:
        proc = run_ctl("logs", "--since", "0", env=owner["env"])
    finally:
        kiosk.close()
    assert proc.returncode == 3
    assert "seq 3 missing" in proc.stderr


def test_logs_follow_prints_live_events_and_dedupes(owner: dict[str, Any]) -> None:
    events = make_chain(SITE, [*EVENTS, ("door_opened", None, {}), ("door_closed", None, {})])
    served, live = events[:6], events[5:]  # seq 6 arrives twice: paged and live

    def then_publish(c: Any) -> None:
        for ev in live:
            c.publish(topics.events(SITE), json.dumps(ev), qos=1)
        c.publish(topics.log(SITE), json.dumps({**LOGS[0], "seq": 8, "message": "live one"}), qos=1)

    kiosk = FakeKiosk(owner["port"], SITE, serve_logs(served), then_publish=then_publish)
    try:
        proc = run_ctl(
            "logs", "--since", "0", "--follow", "--duration", "3", "--json", env=owner["env"]
        )
    finally:
        kiosk.close()
    assert proc.returncode == 0, proc.stderr
    printed = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [p["seq"] for p in printed if "hash" in p] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert any(p.get("message") == "live one" for p in printed)


def test_logs_refused(owner: dict[str, Any]) -> None:
    kiosk = FakeKiosk(
        owner["port"],
        SITE,
        lambda cmd: [{"cmd_id": cmd["cmd_id"], "ok": False, "error": "expired"}],
    )
    try:
        proc = run_ctl("logs", "--since", "0", env=owner["env"])
    finally:
        kiosk.close()
    assert proc.returncode == 1 and "expired" in proc.stderr


# -- broker failures ---------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--all"],
        ["unlock", "--site", SITE, "--reason", "x", "--yes"],
        ["order", "forget", "--site", SITE, "X-1"],
    ],
)
def test_unreachable_broker_is_one_line(tmp_path: Path, argv: list[str]) -> None:
    key = tmp_path / "k"
    keygen(key)
    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    proc = run_ctl(*argv, "--broker", url, "--key", str(key))
    assert proc.returncode == 4
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "cannot reach the broker" in proc.stderr and url in proc.stderr


def test_bad_credentials_are_one_line(tmp_path: Path) -> None:
    pwfile = tmp_path / "passwd"
    pwfile.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(pwfile), "owner", "right"], check=True)
    pwfile.chmod(0o644)
    conf = ["allow_anonymous false", f"password_file {pwfile}"]
    if os.geteuid() == 0:
        conf.append("user root")  # else mosquitto drops to a user that cannot read tmp_path
    b = Broker(tmp_path / "authbroker", extra_conf=conf).start()
    try:
        bad = run_ctl(
            "status", "--all", "--broker", b.url, "--username", "owner", "--password", "wrong"
        )
        good = run_ctl(
            "status",
            "--all",
            "--json",
            "--broker",
            b.url,
            env={"KIOSKCTL_USERNAME": "owner", "KIOSKCTL_PASSWORD": "right"},
        )
    finally:
        b.stop()
    assert bad.returncode == 4
    assert "refused the connection" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "wrong" not in bad.stderr
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout) == []


def test_config_file_and_precedence(tmp_path: Path, broker: Broker) -> None:
    publish_retained(broker.port, topics.status("shop-a"), status_doc())
    publish_retained(broker.port, topics.status("shop-b"), status_doc())
    conf = tmp_path / "ctl.toml"
    conf.write_text(f'broker = "{broker.url}"\nsite = "shop-a"\n')
    proc = run_ctl("status", "--json", "--config", str(conf))
    assert [r["site"] for r in json.loads(proc.stdout)] == ["shop-a"]
    proc = run_ctl("status", "--json", "--config", str(conf), env={"KIOSKCTL_SITE": "shop-b"})
    assert [r["site"] for r in json.loads(proc.stdout)] == ["shop-b"]
    proc = run_ctl(
        "status",
        "--json",
        "--config",
        str(conf),
        "--site",
        "shop-a",
        env={"KIOSKCTL_SITE": "shop-b"},
    )
    assert [r["site"] for r in json.loads(proc.stdout)] == ["shop-a"]
    conf.write_text('brokr = "x"\n')
    proc = run_ctl("status", "--config", str(conf))
    assert proc.returncode == 64 and "brokr" in proc.stderr and str(conf) in proc.stderr


def test_logs_name_the_key_and_reason_of_a_remote_unlock(
    owner: dict[str, Any], tmp_path: Path
) -> None:
    kid = key_id(owner["pub"])
    detail = {
        "cmd_id": "unlock-1778642529-9f0c2a4d1e7b",
        "cmd": "unlock",
        "ok": True,
        "error": "",
        "key_id": kid,
        "reason": "courier with a delivery",
    }
    events = make_chain(
        SITE,
        [
            ("command", None, detail),
            ("door_unlocked", None, {"by": "command", "cmd_id": detail["cmd_id"]}),
        ],
    )
    conf = tmp_path / "ctl.toml"
    conf.write_text(f'[keys]\n{kid} = "laptop"\n')
    kiosk = FakeKiosk(owner["port"], SITE, serve_logs(events))
    try:
        named = run_ctl("logs", "--since", "0", "--config", str(conf), env=owner["env"])
        utc = run_ctl("logs", "--since", "0", "--utc", env=owner["env"])
    finally:
        kiosk.close()
    assert named.returncode == 0, named.stderr
    words = '(reason "courier with a delivery", key "laptop")'
    lines = named.stdout.splitlines()
    assert lines[0].endswith(f"remote unlock {detail['cmd_id']} accepted {words}")
    assert lines[1].endswith(f"door unlocked by remote command {detail['cmd_id']} {words}")
    assert utc.stderr.startswith("times are UTC")
    assert utc.stdout.startswith("2026-05-13 01:01:00  #1 ")  # the event's own UTC time
    assert f"key {kid})" in utc.stdout  # unnamed: the key id
