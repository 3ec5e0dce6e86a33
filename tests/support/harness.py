"""Fault-campaign machinery shared by tests/reliability and bench/campaign.py.

- :class:`DoorProc`: a real ``kiosk door`` process on the simulated board,
  keys on its standard input, ready when it sends ``READY=1`` on a notify
  socket (the systemd contract), killable at any instant.
- :func:`check_store`: what must hold after every kill (SQLite integrity,
  gap-free seq, the hash chain).
- :func:`check_relay_trace`: every relay energization in a run was preceded
  by its committed ``door_unlocked`` event.
- :func:`door_crash_campaign`: N seeded kill cycles during pickups.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pyotp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.audit import verify_store
from kiosk.sample import order_doc
from kiosk.store import Store
from protocol.keys import sign_document
from tests.support.polling import wait_for as wait_until
from tests.support.procs import env
from tests.support.procs import kiosk as e2e_kiosk
from tests.support.procs import write_config as e2e_config

ROOT = Path(__file__).resolve().parents[2]
SITE = "rel-site"
ENERGIZED = "relay energized"  # hardware.devices logs this after the pin went to energizing


def write_config(
    tmp: Path, hub: Ed25519PrivateKey, *, mqtt_url: str = "", owner: Ed25519PrivateKey | None = None
) -> Path:
    """A sim-board config; keys on stdin post straight to the daemon (no matrix scan)."""
    return e2e_config(
        tmp,
        hub,
        owner,
        "inflight = 10" if mqtt_url else "",
        site=SITE,
        mqtt_url=mqtt_url,
        keypad="keyboard",
    )


def kiosk(*args: str, config: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return e2e_kiosk(*args, config=config, timeout=timeout)


def import_orders(config: Path, tmp: Path, hub: Ed25519PrivateKey, n: int) -> list[dict[str, Any]]:
    now = time.time()
    docs = [
        sign_document(order_doc(SITE, f"R-{i}", f"{i:03d}", now=now, backup_code=(i % 4 == 0)), hub)
        for i in range(n)
    ]
    path = tmp / "orders.jsonl"
    path.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in docs))
    out = kiosk("orders", "import", str(path), config=config)
    assert out.returncode == 0, out.stderr
    return docs


class _Proc:
    """A ``kiosk`` subprocess with its stderr in a file; killed or stopped once."""

    proc: subprocess.Popen[bytes]
    _err: IO[bytes]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(5)
        self._close()
        return rc

    def _close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        self._err.close()


class DoorProc(_Proc):
    """One ``kiosk door`` process; stderr goes to a file so a kill loses none of it."""

    _count = 0

    def __init__(self, config: Path, workdir: Path) -> None:
        DoorProc._count += 1
        self.n = DoorProc._count
        self.config = config
        self.err_path = workdir / f"door-{os.getpid()}-{self.n}.err"
        name = f"kiosk-rel-{os.getpid()}-{self.n}-{time.monotonic_ns()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + name)  # abstract: no path-length limit, nothing to clean up
        self._err: IO[bytes] = open(self.err_path, "wb")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kiosk.cli", "--config", str(config), "door"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._err,
            env=env(NOTIFY_SOCKET="@" + name),
            cwd=ROOT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"kiosk door exited {self.proc.returncode}: {self.stderr()}")
            self.sock.settimeout(0.2)
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            if "READY=1" in msg:
                return
        raise AssertionError(f"kiosk door not ready in {timeout} s: {self.stderr()[-2000:]}")

    def keys(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def _close(self) -> None:
        super()._close()
        self.sock.close()

    def stderr(self) -> str:
        if not self._err.closed:
            self._err.flush()
        return self.err_path.read_text(errors="replace")


# ----- checks -------------------------------------------------------------------


@dataclass(frozen=True)
class Marks:
    """Where a run starts in the store: the last event seq and log seq before it."""

    seq: int
    log_seq: int


def marks(db: Path) -> Marks:
    con = sqlite3.connect(db)
    try:
        seq = con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        log_seq = con.execute("SELECT coalesce(max(seq), 0) FROM logs").fetchone()[0]
    finally:
        con.close()
    return Marks(int(seq), int(log_seq))


def check_store(db: Path) -> int:
    """Integrity, gap-free seq and the hash chain; returns the number of events."""
    con = sqlite3.connect(db)
    try:
        (text,) = con.execute("PRAGMA integrity_check").fetchone()
        assert text == "ok", f"integrity_check: {text}"
        seqs = [r[0] for r in con.execute("SELECT seq FROM events ORDER BY seq")]
        bodies = [json.loads(r[0])["seq"] for r in con.execute("SELECT body FROM events")]
    finally:
        con.close()
    assert seqs == list(range(1, len(seqs) + 1)), "seq has a gap or does not start at 1"
    assert sorted(bodies) == seqs
    with Store(db) as store:
        assert verify_store(store) == len(seqs)
    return len(seqs)


def check_relay_trace(db: Path, stderr: str, since: Marks) -> tuple[int, int]:
    """Every relay energization in this run came after its committed door_unlocked.

    Counting: each door_unlocked energizes at most once from off, and a kill may
    land between the commit and the relay, so energizations <= door_unlocked.
    Order in time: the k-th energization (its log record's wall time, written
    right after the pin moved) is not earlier than the k-th door_unlocked commit.
    Returns (energizations, door_unlocked).
    """
    energized = sum(1 for line in stderr.splitlines() if ENERGIZED in line)
    con = sqlite3.connect(db)
    try:
        unlocked = [
            r[0]
            for r in con.execute(
                "SELECT ts FROM events WHERE seq > ? AND type = 'door_unlocked' ORDER BY seq",
                (since.seq,),
            )
        ]
        logged = [
            r[0]
            for r in con.execute(
                "SELECT ts FROM logs WHERE seq > ? AND message LIKE ? ORDER BY seq",
                (since.log_seq, ENERGIZED + "%"),
            )
        ]
    finally:
        con.close()
    assert energized <= len(unlocked), (
        f"relay energized {energized} times but only {len(unlocked)} door_unlocked committed"
    )
    assert len(logged) <= energized
    for k, t in enumerate(logged):
        assert unlocked[k] <= t, f"energization {k + 1} at {t} before its door_unlocked"
    return energized, len(unlocked)


# ----- the door crash campaign ----------------------------------------------------


@dataclass
class CodeBook:
    """Hands out pickup codes never typed before (each (order, step) once)."""

    docs: list[dict[str, Any]]
    rng: random.Random
    used: set[tuple[str, int]] = field(default_factory=set)
    backups_used: set[str] = field(default_factory=set)

    def next_code(self) -> str:
        now = time.time()
        for _ in range(10 * len(self.docs)):
            doc = self.rng.choice(self.docs)
            oid = doc["order_id"]
            if doc["backup_code"] and oid not in self.backups_used and self.rng.random() < 0.1:
                self.backups_used.add(oid)
                return str(doc["pickup_no"]) + str(pyotp.HOTP(doc["otp"]["secret"]).at(0))
            # The current step or the next: the kiosk judges within one step either side,
            # so neither can turn into a wrong code (which would feed the throttle).
            step = int(now // 30) + self.rng.randint(0, 1)
            if (oid, step) in self.used:
                continue
            self.used.add((oid, step))
            return str(doc["pickup_no"]) + str(pyotp.TOTP(doc["otp"]["secret"]).at(step * 30))
        raise RuntimeError("no unused code left; import more orders")


def pickup_script(book: CodeBook, rng: random.Random) -> list[str]:
    """Key chunks for one cycle: pickups, door open/close, sometimes the exit button."""
    chunks: list[str] = []
    for _ in range(rng.randint(1, 3)):
        chunks.extend(book.next_code() + "#")
        if rng.random() < 0.7:
            chunks += ["o", "c"]
        if rng.random() < 0.2:
            chunks.append("x")
    return chunks


@dataclass
class CampaignResult:
    kills: int = 0
    kills_during_start: int = 0
    events: int = 0
    energized: int = 0
    door_unlocked: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    cli_checks: int = 0

    def summary(self) -> str:
        return (
            f"{self.kills} SIGKILLs ({self.kills_during_start} during start-up); "
            f"{self.events} events, all checks passed after every restart; "
            f"relay energized {self.energized} times, door_unlocked committed "
            f"{self.door_unlocked} times; outcomes {dict(self.outcomes)}; "
            f"kiosk verify-log and kiosk relock ran {self.cli_checks} times"
        )


def _run_cli_checks(config: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "kiosk.cli", "--config", str(config), cmd],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
            cwd=ROOT,
        )
        for cmd in ("verify-log", "relock")
    ]
    for p, cmd in zip(procs, ("verify-log", "relock"), strict=True):
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, f"kiosk {cmd} failed: {out} {err}"


def door_crash_campaign(
    tmp: Path,
    kills: int,
    seed: int,
    *,
    orders: int = 200,
    cli_every: int = 1,
    progress: Callable[[int, CampaignResult], None] | None = None,
) -> CampaignResult:
    """SIGKILL ``kiosk door`` ``kills`` times at random instants during pickups."""
    rng = random.Random(seed)  # kill instants and scripts
    hub = Ed25519PrivateKey.generate()
    config = write_config(tmp, hub)
    db = tmp / "kiosk.db"
    # The code book's draws depend on the wall clock (TOTP steps): its own stream.
    book = CodeBook(import_orders(config, tmp, hub, orders), random.Random(seed + 1))
    res = CampaignResult()
    for cycle in range(kills):
        before = marks(db)
        door = DoorProc(config, tmp)
        try:
            if cycle % 10 == 5:  # one in ten during start-up (boot event, board, store)
                time.sleep(rng.uniform(0.0, 0.4))
                res.kills_during_start += 1
            else:
                door.wait_ready()
                status = json.loads(_meta(db, "door_status") or "{}")
                assert status.get("lock") == "locked", f"after restart: {status}"
                chunks = pickup_script(book, rng)
                gaps = [rng.uniform(0.0, 0.01) for _ in chunks]
                kill_at = time.monotonic() + rng.uniform(0.0, sum(gaps) + 0.15)
                for chunk, gap in zip(chunks, gaps, strict=True):
                    time.sleep(gap)
                    if time.monotonic() >= kill_at:
                        break
                    door.keys(chunk)
                time.sleep(max(0.0, kill_at - time.monotonic()))
        finally:
            door.kill()
        res.kills += 1
        res.events = check_store(db)
        e, u = check_relay_trace(db, door.stderr(), before)
        res.energized += e
        res.door_unlocked += u
        door.err_path.unlink()
        if cli_every and (cycle % cli_every == 0 or cycle == kills - 1):
            _run_cli_checks(config)
            res.cli_checks += 1
        if progress is not None:
            progress(cycle + 1, res)
    res.outcomes = _outcomes(db)
    return res


def _meta(db: Path, key: str) -> str | None:
    con = sqlite3.connect(db)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    finally:
        con.close()
    return str(row[0]) if row else None


def _outcomes(db: Path) -> Counter[str]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT type, body FROM events").fetchall()
    finally:
        con.close()
    out: Counter[str] = Counter()
    for type_, body in rows:
        if type_ == "code_rejected":
            out["rejected:" + json.loads(body)["detail"].get("reason", "?")] += 1
        elif type_ in ("code_accepted", "throttled", "exit_pressed", "order_collected", "boot"):
            out[type_] += 1
    return out


# ----- the sync agent under SIGKILL and broker faults -----------------------------


class SyncProc(_Proc):
    """One ``kiosk sync`` process, stderr to a file."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.err_path = workdir / "sync.err"
        self._err: IO[bytes] = open(self.err_path, "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kiosk.cli", "--config", str(config), "sync"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._err,
            env=env(),
            cwd=ROOT,
            start_new_session=True,
        )


def outbox_size(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT count(*) FROM events WHERE acked = 0").fetchone()[0])
    finally:
        con.close()


def count_events(db: Path, type_: str | None = None) -> int:
    con = sqlite3.connect(db)
    try:
        if type_ is None:
            return int(con.execute("SELECT count(*) FROM events").fetchone()[0])
        return int(
            con.execute("SELECT count(*) FROM events WHERE type = ?", (type_,)).fetchone()[0]
        )
    finally:
        con.close()


def stored_bodies(db: Path) -> dict[int, str]:
    con = sqlite3.connect(db)
    try:
        return {int(s): str(b) for s, b in con.execute("SELECT seq, body FROM events")}
    finally:
        con.close()


def open_door(door: DoorProc, db: Path, book: CodeBook, timeout: float = 10.0) -> float:
    """Type a valid code; return seconds until its door_unlocked was committed."""
    before = count_events(db, "door_unlocked")
    start = time.monotonic()
    door.keys(book.next_code() + "#")
    wait_until(
        lambda: count_events(db, "door_unlocked") > before,
        timeout,
        "the door to open",
        interval=0.01,
    )
    return time.monotonic() - start
