"""``scripts/install.sh --with-hub``: the hub's unit, user, config and keys,
staged into a throwaway root, idempotent, and the unit checked by systemd."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.deploy import (
    ANALYZE,
    EXEC_RE,
    HOST_UNIT_DIRS,
    REPO,
    directives,
    make_checkout,
    run_script,
)

UNIT = "pickup-hub.service"


def would_run(out: str) -> list[str]:
    return [
        line.removeprefix("would run: ")
        for line in out.splitlines()
        if line.startswith("would run: ")
    ]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    c = make_checkout(tmp_path / "checkout")
    (c / "hub").mkdir()
    shutil.copy2(REPO / "hub" / "example.toml", c / "hub" / "example.toml")
    return c


def test_with_hub_installs_unit_config_and_keys_once(checkout: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    plain = run_script(checkout, "install.sh", root)
    assert plain.returncode == 0, plain.stderr
    assert not (root / "etc/systemd/system" / UNIT).exists()  # only with --with-hub
    proc = run_script(checkout, "install.sh", root, "--with-hub")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    unit = root / "etc/systemd/system" / UNIT
    assert unit.read_bytes() == (REPO / "systemd" / UNIT).read_bytes()
    conf = root / "etc/pickup-hub/hub.toml"
    assert conf.read_bytes() == (REPO / "hub/example.toml").read_bytes()
    assert oct(conf.stat().st_mode & 0o777) == "0o640"
    cmds = would_run(proc.stdout)
    assert any("useradd --system" in c and "pickup-hub" in c for c in cmds)
    assert any(c.endswith("pickup-hub keygen --config /etc/pickup-hub/hub.toml") for c in cmds)
    assert "systemctl enable pickup-hub.service" in cmds
    assert any("pip install" in c and c.endswith("hub\\]") for c in cmds)  # [hub], %q-quoted
    # a second run changes nothing on disk: same files, same times
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    again = run_script(checkout, "install.sh", root, "--with-hub")
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before
    assert "kept the existing /etc/pickup-hub/hub.toml" in again.stdout
    assert "systemctl daemon-reload" not in would_run(again.stdout.split("hub: systemd unit")[-1])


@pytest.mark.skipif(not Path(ANALYZE).exists(), reason="systemd-analyze is not installed")
def test_systemd_accepts_the_hub_unit(checkout: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert run_script(checkout, "install.sh", root, "--with-hub").returncode == 0
    host_units = next(d for d in HOST_UNIT_DIRS if (d / "sysinit.target").exists())
    shutil.copytree(host_units, root / "usr/lib/systemd/system", symlinks=True)
    unit = root / "etc/systemd/system" / UNIT
    for exe in EXEC_RE.findall(unit.read_text()):
        stub = root / exe.lstrip("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    proc = subprocess.run(
        [ANALYZE, "verify", f"--root={root}", f"/etc/systemd/system/{UNIT}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stderr


def test_hub_unit_promises() -> None:
    d = directives(UNIT)
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["WatchdogSec"] == ["30"] and d["Restart"] == ["always"]
    assert d["ExecStart"] == ["/opt/pickup-kiosk/venv/bin/pickup-hub serve"]
    assert d["RestartPreventExitStatus"] == ["2"]  # a bad hub.toml
    assert d["User"] == ["pickup-hub"] and d["StateDirectory"] == ["pickup-hub"]
    assert "PICKUP_HUB_CONFIG=/etc/pickup-hub/hub.toml" in d["Environment"]
    for hard in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateUsers"):
        assert d[hard] == ["yes"], hard
    assert d["ProtectSystem"] == ["strict"] and d["CapabilityBoundingSet"] == [""]
    assert "PartOf" not in d  # runs without any kiosk on a server
