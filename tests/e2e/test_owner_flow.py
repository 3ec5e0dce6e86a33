"""Issue 6 end to end: kioskctl, a real Mosquitto, real `kiosk sync` and `kiosk door`."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.broker import Broker
from tests.e2e.procs import env, kiosk, popen_kiosk, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.broker]


def ctl(
    *args: str, broker: Broker, key: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    e = env()
    e["KIOSKCTL_BROKER"] = broker.url
    e["HOME"] = str(broker.workdir)  # no stray ~/.config/kioskctl.toml
    if key is not None:
        e["KIOSKCTL_KEY"] = str(key)
    return subprocess.run(
        [sys.executable, "-m", "sync.ctl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=e,
        check=False,
    )


def kiosk_config(tmp: Path, site: str, broker: Broker, hub_pub: str, owner_pub: str) -> Path:
    d = tmp / site
    d.mkdir()
    cfg = d / "kiosk.toml"
    cfg.write_text(f"""
[site]
id = "{site}"
[store]
path = "{d / "kiosk.db"}"
[trust]
hub_keys = ["{hub_pub}"]
owner_keys = ["{owner_pub}"]
[mqtt]
url = "{broker.url}"
[hardware]
board = "sim"
[display]
enabled = false
[clock]
trust_system_clock = "always"
""")
    return cfg


def keygen(tmp: Path, name: str, broker: Broker) -> tuple[Path, str]:
    out = ctl("keygen", "--out", str(tmp / name), broker=broker)
    assert out.returncode == 0, out.stderr
    return tmp / name, (tmp / f"{name}.pub").read_text().strip()


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_owner_and_hub_round_trip(tmp_path: Path, broker: Broker) -> None:
    hub_key, hub_pub = keygen(tmp_path, "hub", broker)
    owner_key, owner_pub = keygen(tmp_path, "owner", broker)
    site, other = "shop-a", "shop-b"
    cfg = kiosk_config(tmp_path, site, broker, hub_pub, owner_pub)
    cfg_b = kiosk_config(tmp_path, other, broker, hub_pub, owner_pub)
    procs = [
        popen_kiosk("sync", config=cfg),
        popen_kiosk("door", config=cfg),
        popen_kiosk("sync", config=cfg_b),
    ]
    door = procs[1]
    try:
        # the hub publishes an order; the kiosk takes it down
        out = ctl(
            "order",
            "publish",
            "--site",
            site,
            "--order-id",
            "HM-1",
            "--pickup-no",
            "042",
            "--slot",
            "B3",
            "--customer-name",
            "李少云",
            "--item",
            "红提:1:盒",
            broker=broker,
            key=hub_key,
        )
        assert out.returncode == 0, out.stderr
        wait_for(lambda: json.loads(kiosk("orders", "list", "--json", config=cfg).stdout))
        # the customer types the code shown on the order page
        out = ctl("code", "--site", site, "HM-1", "--json", broker=broker)
        assert out.returncode == 0, out.stderr
        code = json.loads(out.stdout)["code"]
        assert door.stdin is not None
        door.stdin.write(f"{code}#")
        door.stdin.flush()
        wait_for(lambda: any(e["type"] == "door_unlocked" for e in _events(cfg)))
        door.stdin.write("oc")
        door.stdin.flush()
        wait_for(lambda: any(e["type"] == "order_collected" for e in _events(cfg)))
        # the owner reads it all from home, chain checked
        out = ctl("logs", "--site", site, "--since", "0", "--json", broker=broker, key=owner_key)
        assert out.returncode == 0, out.stderr
        seen = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        types = [e.get("type") for e in seen]
        for t in ("code_accepted", "door_unlocked", "door_opened", "order_collected"):
            assert t in types, (t, types)
        # a remote unlock, accepted, and one signed by a key without the owner role
        out = ctl(
            "unlock", "--site", site, "--reason", "courier", "--yes", broker=broker, key=owner_key
        )
        assert out.returncode == 0, out.stdout + out.stderr
        by_cmd = [
            e
            for e in _events(cfg)
            if e["type"] == "door_unlocked" and e["detail"].get("by") == "command"
        ]
        assert len(by_cmd) == 1
        out = ctl(
            "unlock", "--site", site, "--reason", "not allowed", "--yes", broker=broker, key=hub_key
        )
        assert out.returncode == 1

        # both sites report their status
        def both_online() -> list[dict[str, object]]:
            res = ctl("status", "--all", "--json", broker=broker)
            rows = json.loads(res.stdout) if res.returncode == 0 else []
            online = [r for r in rows if r.get("online") is True]
            return rows if {r.get("site") for r in online} >= {site, other} else []

        rows = wait_for(both_online)
        assert {r["site"] for r in rows} >= {site, other}
        # a tampered event is flagged loudly
        db = sqlite3.connect(cfg.parent / "kiosk.db")
        seq, body = db.execute(
            "SELECT seq, body FROM events WHERE type = 'code_accepted'"
        ).fetchone()
        ev = json.loads(body)
        ev["detail"]["kind"] = "forged"
        db.execute("UPDATE events SET body = ? WHERE seq = ?", (json.dumps(ev), seq))
        db.commit()
        db.close()
        out = ctl("logs", "--site", site, "--since", "0", broker=broker, key=owner_key)
        assert out.returncode == 3 and f"seq {seq}" in out.stderr
    finally:
        for p in procs:
            stop(p)


def _events(cfg: Path) -> list[dict[str, object]]:
    out = kiosk("events", "--json", config=cfg)
    return [json.loads(x) for x in out.stdout.splitlines() if x.strip()]
