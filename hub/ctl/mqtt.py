"""kioskctl's broker connection: short-lived, blocking, one job at a time.

paho runs its callbacks on its network thread; here they only record acks
and enqueue messages (docs/design.md), and the command's own thread waits on
them with deadlines. MQTT 5 is used so that a broker's refusal of a publish
or a subscription (ACLs) comes back as a reason code instead of silence.

Every failure leaves as :class:`BrokerError` with a one-line message that
names the broker; nothing here prints.

What the broker sends is untrusted (docs/threat-model.md, "kioskctl"): the
CONNECT asks it for packets of at most :data:`MAX_PACKET` bytes, and the
queue between paho's thread and the command holds at most
:data:`MAX_QUEUED` messages; beyond that messages are counted in
``dropped`` and not kept, so a flood costs bounded memory.
"""

from __future__ import annotations

import contextlib
import queue
import secrets
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from protocol.errors import PickupError as KioskError

DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}
#: the largest payload kioskctl decodes: a `logs` page holds up to 200 events
#: and 200 log records, far below this
MAX_MESSAGE = 2 * 1024 * 1024
MAX_PACKET = MAX_MESSAGE + 64 * 1024  # payload plus topic and properties
MAX_QUEUED = 20_000


class CtlError(KioskError):
    """A kioskctl command failed; ``str(err)`` is the one line to print."""

    exit_code = 1


class UsageError(CtlError, ValueError):
    """Bad arguments or settings (exit 64, like EX_USAGE)."""

    exit_code = 64


class BrokerError(CtlError, OSError):
    """The broker cannot be reached, refused us, or did not acknowledge."""

    exit_code = 4


@dataclass(frozen=True)
class BrokerSettings:
    url: str
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None

    def endpoint(self) -> tuple[str, int, bool]:
        """(host, port, tls) from ``mqtt://host:port`` or ``mqtts://host:port``."""
        parts = urlsplit(self.url if "://" in self.url else f"mqtt://{self.url}")
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise UsageError(f"broker URL {self.url!r}: the scheme must be mqtt:// or mqtts://")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise UsageError(f"broker URL {self.url!r}: the port is not a number") from None
        if not parts.hostname:
            raise UsageError(f"broker URL {self.url!r} has no host name")
        return parts.hostname, port, scheme in ("mqtts", "ssl")

    def url_credentials(self) -> tuple[str | None, str | None]:
        parts = urlsplit(self.url if "://" in self.url else f"mqtt://{self.url}")
        user = unquote(parts.username) if parts.username else None
        pw = unquote(parts.password) if parts.password else None
        return user, pw

    def display(self) -> str:
        """The URL without any password, for messages."""
        host, port, tls = self.endpoint()
        return f"{'mqtts' if tls else 'mqtt'}://{host}:{port}"


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool


class Connection:
    """One connected MQTT 5 client; use as a context manager.

    Raises BrokerError from ``__enter__`` when the broker is unreachable or
    refuses the credentials, and from the waiting calls when it goes away.
    """

    def __init__(self, settings: BrokerSettings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self.client_id = f"kioskctl-{secrets.token_hex(6)}"
        self.messages: queue.Queue[Message] = queue.Queue(MAX_QUEUED)
        self.dropped = 0  # messages not kept: the queue was full
        self._lock = threading.Condition()
        self._connected = False
        self._connect_error: str | None = None
        self._lost: str | None = None
        self._acks: dict[int, list[int]] = {}  # mid -> reason codes (PUBACK/SUBACK)
        self._client: Any = None

    # -- paho callbacks: record and notify, nothing else -------------------

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason_code: Any, _p: Any) -> None:
        with self._lock:
            if reason_code.is_failure:
                self._connect_error = str(reason_code)
            else:
                self._connected = True
            self._lock.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason_code: Any, _p: Any) -> None:
        with self._lock:
            if self._connected:
                self._lost = str(reason_code)
            elif self._connect_error is None:
                self._connect_error = str(reason_code)
            self._connected = False
            self._lock.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason_code: Any, _p: Any) -> None:
        with self._lock:
            self._acks[mid] = [int(reason_code.value)]
            self._lock.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        with self._lock:
            self._acks[mid] = [int(rc.value) for rc in codes]
            self._lock.notify_all()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        try:
            self.messages.put_nowait(Message(msg.topic, bytes(msg.payload), bool(msg.retain)))
        except queue.Full:
            self.dropped += 1

    # -- lifecycle ------------------------------------------------------------

    def __enter__(self) -> Connection:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        host, port, tls = self.settings.endpoint()
        where = self.settings.display()
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.connect_timeout = self.timeout
        user, pw = self.settings.url_credentials()
        user = self.settings.username or user
        pw = self.settings.password if self.settings.password is not None else pw
        if user is not None:
            client.username_pw_set(user, pw)
        if tls or self.settings.ca_file:
            try:
                client.tls_set(ca_certs=self.settings.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise BrokerError(f"cannot use CA file {self.settings.ca_file}: {exc}") from None
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.MaximumPacketSize = MAX_PACKET  # the broker drops larger messages for us
        try:
            client.connect(host, port, keepalive=30, properties=props)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise BrokerError(f"cannot reach the broker at {where}: {reason}") from None
        self._client = client
        client.loop_start()
        deadline = time.monotonic() + self.timeout
        with self._lock:
            while not self._connected and self._connect_error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            error = self._connect_error
            ok = self._connected
        if not ok:
            self._shutdown()
            if error is None:
                raise BrokerError(f"the broker at {where} did not answer within {self.timeout:g} s")
            hint = ""
            if "user name" in error.lower() or "authori" in error.lower():
                hint = " (check --username/--password)"
            raise BrokerError(f"the broker at {where} refused the connection: {error}{hint}")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        client = self._client
        if client is None:
            return
        self._client = None
        try:
            client.disconnect()
        finally:
            client.loop_stop()

    # -- blocking operations ----------------------------------------------

    def _check_alive(self) -> None:
        if self._lost is not None:
            raise BrokerError(
                f"lost the connection to the broker at {self.settings.display()}: {self._lost}"
            )

    def _wait_ack(self, mid: int, what: str) -> list[int]:
        deadline = time.monotonic() + self.timeout
        with self._lock:
            while mid not in self._acks:
                self._check_alive()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrokerError(
                        f"the broker at {self.settings.display()} did not acknowledge {what} "
                        f"within {self.timeout:g} s"
                    )
                self._lock.wait(min(left, 0.5))
            return self._acks.pop(mid)

    def subscribe(self, filters: Iterable[str]) -> None:
        """Subscribe (QoS 1) and wait for the SUBACK; a refused filter raises."""
        wanted = list(filters)
        result, mid = self._client.subscribe([(f, 1) for f in wanted])
        if result != 0:
            raise BrokerError(f"cannot subscribe at {self.settings.display()} (error {result})")
        codes = self._wait_ack(mid, "the subscription")
        for topic_filter, code in zip(wanted, codes, strict=False):
            if code >= 0x80:
                raise BrokerError(
                    f"the broker at {self.settings.display()} refused the subscription to "
                    f"{topic_filter} (reason code {code:#04x}; check the account's ACL)"
                )

    def publish(self, topic: str, payload: bytes, *, retain: bool, qos: int = 1) -> None:
        """Publish and, for QoS 1, wait for the PUBACK; a refused publish raises."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != 0:
            raise BrokerError(
                f"cannot publish to {topic} at {self.settings.display()} (error {info.rc})"
            )
        if qos == 0:
            return
        codes = self._wait_ack(info.mid, f"the message on {topic}")
        # 0x10 "no matching subscribers" is a success for a QoS 1 publish.
        if codes and codes[0] >= 0x80:
            raise BrokerError(
                f"the broker at {self.settings.display()} refused the message on {topic} "
                f"(reason code {codes[0]:#04x}; check the account's ACL)"
            )

    def get(self, timeout: float) -> Message | None:
        """The next message, or None after ``timeout`` seconds."""
        try:
            return self.messages.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            self._check_alive()
            return None

    def collect_retained(
        self, filters: Iterable[str], *, settle: float = 0.5, limit: float = 10.0
    ) -> dict[str, Message]:
        """Subscribe and gather the retained messages, latest per topic.

        Done when a barrier message published after the SUBSCRIBE comes back
        (brokers deliver a subscription's retained messages before later
        publishes to the same client), or when nothing has arrived for
        ``settle`` seconds (the broker may not let us publish the barrier).
        """
        barrier = f"kioskctl/barrier/{self.client_id}"
        self.subscribe([*filters, barrier])
        with contextlib.suppress(OSError, ValueError):  # the quiet period still ends it
            self._client.publish(barrier, b"", qos=0, retain=False)
        found: dict[str, Message] = {}
        end = time.monotonic() + limit
        quiet_until = time.monotonic() + settle
        while True:
            now = time.monotonic()
            if now >= end or now >= quiet_until:
                break
            msg = self.get(min(end, quiet_until) - now)
            if msg is None:
                break
            if msg.topic == barrier:
                break
            found[msg.topic] = msg
            quiet_until = time.monotonic() + settle
        self._client.unsubscribe(barrier)
        return found
