"""The systemd units, as the installer lays them out, checked by systemd itself.

``systemd-analyze verify --root=ROOT`` loads the units from a staged root and
checks every Exec*= binary exists and is executable *inside that root*. So
the root gets (1) the units, staged by scripts/install.sh with DESTDIR, (2)
the host's own unit directory (sysinit.target, network-online.target and
getty@.service must resolve), and (3) executable stubs at the paths the units
run (/opt/pickup-kiosk/venv/bin/kiosk, /usr/bin/systemctl): a staged install
prints "would run: ... pip install" instead of building the venv, and the
tests must not touch the real /opt. Verify prints a warning (and still exits
0) for an unknown key or a bad value, so a clean result means no output.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.deploy import (
    ANALYZE,
    EXEC_RE,
    HOST_UNIT_DIRS,
    directives,
    make_checkout,
    run_script,
)

pytestmark = pytest.mark.skipif(
    not Path(ANALYZE).exists(), reason="systemd-analyze is not installed (scripts/test installs it)"
)


@pytest.fixture(scope="module")
def staged_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("units")
    checkout = make_checkout(base / "checkout")
    root = base / "root"
    root.mkdir()
    proc = run_script(checkout, "install.sh", root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    host_units = next(d for d in HOST_UNIT_DIRS if (d / "sysinit.target").exists())
    shutil.copytree(host_units, root / "usr/lib/systemd/system", symlinks=True)
    for unit in (root / "etc/systemd/system").iterdir():
        for exe in EXEC_RE.findall(unit.read_text()):
            stub = root / exe.lstrip("-@:+!").lstrip("/")
            if not stub.exists():
                stub.parent.mkdir(parents=True, exist_ok=True)
                stub.write_text("#!/bin/sh\nexit 0\n")
                stub.chmod(0o755)
    return root


def verify(root: Path, *units: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ANALYZE, "verify", f"--root={root}", *(f"/etc/systemd/system/{u}" for u in units)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def staged_units(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "etc/systemd/system").iterdir())


def test_systemd_accepts_every_unit(staged_root: Path) -> None:
    units = staged_units(staged_root)
    assert "pickup-kiosk.target" in units
    proc = verify(staged_root, *units)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout + proc.stderr == "", "systemd warned:\n" + proc.stderr


def test_verify_catches_a_bad_unit(staged_root: Path, tmp_path: Path) -> None:
    """The check above can fail: a typo'd key and a missing binary are reported."""
    root = tmp_path / "root"
    shutil.copytree(staged_root, root, symlinks=True)
    door = root / "etc/systemd/system/pickup-kiosk-door.service"
    door.write_text(door.read_text().replace("WatchdogSec=", "WachdogSec=", 1))
    (root / "opt/pickup-kiosk/venv/bin/kiosk").unlink()
    proc = verify(root, "pickup-kiosk-door.service")
    assert "WachdogSec" in proc.stderr
    assert "is not executable" in proc.stderr


def test_door_unit_promises() -> None:
    d = directives("pickup-kiosk-door.service")
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["WatchdogSec"] == ["10"]
    assert d["Restart"] == ["always"] and d["RestartSec"] == ["1"]
    assert d["ExecStart"] == ["/opt/pickup-kiosk/venv/bin/kiosk door"]
    # Relock after every stop, crash and SIGKILL; not "-"-prefixed, so a
    # failing relock shows up as a failed unit.
    assert d["ExecStopPost"] == ["/opt/pickup-kiosk/venv/bin/kiosk relock"]
    assert d["User"] == ["pickup-kiosk"]
    assert set(d["SupplementaryGroups"][0].split()) == {
        "gpio",
        "video",
        "render",
        "input",
        "audio",
        "spi",
    }
    assert "SDL_AUDIODRIVER=alsa" in d["Environment"]  # the voice (hardware/voice.py)
    assert "KIOSK_CONFIG=/etc/pickup-kiosk/kiosk.toml" in d["Environment"]
    assert "SDL_VIDEODRIVER=kmsdrm" in d["Environment"]
    assert "LG_WD=/run/pickup-kiosk" in d["Environment"]
    assert d["RuntimeDirectory"] == ["pickup-kiosk"]
    assert d["StateDirectory"] == ["pickup-kiosk"]
    assert d["Conflicts"] == ["getty@tty1.service"]
    assert d["PartOf"] == ["pickup-kiosk.target"]
    assert d["DevicePolicy"] == ["closed"]
    allowed = {v.split()[0] for v in d["DeviceAllow"]}
    assert {"char-gpiochip", "char-drm", "char-input", "char-alsa", "char-spi"} <= allowed
    assert all("*" not in a for a in allowed if a.startswith("/dev/")), "no globs in paths"
    # The door never talks to a network.
    assert d["RestrictAddressFamilies"] == ["AF_UNIX AF_NETLINK"]
    for hard in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "ProtectKernelTunables",
        "ProtectControlGroups",
    ):
        assert d[hard] == ["yes"], hard
    assert d["ProtectSystem"] == ["strict"] and d["UMask"] == ["0077"]
    assert d["StandardOutput"] == ["journal"]


def test_sync_unit_promises() -> None:
    d = directives("pickup-kiosk-sync.service")
    assert d["ExecStart"] == ["/opt/pickup-kiosk/venv/bin/kiosk sync"]
    assert d["After"] == ["network-online.target"] and d["Wants"] == ["network-online.target"]
    assert d["Restart"] == ["always"]
    assert d["PrivateDevices"] == ["yes"]
    assert d["User"] == ["pickup-kiosk"] and d["StateDirectory"] == ["pickup-kiosk"]
    assert "RuntimeDirectory" not in d, "the door's /run/pickup-kiosk must not vanish with sync"
    assert d["PartOf"] == ["pickup-kiosk.target"]


def test_target_pulls_in_both() -> None:
    d = directives("pickup-kiosk.target")
    wanted = " ".join(d["Wants"]).split()
    assert {"pickup-kiosk-door.service", "pickup-kiosk-sync.service"} <= set(wanted)
    assert d["WantedBy"] == ["multi-user.target"]
    for unit in (
        "pickup-kiosk-door.service",
        "pickup-kiosk-sync.service",
        "pickup-kiosk-rearm.service",
        "pickup-kiosk-rearm.timer",
    ):
        assert directives(unit)["PartOf"] == ["pickup-kiosk.target"], unit


def test_security_exposure_is_low(staged_root: Path) -> None:
    """systemd's own score of the sandbox (0 best, 10 worst), read offline."""
    for unit, ceiling in (("pickup-kiosk-door.service", 3.0), ("pickup-kiosk-sync.service", 2.5)):
        proc = subprocess.run(
            [
                ANALYZE,
                "security",
                "--offline=true",
                f"--root={staged_root}",
                f"/etc/systemd/system/{unit}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
        if m is None:
            pytest.skip(f"this systemd-analyze cannot score offline: {proc.stderr.strip()[:200]}")
        assert float(m.group(1)) <= ceiling, proc.stdout
