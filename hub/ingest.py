"""The hub's MQTT connection: subscribe, receive in batches, acknowledge after commit.

aiomqtt has no reconnect of its own; :meth:`MqttLink.run` is the explicit
loop: connect, subscribe, receive until the link drops, then wait a capped
exponential backoff with full jitter (random source and sleep injected,
docs/design.md) and connect again, with an explicit ``connected`` state.

Exactly once, even under SIGKILL: the session is persistent (MQTT 5,
``clean_start=False``, a session expiry), and a message is acknowledged
(PUBACK) only after the batch holding it is committed to the archive. A
hub killed at any instant leaves the broker holding every message it had
not yet committed, and the broker sends them again on the next connect;
the archive de-duplicates by ``event_id``. ``ReceiveMaximum`` bounds how
many unacknowledged messages the broker sends at once, which is also what
bounds the hub's memory under a flood.

aiomqtt does not expose paho's manual acknowledgement; :class:`MqttLink`
switches it on in the paho client aiomqtt wraps (``client._client``), once,
right after construction, and acknowledges from the event loop's thread,
where aiomqtt runs paho.

Memory is bounded by the hub itself, not only by the broker: Mosquitto
2.0 does not hold to the ``ReceiveMaximum`` once acknowledgements flow
(measured: a client asking for 500 received 18,000 unacknowledged
messages), so when more than :data:`HIGH_WATER` messages wait, the link
stops reading its socket until the archive has caught up below
:data:`LOW_WATER` (likewise in payload bytes), and the broker never sends
a packet over :data:`MAX_PACKET`. TCP then pushes back and the broker queues for the
session. For that the link registers its own socket reader in place of
aiomqtt's (the same loop over ``loop_read``), so that it can pause it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from hub.config import MqttSection
from hub.errors import ArchiveError
from protocol.backoff import Backoff

log = logging.getLogger(__name__)

RECEIVE_MAXIMUM = 4000  # unacknowledged messages the broker may send us at once
BATCH_MAX = 2000
BATCH_BYTES = 16 * 1024 * 1024  # ... or this many payload bytes (at least one message)
SUBSCRIBE_CHUNK = 100
HIGH_WATER = 4000  # waiting messages at which the link stops reading the socket
LOW_WATER = 1000  # ... and below which it reads again
HIGH_WATER_BYTES = 64 * 1024 * 1024  # ... or waiting payload bytes
LOW_WATER_BYTES = 16 * 1024 * 1024
#: the largest packet the broker may send us (MQTT 5 Maximum Packet Size): a
#: ``logs`` page (4 MiB, hub.dispatch) and room for its topic and properties.
#: Mosquitto drops a larger message for this client instead of sending it, so
#: a hostile kiosk cannot queue gigabytes for the hub's session.
MAX_PACKET = 4 * 1024 * 1024 + 64 * 1024


@dataclass(frozen=True)
class Msg:
    """A received message, converted at the boundary (docs/design.md)."""

    topic: str
    payload: bytes
    retain: bool
    mid: int
    qos: int


Handler = Callable[[list[Msg]], Awaitable[None]]


def endpoint(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls


class MqttLink:
    """One persistent MQTT 5 session for the whole hub."""

    def __init__(
        self,
        cfg: MqttSection,
        filters: Sequence[str],
        handle: Handler,
        *,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.cfg = cfg
        self.filters = list(filters)
        self.handle = handle
        self.on_connect = on_connect
        self.backoff = Backoff(rng or random.Random(), base=1.0, cap=60.0)
        self.sleep = sleep
        self.connected = asyncio.Event()
        self.client: aiomqtt.Client | None = None
        self.last_error = ""
        self.connects = 0
        self.received = 0
        self.backlog = 0  # received, not yet handed to the archive
        self.inbox_bytes = 0  # their payload bytes
        self.session_present = False  # of the last CONNACK
        self.pauses = 0
        self._inbox: list[Msg] = []
        self._ready = asyncio.Event()

    def _client(self) -> aiomqtt.Client:
        host, port, tls = endpoint(self.cfg.url)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.cfg.session_expiry_s
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        props.MaximumPacketSize = MAX_PACKET
        tls_params = None
        if tls:
            tls_params = aiomqtt.TLSParameters(
                ca_certs=self.cfg.ca_file or None, cert_reqs=ssl.CERT_REQUIRED
            )
        client = aiomqtt.Client(
            host,
            port,
            username=self.cfg.username or None,
            password=self.cfg.password or None,
            identifier=self.cfg.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            keepalive=self.cfg.keepalive_s,
            tls_params=tls_params,
            timeout=15,
        )
        client._client.manual_ack_set(True)  # see the module doc
        # paho's callback, on the loop's thread: convert and enqueue, nothing
        # else (docs/design.md). It replaces aiomqtt's, whose per-message task in
        # ``client.messages`` cost more than the archive's own work.
        inbox: list[Msg] = []
        ready = asyncio.Event()

        def on_message(_c: Any, _u: Any, m: Any) -> None:
            try:
                topic = m.topic
            except UnicodeDecodeError:  # no topic to route it by: acknowledge and drop
                client._client.ack(m.mid, m.qos)
                return
            inbox.append(Msg(topic, bytes(m.payload), bool(m.retain), int(m.mid), int(m.qos)))
            self.received += 1
            self.inbox_bytes += len(m.payload)
            ready.set()

        client._client.on_message = on_message
        # aiomqtt drops the CONNACK's flags; the hub needs "session present": a
        # broker that kept no session (restarted without persistence) has lost
        # the retained orders too, which the hub then publishes again.
        aiomqtt_on_connect: Callable[..., None] | None = client._client.on_connect

        def on_connect(c: Any, u: Any, flags: Any, *rest: Any) -> None:
            self.session_present = bool(getattr(flags, "session_present", False))
            if aiomqtt_on_connect is not None:
                aiomqtt_on_connect(c, u, flags, *rest)

        client._client.on_connect = on_connect
        self._inbox, self._ready, self.inbox_bytes = inbox, ready, 0
        return client

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, receive, reconnect, until ``stop`` is set."""
        while not stop.is_set():
            try:
                client = self._client()
                async with client:
                    self.client = client
                    self.connects += 1
                    self.backoff.reset()
                    await self._receive(client, stop)
            except aiomqtt.MqttError as exc:
                self.last_error = str(exc) or type(exc).__name__
                log.warning("MQTT connection lost or refused: %s", self.last_error)
            except ArchiveError as exc:
                # Nothing of the batch was acknowledged: the broker sends it again.
                self.last_error = str(exc)
                log.error("archive error; reconnecting to receive again: %s", exc)
            except Exception as exc:  # a defect must not end the hub's MQTT side
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("unexpected error in the MQTT link; reconnecting")
            finally:
                self.client = None
                self.connected.clear()
            if stop.is_set():
                break
            delay = self.backoff.next_delay()
            log.info("reconnecting in %.1f s", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        opts = SubscribeOptions(qos=1)
        for i in range(0, len(self.filters), SUBSCRIBE_CHUNK):
            chunk = [(f, opts) for f in self.filters[i : i + SUBSCRIBE_CHUNK]]
            codes = await client.subscribe(chunk, timeout=30)
            for f, code in zip(chunk, codes, strict=False):
                value = getattr(code, "value", code)
                if isinstance(value, int) and value >= 0x80:
                    log.error("the broker refused the subscription to %s (%s)", f[0], code)

    def _own_reader(self, client: aiomqtt.Client) -> tuple[Callable[[], None], Callable[[], None]]:
        """Replace aiomqtt's socket reader with one the link can pause; (pause, resume)."""
        loop = asyncio.get_running_loop()
        paho = client._client
        sock = paho.socket()
        assert sock is not None
        fd = sock.fileno()
        reading = True

        def pause() -> None:
            nonlocal reading
            if reading:
                loop.remove_reader(fd)
                reading = False
                self.pauses += 1

        def resume() -> None:
            nonlocal reading
            if not reading:
                loop.add_reader(fd, read)
                reading = True

        def read() -> None:  # what aiomqtt's reader does, and the high-water check
            try:
                while True:
                    paho.loop_read()
                    current = paho._sock
                    if (
                        current is not None
                        and hasattr(current, "pending")
                        and current.pending() > 0
                    ):
                        continue
                    break
            except Exception as exc:
                if not client._disconnected.done():
                    client._disconnected.set_exception(exc)
                return
            if len(self._inbox) >= HIGH_WATER or self.inbox_bytes >= HIGH_WATER_BYTES:
                pause()

        loop.remove_reader(fd)
        loop.add_reader(fd, read)
        return pause, resume

    async def _start(self, client: aiomqtt.Client) -> None:
        await self._subscribe(client)
        self.connected.set()
        log.info("connected to the broker (%d subscriptions)", len(self.filters))
        if self.on_connect is not None:
            await self.on_connect()

    async def _receive(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Take messages in batches, and subscribe meanwhile.

        The reader and the processor come first: a persistent session's
        queue floods in right after CONNACK, ahead of the SUBACK, and must
        meet the high-water marks (a paused reader with no processor would
        never read the SUBACK).
        """
        inbox, ready = self._inbox, self._ready
        _pause, resume = self._own_reader(client)  # the reader pauses itself
        log.info(
            "receiving from the broker (%s session)",
            "its kept" if self.session_present else "a new",
        )

        async def watch() -> None:
            # Nothing is queued here (on_message takes every message); this
            # only raises MqttError when the connection drops.
            async for _m in client.messages:
                pass

        async def processor() -> None:
            while True:
                await ready.wait()
                n, size = 0, 0
                while n < min(BATCH_MAX, len(inbox)) and (n == 0 or size < BATCH_BYTES):
                    size += len(inbox[n].payload)
                    n += 1
                batch = inbox[:n]
                del inbox[:n]
                self.backlog = len(inbox)
                self.inbox_bytes -= size
                if not inbox:
                    ready.clear()
                await self.handle(batch)
                for m in batch:  # acknowledged only now that the batch is committed
                    if m.qos > 0:
                        client._client.ack(m.mid, m.qos)
                batch = []  # not held while waiting for the next one
                if len(inbox) < LOW_WATER and self.inbox_bytes < LOW_WATER_BYTES:
                    resume()

        tasks = [asyncio.create_task(watch()), asyncio.create_task(processor())]
        tasks.append(asyncio.create_task(self._start(client)))
        stopper = asyncio.create_task(stop.wait())
        try:
            waiting = {*tasks, stopper}
            while True:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    if t is not stopper and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
                if tasks[0] in done:
                    raise aiomqtt.MqttError("the broker closed the connection")
                if done - {tasks[2]}:
                    break  # stopped (only the subscribing may end and the rest go on)
        finally:
            for t in [*tasks, stopper]:
                t.cancel()
            for t in [*tasks, stopper]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Publish QoS 1 and wait for the PUBACK; False when not connected or refused."""
        client = self.client
        if client is None:
            return False
        try:
            await client.publish(topic, payload, qos=1, retain=retain, timeout=15)
        except aiomqtt.MqttError as exc:
            log.warning("could not publish to %s: %s", topic, exc)
            return False
        return True
