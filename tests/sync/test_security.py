"""The broker's side of the fence: per-site credentials and ACLs, and mqtts://."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kiosk.store import Store
from tests.support.broker import Broker, free_port
from tests.support.polling import wait_for
from tests.support.sync import SITE, AgentThread, Watcher, as_bytes, make_config, order, topic

pytestmark = pytest.mark.broker

ROOT_USER = ["user root"] if os.geteuid() == 0 else []
OTHER = "other-site"
ACL = """\
pattern read pickup/v1/%u/orders/#
pattern read pickup/v1/%u/cmd/#
pattern write pickup/v1/%u/events
pattern write pickup/v1/%u/log
pattern readwrite pickup/v1/%u/status
pattern write pickup/v1/%u/cmd_result/#

user hub
topic readwrite pickup/v1/#
"""


def password_broker(tmp_path: Path) -> Broker:
    work = tmp_path / "broker"
    work.mkdir()
    pw = work / "passwd"
    pw.write_text("")
    for user, password in ((SITE, "kiosk-pw-1"), (OTHER, "other-pw-2"), ("hub", "hub-pw-3")):
        subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True)
    (work / "acl").write_text(ACL)
    return Broker(
        work,
        extra_conf=[
            f"password_file {pw}",
            f"acl_file {work / 'acl'}",
            "allow_anonymous false",
            *ROOT_USER,
        ],
    ).start()


def test_credentials_and_acl_fence_each_site(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = password_broker(tmp_path)
    try:
        hub = Watcher(
            broker.port, ["pickup/v1/#"], username="hub", password="hub-pw-3", client_id="hub"
        ).start()
        hub.publish(topic("orders", "MINE"), as_bytes(order("MINE")), retain=True)
        hub.publish(
            topic("orders", "THEIRS", site=OTHER),
            as_bytes(order("THEIRS", site=OTHER)),
            retain=True,
        )

        cfg = make_config(tmp_path, broker.url, username=SITE, password="kiosk-pw-1")
        store = Store(cfg.store.path)
        with AgentThread(cfg):
            wait_for(lambda: store.get_order("MINE"), what="own order through the ACL")
            wait_for(lambda: hub.on(f"{SITE}/status"), what="own status through the ACL")

        # The same credentials, used by hand against the other site's topics.
        spy = Watcher(
            broker.port,
            [topic("orders/+", site=OTHER), topic("cmd/+", site=OTHER), topic("orders/+")],
            username=SITE,
            password="kiosk-pw-1",
            client_id="spy",
        ).start()
        spy.publish(topic("events", site=OTHER), b'{"forged": true}')
        spy.publish(topic("status", site=OTHER), b'{"online": false}', retain=True)
        spy.publish(topic("orders", "EVIL", site=OTHER), b'{"forged": true}', retain=True)
        spy.publish(topic("events"), b'{"sentinel": true}')  # allowed, and after the others
        wait_for(lambda: any(b"sentinel" in p for _, p, _ in hub.messages), what="sentinel")
        wait_for(lambda: spy.on("/orders/MINE"), what="the spy's own-site retained order")
        # mosquitto 2.0 grants the subscription but delivers nothing the ACL denies.
        assert not spy.on("/orders/THEIRS")
        assert not [
            p
            for t, p, _ in hub.messages
            if (t.startswith(f"pickup/v1/{OTHER}/") and b"forged" in p)
            or (t.endswith(f"{OTHER}/status"))
        ]
        spy.stop()
        hub.stop()

        # A wrong password never connects, and the password never reaches a log.
        bad = make_config(tmp_path / "bad", broker.url, username=SITE, password="wrong-pw-x")
        caplog.set_level(logging.DEBUG)
        with AgentThread(bad):
            wait_for(
                lambda: any("MQTT:" in r.getMessage() for r in caplog.records),
                what="a connection warning",
            )
        assert Store(bad.store.path).get_meta("mqtt_online") == "0"
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "wrong-pw-x" not in text and "kiosk-pw-1" not in text
    finally:
        broker.stop()


def _cert(
    subject: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    san_ip: bool = False,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san_ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(
    path: Path, cert: x509.Certificate | None = None, key: ec.EllipticCurvePrivateKey | None = None
) -> str:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return str(path)


def test_mqtts_with_a_private_ca_and_client_certificate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test CA", ca_key, None, ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = _cert("127.0.0.1", ca_key, ca.subject, srv_key, ca=False, san_ip=True)
    cli_key = ec.generate_private_key(ec.SECP256R1())
    cli = _cert(SITE, ca_key, ca.subject, cli_key, ca=False)
    plain_port = free_port()
    broker = Broker(
        tmp_path / "broker",
        extra_conf=[
            f"cafile {_write(pki / 'ca.pem', ca)}",
            f"certfile {_write(pki / 'srv.pem', srv)}",
            f"keyfile {_write(pki / 'srv.key', key=srv_key)}",
            "require_certificate true",
            f"listener {plain_port} 127.0.0.1",  # for the test's own watcher
            *ROOT_USER,
        ],
    ).start()
    try:
        watcher = Watcher(plain_port, [topic("status")]).start()
        url = f"mqtts://127.0.0.1:{broker.port}"
        cfg = make_config(
            tmp_path,
            url,
            ca_file=_write(pki / "ca.pem", ca),
            cert_file=_write(pki / "cli.pem", cli),
            key_file=_write(pki / "cli.key", key=cli_key),
        )
        store = Store(cfg.store.path)
        with AgentThread(cfg):
            wait_for(lambda: store.get_meta("mqtt_online") == "1", what="connected over TLS")
            wait_for(lambda: (s := watcher.on("/status")) and s[-1]["online"], what="status")
        watcher.stop()

        # A kiosk that trusts another CA refuses the broker's certificate.
        other_key = ec.generate_private_key(ec.SECP256R1())
        other = _cert("other CA", other_key, None, other_key, ca=True)
        wrong = make_config(tmp_path / "wrong", url, ca_file=_write(pki / "other.pem", other))
        with AgentThread(wrong):
            wait_for(
                lambda: any("certificate verify failed" in r.getMessage() for r in caplog.records),
                what="a TLS verification failure",
            )
        assert Store(wrong.store.path).get_meta("mqtt_online") == "0"
    finally:
        broker.stop()
