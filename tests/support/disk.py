"""Small real file systems for the full-card tests (a tmpfs per test)."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


@contextmanager
def tmpfs(path: Path, size: str = "512k") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False, capture_output=True)


def fill(fs: Path) -> Path:
    """Fill the filesystem to the last block with a junk file."""
    junk = fs / "junk"
    with open(junk, "wb") as f:
        chunk = b"\0" * 4096
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        # Python may hold a partial chunk in its buffer; closing would retry it.
        with suppress(OSError):
            f.close()
    return junk
