"""The hub's auditor key against a real ``kiosk sync``: it may fetch logs, never unlock."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from hub.keys import load_keys
from protocol import topics
from protocol.canonical import dumps
from protocol.commands import build_command
from tests.support.broker import Broker
from tests.support.hub import hub_cli, kiosk_config, load, write_config
from tests.support.polling import wait_for
from tests.support.procs import popen_kiosk

pytestmark = [pytest.mark.slow, pytest.mark.broker]
SITE = "shop-aud"


def test_auditor_key_fetches_logs_but_cannot_unlock(tmp_path: Path, broker: Broker) -> None:
    cfg_path = write_config(tmp_path, (SITE,), mqtt_url=broker.url)
    out = hub_cli("keygen", "--force", config=cfg_path)
    assert out.returncode == 0, out.stderr
    trust = "\n".join(
        x for x in out.stdout.splitlines() if x.startswith(("hub_keys", "auditor_keys"))
    )
    cfg = load(cfg_path)
    keys = load_keys(cfg.keys.hub_key, cfg.keys.auditor_key)
    kcfg = kiosk_config(tmp_path / "kiosk", SITE, trust, broker.url)
    sync = popen_kiosk("sync", config=kcfg)
    results: queue.Queue[dict[str, object]] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda _c, _u, m: results.put(json.loads(m.payload))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.subscribe(topics.cmd_result_filter(SITE), qos=1)
        client.subscribe(topics.status(SITE), qos=1)
        wait_for(lambda: not results.empty(), what="the kiosk's status")
        while not results.empty():
            results.get()

        def send(cmd: str, args: dict[str, object]) -> list[dict[str, object]]:
            doc = build_command(SITE, cmd, args, keys.auditor, now=time.time())
            client.publish(topics.cmd(SITE, doc["cmd_id"]), dumps(doc), qos=1).wait_for_publish(10)
            got: list[dict[str, object]] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    r = results.get(timeout=0.5)
                except queue.Empty:
                    continue
                if r.get("cmd_id") == doc["cmd_id"]:
                    got.append(r)
                    if r.get("ok") is False or r.get("last") is True:
                        return got
            raise AssertionError(f"no complete answer to {cmd}")

        refused = send("unlock", {"reason": "test"})
        assert refused[-1]["ok"] is False and refused[-1]["reason"] == "auditor_not_allowed"
        pages = send("logs", {"since_seq": 0})
        assert pages[-1]["ok"] is True and pages[-1]["last"] is True
        events = [e for p in pages for e in p["events"]]  # type: ignore[union-attr]
        cmds = [e for e in events if e["type"] == "command"]
        assert "auditor_not_allowed" in str(cmds[0]["detail"]), cmds[0]
        # the hub's keys are the kiosk's hub and auditor roles, not the owner's
        assert "owner_keys" not in trust
        assert keys.auditor_public in trust and keys.hub_public in trust
    finally:
        client.loop_stop()
        sync.send_signal(signal.SIGTERM)
        try:
            sync.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            sync.kill()
