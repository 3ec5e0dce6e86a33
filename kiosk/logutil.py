"""Logging for both daemons: stderr for journald, and the store for upload.

Records at or above the configured level are also queued durably in the
store's ``logs`` table, from where the sync agent publishes them on the
``log`` topic. A token bucket keeps a flood from filling the SD card: what
exceeds it is counted and summarized in one record when the flood ends.
Messages are the program's own sentences; nothing here ever formats a
secret or typed digits, and the handler never raises into the caller.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

from kiosk.store import Store

FORMAT = "%(levelname)s %(name)s: %(message)s"
MAX_MESSAGE = 2000  # characters of one stored record; a traceback is cut here


def describe_defect(exc: BaseException) -> str:
    """An exception's class and where it was raised, without its message.

    Messages of exceptions met while judging untrusted input may quote the
    input (``invalid literal for int(): '...'``); the class and the place are
    enough to find the defect, and never carry a payload or a secret.
    """
    tb = exc.__traceback__
    where = ""
    while tb is not None:
        code = tb.tb_frame.f_code
        place = "/".join(code.co_filename.split("/")[-2:])
        where = f" at {place}:{tb.tb_lineno} in {code.co_name}"
        tb = tb.tb_next
    return f"{type(exc).__name__}{where}"


class StoreLogHandler(logging.Handler):
    def __init__(
        self,
        store: Store,
        wall: Callable[[], float],
        *,
        level: int = logging.INFO,
        per_minute: int = 120,
    ) -> None:
        super().__init__(level)
        self.store = store
        self.wall = wall
        self.capacity = float(per_minute)
        self.tokens = float(per_minute)
        self.rate = per_minute / 60.0
        self.last = wall()
        self.dropped = 0
        self._busy = threading.local()

    def handleError(self, record: logging.LogRecord) -> None:
        # The store is full or read-only: stderr (journald) still has the record,
        # and the door daemon reports the store's state itself.
        self.dropped += 1

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._busy, "on", False) or record.name.startswith("kiosk.store"):
            return  # a store failure must not recurse through its own log line
        self._busy.on = True
        try:
            now = self.wall()
            self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.last) * self.rate)
            self.last = now
            if self.tokens < 1:
                self.dropped += 1
                return
            self.tokens -= 1
            if self.dropped:
                self.store.append_log(
                    now,
                    "WARNING",
                    __name__,
                    f"{self.dropped} log records dropped by the rate limit",
                )
                self.dropped = 0
            text = self.format(record)
            if len(text) > MAX_MESSAGE:
                text = text[:MAX_MESSAGE] + " [cut]"
            self.store.append_log(now, record.levelname, record.name, text)
        except Exception:
            self.handleError(record)
        finally:
            self._busy.on = False


def setup(level: str = "INFO") -> None:
    """Log to stderr (journald adds time and unit)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


def attach_store(
    store: Store, wall: Callable[[], float], level: str = "INFO", per_minute: int = 120
) -> StoreLogHandler:
    handler = StoreLogHandler(
        store, wall, level=getattr(logging, level.upper(), logging.INFO), per_minute=per_minute
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


class Throttled:
    """At most one log line per key per ``every_s`` (monotonic seconds); the
    lines held back are counted and said with the next one. For defects and
    failures that a flood of input could repeat thousands of times a second."""

    def __init__(self, every_s: float = 60.0) -> None:
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def ready(self, key: str, now_mono: float) -> int | None:
        """None when this line must be held back; else how many were held since."""
        last = self._last.get(key)
        if last is not None and now_mono - last < self.every_s:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now_mono
        return self._held.pop(key, 0)

    def defect(
        self, logger: logging.Logger, key: str, now_mono: float, what: str, exc: BaseException
    ) -> None:
        held = self.ready(key, now_mono)
        if held is None:
            return
        more = f" ({held} more like it held back)" if held else ""
        logger.error("%s failed: %s%s", what, describe_defect(exc), more)
        logger.debug("the defect in full", exc_info=exc)
