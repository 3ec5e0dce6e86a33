"""kioskctl runs from the base install: no kiosk, hardware, sync, pygame or gpiozero (item 7).

Checked twice: statically (every import under ``hub/ctl/`` and ``protocol/``,
lazy ones too) and by running kioskctl with those modules made unimportable.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.broker import Broker
from tests.support.ctl import ROOT, FakeKiosk, keygen
from tests.support.ctl_model import KioskModel

ALLOWED = {"hub", "protocol", "paho", "cryptography", "segno", "pyotp"}
FORBIDDEN = ("kiosk", "hardware", "sync", "pygame", "gpiozero", "sqlite_utils", "lgpio", "tests")


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", ["hub/ctl", "protocol"])
def test_only_the_base_install_is_imported(package: str) -> None:
    files = sorted((ROOT / package).glob("*.py"))
    assert files
    for f in files:
        foreign = imported_roots(f) - ALLOWED - set(sys.stdlib_module_names) - {"__future__"}
        assert not foreign, f"{f.relative_to(ROOT)} imports {sorted(foreign)}"


BLOCKER = """
import importlib.abc, json, sys
FORBIDDEN = {forbidden!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError(f"{{name}} is not in the base install")
        return None
sys.meta_path.insert(0, Block())
from hub.ctl.cli import main
codes = []
for argv in json.loads(sys.argv[1]):
    try:
        codes.append(main(argv))
    except SystemExit as exc:
        codes.append(exc.code)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
print(json.dumps({{"codes": codes, "loaded": loaded}}))
"""


@pytest.mark.slow
@pytest.mark.broker
def test_kioskctl_works_with_device_and_hub_packages_missing(
    tmp_path: Path, broker: Broker
) -> None:
    key = tmp_path / "owner.key"
    pub = keygen(key)
    common = ["--broker", broker.url, "--key", str(key), "--site", "shop-1"]
    runs = [
        ["--help"],
        ["keygen", "--out", str(tmp_path / "new" / "k")],
        ["key-id", str(key)],
        ["order", "publish", "--order-id", "A-1", "--pickup-no", "1", *common],
        ["order", "list", *common],
        ["code", "A-1", *common],
        ["unlock", "--reason", "test", "--yes", *common],
        ["time", *common],
        ["logs", "--since", "0", *common],
        ["status", *common],
    ]
    kiosk = FakeKiosk(broker.port, "shop-1", KioskModel("shop-1", owner_keys=[pub]))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", BLOCKER.format(forbidden=FORBIDDEN), json.dumps(runs)],
            cwd=ROOT,
            env={
                "PATH": "/usr/bin:/bin",
                "HOME": str(tmp_path),
                "KIOSKCTL_STATE_DIR": str(tmp_path / "s"),
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        kiosk.close()
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # all succeed but status, which has no retained status to show (exit 1)
    assert out == {"codes": [0] * len(runs[:-1]) + [1], "loaded": []}, proc.stderr
