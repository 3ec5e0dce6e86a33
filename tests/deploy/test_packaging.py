"""The distribution split by where code runs: a real wheel in a fresh virtualenv.

The base install is the owner's laptop: kioskctl works, pygame and gpiozero
are not installed, and the kiosk's door says which extra it needs instead of
a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.deploy import REPO


@pytest.mark.slow
def test_the_base_wheel_gives_a_working_kioskctl_without_device_packages(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("pickup_kiosk-*.whl")
    venv = tmp_path / "laptop"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    missing = subprocess.run(
        [str(py), "-c", "import importlib.util as u; print([m for m in ('pygame', 'gpiozero') "
         "if u.find_spec(m)])"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert missing.stdout.strip() == "[]"
    key = tmp_path / "keys" / "owner.key"
    made = subprocess.run(
        [str(venv / "bin" / "kioskctl"), "keygen", "--out", str(key)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert key.exists() and "owner_keys = [" in made.stdout
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'[site]\nid = "shop-01"\n[store]\npath = "{tmp_path / "k.db"}"\n'
        '[hardware]\nboard = "sim"\n[display]\nenabled = false\n'
    )
    door = subprocess.run(
        [str(venv / "bin" / "kiosk"), "--config", str(config), "door"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert door.returncode == 1
    assert "pickup-kiosk[device]" in door.stderr and "Traceback" not in door.stderr
