"""The hub against faults, with a real Mosquitto and the real ``pickup-hub serve``:
SIGKILL during a drain of 10,000 events, and a hostile or broken kiosk."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pytest

from protocol.canonical import dumps
from tests.support.broker import Broker, free_port
from tests.support.hub import (
    archived,
    archived_count,
    chain,
    connected,
    hub_cli,
    kill,
    popen_hub,
    publish_all,
    publisher,
    term,
    write_config,
)
from tests.support.polling import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.broker]


def test_sigkill_during_a_drain_loses_nothing(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker", extra_conf=["max_queued_messages 0"]).start()
    cfg = write_config(
        tmp_path, ("shop-a",), mqtt_url=broker.url, listen=f"127.0.0.1:{free_port()}"
    )
    db = tmp_path / "hub.db"
    hub = popen_hub(cfg, tmp_path / "hub.log")
    pub = publisher(broker)
    try:
        evs = chain("shop-a", 10_000)
        wait_for(lambda: connected(tmp_path / "hub.log"), what="the hub to connect")
        publish_all(pub, [("pickup/v1/shop-a/events", dumps(e)) for e in evs[:10]])
        wait_for(lambda: archived_count(db) == 10, what="the hub's persistent session")
        term(hub)  # the broker queues the rest for the hub's session
        publish_all(pub, [("pickup/v1/shop-a/events", dumps(e)) for e in evs[10:]])
        kills = 0
        for _ in range(3):  # killed mid-drain, three times over
            hub = popen_hub(cfg, tmp_path / "hub.log")
            start = archived_count(db)
            wait_for(
                lambda s=start: archived_count(db) > s, timeout=30, what="draining", interval=0.005
            )
            if archived_count(db) < 10_000:
                kill(hub)
                kills += 1
        assert kills >= 1
        term(hub)
        hub = popen_hub(cfg, tmp_path / "hub.log")
        wait_for(lambda: archived_count(db) == 10_000, timeout=60, what="the whole drain")
        out = hub_cli("verify", "shop-a", config=cfg)
        assert out.returncode == 0 and out.stdout.strip() == "10000", out.stderr
        assert archived(cfg, "shop-a") == [dumps(e) for e in evs]
        # nothing was fetched: the broker redelivered what was not acknowledged
        con = sqlite3.connect(db)
        assert con.execute("SELECT DISTINCT source FROM events").fetchall() == [("live",)]
        con.close()
    finally:
        pub.loop_stop()
        term(hub)
        broker.stop()


def test_hostile_kiosk_cannot_crash_or_touch_another_site(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker", extra_conf=["max_queued_messages 0"]).start()
    port = free_port()
    cfg = write_config(
        tmp_path,
        ("shop-a", "shop-b"),
        mqtt_url=broker.url,
        listen=f"127.0.0.1:{port}",
        extra="[limits]\nrejections_per_site = 50\nearly_events_per_site = 100\n"
        "[gaps]\ngrace_s = 3600\n",
    )
    db = tmp_path / "hub.db"
    hub = popen_hub(cfg, tmp_path / "hub.log")
    pub = publisher(broker)
    rng = random.Random(7)
    try:
        wait_for(lambda: connected(tmp_path / "hub.log"), what="the hub to connect")
        a, b = chain("shop-a", 200), chain("shop-b", 50)
        valid_b = [("pickup/v1/shop-b/events", dumps(e)) for e in b]
        hostile: list[tuple[str, bytes]] = []
        for ev in a[:100]:
            hostile.append(("pickup/v1/shop-a/events", dumps(ev)))
        hostile += [
            ("pickup/v1/shop-a/events", b"\x00\xff garbage"),
            ("pickup/v1/shop-a/events", b'{"seq": 1e999}'),
            ("pickup/v1/shop-a/events", b"[" * 5000),
            ("pickup/v1/shop-a/events", b'{"a": "' + b"x" * 200_000 + b'"}'),
            ("pickup/v1/shop-a/events", dumps(b[0])),  # shop-b's event on shop-a's topic
            ("pickup/v1/shop-a/events", dumps({**b[1], "site": "shop-a"})),
            ("pickup/v1/evil/events", dumps(a[0])),  # a site not in hub.toml
            ("pickup/v1/shop-a/status", b"not json"),
            ("pickup/v1/shop-a/status", dumps({"online": True, "site": "shop-b", "last_seq": 9})),
            (
                "pickup/v1/shop-a/cmd_result/forged",
                dumps({"cmd_id": "forged", "ok": True, "events": [b[2]]}),
            ),
            ("pickup/v1/shop-a/events", dumps({**a[50], "detail": {"changed": True}})),  # conflict
        ]
        for _ in range(3000):  # a flood of mutations of valid events
            ev = dict(rng.choice(a))
            key = rng.choice(list(ev))
            ev[key] = rng.choice([None, -1, "x", 10**30, [], {"k": 1}, "é"])
            hostile.append(("pickup/v1/shop-a/events", dumps(ev)))
        rng.shuffle(hostile)
        publish_all(
            pub, hostile + valid_b + [("pickup/v1/shop-a/events", dumps(e)) for e in a[100:]]
        )
        wait_for(lambda: archived_count(db) == 250, timeout=60, what="every valid event")
        assert hub.poll() is None  # alive
        for site, evs in (("shop-a", a), ("shop-b", b)):
            out = hub_cli("verify", site, config=cfg)
            assert out.returncode == 0 and out.stdout.strip() == str(len(evs)), out.stderr
            assert archived(cfg, site) == [dumps(e) for e in evs]
        out = hub_cli("sites", "--json", config=cfg)
        sites = {r["site"]: r for r in json.loads(out.stdout)}
        assert sites["shop-b"]["chain"]["last_verified_seq"] == 50
        assert sites["shop-a"]["status"] is None  # the status claiming another site was refused
        con = sqlite3.connect(db)
        (evidence,) = con.execute("SELECT COUNT(*) FROM evidence WHERE site = 'shop-a'").fetchone()
        (b_evidence,) = con.execute(
            "SELECT COUNT(*) FROM evidence WHERE site = 'shop-b'"
        ).fetchone()
        rejected = dict(
            con.execute("SELECT reason, count FROM rejections WHERE site = 'shop-a'").fetchall()
        )
        alerts = [r[0] for r in con.execute("SELECT kind FROM alerts WHERE site = 'shop-a'")]
        con.close()
        assert evidence <= 50 and b_evidence == 0  # bounded, and shop-b untouched
        # (some "mutations" left an event as it was: those are plain duplicates)
        assert sum(rejected.values()) >= 2500
        for reason in ("bad_event", "bad_hash", "malformed", "too_large", "wrong_site"):
            assert rejected.get(reason, 0) >= 1, (reason, rejected)
        assert "chain_break" in alerts  # the conflicting copy is an alarm
        import httpx2 as httpx

        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5).json() == {"ok": True}
    finally:
        pub.loop_stop()
        term(hub)
        broker.stop()


def test_hub_reconnects_after_the_broker_restarts(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker", extra_conf=["max_queued_messages 0"]).start()
    cfg = write_config(
        tmp_path, ("shop-a",), mqtt_url=broker.url, listen=f"127.0.0.1:{free_port()}"
    )
    db = tmp_path / "hub.db"
    hub = popen_hub(cfg, tmp_path / "hub.log")
    try:
        evs = chain("shop-a", 40)
        wait_for(lambda: connected(tmp_path / "hub.log"), what="the hub to connect")
        pub = publisher(broker)
        publish_all(pub, [("pickup/v1/shop-a/events", dumps(e)) for e in evs[:20]])
        pub.loop_stop()
        wait_for(lambda: archived_count(db) == 20, what="the first half")
        broker.restart()  # with persistence: the hub's session survives
        wait_for(lambda: connected(tmp_path / "hub.log", 2), timeout=90, what="a reconnect")
        pub = publisher(broker)
        publish_all(pub, [("pickup/v1/shop-a/events", dumps(e)) for e in evs[20:]])
        pub.loop_stop()
        wait_for(lambda: archived_count(db) == 40, what="the second half")
        assert hub.poll() is None
        assert hub_cli("verify", "shop-a", config=cfg).stdout.strip() == "40"
        assert "MQTT connection lost" in (tmp_path / "hub.log").read_text()
    finally:
        term(hub)
        broker.stop()
