"""Helpers for the sync agent's tests: keys, signed documents, a watching client."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from kiosk.clock import FakeClock
from kiosk.config import Config, from_mapping
from kiosk.store import Store
from protocol.keys import public_key_text, sign_document
from protocol.times import format_time as rfc3339
from tests.support.broker import Broker
from tests.support.polling import wait_for

SITE = "test-site-01"
T0 = 1_780_000_000.0
SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
ROOT = Path(__file__).resolve().parents[2]

HUB = Ed25519PrivateKey.generate()
OWNER = Ed25519PrivateKey.generate()
STRANGER = Ed25519PrivateKey.generate()


def pub(key: Ed25519PrivateKey) -> str:
    return public_key_text(key.public_key())


def config_dict(tmp_path: Path, url: str | None, **mqtt_extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "site": {"id": SITE},
        "store": {"path": str(tmp_path / "kiosk.db")},
        "trust": {"hub_keys": [pub(HUB)], "owner_keys": [pub(OWNER)]},
        "clock": {"trust_system_clock": "always"},
    }
    if url is not None:
        data["mqtt"] = {"url": url, **mqtt_extra}
    return data


def make_config(tmp_path: Path, url: str | None, **mqtt_extra: Any) -> Config:
    return from_mapping(config_dict(tmp_path, url, **mqtt_extra), "test.toml")


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    lines = []
    for section, table in data.items():
        lines.append(f"[{section}]")
        for k, v in table.items():
            lines.append(f"{k} = {json.dumps(v)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def order(
    order_id: str,
    version: int = 1,
    *,
    site: str = SITE,
    status: str = "ready",
    pickup_no: str = "042",
    key: Ed25519PrivateKey | None = HUB,
    issued_at: float = T0 - 3600,
    **extra: Any,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "v": 1,
        "site": site,
        "order_id": order_id,
        "version": version,
        "issued_at": rfc3339(issued_at),
        "status": status,
        "pickup_no": pickup_no,
        "slot": "B3",
        "customer": {"name": "李少云", "phone_tail": "1234"},
        "items": [{"name": "红提", "qty": 1, "unit": "盒"}],
        "otp": {"secret": SECRET, "digits": 6, "period": 30},
        "backup_code": False,
        "expires_at": rfc3339(T0 + 86400 * 2),
        **extra,
    }
    return sign_document(doc, key) if key is not None else doc


def command(
    cmd_id: str,
    cmd: str = "unlock",
    *,
    site: str = SITE,
    key: Ed25519PrivateKey | None = OWNER,
    issued_at: float = T0,
    expires_at: float = T0 + 120,
    args: dict[str, Any] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "v": 1,
        "site": site,
        "cmd_id": cmd_id,
        "cmd": cmd,
        "issued_at": rfc3339(issued_at),
        "expires_at": rfc3339(expires_at),
        "args": args if args is not None else {"reason": "test"},
    }
    return sign_document(doc, key) if key is not None else doc


def as_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


@dataclass
class Watcher:
    """A plain paho client (the hub's or owner's side) recording what it sees."""

    port: int
    subscribe: list[str] = field(default_factory=list)
    username: str = ""
    password: str = ""
    client_id: str = ""
    persistent: bool = False  # clean_start=False and a session that outlives a broker restart
    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    client: Any = None
    granted: list[int] = field(default_factory=list)
    connected: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Watcher:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        if self.username:
            c.username_pw_set(self.username, self.password)

        def on_connect(client: Any, ud: Any, flags: Any, rc: Any, props: Any) -> None:
            if not rc.is_failure:
                if self.subscribe:
                    client.subscribe([(t, 1) for t in self.subscribe])
                self.connected.set()

        def on_subscribe(client: Any, ud: Any, mid: int, rcs: Any, props: Any) -> None:
            self.granted.extend(int(r.value) for r in rcs)

        def on_message(client: Any, ud: Any, msg: Any) -> None:
            with self.lock:
                self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

        c.on_connect = on_connect
        c.on_subscribe = on_subscribe
        c.on_message = on_message
        if self.persistent:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            c.reconnect_delay_set(1, 2)
            c.connect("127.0.0.1", self.port, clean_start=False, properties=props)
        else:
            c.connect("127.0.0.1", self.port)
        c.loop_start()
        self.client = c
        wait_for(self.connected.is_set, what="watcher connected")
        if self.subscribe:
            wait_for(lambda: len(self.granted) >= len(self.subscribe), what="subscribed")
        return self

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)

    def on(self, suffix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith(suffix) and p]

    def stop(self) -> None:
        if self.client is not None:
            self.client.loop_stop()
            self.client.disconnect()
            self.client = None


def topic(kind: str, ident: str | None = None, site: str = SITE) -> str:
    base = f"pickup/v1/{site}/{kind}"
    return f"{base}/{ident}" if ident else base


class AgentThread:
    """The agent in a thread of the test process, with an injected clock."""

    def __init__(self, cfg: Config, clock: FakeClock | None = None) -> None:
        from sync.agent import run

        self.clock = clock or FakeClock(wall=T0)
        self.stop = threading.Event()
        self.rc: int | None = None
        self.thread = threading.Thread(
            target=lambda: setattr(self, "rc", run(cfg, clock=self.clock, stop=self.stop)),
            daemon=True,
        )

    def __enter__(self) -> AgentThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(20)
        assert not self.thread.is_alive(), "the agent did not stop"


@contextmanager
def online_agent(
    tmp: Path, hub_topics: Sequence[str] = ()
) -> Iterator[tuple[Store, Watcher, FakeClock]]:
    """A real broker, the agent in a thread on a FakeClock at T0 and online, and a
    Watcher (the hub's side) on ``hub_topics``: (store, watcher, clock)."""
    broker = Broker(tmp / "broker").start()
    cfg = make_config(tmp, broker.url)
    store = Store(cfg.store.path)
    clock = FakeClock(wall=T0)
    hub = Watcher(broker.port, list(hub_topics)).start()
    try:
        with AgentThread(cfg, clock):
            wait_for(store.mqtt_online, what="online")
            yield store, hub, clock
    finally:
        hub.stop()
        broker.stop()


def agent_process(config_file: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sync.agent", "--config", str(config_file)],
        cwd=str(ROOT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
