"""The door daemon's effects interpreter: performs the door machine's actions.

:class:`Effects` turns :mod:`kiosk.door` actions into relay, buzzer and LED
calls and audit records, in the order the machine gave them, and keeps
"audit before action" (docs/design.md, rule 1): the records that come
before a physical action are committed first.

It also owns the store's health as the door sees it. When a write fails
(disk full, read-only card, locked past the timeout) the door goes out of
service for codes, the events it could not write are kept in memory (the
backlog), and :meth:`Effects.retry` writes them, oldest first, once the
store takes writes again. The exit button never waits for the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kiosk.audit import Audit
from kiosk.clock import ClockSnapshot
from kiosk.door import Action, Alarm, Collect, Energize, Hold, Record, Release
from kiosk.errors import StoreError
from kiosk.store import OrderRow, Store

log = logging.getLogger(__name__)

MAX_BACKLOG = 10_000  # events kept in memory while the store is unwritable


class LockPort(Protocol):
    def energize(self, seconds: float) -> None: ...
    def release(self) -> None: ...


class SignalPort(Protocol):
    def play(self, pattern: str) -> None: ...


class LedPort(Protocol):
    def set(self, state: str) -> None: ...


class BoardPort(Protocol):
    """What the daemon needs of a board (``hardware.board`` implements it)."""

    lock: Any
    buzzer: Any
    led: Any

    def start(self, post: Callable[[Any], None]) -> None: ...
    def door_is_open(self) -> bool: ...
    def close(self) -> None: ...


@dataclass
class Pending:
    """An event the store could not take yet."""

    type_: str
    snap: ClockSnapshot
    order_id: str | None
    detail: dict[str, Any]


@dataclass
class Effects:
    board: BoardPort
    audit: Audit
    release_s: float
    snap: Callable[[], ClockSnapshot]
    store_ok: bool = True
    backlog: list[Pending] = field(default_factory=list)
    dropped: int = 0
    # When the real store could not be opened at start, a stand-in is used and
    # this opens the real one again (see retry).
    reopen: Callable[[], Store] | None = None
    on_swap: list[Callable[[Store], None]] = field(default_factory=list)

    @property
    def store(self) -> Store:
        return self.audit.store

    # ----- audit ----------------------------------------------------------

    def record(
        self,
        type_: str,
        *,
        order_id: str | None = None,
        detail: dict[str, Any] | None = None,
        snap: ClockSnapshot | None = None,
    ) -> bool:
        """Record an event; on a store failure keep it and go out of service."""
        s = snap or self.snap()
        if self.store_ok:
            try:
                self.audit.record(type_, s, order_id=order_id, detail=detail)
                return True
            except StoreError as exc:
                self.store_failed(exc)
        self._keep(Pending(type_, s, order_id, dict(detail or {})))
        return False

    def _keep(self, item: Pending) -> None:
        if len(self.backlog) >= MAX_BACKLOG:
            self.dropped += 1  # journald still has the log lines
            return
        self.backlog.append(item)

    def store_failed(self, exc: Exception) -> None:
        if self.store_ok:
            log.error("the store cannot be written, codes are refused until it can: %s", exc)
            self.board.buzzer.play("alarm")
            self.board.led.set("fault")
            # The owner's alarm, stamped with when the outage began; it is the first
            # thing written once the store takes writes again (then store_recovered).
            self._keep(Pending("store_unwritable", self.snap(), None, {"error": str(exc)[-200:]}))
        self.store_ok = False

    def retry(self) -> bool:
        """Write the backlog if the store takes writes again; True when it did."""
        if self.reopen is not None:
            try:
                store = self.reopen()
            except StoreError:
                return False
            self.reopen = None
            stand_in, self.audit.store = self.audit.store, store
            for hook in self.on_swap:
                hook(store)
            stand_in.close()
        try:
            s = self.snap()
            with self.store.atomic():
                for item in self.backlog:
                    if item.type_ == "order_collected" and item.order_id:
                        self._mark_collected(item.order_id, item.snap)
                    self.audit.record(
                        item.type_, item.snap, order_id=item.order_id, detail=item.detail
                    )
                detail: dict[str, Any] = {"kept": len(self.backlog)}
                if self.dropped:
                    detail["dropped"] = self.dropped
                self.audit.record("store_recovered", s, detail=detail)
        except StoreError:
            return False
        log.warning(
            "the store is writable again; %d events kept in memory were written", len(self.backlog)
        )
        self.backlog.clear()
        self.dropped = 0
        self.store_ok = True
        self.board.led.set("idle")
        return True

    # ----- actions --------------------------------------------------------

    def write(self, actions: Iterable[Action], snap: ClockSnapshot) -> None:
        """The Record actions, inside the caller's transaction (StoreError escapes)."""
        for a in actions:
            if isinstance(a, Record):
                self.audit.record(a.type, snap, order_id=a.order_id, detail=a.detail_dict())

    def perform(self, actions: Iterable[Action]) -> None:
        """The physical actions (and collections), in order; never raises for the store."""
        for a in actions:
            if isinstance(a, Energize):
                self.board.lock.energize(self.release_s)
                self.board.led.set("unlocked")
            elif isinstance(a, Hold):
                self.board.lock.energize(self.release_s)
            elif isinstance(a, Release):
                self.board.lock.release()
                self.board.led.set("idle" if self.store_ok else "fault")
            elif isinstance(a, Alarm):
                if a.on:
                    self.board.buzzer.play("alarm")
                    self.board.led.set("alarm")
                else:
                    self.board.buzzer.silence()
                    self.board.led.set("idle" if self.store_ok else "fault")
            elif isinstance(a, Collect):
                self.collect(a.order_id)

    def apply(self, actions: Iterable[Action], *, must_record: bool = False) -> bool:
        """Record (with the backlog as fallback), then act.

        With ``must_record`` the physical actions happen only if the records
        were committed (audit before action for anything but the exit
        button); returns whether they happened.
        """
        actions = tuple(actions)
        snap = self.snap()
        records = [a for a in actions if isinstance(a, Record)]
        if records:
            committed = False
            if self.store_ok:
                try:
                    with self.audit.batch():
                        self.write(records, snap)
                    committed = True
                except StoreError as exc:
                    self.store_failed(exc)
            if not committed:
                if must_record:
                    return False
                for r in records:
                    self._keep(Pending(r.type, snap, r.order_id, r.detail_dict()))
        self.perform(a for a in actions if not isinstance(a, Record))
        return True

    def collect(self, order_id: str) -> None:
        """The customer went in: the order is collected (or kept for later)."""
        snap = self.snap()
        if self.store_ok:
            try:
                with self.store.atomic():
                    self._mark_collected(order_id, snap)
                    self.audit.record("order_collected", snap, order_id=order_id)
                return
            except StoreError as exc:
                self.store_failed(exc)
        self._keep(Pending("order_collected", snap, order_id, {}))

    def _mark_collected(self, order_id: str, snap: ClockSnapshot) -> None:
        order = self.store.get_order(order_id)
        if order is None or order.status == "collected":
            return
        self.store.put_order(
            OrderRow(
                **{
                    **order.__dict__,
                    "status": "collected",
                    "collected_at": snap.now,
                    "collected_locally": True,
                    "updated_at": snap.now,
                }
            )
        )
