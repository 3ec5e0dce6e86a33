"""The store's files on disk: private from the first byte, and a space reserve.

The store holds the active orders' one-time-code secrets, so the database,
its ``-wal`` and ``-shm`` files and every backup are 0600 whatever the
caller's umask: :func:`create_private` makes the file with ``os.open(...,
0o600)`` before SQLite ever opens it, and SQLite gives the ``-wal`` and
``-shm`` files the database file's mode.

A full card must never leave the door out of service for customers with
valid codes (docs/design.md, rule 1). :class:`Reserve` is a preallocated
file beside the database (``kiosk.db.reserve``) that only the door's
writes may give back to the file system (:meth:`Reserve.release`), and
:func:`free_bytes` lets low-priority writers (the sync agent, log records)
stop before they eat into it. The sync agent re-creates the reserve once
there is room again (kiosk.retention).

What may escape: nothing but programming errors; file-system failures are
reported by return values, since the store's own error path says what
SQLite thinks of them.
"""

from __future__ import annotations

import logging
import os
import stat
from contextlib import suppress
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE = 0o600
SIDE_FILES = ("-wal", "-shm", "-journal")
RESERVE_SUFFIX = ".reserve"
_CHUNK = 64 * 1024


def create_private(path: Path) -> None:
    """Create ``path`` 0600 if it does not exist; tighten it if we own it.

    Raises OSError when the file cannot be created (the caller says so).
    """
    # An existing store is never opened here: closing any descriptor of a file
    # drops every POSIX lock this process holds on it, SQLite's included, so a
    # second Store in one process (``kiosk run``: door and sync) would let
    # another process delete the live -wal under the first one.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE)
    except FileExistsError:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode != PRIVATE:
            try:
                os.chmod(path, PRIVATE)
            except OSError:
                log.warning("%s is mode %o and not ours to tighten to 600", path, mode)
        return
    try:
        os.fchmod(fd, PRIVATE)  # whatever the umask took away
    finally:
        os.close(fd)


def tighten_side_files(path: Path) -> None:
    """An older version may have left world-readable -wal/-shm files: make them 0600."""
    for suffix in SIDE_FILES:
        side = Path(str(path) + suffix)
        try:
            if stat.S_IMODE(side.stat().st_mode) != PRIVATE:
                side.chmod(PRIVATE)
        except FileNotFoundError:
            continue
        except OSError:
            log.warning("%s is not ours to tighten to mode 600", side)


def create_exclusive_private(path: Path) -> None:
    """A new file 0600 from its first byte; FileExistsError if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE)
    try:
        os.fchmod(fd, PRIVATE)  # whatever the umask took away
    finally:
        os.close(fd)


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system of ``folder``.

    ``f_bavail`` (not ``f_bfree``): the service user cannot touch the blocks
    reserved for root. A huge value when it cannot be measured, so a failed
    measurement never stops a write on its own.
    """
    try:
        st = os.statvfs(folder)
    except OSError:
        return 1 << 62
    return int(st.f_bavail) * int(st.f_frsize)


class Reserve:
    """A preallocated file the door may delete when the card is full."""

    def __init__(self, db_path: Path, size: int) -> None:
        self.path = Path(str(db_path) + RESERVE_SUFFIX)
        self.size = max(0, int(size))

    def present(self) -> bool:
        try:
            return self.path.stat().st_size >= self.size > 0
        except OSError:
            return False

    def release(self) -> bool:
        """Give the reserve back to the file system; True if there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("cannot delete the space reserve %s: %s", self.path, exc)
            return False
        log.warning("the card is full: released the %d KiB space reserve", self.size // 1024)
        return True

    def create(self) -> bool:
        """Write the reserve with real blocks (not a sparse file); True when it exists.

        Written to a temporary name and renamed, so a half-written reserve
        never passes for a whole one; on ENOSPC the partial file is removed.
        """
        if self.size <= 0 or self.present():
            return self.size > 0
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with suppress(FileNotFoundError):
                tmp.unlink()
            create_exclusive_private(tmp)
            with open(tmp, "r+b", buffering=0) as f:
                left = self.size
                block = b"\0" * _CHUNK
                while left > 0:
                    left -= f.write(block[: min(left, _CHUNK)])
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            with suppress(FileNotFoundError):
                tmp.unlink()
            log.debug("space reserve not created: %s", exc)
            return False
        return True
