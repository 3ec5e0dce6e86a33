"""A real hub (``pickup-hub serve``), a real Mosquitto, real kiosks and Debian's
Chromium driven by Playwright, for the console's end-to-end tests.

Chromium is Debian's (``chromium-headless-shell``, else ``chromium``), which
scripts/test installs; Playwright's own browser download is never used.
Background networking is off: this closed network refuses its connections.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx

from tests.support.broker import Broker, free_port
from tests.support.hub import hub_cli, kiosk_config, popen_hub, write_config
from tests.support.polling import wait_for
from tests.support.procs import popen_kiosk

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}  # an iPhone 12-14 / mid-range Android, CSS pixels
PASSWORD = "correct horse battery"


def chromium() -> str:
    for name in ("chromium-headless-shell", "chromium"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("Debian's chromium is not installed: run scripts/test (it installs it)")


def stop(proc: subprocess.Popen[Any] | None, timeout: float = 20) -> int | None:
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


@dataclass
class Stack:
    tmp: Path
    site: str = "shop-e2e"
    broker: Broker | None = None
    port: int = field(default_factory=free_port)
    cfg: Path | None = None
    trust: str = ""
    hub: subprocess.Popen[bytes] | None = None
    sync: subprocess.Popen[str] | None = None
    door: subprocess.Popen[str] | None = None
    kcfg: Path | None = None
    token: str = ""
    owner_keys: str = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_hub(self, extra: str = "") -> Stack:
        self.broker = self.broker or Broker(self.tmp / "broker").start()
        self.cfg = write_config(
            self.tmp,
            (self.site,),
            mqtt_url=self.broker.url,
            listen=f"127.0.0.1:{self.port}",
            extra="[gaps]\ngrace_s = 1\n" + extra,
            site_extra='name = "蔡甸一店"\noffline_alert_s = 10',
        )
        out = hub_cli("keygen", "--force", config=self.cfg)
        assert out.returncode == 0, out.stderr
        self.trust = "\n".join(
            x for x in out.stdout.splitlines() if x.startswith(("hub_keys", "auditor_keys"))
        )
        for name, role in (("amy", "owner"), ("sam", "staff")):
            out = hub_cli("adduser", name, "--role", role, config=self.cfg, stdin=PASSWORD + "\n")
            assert out.returncode == 0, out.stderr
        self.hub = popen_hub(self.cfg, self.tmp / "hub.log")
        wait_for(self._health, timeout=30, what="the hub's HTTP side")
        out = hub_cli("token", "add", "shop", config=self.cfg)
        assert out.returncode == 0, out.stderr
        self.token = out.stdout.strip()
        return self

    def _health(self) -> bool:
        try:
            return httpx.get(self.base + "/api/v1/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def kiosk_config(self) -> Path:
        assert self.broker is not None
        trust = self.trust + (f"\n{self.owner_keys}" if self.owner_keys else "")
        self.kcfg = kiosk_config(self.tmp / "kiosk", self.site, trust, self.broker.url)
        return self.kcfg

    def start_sync(self) -> None:
        self.sync = popen_kiosk("sync", config=self.kiosk_config())

    def start_door(self) -> None:
        self.door = popen_kiosk("door", config=self.kcfg or self.kiosk_config())

    def type_keys(self, keys: str) -> None:
        assert self.door is not None and self.door.stdin is not None
        self.door.stdin.write(keys)
        self.door.stdin.flush()

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.base}/api/v1/sites/{self.site}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )

    def secret(self, order_id: str) -> dict[str, Any]:
        con = sqlite3.connect(self.tmp / "hub.db")
        try:
            (doc,) = con.execute(
                "SELECT doc FROM orders WHERE order_id = ?", (order_id,)
            ).fetchone()
        finally:
            con.close()
        return dict(json.loads(doc))

    def kiosk_events(self) -> list[dict[str, Any]]:
        from tests.support.procs import kiosk

        assert self.kcfg is not None
        out = kiosk("events", "--json", config=self.kcfg)
        assert out.returncode == 0, out.stderr
        return [json.loads(x) for x in out.stdout.splitlines() if x.strip()]

    def close(self) -> None:
        for p in (self.door, self.sync, self.hub):
            stop(p)
        if self.broker is not None:
            self.broker.stop()


def oathtool(secret: str, digits: int, at: float) -> str:
    out = subprocess.run(
        [
            "oathtool",
            "--totp",
            "-d",
            str(digits),
            "-b",
            secret,
            "-N",
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at)),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TZ": "UTC"},
    )
    return out.stdout.strip()


def browser(p: Any) -> Any:
    return p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)


def login(page: Any, base: str, name: str, password: str = PASSWORD) -> None:
    page.goto(base + "/console/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/console/")
