"""Health check of the broker connection (registered with ``kiosk.health``)."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from kiosk.config import Config
from kiosk.health import Result, check
from kiosk.health import fail as _fail
from kiosk.health import ok as _ok

BROKER_TIMEOUT_S = 5.0

# MQTT CONNACK reasons that mean "who you are was not accepted" (MQTT 5:
# 0x86 bad user name or password, 0x87 not authorized, 0x85 client id not
# valid; MQTT 3.1.1 return codes 4 and 5).
_CREDENTIAL_REASONS = {134, 135, 133, 4, 5}


@check("broker", 60)
def check_broker_registered(cfg: Config) -> list[Result]:
    return [check_broker(cfg)]


def check_broker(cfg: Config, timeout: float = BROKER_TIMEOUT_S) -> Result:
    name = "broker"
    mq = cfg.mqtt
    if mq is None:
        return _ok(name, "no [mqtt] section: offline only")
    parts = urlsplit(mq.url)
    tls = parts.scheme == "mqtts"
    host = parts.hostname or ""
    port = parts.port or (8883 if tls else 1883)
    where = f"{host}:{port}"
    who = f"as {mq.username!r}" if mq.username else "without a user name"

    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        return _fail(
            name,
            f"{where} unreachable: {err.strerror or err}",
            "check [mqtt] url, that the broker runs and listens there, DNS, and any "
            "firewall between (`nc -vz HOST PORT`)",
        )

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    outcome: dict[str, Any] = {}

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        outcome["reason"] = reason

    # Its own client id, clean start: the doctor must never take over the
    # sync agent's session (same id) or leave a session of its own behind.
    base = mq.client_id or f"kiosk-{cfg.site.id}"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{base}-doctor-{os.getpid()}",
        protocol=mqtt.MQTTv5,
    )
    client.on_connect = on_connect
    if mq.username:
        client.username_pw_set(mq.username, mq.password or None)
    try:
        if tls:
            client.tls_set(
                ca_certs=mq.ca_file or None,
                certfile=mq.cert_file or None,
                keyfile=mq.key_file or None,
            )
        client.connect(host, port, keepalive=max(5, int(timeout) * 2), clean_start=True)
        deadline = time.monotonic() + timeout
        while "reason" not in outcome and time.monotonic() < deadline:
            client.loop(timeout=0.1)
    except ssl.SSLCertVerificationError as err:
        return _fail(
            name,
            f"{where}: TLS certificate not trusted: {err.verify_message}",
            "set [mqtt] ca_file to the CA that signed the broker's certificate, and use "
            "the host name the certificate names",
        )
    except (ssl.SSLError, FileNotFoundError) as err:
        return _fail(
            name,
            f"{where}: TLS failed: {err}",
            "check [mqtt] ca_file, cert_file, key_file and that the port speaks TLS "
            "(mqtts://, usually 8883)",
        )
    except OSError as err:
        if tls and "reason" not in outcome:
            # A plain MQTT listener drops a TLS hello without a word.
            return _fail(
                name,
                f"{where}: TLS failed: the connection was dropped during the "
                f"handshake ({err.strerror or err})",
                "is this a plain mqtt:// port? Use the broker's TLS listener (usually 8883)",
            )
        return _fail(
            name,
            f"{where}: connection lost during MQTT CONNECT: {err}",
            "check that this port is an MQTT listener",
        )
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
        with contextlib.suppress(Exception):
            client.loop(timeout=0.1)

    reason = outcome.get("reason")
    if reason is None:
        return _fail(
            name,
            f"{where}: no MQTT answer within {timeout:g} s",
            "check that the url's port is the broker's MQTT listener (mqtts:// for a TLS port)",
        )
    if getattr(reason, "is_failure", False):
        code = int(getattr(reason, "value", -1))
        if code in _CREDENTIAL_REASONS:
            return _fail(
                name,
                f"{where}: the broker refused the credentials {who}: {reason}",
                "check [mqtt] username and password against the broker's password file "
                "(mosquitto_passwd) and its ACL",
            )
        return _fail(
            name, f"{where}: the broker refused the connection: {reason}", "see the broker's log"
        )
    return _ok(name, f"{where}: MQTT CONNECT accepted {who}{' over TLS' if tls else ''}")
