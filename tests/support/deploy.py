"""Deployment tests (units, installer, doctor) and their staging helpers.

The installer is always run from a copy of the checkout (scripts, units,
docs, kiosk/example.toml) so the tests never write into the work tree, and
always with DESTDIR so nothing outside tmp_path is touched.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A stand-in for kiosk/example.toml while it does not exist yet.
MINIMAL_EXAMPLE = """\
[site]
id = "demo-site"

[hardware]
board = "gpio"                 # "gpio" on a Pi, "sim" for the simulated board
"""


def make_checkout(dest: Path) -> Path:
    """Copy what install.sh reads from a checkout into ``dest``."""
    for name in ("scripts", "systemd"):
        shutil.copytree(REPO / name, dest / name)
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    (dest / "kiosk").mkdir(parents=True)
    example = REPO / "kiosk" / "example.toml"
    if example.is_file():
        shutil.copy2(example, dest / "kiosk" / "example.toml")
    else:
        (dest / "kiosk" / "example.toml").write_text(MINIMAL_EXAMPLE)
    if (REPO / "docs" / "install.md").is_file():
        (dest / "docs").mkdir()
        shutil.copy2(REPO / "docs" / "install.md", dest / "docs" / "install.md")
    return dest


def run_script(
    checkout: Path, name: str, root: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DESTDIR": str(root),
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        ["bash", str(checkout / "scripts" / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tree(root: Path) -> dict[str, tuple[str, ...]]:
    """Every path under root: type and mode, and for files their SHA-256 and
    modification time, so a rewrite with the same content still shows."""
    out: dict[str, tuple[str, ...]] = {}
    for path in sorted([root, *root.rglob("*")]):
        st = path.lstat()
        rel = "/" + str(path.relative_to(root)) if path != root else "/"
        mode = oct(stat.S_IMODE(st.st_mode))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", mode, str(st.st_mtime_ns))
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[rel] = ("file", mode, digest, str(st.st_mtime_ns))
    return out


def would_run(output: str) -> list[str]:
    return [
        line[len("would run: ") :] for line in output.splitlines() if line.startswith("would run: ")
    ]


# ----- unit files ----------------------------------------------------------------

ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
HOST_UNIT_DIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))

EXEC_RE = re.compile(
    r"^\s*Exec(?:Start|StartPre|StartPost|Stop|StopPost|Reload|Condition)=(\S+)", re.MULTILINE
)


def unit_text(name: str) -> str:
    return (REPO / "systemd" / name).read_text()


def directives(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for raw in unit_text(name).splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key, []).append(value)
    return out
