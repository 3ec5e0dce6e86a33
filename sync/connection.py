"""The MQTT connection: one paho client per attempt, driven from the agent's loop.

paho's callbacks run inside :meth:`Connection.poll` on the agent's own thread
and only append small dataclasses to a list (docs/design.md); the agent owns all
state. Reconnects use capped exponential backoff with full jitter, with the
random source and clock injected (docs/design.md). A fresh client per attempt
means paho's in-memory in-flight messages never leak across connections: the
store is the outbox, and the agent restarts from its first unacknowledged
row after every connect.

Sessions: MQTT 5 with ``clean_start=False`` and a session expiry, so the
broker queues QoS 1 orders and commands while the kiosk is offline; when the
broker refuses MQTT 5 the next attempt speaks 3.1.1 with
``clean_session=False``.

What may escape: nothing from :meth:`poll` but programming errors; network and
TLS failures become :class:`Disconnected` and a scheduled retry.
"""

from __future__ import annotations

import logging
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from kiosk.clock import Clock
from protocol.backoff import Backoff

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 86400
CONNACK_TIMEOUT_S = 15.0
MAX_DRAIN_PACKETS = 500

DISCONNECTED = "disconnected"
CONNECTING = "connecting"
CONNECTED = "connected"


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    tls: bool
    client_id: str
    username: str = ""
    password: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    keepalive: int = 60
    inflight: int = 50

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> Settings:
        parts = urlsplit(url)
        tls = parts.scheme == "mqtts"
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"not an mqtt:// or mqtts:// URL: {url!r}")
        return cls(host=parts.hostname, port=parts.port or (8883 if tls else 1883), tls=tls, **kw)

    def __repr__(self) -> str:  # never show the password
        return (
            f"Settings(host={self.host!r}, port={self.port}, tls={self.tls}, "
            f"client_id={self.client_id!r}, username={self.username!r})"
        )


# ----- what the callbacks hand to the agent -----------------------------------


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int


@dataclass(frozen=True)
class Connected:
    session_present: bool
    protocol: str
    receive_maximum: int | None


@dataclass(frozen=True)
class Disconnected:
    reason: str


@dataclass(frozen=True)
class Published:
    mid: int
    ok: bool
    reason: str


@dataclass(frozen=True)
class Subscribed:
    mid: int
    ok: bool  # every filter of the SUBSCRIBE was granted


Event = Message | Connected | Disconnected | Published | Subscribed


class Connection:
    """The explicit connected state and the current paho client."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        rng: random.Random,
        *,
        will_topic: str,
        will_payload: bytes | Callable[[], bytes],
        will_delay_s: int = 0,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.backoff = Backoff(rng)
        self.will_topic = will_topic
        self.will_payload = will_payload
        self.will_delay_s = will_delay_s
        self.state = DISCONNECTED
        self.protocol = MQTTProtocolVersion.MQTTv5
        self.next_attempt = clock.monotonic()
        self._client: Any = None
        self._events: list[Event] = []
        self._attempt_started = 0.0
        self._last_error = ""
        self._got_connack = False

    # ----- paho callbacks: convert and enqueue, nothing else --------------

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self._got_connack = True
        if getattr(reason, "is_failure", False) or (isinstance(reason, int) and reason != 0):
            self._events.append(Disconnected(f"refused: {reason}"))
            return
        recv_max = getattr(properties, "ReceiveMaximum", None) if properties else None
        self._events.append(
            Connected(
                bool(getattr(flags, "session_present", False)),
                "5" if self.protocol == MQTTProtocolVersion.MQTTv5 else "3.1.1",
                recv_max,
            )
        )

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self._events.append(Disconnected(str(reason)))

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            return  # brokers refuse such topics; nothing to route it by
        self._events.append(Message(topic, bytes(msg.payload), bool(msg.retain), int(msg.qos)))

    def _on_subscribe(
        self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any
    ) -> None:
        codes = reason_codes if isinstance(reason_codes, list) else [reason_codes]
        ok = all(not getattr(rc, "is_failure", False) for rc in codes)
        self._events.append(Subscribed(int(mid), ok))

    def _on_publish(
        self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        failed = bool(getattr(reason, "is_failure", False))
        self._events.append(Published(mid, not failed, str(reason)))

    # ----- the agent's side -------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.state == CONNECTED

    def _new_client(self) -> Any:
        s = self.settings
        v5 = self.protocol == MQTTProtocolVersion.MQTTv5
        kwargs: dict[str, Any] = {
            "callback_api_version": CallbackAPIVersion.VERSION2,
            "client_id": s.client_id,
            "protocol": self.protocol,
        }
        if not v5:
            kwargs["clean_session"] = False
        client = mqtt.Client(**kwargs)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.max_inflight_messages_set(max(1, s.inflight))
        client.max_queued_messages_set(0)
        if s.username:
            client.username_pw_set(s.username, s.password or None)
        if s.tls:
            client.tls_set(
                ca_certs=s.ca_file or None,
                certfile=s.cert_file or None,
                keyfile=s.key_file or None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        payload = self.will_payload() if callable(self.will_payload) else self.will_payload
        will_props = None
        if v5 and self.will_delay_s > 0:
            # A kiosk back within the delay resumes its session and the broker never
            # publishes the will: its last status (and the seq it claims) stays retained.
            will_props = Properties(PacketTypes.WILLMESSAGE)  # type: ignore[no-untyped-call]
            will_props.WillDelayInterval = self.will_delay_s
        client.will_set(self.will_topic, payload, qos=1, retain=True, properties=will_props)
        return client

    def _start_attempt(self) -> None:
        s = self.settings
        client = self._new_client()
        self._got_connack = False
        self._attempt_started = self.clock.monotonic()
        try:
            if self.protocol == MQTTProtocolVersion.MQTTv5:
                props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = SESSION_EXPIRY_S
                props.ReceiveMaximum = 65535
                client.connect(
                    s.host, s.port, keepalive=s.keepalive, clean_start=False, properties=props
                )
            else:
                client.connect(s.host, s.port, keepalive=s.keepalive)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._close(client)
            self._fail(f"cannot connect to {s.host}:{s.port}: {exc}")
            return
        self._client = client
        self.state = CONNECTING

    def _fail(self, why: str) -> None:
        delay = self.backoff.next_delay()
        self.next_attempt = self.clock.monotonic() + delay
        if why != self._last_error:
            log.warning("MQTT: %s; retrying in %.1f s (and with backoff after that)", why, delay)
            self._last_error = why
        else:
            log.debug("MQTT: %s; retrying in %.1f s", why, delay)

    @staticmethod
    def _close(client: Any) -> None:
        try:
            client.disconnect()
        except Exception:
            log.debug("closing the old MQTT client failed", exc_info=True)
        try:
            client._reset_sockets()  # paho keeps a socket pair per client
        except Exception:
            log.debug("closing the MQTT client's sockets failed", exc_info=True)

    def seconds_to_next_attempt(self) -> float:
        return max(0.0, self.next_attempt - self.clock.monotonic())

    def poll(self, timeout: float) -> list[Event]:
        """Drive the network for up to ``timeout`` seconds; return what happened."""
        if self.state == DISCONNECTED:
            if self.clock.monotonic() < self.next_attempt:
                return []
            self._start_attempt()
            if self.state == DISCONNECTED:
                return []
        client = self._client
        rc = client.loop(timeout)
        # Keep reading while packets keep coming, so a burst of retained orders
        # is handed over in batches rather than one message per wake-up.
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and len(self._events) < MAX_DRAIN_PACKETS:
            before = len(self._events)
            rc = client.loop(0.0)
            if len(self._events) == before:
                break
        events, self._events = self._events, []
        out: list[Event] = []
        for ev in events:
            if isinstance(ev, Connected):
                self.state = CONNECTED
                self.backoff.reset()
                self._last_error = ""
                log.info(
                    "MQTT connected to %s:%d (MQTT %s, session %s)",
                    self.settings.host,
                    self.settings.port,
                    ev.protocol,
                    "resumed" if ev.session_present else "new",
                )
                out.append(ev)
            elif isinstance(ev, Disconnected):
                self._lost(ev.reason)
                out.append(ev)
                break  # what follows belonged to the dead client
            else:
                out.append(ev)
        else:
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and self.state != DISCONNECTED:
                self._lost(f"network error {rc}")
                out.append(Disconnected(f"network error {rc}"))
            elif (
                self.state == CONNECTING
                and self.clock.monotonic() - self._attempt_started > CONNACK_TIMEOUT_S
            ):
                self._lost("no CONNACK in time")
                out.append(Disconnected("no CONNACK in time"))
        return out

    def _lost(self, reason: str) -> None:
        was = self.state
        if (
            was == CONNECTING
            and not self._got_connack
            and self.protocol == MQTTProtocolVersion.MQTTv5
        ):
            # The broker hung up on an MQTT 5 CONNECT: an old broker; speak 3.1.1 next.
            self.protocol = MQTTProtocolVersion.MQTTv311
            log.info("MQTT: the broker closed the MQTT 5 connect; trying MQTT 3.1.1")
        elif (
            was == CONNECTING
            and self.protocol == MQTTProtocolVersion.MQTTv5
            and ("Unsupported protocol version" in reason or "132" in reason)
        ):
            self.protocol = MQTTProtocolVersion.MQTTv311
            log.info("MQTT: the broker refused MQTT 5; trying MQTT 3.1.1")
        elif (
            was == CONNECTING
            and self.protocol == MQTTProtocolVersion.MQTTv311
            and not self._got_connack
        ):
            self.protocol = MQTTProtocolVersion.MQTTv5
        if self._client is not None:
            self._close(self._client)
            self._client = None
        self.state = DISCONNECTED
        if was == CONNECTED:
            log.warning("MQTT connection lost (%s)", reason)
        self._fail(f"connection ended ({reason})" if was == CONNECTED else reason)

    def drop(self, reason: str) -> None:
        """Give up the current connection and reconnect after backoff."""
        if self.state != DISCONNECTED:
            self._lost(reason)

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> int | None:
        """Hand a message to paho; its mid, or None when not connected."""
        if self.state != CONNECTED or self._client is None:
            return None
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_QUEUE_SIZE):
            return None
        return int(info.mid)

    def subscribe(self, topics: list[tuple[str, int]], *, no_local: bool = False) -> int | None:
        """Subscribe; return the SUBSCRIBE's mid (its :class:`Subscribed` follows).

        With MQTT 5 the retain flag is kept as published, so a command someone
        retained is recognized even when it arrives live; ``no_local`` asks the
        broker not to send back what this client publishes itself.
        """
        if self._client is None:
            return None
        if self.protocol == MQTTProtocolVersion.MQTTv5:
            rc, mid = self._client.subscribe(
                [
                    (t, SubscribeOptions(qos=q, retainAsPublished=True, noLocal=no_local))
                    for t, q in topics
                ]
            )
        else:
            rc, mid = self._client.subscribe(topics)
        return int(mid) if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None else None

    def unsubscribe(self, topic: str) -> None:
        if self._client is not None:
            self._client.unsubscribe(topic)

    def close(
        self, last_topic: str | None = None, last_payload: bytes = b"", wait_s: float = 2.0
    ) -> None:
        """Publish a last retained message (if connected), then disconnect cleanly."""
        client = self._client
        if client is None:
            return
        if last_topic is not None and self.state == CONNECTED:
            info = client.publish(last_topic, last_payload, qos=1, retain=True)
            start = self.clock.monotonic()
            ticks = 0
            # Bounded: a real clock ends it by time, a fake one by ticks.
            while (
                not info.is_published()
                and ticks < int(wait_s / 0.05)
                and self.clock.monotonic() - start < wait_s
            ):
                if client.loop(0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
                ticks += 1
        self._close(client)
        self._client = None
        self.state = DISCONNECTED
