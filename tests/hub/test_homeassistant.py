"""Home Assistant: discovery per site and state from the kiosk's status, through
a real broker and the real hub; Home Assistant gets no way to command a kiosk."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from hub import homeassistant
from protocol.canonical import dumps
from tests.support.broker import Broker, free_port
from tests.support.hub import load, popen_hub, write_config
from tests.support.polling import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.broker]


def test_discovery_has_no_command_topics(tmp_path: Path) -> None:
    cfg = load(
        write_config(tmp_path, ("shop-a", "shop-b"), extra="[homeassistant]\nenabled = true\n")
    )
    pubs = homeassistant.discovery(cfg)
    assert len(pubs) == 12 and all(retain for _t, _p, retain in pubs)
    docs = [json.loads(p) for _t, p, _r in pubs]
    assert not any("command" in k for d in docs for k in d)
    door = next(d for d in docs if d["unique_id"] == "pickup_shop_a_door")
    assert door["device_class"] == "door" and door["state_topic"] == "pickup-hub/shop-a/state"
    topics_all = [t for t, _p, _r in pubs] + [
        t for t, _p, _r in homeassistant.state(cfg, "shop-a", {"online": True}, [])
    ]
    assert not any(t.startswith("pickup/") for t in topics_all)


def test_state_follows_the_kiosks_status_and_birth_republishes(
    tmp_path: Path, broker: Broker
) -> None:
    cfg = write_config(
        tmp_path,
        ("shop-a",),
        mqtt_url=broker.url,
        listen=f"127.0.0.1:{free_port()}",
        extra="[homeassistant]\nenabled = true\n",
    )
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    seen: dict[str, list[bytes]] = {}
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.on_message = lambda _c, _u, m: got.put((m.topic, bytes(m.payload)))
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    c.subscribe([("homeassistant/#", 1), ("pickup-hub/#", 1)])
    hub = popen_hub(cfg, tmp_path / "hub.log")

    def drain() -> dict[str, list[bytes]]:
        while not got.empty():
            t, p = got.get()
            seen.setdefault(t, []).append(p)
        return seen

    try:
        door = "homeassistant/binary_sensor/pickup_shop_a/door/config"
        wait_for(lambda: door in drain(), what="discovery")
        status = {
            "online": True,
            "site": "shop-a",
            "door": "open",
            "lock": "locked",
            "mode": "night",
            "last_seq": 0,
        }
        c.publish("pickup/v1/shop-a/status", dumps(status), qos=1, retain=True).wait_for_publish(5)

        def state() -> dict[str, object] | None:
            vals = drain().get("pickup-hub/shop-a/state", [])
            last = json.loads(vals[-1]) if vals else None
            return last if last and last.get("door") == "open" else None

        s = wait_for(state, what="the state topic")
        assert s["online"] is True and s["lock"] == "locked"
        assert drain()["pickup-hub/shop-a/availability"][-1] == b"online"
        # the kiosk's will: offline
        c.publish(
            "pickup/v1/shop-a/status",
            dumps({"online": False, "site": "shop-a"}),
            qos=1,
            retain=True,
        )
        wait_for(
            lambda: drain().get("pickup-hub/shop-a/availability", [b""])[-1] == b"offline",
            what="offline",
        )
        # Home Assistant restarts: discovery again
        before = len(drain()[door])
        c.publish("homeassistant/status", b"online", qos=1)
        wait_for(lambda: len(drain()[door]) > before, what="discovery after the birth message")
        assert not any(t.startswith("pickup/v1/shop-a/cmd") for t in drain())
    finally:
        c.loop_stop()
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(20)
        except subprocess.TimeoutExpired:
            hub.kill()
