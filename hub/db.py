"""The hub's SQLite file: opening it safely, migrations, transactions.

One file holds the archive, the orders, the staff codes, the API tokens and
the alerts (docs/hub.md, "Backup"). It is created mode 0600 before SQLite
touches it (it holds order and live staff secrets), runs in WAL mode with
``synchronous=FULL`` so that every commit survives a power cut, and migrates
by numbered steps, each in one transaction (docs/design.md).

A :class:`Database` is used by one thread at a time; the service funnels
every call through :class:`Runner`, a single worker thread, so the event
loop never waits on a disk flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from hub.errors import ArchiveError

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

MIGRATIONS: tuple[str, ...] = (
    # 1: archive, chain state, orders, tokens, alerts
    """
    CREATE TABLE events (
        site TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL,
        type TEXT NOT NULL, order_id TEXT, ts TEXT NOT NULL,
        body BLOB NOT NULL, source TEXT NOT NULL, received_at REAL NOT NULL,
        PRIMARY KEY (site, seq)
    );
    CREATE TABLE early (
        site TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL,
        body BLOB NOT NULL, source TEXT NOT NULL, received_at REAL NOT NULL,
        PRIMARY KEY (site, seq, hash)
    );
    CREATE TABLE chain (
        site TEXT PRIMARY KEY, tail_seq INTEGER NOT NULL, tail_hash TEXT NOT NULL,
        bytes INTEGER NOT NULL DEFAULT 0, early INTEGER NOT NULL DEFAULT 0,
        early_max INTEGER NOT NULL DEFAULT 0, status_last_seq INTEGER NOT NULL DEFAULT 0,
        break_seq INTEGER, break_message TEXT, duplicates INTEGER NOT NULL DEFAULT 0,
        gap_since REAL
    );
    CREATE TABLE evidence (
        id INTEGER PRIMARY KEY, site TEXT NOT NULL, seq INTEGER, kind TEXT NOT NULL,
        message TEXT NOT NULL, body BLOB, received_at REAL NOT NULL
    );
    CREATE INDEX evidence_site ON evidence(site, id);
    CREATE TABLE rejections (
        site TEXT NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL,
        first_at REAL NOT NULL, last_at REAL NOT NULL, PRIMARY KEY (site, reason)
    );
    CREATE TABLE logs (
        site TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL,
        PRIMARY KEY (site, seq)
    );
    CREATE TABLE site_status (
        site TEXT PRIMARY KEY, body TEXT NOT NULL, received_at REAL NOT NULL
    );
    CREATE TABLE orders (
        site TEXT NOT NULL, order_id TEXT NOT NULL, version INTEGER NOT NULL,
        status TEXT NOT NULL, pickup_no TEXT NOT NULL, slot TEXT,
        doc TEXT NOT NULL, token TEXT NOT NULL UNIQUE, created_at REAL NOT NULL,
        updated_at REAL NOT NULL, expires_at REAL, published_version INTEGER NOT NULL DEFAULT 0,
        forgotten INTEGER NOT NULL DEFAULT 0, created_by TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (site, order_id)
    );
    CREATE INDEX orders_active ON orders(site, status, pickup_no);
    CREATE INDEX orders_unpublished ON orders(published_version, version);
    CREATE TABLE pickup_numbers (site TEXT PRIMARY KEY, next_no INTEGER NOT NULL);
    CREATE TABLE idempotency (
        client TEXT NOT NULL, key TEXT NOT NULL, site TEXT NOT NULL,
        request_hash TEXT NOT NULL, status INTEGER NOT NULL, response TEXT NOT NULL,
        created_at REAL NOT NULL, PRIMARY KEY (client, key)
    );
    CREATE TABLE tokens (
        name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY, site TEXT NOT NULL, kind TEXT NOT NULL,
        key TEXT NOT NULL, state TEXT NOT NULL, raised_at REAL NOT NULL,
        cleared_at REAL, acked_at REAL, acked_by TEXT, detail TEXT NOT NULL,
        delivered TEXT NOT NULL DEFAULT ''
    );
    CREATE UNIQUE INDEX alerts_key ON alerts(site, kind, key);
    CREATE TABLE mutes (
        site TEXT NOT NULL, kind TEXT NOT NULL, until REAL NOT NULL,
        PRIMARY KEY (site, kind)
    );
    """,
    # 2: the owner's console: accounts, sessions, its audit log, browser keys,
    # remote commands, the kiosks' online history; indexes its pages need
    """
    CREATE TABLE accounts (
        name TEXT PRIMARY KEY, role TEXT NOT NULL, pw_hash TEXT NOT NULL,
        generation INTEGER NOT NULL DEFAULT 1, created_at REAL NOT NULL,
        changed_at REAL NOT NULL
    );
    CREATE TABLE sessions (
        sid_hash TEXT PRIMARY KEY, account TEXT NOT NULL, generation INTEGER NOT NULL,
        csrf TEXT NOT NULL, created_at REAL NOT NULL, seen_at REAL NOT NULL,
        address TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX sessions_account ON sessions(account);
    CREATE TABLE console_audit (
        id INTEGER PRIMARY KEY, at REAL NOT NULL, account TEXT NOT NULL,
        action TEXT NOT NULL, site TEXT, target TEXT, detail TEXT NOT NULL,
        address TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE browser_keys (
        key_id TEXT PRIMARY KEY, account TEXT NOT NULL, public_key TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL, created_at REAL NOT NULL, revoked_at REAL
    );
    CREATE INDEX browser_keys_account ON browser_keys(account);
    CREATE TABLE console_commands (
        cmd_id TEXT PRIMARY KEY, site TEXT NOT NULL, cmd TEXT NOT NULL,
        account TEXT NOT NULL, doc TEXT NOT NULL, state TEXT NOT NULL,
        signer TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL,
        expires_at REAL NOT NULL, sent_at REAL, finished_at REAL,
        result TEXT, refusal TEXT, target TEXT
    );
    CREATE INDEX console_commands_site ON console_commands(site, created_at);
    CREATE TABLE presence (
        id INTEGER PRIMARY KEY, site TEXT NOT NULL, at REAL NOT NULL, online INTEGER NOT NULL
    );
    CREATE INDEX presence_site ON presence(site, at);
    CREATE INDEX events_ts ON events(site, ts, seq);
    CREATE INDEX events_order ON events(site, order_id) WHERE order_id IS NOT NULL;
    CREATE INDEX orders_updated ON orders(site, updated_at);
    """,
    # 3: staff and courier codes the console issues (hub/staff.py): the signed
    # document is kept only while the code is live or its revocation unsent
    """
    CREATE TABLE staff (
        site TEXT NOT NULL, staff_id TEXT NOT NULL, staff_no TEXT NOT NULL,
        name TEXT NOT NULL, role TEXT NOT NULL, valid_from REAL, valid_until REAL,
        schedule TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,
        version INTEGER NOT NULL, doc TEXT NOT NULL,
        published_version INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
        created_by TEXT NOT NULL, updated_at REAL NOT NULL,
        PRIMARY KEY (site, staff_id)
    );
    CREATE INDEX staff_number ON staff(site, staff_no, revoked);
    CREATE INDEX staff_unpublished ON staff(published_version, version);
    """,
)


def _create_private(path: Path) -> None:
    """Create the file 0600 before SQLite opens it (SQLite's journal files
    take the database file's mode, so they are private too)."""
    if path.exists():
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class Database:
    """One connection to the hub's SQLite file, migrated to the newest schema.

    Raises ArchiveError when the file cannot be created, opened or migrated.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise ArchiveError(f"{self.path}: no archive here (start `pickup-hub serve` once)")
        try:
            if create:
                if not self.path.parent.is_dir():
                    raise ArchiveError(f"{self.path}: directory {self.path.parent} does not exist")
                _create_private(self.path)
            self.conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            self.conn.row_factory = sqlite3.Row
            self._journal_wal(10.0)
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA busy_timeout=10000")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except ArchiveError:
            raise  # (an OSError too: it would lose its words below)
        except sqlite3.Error as exc:
            raise ArchiveError(f"{self.path}: cannot open the archive: {exc}") from None
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise ArchiveError(f"{self.path}: cannot create the archive: {why}") from None
        self._depth = 0

    def _journal_wal(self, timeout_s: float) -> None:
        # Two processes creating the file at once (serve starting while `token
        # add` runs): switching to WAL needs the file to itself for an instant,
        # and SQLite answers "database is locked" at once instead of waiting.
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _migrate(self) -> None:
        version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise ArchiveError(
                f"{self.path}: the archive is schema {version}, newer than this hub "
                f"({len(MIGRATIONS)}); upgrade pickup-hub"
            )
        for number in range(version + 1, len(MIGRATIONS) + 1):
            self.conn.execute("BEGIN IMMEDIATE")
            # Another process (serve starting while `token add` runs) may have
            # taken this step while we waited for the write lock.
            if int(self.conn.execute("PRAGMA user_version").fetchone()[0]) >= number:
                self.conn.execute("COMMIT")
                continue
            try:
                for statement in MIGRATIONS[number - 1].split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {number}")
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            log.info("archive %s migrated to schema %d", self.path, number)

    @contextlib.contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """One transaction (nested calls join the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise ArchiveError(f"{self.path}: cannot write the archive: {exc}") from None
        self._depth = 1
        try:
            yield self.conn
        except BaseException:
            self._depth = 0
            self.conn.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            raise ArchiveError(f"{self.path}: cannot commit to the archive: {exc}") from None

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise ArchiveError(f"{self.path}: cannot read the archive: {exc}") from None

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def backup(self, target: str | os.PathLike[str]) -> None:
        """A consistent copy through SQLite's backup API (never a file copy)."""
        dest = Path(target)
        if dest.exists():
            raise ArchiveError(f"{dest} exists; choose a new file")
        _create_private(dest)
        out = sqlite3.connect(dest)
        try:
            self.conn.backup(out)
        finally:
            out.close()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()


class Runner:
    """Every archive call on one worker thread, awaited from the event loop."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive")

    async def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
