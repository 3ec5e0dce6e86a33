"""A broker that refuses MQTT 5: the agent falls back to 3.1.1 with a persistent session."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import pytest

from kiosk.store import Store
from tests.support.broker import Broker
from tests.support.polling import wait_for
from tests.support.sync import AgentThread, Watcher, as_bytes, make_config, order, topic

pytestmark = pytest.mark.broker


class V311OnlyProxy:
    """In front of a real mosquitto: answers an MQTT 5 CONNECT with CONNACK 0x84
    (unsupported protocol version) and pipes MQTT 3.1.1 connections through."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.levels: list[int] = []
        self.clean_flags: list[bool] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        first = conn.recv(65536)
        # fixed header (1 byte + remaining length), then "\x00\x04MQTT", level, flags
        i = 1
        while first[i] & 0x80:
            i += 1
        level, flags = first[i + 7], first[i + 8]
        self.levels.append(level)
        self.clean_flags.append(bool(flags & 0x02))
        if level == 5:
            conn.sendall(bytes([0x20, 3, 0, 0x84, 0]))
            conn.close()
            return
        up = socket.create_connection(("127.0.0.1", self.upstream))
        up.sendall(first)

        def pipe(a: socket.socket, b: socket.socket) -> None:
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pipe, args=(conn, up), daemon=True).start()
        threading.Thread(target=pipe, args=(up, conn), daemon=True).start()

    def close(self) -> None:
        self.server.close()


def test_falls_back_to_mqtt_311_with_a_persistent_session(broker: Broker, tmp_path: Path) -> None:
    proxy = V311OnlyProxy(broker.port)
    try:
        hub = Watcher(broker.port).start()
        hub.publish(topic("orders", "V3-1"), as_bytes(order("V3-1")), retain=True)
        cfg = make_config(tmp_path, f"mqtt://127.0.0.1:{proxy.port}")
        store = Store(cfg.store.path)
        with AgentThread(cfg) as agent:
            wait_for(
                lambda: store.get_order("V3-1"),
                what="order over MQTT 3.1.1",
                tick=lambda: agent.clock.advance(0.5),
            )
            assert store.get_meta("mqtt_online") == "1"
        assert proxy.levels[:2] == [5, 4]
        assert proxy.clean_flags[1] is False  # clean_session=False: the broker keeps a session
        hub.stop()
    finally:
        proxy.close()
