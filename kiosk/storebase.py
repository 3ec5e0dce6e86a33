"""The store's plumbing: one SQLite connection, its transactions, its error path.

:class:`StoreBase` opens the file (created 0600 before SQLite sees it, WAL,
``synchronous=FULL``, a busy timeout), applies the numbered migrations of
:mod:`kiosk.schema` race-free, and runs every statement through
:meth:`StoreBase._q` and :meth:`StoreBase._x`, the one path that maps
SQLite's errors to :class:`StoreError`. :class:`kiosk.store.Store` adds the
typed accessors on top.

Space: a store opened with ``low_priority`` (the sync agent) refuses to
start a write that would grow the file when the card is nearly full
(:class:`StoreFull`), unless the write is essential (``atomic(low=False)``:
acknowledgements, retention, command state). Any other store (the door)
gives the space reserve back to the file system just before a write when
the card is nearly full, so the door's commits find room first
(:mod:`kiosk.storefiles`).

What may escape: :class:`StoreError` (and its leaf :class:`StoreFull`), and
nothing else from SQLite.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Self

import sqlite_utils

from kiosk.errors import StoreError
from kiosk.schema import MIGRATIONS
from kiosk.storefiles import (
    Reserve,
    create_exclusive_private,
    create_private,
    free_bytes,
    tighten_side_files,
)

log = logging.getLogger(__name__)

DOOR_HEADROOM = 256 * 1024  # below this much free space the door releases the reserve
LOW_WATER = 1024 * 1024  # low-priority writers keep at least this much room


class StoreFull(StoreError):
    """A low-priority write refused before it began: the card is nearly full."""


class StoreBase:
    """The connection, its transactions and the one error path (see :class:`kiosk.store.Store`)."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_ms: int = 5000,
        low_priority: bool = False,
        low_water: int = LOW_WATER,
    ) -> None:
        self.path = Path(path)
        memory = str(path) == ":memory:"
        try:
            if not memory:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                create_private(self.path)
                tighten_side_files(self.path)
            conn = sqlite3.connect(
                str(path),
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
                timeout=busy_timeout_ms / 1000,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the database: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the database: {exc.strerror or exc}") from exc
        self._conn = conn
        self._lock = threading.RLock()
        self._depth = 0
        self.rollbacks = 0  # nested rollbacks so far (cached tails check it)
        self.low_priority = low_priority
        self.low_water = max(0, int(low_water))
        self.reserve = Reserve(self.path, 0)
        self.longest_write_s = 0.0  # the longest top-level write transaction (benchmarks)
        try:
            self._setup(busy_timeout_ms, memory)
            self.migrate()
        except BaseException:
            conn.close()
            raise

    def _setup(self, busy_timeout_ms: int, memory: bool) -> None:
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            # Sorting and temporary indexes never need the (possibly full) card.
            self._conn.execute("PRAGMA temp_store = MEMORY")
            mode = self._journal_wal(busy_timeout_ms / 1000)
            if not memory and mode.lower() != "wal":
                raise StoreError(
                    f"{self.path}: cannot switch the database to WAL mode (got {mode})"
                )
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the database: {exc}") from exc

    def _journal_wal(self, timeout_s: float) -> str:
        # Two processes creating the file at once: switching to WAL needs the
        # file to themselves for an instant, and SQLite does not always wait.
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return str(self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    # ----- plumbing -------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _make_room(self, low: bool) -> None:
        """Before a top-level write: the space policy of the module docstring."""
        if str(self.path) == ":memory:":
            return
        free = free_bytes(self.path.parent)
        if low:
            if free < self.low_water and free + self.freelist_bytes() < self.low_water:
                raise StoreFull(
                    f"{self.path}: {free // 1024} KiB free on the card; this write waits "
                    "until retention makes room (the door's writes go first)"
                )
        elif free < DOOR_HEADROOM:
            self.reserve.release()

    def freelist_bytes(self) -> int:
        """Space inside the file that new rows reuse before the file grows."""
        with self._lock:
            try:
                pages = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
                size = self._conn.execute("PRAGMA page_size").fetchone()[0]
            except sqlite3.Error:
                return 0
        return int(pages) * int(size)

    @contextmanager
    def atomic(self, *, low: bool | None = None) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE); nested calls are savepoints.

        Taking the write lock at BEGIN means a concurrent writer waits up to
        the busy timeout instead of failing half-way through. A nested block
        that raises rolls back only its own writes (and bumps ``rollbacks``,
        so cached reads of the chain's tail are dropped). ``low`` says whether
        this write yields to the door when space is short (default: the
        store's ``low_priority``); it only matters for the outermost block.
        """
        with self._lock:
            depth = self._depth
            name = f"sp{depth}"
            if not depth:
                self._make_room(self.low_priority if low is None else low)
            try:
                self._conn.execute(f"SAVEPOINT {name}" if depth else "BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot start a write: {exc}") from exc
            started = time.perf_counter()
            self._depth = depth + 1
            try:
                yield
            except BaseException:
                self._depth = depth
                self.rollbacks += 1
                try:
                    if depth:
                        self._conn.execute(f"ROLLBACK TO {name}")
                        self._conn.execute(f"RELEASE {name}")
                    else:
                        self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rollback failed")
                raise
            self._depth = depth
            try:
                self._conn.execute(f"RELEASE {name}" if depth else "COMMIT")
            except sqlite3.Error as exc:
                self.rollbacks += 1
                if not depth:
                    with suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                raise StoreError(f"{self.path}: cannot commit: {exc}") from exc
            if not depth:
                self.longest_write_s = max(self.longest_write_s, time.perf_counter() - started)

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            try:
                cur = self._conn.execute(sql, params)
                cols = [d[0] for d in cur.description or ()]
                return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: read failed: {exc}") from exc

    def _x(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._conn.execute(sql, params)
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: write failed: {exc}") from exc

    def _xmany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock:
            try:
                self._conn.executemany(sql, rows)
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: write failed: {exc}") from exc

    def on_statement(self, callback: Callable[[str], None] | None) -> None:
        """Call ``callback`` with every SQL statement run (benchmarks count commits)."""
        self._conn.set_trace_callback(callback)

    def checkpoint(self, mode: str = "TRUNCATE") -> None:
        """Fold the WAL into the main file (tests, benchmarks, and making room)."""
        if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
            raise ValueError(f"not a checkpoint mode: {mode!r}")
        self._x(f"PRAGMA wal_checkpoint({mode})")

    def pragma(self, name: str) -> Any:
        """Read one PRAGMA's value (tests and the doctor)."""
        if not name.isidentifier():
            raise ValueError(f"not a pragma name: {name!r}")
        rows = self._q(f"PRAGMA {name}")
        return next(iter(rows[0].values())) if rows else None

    def schema_version(self) -> int:
        return int(self._q("PRAGMA user_version")[0]["user_version"])

    def migrate(self) -> None:
        """Apply pending numbered migrations, each in one write transaction.

        The version is read again inside the transaction: two processes that
        open a fresh file together both see "version 0" outside it, but only
        the first to take the write lock migrates; the other finds it done.
        """
        with self._lock:
            if self._check_version() >= len(MIGRATIONS):
                return
            for number in range(1, len(MIGRATIONS) + 1):
                try:
                    with self.atomic(low=False):
                        if self._check_version() >= number:
                            continue
                        MIGRATIONS[number - 1](sqlite_utils.Database(self._conn))
                        self._conn.execute(f"PRAGMA user_version = {number}")
                except sqlite3.Error as exc:
                    raise StoreError(f"{self.path}: migration {number} failed: {exc}") from exc
                log.info("store schema migrated to %d", number)

    def _check_version(self) -> int:
        current = self.schema_version()
        if current > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: the database has schema {current}, newer than this "
                f"program's {len(MIGRATIONS)}: upgrade pickup-kiosk"
            )
        return current

    def integrity_ok(self) -> tuple[bool, str]:
        rows = self._q("PRAGMA integrity_check")
        text = "; ".join(str(next(iter(r.values()))) for r in rows)
        return text == "ok", text

    def backup_to(self, dest: str | Path) -> None:
        """A consistent copy through SQLite's backup API (never copy the files).

        The copy is created 0600 before a byte is written (it holds the
        secrets); an existing ``dest`` is refused (FileExistsError).
        """
        dest = Path(dest)
        create_exclusive_private(dest)
        with self._lock:
            try:
                target = sqlite3.connect(str(dest))
                try:
                    self._conn.backup(target)
                finally:
                    target.close()
            except sqlite3.Error as exc:
                with suppress(OSError):
                    dest.unlink()
                raise StoreError(f"{dest}: backup failed: {exc}") from exc

    # ----- meta ---------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        rows = self._q("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def set_meta(self, key: str, value: str) -> None:
        with self.atomic(low=False):  # a few bytes, rewritten in place
            self._x(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
