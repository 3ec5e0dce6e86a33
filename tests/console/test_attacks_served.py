"""An outside attacker on a real ``pickup-hub serve``, over real sockets.

What needs the real server: connections that send nothing or send their
request's head slowly (they once stayed open for ever, and a thousand of
them used up the hub's file descriptors), and the live stream (one account
once took all 500 streams, and streams outlived a logout everywhere).
The ASGI-level attacks are in tests/console/test_hostile.py.
"""

from __future__ import annotations

import contextlib
import re
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import paho.mqtt.publish as mqtt_publish
import pytest

from hub.console.live import MAX_PER_ACCOUNT
from hub.web.server import HEAD_TIMEOUT_S, MAX_PER_ADDRESS
from protocol.canonical import dumps
from protocol.events import ZERO_HASH, build_event
from protocol.topics import events as events_topic
from tests.support.browser import PASSWORD, Stack
from tests.support.hub import archived
from tests.support.polling import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.broker]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    s = Stack(tmp_path).start_hub()
    try:
        yield s
    finally:
        s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _state(s: socket.socket) -> str:
    """open, closed, or data (the bytes are read)."""
    s.setblocking(False)
    try:
        return "closed" if s.recv(65536) == b"" else "data"
    except BlockingIOError:
        return "open"
    except OSError:
        return "closed"


def _login(base: str, name: str) -> httpx.Client:
    c = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/console/login").text)
    assert token
    r = c.post("/console/login", data={"name": name, "password": PASSWORD, "csrf": token[1]})
    assert r.status_code == 303
    return c


def _publish(stack: Stack, seqs: range, prev: str) -> str:
    assert stack.broker is not None
    for seq in seqs:
        ev = build_event(
            site=stack.site,
            seq=seq,
            prev_hash=prev,
            ts=time.time(),
            clock="synced",
            type_="door_opened",
        )
        prev = ev["hash"]
        mqtt_publish.single(
            events_topic(stack.site), dumps(ev), qos=1, hostname="127.0.0.1", port=stack.broker.port
        )
    return prev


def test_idle_and_slow_connections_are_closed_and_the_hub_still_archives(stack: Stack) -> None:
    assert stack.cfg is not None
    port = stack.port
    # an attacker on one address opens twice what one address may hold, and sends nothing
    idle = [
        socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0))
        for _ in range(2 * MAX_PER_ADDRESS)
    ]
    slow = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.3", 0))
    slow.sendall(b"GET /console/login HTTP/1.1\r\n")
    opened = time.monotonic()
    wait_for(
        lambda: sum(_state(s) == "closed" for s in idle) >= MAX_PER_ADDRESS,
        timeout=10,
        what="connections over the per-address limit closed at once",
    )
    # everyone else is served meanwhile, and the archive goes on
    assert httpx.get(stack.base + "/api/v1/health", timeout=5).status_code == 200
    assert _login(stack.base, "amy").get("/console/").status_code == 200
    prev = _publish(stack, range(1, 4), ZERO_HASH)
    wait_for(lambda: len(archived(stack.cfg, stack.site)) == 3, timeout=20, what="archived")
    # a head dribbled one header at a time, and the idle ones, are closed after the limit
    while _state(slow) == "open" and time.monotonic() - opened < HEAD_TIMEOUT_S * 3:
        slow.sendall(b"X-Slow: 1\r\n")
        time.sleep(0.5)
    assert _state(slow) == "closed" and time.monotonic() - opened >= HEAD_TIMEOUT_S - 1
    wait_for(lambda: all(_state(s) == "closed" for s in idle), timeout=HEAD_TIMEOUT_S * 2)
    _publish(stack, range(4, 5), prev)
    wait_for(lambda: len(archived(stack.cfg, stack.site)) == 4, timeout=20, what="archived")
    for s in [*idle, slow]:
        s.close()


def _stream(base: str, client: httpx.Client) -> socket.socket:
    host, port = base.split("//")[1].split(":")
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    s = socket.create_connection((host, int(port)))
    s.sendall(
        f"GET /console/live HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {cookie}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    return s


def _answer(s: socket.socket) -> bytes:
    s.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    return data


def test_one_account_cannot_take_every_stream_and_streams_end_with_the_session(
    stack: Stack,
) -> None:
    sam = _login(stack.base, "sam")
    held = [_stream(stack.base, sam) for _ in range(MAX_PER_ACCOUNT + 5)]
    answers = [_answer(s) for s in held]
    assert sum(a.startswith(b"HTTP/1.1 200") for a in answers) == MAX_PER_ACCOUNT
    assert sum(a.startswith(b"HTTP/1.1 204") for a in answers) == 5
    # the owner still gets her live page
    amy = _login(stack.base, "amy")
    mine = _stream(stack.base, amy)
    assert _answer(mine).startswith(b"HTTP/1.1 200")
    # sam logs out everywhere (say, his phone was stolen): his open streams end
    token = re.search(r'name="csrf" value="([^"]+)"', sam.get("/console/account").text)
    assert (
        token and sam.post("/console/logout-everywhere", data={"csrf": token[1]}).status_code == 303
    )
    streams = [s for s, a in zip(held, answers, strict=True) if a.startswith(b"HTTP/1.1 200")]
    seen = {id(s): b"" for s in streams}

    def ended() -> bool:
        for s in streams:
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                seen[id(s)] += s.recv(65536)
        return all(seen[id(s)].endswith(b"0\r\n\r\n") for s in streams)

    wait_for(ended, timeout=10, what="sam's streams ended")
    assert _state(mine) in ("open", "data"), "the owner's stream goes on"
    for s in [*held, mine]:
        s.close()
