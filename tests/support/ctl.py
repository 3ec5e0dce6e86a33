"""Helpers for kioskctl's tests: run it as a real process, play a kiosk with paho."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocol import topics
from protocol.events import ZERO_HASH, event_hash
from tests.support.ctl_model import KioskModel

ROOT = Path(__file__).resolve().parents[2]
# No test may read the developer's ~/.config/kioskctl.toml.
_HOME = tempfile.mkdtemp(prefix="kioskctl-home-")


def run_ctl(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hub.ctl.cli ARGS`` with a clean environment.

    Each call gets its own state directory unless ``KIOSKCTL_STATE_DIR`` is
    given, so tests do not see each other's recent commands.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith("KIOSKCTL_")}
    base["HOME"] = _HOME
    base["KIOSKCTL_STATE_DIR"] = tempfile.mkdtemp(prefix="kioskctl-state-")
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hub.ctl.cli", *args],
        cwd=ROOT,
        env=base,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def keygen(path: Path, role: str = "owner") -> str:
    """Make a key pair with kioskctl itself; return the public key text."""
    proc = run_ctl("keygen", "--out", str(path), "--role", role)
    assert proc.returncode == 0, proc.stderr
    return Path(f"{path}.pub").read_text().strip()


def make_chain(
    site: str,
    types: list[tuple[str, str | None, dict[str, Any]]],
    *,
    start_seq: int = 1,
    prev: str = ZERO_HASH,
) -> list[dict[str, Any]]:
    """Events exactly as the kiosk publishes them, hash-chained."""
    out: list[dict[str, Any]] = []
    for i, (type_, order_id, detail) in enumerate(types):
        seq = start_seq + i
        body: dict[str, Any] = {
            "v": 1,
            "site": site,
            "seq": seq,
            "event_id": f"{site}:{seq}",
            "ts": f"2026-05-13T01:{seq % 60:02d}:00Z",
            "clock": "synced",
            "type": type_,
            "order_id": order_id,
            "detail": detail,
            "prev_hash": prev,
        }
        body["hash"] = event_hash(body)
        prev = body["hash"]
        out.append(body)
    return out


def client(port: int, client_id: str = "") -> Any:
    """A connected paho client with its loop running."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    connected = threading.Event()
    c.on_connect = lambda *_a: connected.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert connected.wait(10), "test client could not connect"
    return c


def publish_retained(port: int, topic: str, doc: dict[str, Any] | bytes) -> None:
    c = client(port)
    payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    c.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    c.disconnect()
    c.loop_stop()


def read_retained(port: int, topic: str) -> bytes | None:
    """The retained payload on ``topic`` (None if nothing is retained).

    Mosquitto sends a subscription's retained messages before anything the
    same client publishes afterwards, so a barrier message ends the wait.
    """
    got: list[bytes] = []
    done = threading.Event()
    subscribed = threading.Event()
    barrier = f"test/barrier/{os.getpid()}/{threading.get_ident()}"

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        if msg.topic == barrier:
            done.set()
        else:
            got.append(bytes(msg.payload))

    c = client(port)
    c.on_message = on_message
    c.on_subscribe = lambda *_a: subscribed.set()
    c.subscribe([(topic, 1), (barrier, 1)])
    assert subscribed.wait(10)
    c.publish(barrier, b"x", qos=1)
    assert done.wait(10)
    c.disconnect()
    c.loop_stop()
    return got[-1] if got else None


class FakeKiosk:
    """Answers signed commands on cmd/+ the way the kiosk's sync agent does.

    ``answer`` is either a :class:`tests.support.ctl_model.KioskModel` or a function
    ``answer(cmd_doc)`` returning the payloads to publish on
    ``cmd_result/{cmd_id}``. Every command received is kept in ``commands``.

    ``persistent``: a fixed client id, ``clean_start=False`` and a session
    expiry, like the kiosk's agent, so :meth:`stop` leaves the broker
    queueing commands for it and :meth:`start` receives them (an agent
    that was stopped and comes back).
    """

    def __init__(
        self,
        port: int,
        site: str,
        answer: Callable[[dict[str, Any]], list[dict[str, Any]]] | KioskModel,
        *,
        then_publish: Callable[[Any], None] | None = None,
        persistent: bool = False,
    ) -> None:
        self.port = port
        self.site = site
        self.commands: list[dict[str, Any]] = []
        self.answer = answer
        self.then_publish = then_publish
        self.persistent = persistent
        if isinstance(answer, KioskModel):
            answer.publish = self.publish_result
        self.client: Any = None
        self.start()

    def start(self) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        c = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"fake-kiosk-{self.site}",
            protocol=mqtt.MQTTv5,
        )
        connected, subscribed = threading.Event(), threading.Event()
        c.on_connect = lambda *_a: connected.set()
        c.on_subscribe = lambda *_a: subscribed.set()
        c.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        if self.persistent:
            props.SessionExpiryInterval = 3600
        # Set before connecting: a persistent session's queued commands arrive
        # right after CONNACK, and their results go out on this client.
        self.client = c
        c.connect("127.0.0.1", self.port, clean_start=not self.persistent, properties=props)
        c.loop_start()
        assert connected.wait(10), "fake kiosk could not connect"
        c.subscribe(topics.cmd_filter(self.site), qos=1)
        assert subscribed.wait(10)

    def stop(self) -> None:
        """Go offline (the broker keeps a persistent session's commands)."""
        self.client.disconnect()
        self.client.loop_stop()

    def publish_result(self, cmd_id: str, body: dict[str, Any]) -> None:
        self.client.publish(
            topics.cmd_result(self.site, cmd_id), json.dumps(body, ensure_ascii=False), qos=1
        )

    def _on_message(self, c: Any, _u: Any, msg: Any) -> None:
        doc = json.loads(msg.payload)
        self.commands.append(doc)
        topic_id = msg.topic.rsplit("/", 1)[-1]
        if isinstance(self.answer, KioskModel):
            pages = self.answer(doc, topic_id)
        else:
            pages = self.answer(doc)
        for page in pages:
            self.publish_result(topic_id, page)
        if self.then_publish is not None:
            self.then_publish(c)

    def close(self) -> None:
        self.stop()
