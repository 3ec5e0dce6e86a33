"""scripts/install.sh and scripts/uninstall.sh, staged into a throwaway root."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from kiosk import config as config_mod
from tests.support.deploy import REPO, make_checkout, run_script, tree, would_run

UNITS = {
    "pickup-kiosk.target",
    "pickup-kiosk-door.service",
    "pickup-kiosk-sync.service",
    "pickup-kiosk-rearm.service",
    "pickup-kiosk-rearm.timer",
}
UNITDIR = "etc/systemd/system"
CONF = "etc/pickup-kiosk/kiosk.toml"


def has_gpiochip() -> bool:
    return any(Path("/dev").glob("gpiochip*"))


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return make_checkout(tmp_path / "checkout")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


def install(checkout: Path, root: Path, *args: str) -> str:
    proc = run_script(checkout, "install.sh", root, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_install_lays_out_what_it_claims(checkout: Path, root: Path) -> None:
    out = install(checkout, root)

    assert {p.name for p in (root / UNITDIR).iterdir()} == UNITS
    for unit in UNITS:
        staged = root / UNITDIR / unit
        assert staged.read_bytes() == (checkout / "systemd" / unit).read_bytes()
        assert stat.S_IMODE(staged.stat().st_mode) == 0o644

    conf = root / CONF
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "var/lib/pickup-kiosk").stat().st_mode) == 0o750
    assert (root / "opt/pickup-kiosk").is_dir()
    for cmd in ("kiosk", "kioskctl"):
        link = root / "usr/local/bin" / cmd
        assert link.is_symlink() and str(link.readlink()) == f"/opt/pickup-kiosk/venv/bin/{cmd}"

    # The written config is valid, and on a machine without GPIO it runs the
    # simulated board and says so.
    cfg = config_mod.load(conf)
    if has_gpiochip():
        assert cfg.hardware.board == "gpio"
    else:
        assert cfg.hardware.board == "sim"
        assert 'board = "sim"' in out
    # Everything else is the example's.
    written = config_mod.describe(cfg)
    example = config_mod.describe(config_mod.load(checkout / "kiosk" / "example.toml"))
    for d in (written, example):
        del d["source"]
        del d["hardware"]["board"]
    assert written == example

    # What a staged install cannot do, it prints instead of doing.
    lines = would_run(out)
    joined = "\n".join(lines)
    assert "apt-get install" in joined and "fonts-wqy-microhei" in joined
    assert any(line.startswith("useradd --system") and "pickup-kiosk" in line for line in lines)
    assert any("-m venv /opt/pickup-kiosk/venv" in line for line in lines)
    assert any(line.startswith("/opt/pickup-kiosk/venv/bin/pip install") for line in lines)
    assert "chown root:pickup-kiosk /etc/pickup-kiosk/kiosk.toml" in lines
    assert "systemctl daemon-reload" in lines
    # A fresh install with the example's site id is left stopped and off at
    # boot, and says what to do (a demo door confuses everyone).
    assert not any(line.startswith(("systemctl enable", "systemctl start")) for line in lines)
    assert 'still has the example\'s site id "demo-site"' in out
    assert "installed but stopped" in out
    assert any("kiosk config check" in line for line in lines)
    assert any("kiosk doctor" in line for line in lines)


def test_second_run_changes_nothing(checkout: Path, root: Path) -> None:
    install(checkout, root)
    before = tree(root)
    out = install(checkout, root)
    assert tree(root) == before
    assert "kept the existing /etc/pickup-kiosk/kiosk.toml" in out
    # Unchanged units need no daemon-reload.
    assert "systemctl daemon-reload" not in would_run(out)


def test_rerun_keeps_an_edited_config_and_updates_units(checkout: Path, root: Path) -> None:
    install(checkout, root)
    conf = root / CONF
    edited = conf.read_text().replace('id = "demo-site"', 'id = "shop-07"')
    conf.write_text(edited)
    store = root / "var/lib/pickup-kiosk/kiosk.db"
    store.write_bytes(b"pretend data")
    door = checkout / "systemd/pickup-kiosk-door.service"
    door.write_text(door.read_text() + "# a new release\n")

    out = install(checkout, root)

    assert conf.read_text() == edited
    assert store.read_bytes() == b"pretend data"
    assert (root / UNITDIR / door.name).read_text().endswith("# a new release\n")
    assert "systemctl daemon-reload" in would_run(out)
    # Once the site id is set, the installer enables and starts the kiosk.
    assert "systemctl enable pickup-kiosk.target" in would_run(out)
    assert "The kiosk is running" in out


def test_no_enable(checkout: Path, root: Path) -> None:
    out = install(checkout, root, "--no-enable")
    assert not any(line.startswith("systemctl enable") for line in would_run(out))
    assert not any(line.startswith("systemctl start") for line in would_run(out))


def test_dry_run_changes_nothing(checkout: Path, root: Path) -> None:
    before = tree(root)
    out = install(checkout, root, "--dry-run")
    assert tree(root) == before
    assert any("install -m 0640" in line and "kiosk.toml" in line for line in would_run(out))
    # and it says what a real fresh install does: the kiosk stays stopped
    assert not any(line.startswith("systemctl enable") for line in would_run(out))
    assert "installed but stopped" in out and "The kiosk is running" not in out


def test_uninstall_keeps_config_and_data(checkout: Path, root: Path) -> None:
    install(checkout, root)
    store = root / "var/lib/pickup-kiosk/kiosk.db"
    store.write_bytes(b"orders and events")
    conf_text = (root / CONF).read_text()

    proc = run_script(checkout, "uninstall.sh", root)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    assert not any((root / UNITDIR).iterdir())
    assert not (root / "opt/pickup-kiosk").exists()
    assert not any((root / "usr/local/bin").iterdir())
    assert (root / CONF).read_text() == conf_text
    assert store.read_bytes() == b"orders and events"
    assert "systemctl disable --now pickup-kiosk.target pickup-kiosk-rearm.timer" in would_run(
        proc.stdout
    )
    assert not any(line.startswith("userdel") for line in would_run(proc.stdout))

    # Installing again picks the kept config up unchanged.
    install(checkout, root)
    assert (root / CONF).read_text() == conf_text


def test_uninstall_purge_removes_everything(checkout: Path, root: Path) -> None:
    install(checkout, root)
    proc = run_script(checkout, "uninstall.sh", root, "--purge")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for gone in ("etc/pickup-kiosk", "var/lib/pickup-kiosk", "opt/pickup-kiosk"):
        assert not (root / gone).exists()
    assert "userdel pickup-kiosk" in would_run(proc.stdout)
    # A second uninstall finds nothing to do and still succeeds.
    again = run_script(checkout, "uninstall.sh", root, "--purge")
    assert again.returncode == 0, again.stdout + again.stderr


def test_uninstall_knows_every_unit_install_installs() -> None:
    text = (REPO / "scripts/uninstall.sh").read_text()
    for unit in (REPO / "systemd").iterdir():
        assert unit.name in text, f"uninstall.sh would leave {unit.name} behind"


def test_install_rejects_unknown_options(checkout: Path) -> None:
    proc = subprocess.run(
        ["bash", str(checkout / "scripts/install.sh"), "--bogus"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "unknown option --bogus" in proc.stderr


def test_shellcheck() -> None:  # scripts/test installs shellcheck
    proc = subprocess.run(
        [
            "shellcheck",
            "-x",
            "scripts/install.sh",
            "scripts/uninstall.sh",
            "scripts/run",
            "scripts/test",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout


def test_commands_that_are_not_ours_are_left_alone(checkout: Path, root: Path) -> None:
    bin_dir = root / "usr/local/bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "kiosk").write_text("#!/bin/sh\necho another program\n")
    proc = run_script(checkout, "install.sh", root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is not ours" in proc.stderr
    assert not (bin_dir / "kiosk").is_symlink()
    assert (bin_dir / "kioskctl").is_symlink()
    proc = run_script(checkout, "uninstall.sh", root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (bin_dir / "kiosk").read_text() == "#!/bin/sh\necho another program\n"
    assert not (bin_dir / "kioskctl").exists()
