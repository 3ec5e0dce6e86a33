"""Running the real ``kiosk`` command as a subprocess in tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.sample import order_doc
from protocol.keys import public_key_text, sign_document

SITE = "e2e-site"


def env(**extra: str) -> dict[str, str]:
    """The environment for kiosk subprocesses: headless SDL, no inherited config."""
    e = dict(os.environ)
    e.update(
        {
            "SDL_VIDEODRIVER": "dummy",
            "SDL_AUDIODRIVER": "dummy",
            "PYGAME_HIDE_SUPPORT_PROMPT": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    e.pop("KIOSK_CONFIG", None)
    e.pop("NOTIFY_SOCKET", None)
    e.update(extra)
    return e


def kiosk(
    *args: str, config: Path | None = None, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "kiosk.cli"]
    if config is not None:
        cmd += ["--config", str(config)]
    return subprocess.run(
        [*cmd, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(),
        check=False,
    )


def popen_kiosk(*args: str, config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kiosk.cli", "--config", str(config), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )


def write_config(
    tmp: Path,
    hub: Ed25519PrivateKey,
    owner: Ed25519PrivateKey | None = None,
    extra: str = "",
    *,
    site: str = SITE,
    mqtt_url: str = "",
    keypad: str = "matrix",
) -> Path:
    """A sim-board config in ``tmp`` (store ``tmp/kiosk.db``), trusting ``hub`` (and ``owner``)."""
    owner_line = f'owner_keys = ["{public_key_text(owner.public_key())}"]' if owner else ""
    mqtt = f'[mqtt]\nurl = "{mqtt_url}"\n' if mqtt_url else ""
    cfg = tmp / "kiosk.toml"
    cfg.write_text(f"""
[site]
id = "{site}"
[store]
path = "{tmp / "kiosk.db"}"
[trust]
hub_keys = ["{public_key_text(hub.public_key())}"]
{owner_line}
[hardware]
board = "sim"
keypad = "{keypad}"
[display]
enabled = false
[clock]
trust_system_clock = "always"
{mqtt}{extra}
""")
    return cfg


def signed_orders(hub: Ed25519PrivateKey, n: int = 1, **kw: Any) -> list[dict[str, Any]]:
    now = time.time()
    return [
        sign_document(order_doc(SITE, f"E-{i}", f"{i + 40:03d}", now=now, **kw), hub)
        for i in range(n)
    ]


def events(config: Path) -> list[dict[str, Any]]:
    out = kiosk("events", "--json", config=config)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
