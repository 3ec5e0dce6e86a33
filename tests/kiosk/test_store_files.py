"""The store's files are private from the first byte, and a fresh store opens
race-free however many processes start at once (issue 11 item 10)."""

from __future__ import annotations

import multiprocessing
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.audit import Audit
from kiosk.clock import FakeClock, TrustedClock
from kiosk.store import MIGRATIONS, Store
from tests.support.procs import env, write_config


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o000, 0o277], ids=["022", "000", "277"])
def test_store_wal_and_shm_are_0600_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    path = tmp_path / "new" / "kiosk.db"
    with umask(mask):
        s = Store(path)
        Audit(s, "site-1").record("boot", TrustedClock(FakeClock(), synced=True).snapshot())
        for suffix in ("", "-wal", "-shm"):
            assert mode(Path(str(path) + suffix)) == 0o600, suffix
        assert mode(path.parent) & 0o077 == 0  # a folder it made itself is private too
        s.backup_to(tmp_path / "copy.db")
        assert mode(tmp_path / "copy.db") == 0o600
        s.close()


def test_an_old_world_readable_store_is_tightened_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.db"
    Store(path).close()
    for suffix in ("", "-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            side.chmod(0o644)
    Store(path).close()
    assert mode(path) == 0o600


def test_backup_refuses_an_existing_file_and_keeps_it(tmp_path: Path) -> None:
    s = Store(tmp_path / "kiosk.db")
    dest = tmp_path / "copy.db"
    dest.write_text("mine")
    with pytest.raises(FileExistsError):
        s.backup_to(dest)
    assert dest.read_text() == "mine"


def test_kiosk_backup_is_0600_from_the_first_byte(tmp_path: Path) -> None:
    """Watched from outside while it runs: the file never exists with looser bits."""
    cfg = write_config(tmp_path, Ed25519PrivateKey.generate())
    dest = tmp_path / "backup.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk.cli", "--config", str(cfg), "backup", str(dest)],
        env=env(),
        preexec_fn=lambda: os.umask(0o000),  # noqa: PLW1509 - the point of the test
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen: set[int] = set()
    while proc.poll() is None:
        with suppress(FileNotFoundError):
            seen.add(mode(dest))
    _out, err = proc.communicate()
    assert proc.returncode == 0, err
    seen.add(mode(dest))
    assert seen == {0o600}
    assert mode(tmp_path / "kiosk.db") == 0o600


def _open_fresh(path: str, barrier: object, results: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    try:
        s = Store(path, busy_timeout_ms=10000)
        ok = s.schema_version() == len(MIGRATIONS)
        s.close()
        results.put("ok" if ok else "wrong schema")  # type: ignore[attr-defined]
    except Exception as exc:  # reported to the test, which fails on it
        results.put(f"{type(exc).__name__}: {exc}")  # type: ignore[attr-defined]


def test_many_processes_opening_a_fresh_store_together_all_start(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    failures = []
    for round_ in range(25):
        path = str(tmp_path / f"r{round_}.db")
        barrier = ctx.Barrier(6)
        results = ctx.Queue()
        procs = [ctx.Process(target=_open_fresh, args=(path, barrier, results)) for _ in range(6)]
        for p in procs:
            p.start()
        got = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(60)
        failures += [g for g in got if g != "ok"]
    assert failures == []


@pytest.mark.slow
def test_kiosk_commands_started_together_on_a_fresh_store_all_succeed(tmp_path: Path) -> None:
    """The reported case: several real ``kiosk`` processes on a store that does not exist."""
    hub = Ed25519PrivateKey.generate()
    failures = []
    for round_ in range(8):
        folder = tmp_path / f"r{round_}"
        folder.mkdir()
        cfg = write_config(folder, hub)
        cmds = [["events", "--json"], ["verify-log"], ["orders", "list"], ["events"]]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "kiosk.cli", "--config", str(cfg), *c],
                env=env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for c in cmds
        ]
        for c, p in zip(cmds, procs, strict=True):
            _, err = p.communicate(timeout=60)
            if p.returncode != 0:
                failures.append((round_, c, err[-300:]))
    assert failures == []


def test_a_second_store_in_one_process_keeps_the_first_ones_wal_alive(tmp_path: Path) -> None:
    """``kiosk run`` opens the store twice in one process (door and sync). Closing
    any descriptor of the file drops every POSIX lock the process holds on it,
    SQLite's included; another process (``kiosk events``) closing its connection
    then believes it is the last user and deletes the live -wal, and the door's
    later commits go to a deleted file nobody else sees (found running the
    README's hub walk-through: the hub archived seqs the kiosk's store lost)."""
    path = tmp_path / "kiosk.db"
    clock = TrustedClock(FakeClock(), synced=True)
    door = Store(path)
    Audit(door, "site-1").record("boot", clock.snapshot())
    sync = Store(path)  # the second open in the same process
    other = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
        " print(c.execute('SELECT count(*) FROM events').fetchone()[0]); c.close()"
    )
    count = [sys.executable, "-c", other, str(path)]
    assert subprocess.run(count, capture_output=True, text=True, check=True).stdout == "1\n"
    Audit(door, "site-1").record("door_opened", clock.snapshot())
    # another process sees the door's newest commit: the -wal it went to is the live one
    assert subprocess.run(count, capture_output=True, text=True, check=True).stdout == "2\n"
    assert Path(f"{path}-wal").exists()
    sync.close()
    door.close()
