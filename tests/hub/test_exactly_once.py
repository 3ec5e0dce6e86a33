"""Issue 14 item 1 end to end: a real Mosquitto restarted without persistence
while a real ``kiosk door`` and ``kiosk sync`` take pickups and the hub is
down; then the hub comes up and the archive ends with exactly the kiosk's
events, byte for byte, chain verified, no duplicates."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from protocol.otp import pickup_code
from tests.support.broker import Broker, free_port
from tests.support.hub import (
    archived,
    hub_cli,
    kiosk_config,
    kiosk_events_raw,
    popen_hub,
    write_config,
)
from tests.support.polling import wait_for
from tests.support.procs import popen_kiosk

pytestmark = [pytest.mark.slow, pytest.mark.broker]
SITE = "shop-e2e"


def stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def keygen_trust(cfg: Path) -> str:
    out = hub_cli("keygen", "--force", config=cfg)
    assert out.returncode == 0, out.stderr
    lines = [x for x in out.stdout.splitlines() if x.startswith(("hub_keys", "auditor_keys"))]
    assert len(lines) == 2, out.stdout
    return "\n".join(lines)


def code_for(db: Path, order_id: str) -> str:
    con = sqlite3.connect(db)
    (doc,) = con.execute("SELECT doc FROM orders WHERE order_id = ?", (order_id,)).fetchone()
    con.close()
    d = json.loads(doc)
    return pickup_code(d["pickup_no"], d["otp"]["secret"], time.time())


def type_keys(door: subprocess.Popen[str], keys: str) -> None:
    assert door.stdin is not None
    door.stdin.write(keys)
    door.stdin.flush()


def test_archive_is_exactly_the_kiosks_events(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker", persistence=False).start()
    port = free_port()
    cfg = write_config(
        tmp_path,
        (SITE,),
        mqtt_url=broker.url,
        listen=f"127.0.0.1:{port}",
        extra="[gaps]\ngrace_s = 1\nresult_timeout_s = 10\nretry_max_s = 5\n",
    )
    trust = keygen_trust(cfg)
    kcfg = kiosk_config(tmp_path / "kiosk", SITE, trust, broker.url)
    sync = popen_kiosk("sync", config=kcfg)
    door = popen_kiosk("door", config=kcfg)
    hub = popen_hub(cfg, tmp_path / "hub.log")
    procs: list[subprocess.Popen[str] | subprocess.Popen[bytes]] = [sync, door, hub]
    try:
        out = hub_cli("token", "add", "shop", config=cfg)
        assert out.returncode == 0, out.stderr
        auth = {"Authorization": f"Bearer {out.stdout.strip()}"}
        api = f"http://127.0.0.1:{port}/api/v1/sites/{SITE}/orders"
        for i in (1, 2):
            body = {"order_id": f"HM-{i}", "status": "ready", "slot": f"B{i}", "items": []}
            r = wait_for(lambda b=body: _post(api, b, auth), what="the hub's API")
            assert r.status_code == 201, r.text
        # the kiosk takes both orders down; a customer collects HM-1
        kdb = tmp_path / "kiosk" / "kiosk.db"
        wait_for(lambda: _kiosk_orders(kdb) >= 2, what="orders at the kiosk")
        # keys typed before the door daemon reads its keypad are lost (once: bad_length)
        wait_for(lambda: _has(kcfg, "boot"), what="the door daemon to boot")
        type_keys(door, code_for(tmp_path / "hub.db", "HM-1") + "#")
        wait_for(lambda: _has(kcfg, "door_unlocked"), what="door_unlocked")
        type_keys(door, "oc")
        wait_for(lambda: _has(kcfg, "order_collected"), what="order_collected")
        wait_for(
            lambda: len(archived(cfg, SITE)) == len(kiosk_events_raw(kcfg)),
            timeout=60,
            what="the hub archiving live",
        )
        # the hub learned the collection from the kiosk's event
        r = httpx.get(f"{api}/HM-1", headers=auth)
        assert r.json()["status"] == "collected"
        # the hub goes down; pickups go on; the broker loses everything it held
        stop(hub)
        type_keys(door, "123456789#")  # a wrong code
        type_keys(door, code_for(tmp_path / "hub.db", "HM-2") + "#")
        wait_for(lambda: _count(kcfg, "door_unlocked") == 2, what="second unlock")
        type_keys(door, "oc")
        wait_for(lambda: _count(kcfg, "order_collected") == 2, what="second collection")
        broker.restart()  # persistence false: the hub's session and queue are gone
        type_keys(door, "ocx")  # more events after the restart, before the hub is back
        wait_for(lambda: _has(kcfg, "exit_pressed"), what="exit_pressed")
        wait_for(lambda: _outbox_empty(kdb), what="the kiosk's outbox to drain", timeout=40)
        # the hub comes back, finds the gap from the retained status, fetches it
        hub = popen_hub(cfg, tmp_path / "hub.log")
        procs.append(hub)

        def complete() -> bool:
            ours, theirs = archived(cfg, SITE), kiosk_events_raw(kcfg)
            return ours == theirs and hub_cli("verify", SITE, config=cfg).returncode == 0

        wait_for(complete, timeout=60, what="the archive to equal the kiosk's events")
        ours = archived(cfg, SITE)
        seqs = [json.loads(b)["seq"] for b in ours]
        assert seqs == list(range(1, len(seqs) + 1))  # each once, in order
        out = hub_cli("verify", SITE, config=cfg)
        assert out.returncode == 0 and out.stdout.strip() == str(len(ours))
        types = [json.loads(b)["type"] for b in ours]
        assert types.count("order_collected") == 2 and "code_rejected" in types
        # the gap fetch was signed by the auditor key and accepted by the kiosk
        cmds = [json.loads(b) for b in ours if json.loads(b)["type"] == "command"]
        assert any(c["detail"]["cmd"] == "logs" and c["detail"]["ok"] for c in cmds)
        r = httpx.get(f"{api}/HM-2", headers=auth)
        assert r.json()["status"] == "collected"
    finally:
        for p in procs:
            stop(p)
        broker.stop()


def _post(url: str, body: dict[str, object], auth: dict[str, str]) -> httpx.Response | None:
    try:
        return httpx.post(url, json=body, headers=auth, timeout=5)
    except httpx.TransportError:
        return None


def _kiosk_orders(db: Path) -> int:
    try:
        con = sqlite3.connect(db)
        (n,) = con.execute("SELECT COUNT(*) FROM orders").fetchone()
        con.close()
        return int(n)
    except sqlite3.Error:
        return 0


def _outbox_empty(db: Path) -> bool:
    con = sqlite3.connect(db)
    (n,) = con.execute("SELECT COUNT(*) FROM events WHERE acked = 0").fetchone()
    con.close()
    return int(n) == 0


def _types(cfg: Path) -> list[str]:
    return [json.loads(b)["type"] for b in kiosk_events_raw(cfg)]


def _has(cfg: Path, t: str) -> bool:
    return t in _types(cfg)


def _count(cfg: Path, t: str) -> int:
    return _types(cfg).count(t)
