"""``pickup-hub doctor``: is this hub set up to work? Each failure with its fix.

Checks, in order: the signing keys (readable, Ed25519, distinct, private
to their owner), the archive (its directory writable, the file opens and
passes SQLite's quick check), the broker (reachable with hub.toml's
credentials, subscriptions allowed), and the notification URLs (each one
Apprise understands; with ``--send-test``, a test message through them).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.config import Config
from hub.db import Database
from hub.errors import ArchiveError, KeyFileError
from hub.ingest import endpoint
from hub.keys import load_keys
from protocol import topics


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}

    def line(self) -> str:
        head = f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"
        return head + (f"\n     fix: {self.fix}" if self.fix and not self.ok else "")


def check_keys(cfg: Config) -> list[Check]:
    try:
        keys = load_keys(cfg.keys.hub_key, cfg.keys.auditor_key)
    except KeyFileError as exc:
        return [
            Check("keys", False, str(exc), "run `pickup-hub keygen` (or fix [keys] in hub.toml)")
        ]
    out = [
        Check(
            "keys",
            True,
            f"hub key {cfg.keys.hub_key}, auditor key {cfg.keys.auditor_key}; each kiosk's [trust] "
            f'needs hub_keys = ["{keys.hub_public}"] and auditor_keys = ["{keys.auditor_public}"]',
        )
    ]
    for path in (cfg.keys.hub_key, cfg.keys.auditor_key):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            out.append(
                Check(
                    "key file mode",
                    False,
                    f"{path} is readable by others (mode {mode:o})",
                    f"chmod 600 {path}",
                )
            )
    return out


def check_archive(cfg: Config) -> Check:
    path = Path(cfg.hub.archive)
    if not path.parent.is_dir():
        return Check(
            "archive", False, f"directory {path.parent} does not exist", f"mkdir -p {path.parent}"
        )
    if not os.access(path.parent, os.W_OK):
        return Check(
            "archive",
            False,
            f"{path.parent} is not writable by this user",
            f"run as the hub's user, or chown it: chown pickup-hub {path.parent}",
        )
    try:
        db = Database(path)
        row = db.one("PRAGMA quick_check")
        db.close()
    except ArchiveError as exc:
        return Check("archive", False, str(exc), "restore the archive from a backup (docs/hub.md)")
    if row is None or row[0] != "ok":
        return Check(
            "archive",
            False,
            f"{path} failed SQLite's quick check",
            "restore from a backup (docs/hub.md)",
        )
    return Check("archive", True, f"{path} opens and passes SQLite's quick check")


async def _broker(cfg: Config) -> Check:
    import aiomqtt

    host, port, tls = endpoint(cfg.mqtt.url)
    try:
        async with aiomqtt.Client(
            host,
            port,
            username=cfg.mqtt.username or None,
            password=cfg.mqtt.password or None,
            identifier=f"pickup-hub-doctor-{secrets.token_hex(4)}",  # never the hub's session
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_params=aiomqtt.TLSParameters(ca_certs=cfg.mqtt.ca_file or None) if tls else None,
            timeout=10,
        ) as client:
            if cfg.sites:
                codes = await client.subscribe(topics.events(cfg.sites[0].id), qos=1, timeout=10)
                value = getattr(codes[0], "value", codes[0])
                if isinstance(value, int) and value >= 0x80:
                    return Check(
                        "broker",
                        False,
                        f"the broker refused a subscription to {topics.events(cfg.sites[0].id)}",
                        "give the hub's broker user readwrite on pickup/v1/# (docs/protocol.md)",
                    )
    except aiomqtt.MqttError as exc:
        return Check(
            "broker",
            False,
            f"cannot connect to {host}:{port}: {exc}",
            "start the broker, or fix [mqtt] url, username and password in hub.toml",
        )
    return Check("broker", True, f"connected to {host}:{port} and subscribed")


def check_broker(cfg: Config) -> Check:
    try:
        return asyncio.run(asyncio.wait_for(_broker(cfg), timeout=20))
    except TimeoutError:
        return Check("broker", False, "no answer within 20 s", "check [mqtt] url and the firewall")


def check_notifications(cfg: Config, send_test: bool) -> Check:
    import apprise

    if not cfg.alerts.urls:
        return Check("notifications", True, "no [alerts] urls: alerts are kept, not sent")
    ap = apprise.Apprise()
    for i, url in enumerate(cfg.alerts.urls):
        if not ap.add(url):
            return Check(
                "notifications",
                False,
                f"alerts.urls[{i}] is not a URL Apprise understands",
                "see docs/hub.md, Alerts, for WeCom and DingTalk URL examples",
            )
    if send_test and not ap.notify(title="pickup-hub doctor", body="test notification / 测试通知"):
        return Check(
            "notifications",
            False,
            "a test message could not be delivered to every URL",
            "check the bot's token and that this machine reaches it",
        )
    sent = "; a test message was delivered" if send_test else ""
    return Check("notifications", True, f"{len(cfg.alerts.urls)} URL(s) understood{sent}")


def run(cfg: Config, *, send_test: bool = False) -> list[Check]:
    checks = check_keys(cfg)
    checks.append(check_archive(cfg))
    checks.append(check_broker(cfg))
    checks.append(check_notifications(cfg, send_test))
    if not cfg.sites:
        checks.append(
            Check(
                "sites",
                False,
                "hub.toml lists no [[site]]",
                'add [[site]] id = "..." for each kiosk',
            )
        )
    return checks
