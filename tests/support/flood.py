"""A keyless publisher flooding a kiosk's topics, fast enough to matter.

paho spends tens of microseconds per publish; a flood of 10,000 messages a
second and more needs the bytes prepared once. :class:`Flooder` speaks just
enough MQTT 3.1.1 over a plain socket (CONNECT, then QoS 0 PUBLISH packets
from a pool built in advance) and paces itself to a target rate in a thread.
The pool mixes what a publisher without a key can send to every topic the
kiosk subscribes: random bytes and documents signed by an unknown key on
``orders/+``, junk and forged commands on ``cmd/+``, ids the kiosk refuses.
Shared by tests/reliability/test_flood.py and bench/bench_flood.py.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.sample import order_doc
from protocol.commands import build_command
from protocol.keys import sign_document


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    raw = s.encode("utf-8")
    return struct.pack("!H", len(raw)) + raw


def connect_packet(client_id: str) -> bytes:
    body = _str("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 60) + _str(client_id)
    return b"\x10" + _varint(len(body)) + body


def publish_packet(topic: str, payload: bytes) -> bytes:
    body = _str(topic) + payload
    return b"\x30" + _varint(len(body)) + body


def junk_pool(site: str, n: int = 2000, seed: int = 8008) -> list[bytes]:
    """``n`` prepared PUBLISH packets, a fifth of each kind."""
    rng = random.Random(seed)
    stranger = Ed25519PrivateKey.generate()
    base = f"pickup/v1/{site}"
    now = time.time()
    pool: list[bytes] = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            topic, payload = f"{base}/orders/F-{i}", rng.randbytes(rng.randint(1, 300))
        elif kind == 1:
            doc = sign_document(order_doc(site, f"F-{i}", f"{i % 1000:03d}", now=now), stranger)
            topic, payload = f"{base}/orders/F-{i}", json.dumps(doc).encode()
        elif kind == 2:
            topic, payload = f"{base}/cmd/F-{i}", rng.randbytes(rng.randint(1, 300))
        elif kind == 3:
            doc = build_command(site, "unlock", {"reason": "x"}, stranger, now=now, cmd_id=f"F-{i}")
            topic, payload = f"{base}/cmd/F-{i}", json.dumps(doc).encode()
        else:
            topic, payload = f"{base}/orders/{'y' * 70}{i}", b'{"v": 1}'
        pool.append(publish_packet(topic, payload))
    return pool


@dataclass
class Flooder:
    """Publishes ``pool`` round and round at ``rate`` messages a second until stopped."""

    host: str
    port: int
    pool: list[bytes]
    rate: float = 12_000.0
    sent: int = 0
    started: float = 0.0
    stopped: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Flooder:
        self.sock = socket.create_connection((self.host, self.port), timeout=10)
        self.sock.sendall(connect_packet(f"flooder-{random.getrandbits(32)}"))
        ack = self.sock.recv(4)
        if len(ack) < 4 or ack[0] != 0x20 or ack[3] != 0:
            raise RuntimeError(f"the broker refused the flooder: {ack!r}")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        batch = 200
        self.started = time.monotonic()
        i = 0
        while not self._stop.is_set():
            chunk = b"".join(self.pool[(i + k) % len(self.pool)] for k in range(batch))
            i += batch
            try:
                self.sock.sendall(chunk)
            except OSError:
                break
            self.sent += batch
            ahead = self.sent / self.rate - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)
        self.stopped = time.monotonic()

    @property
    def achieved(self) -> float:
        """Messages a second actually written so far."""
        end = self.stopped or time.monotonic()
        return self.sent / max(1e-9, end - self.started)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()
