"""Issue 6 end to end: kioskctl, a real Mosquitto, real `kiosk sync` and `kiosk door`."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from protocol.keys import public_key_text
from tests.support.broker import Broker
from tests.support.polling import wait_for
from tests.support.procs import env, kiosk, popen_kiosk, write_config

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
        [sys.executable, "-m", "hub.ctl.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=e,
        check=False,
    )


def kiosk_config(tmp: Path, site: str, broker: Broker, hub: Path, owner: Path) -> Path:
    """A kiosk trusting the keys kioskctl made, syncing with ``broker``."""
    d = tmp / site
    d.mkdir()
    keys = [load_pem_private_key(k.read_bytes(), None) for k in (hub, owner)]
    assert all(isinstance(k, Ed25519PrivateKey) for k in keys)
    for path, key in zip((hub, owner), keys, strict=True):  # what keygen printed is the key
        pub = path.with_name(path.name + ".pub").read_text().strip()
        assert pub == public_key_text(key.public_key())  # type: ignore[union-attr]
    return write_config(d, keys[0], keys[1], site=site, mqtt_url=broker.url)  # type: ignore[arg-type]


def keygen(tmp: Path, name: str, broker: Broker) -> Path:
    out = ctl("keygen", "--out", str(tmp / name), broker=broker)
    assert out.returncode == 0, out.stderr
    return tmp / name


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_owner_and_hub_round_trip(tmp_path: Path, broker: Broker) -> None:
    hub_key = keygen(tmp_path, "hub", broker)
    owner_key = keygen(tmp_path, "owner", broker)
    site, other = "shop-a", "shop-b"
    cfg = kiosk_config(tmp_path, site, broker, hub_key, owner_key)
    cfg_b = kiosk_config(tmp_path, other, broker, hub_key, owner_key)
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
