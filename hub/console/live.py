"""Live updates for open console pages: what changed, pushed as Server-Sent Events.

The service tells :class:`Live` what changed after each batch it archived
and each tick (:meth:`Live.changed`): ``sites`` (a kiosk's status),
``site:{id}`` (new events or alerts of a site), ``alerts``, ``orders``,
``cmd:{cmd_id}`` (a remote command's answer). Each open page holds one
:class:`Subscription`; a change only *names* what to fetch again (the page
asks for its fragment through the normal, authenticated routes), so one
slow page never holds data for others, and a burst of changes is coalesced
into one set per page (memory per page is bounded by the names it can
hold, never by the number of changes). An account holds at most
:data:`MAX_PER_ACCOUNT` streams, so one (stolen) login cannot take every
stream from the others; a stream checks its session at least every 15 s
and when its account logs out, and ends with the session.

:meth:`Live.close` ends every stream: the service calls it when it stops,
so uvicorn is not kept waiting by open pages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable

log = logging.getLogger(__name__)

MAX_SUBSCRIBERS = 500
MAX_PER_ACCOUNT = 16  # a phone, a laptop and their tabs; one account never takes every stream
MAX_NAMES = 256  # distinct pending names per page before they collapse to "all"
KEEPALIVE_S = 15.0


class Subscription:
    def __init__(self, live: Live, account: str = "") -> None:
        self._live = live
        self.account = account
        self._pending: set[str] = set()
        self._ready = asyncio.Event()
        self.closed = False
        self._recheck = False

    def recheck(self) -> None:
        """Wake the page's stream so it checks that its session is still live."""
        self._recheck = True
        self._ready.set()

    def leave(self) -> None:
        """Give the place back (idempotent)."""
        self._live.unsubscribe(self)

    def take_recheck(self) -> bool:
        asked, self._recheck = self._recheck, False
        return asked

    def push(self, names: Iterable[str]) -> None:
        self._pending.update(names)
        if len(self._pending) > MAX_NAMES:
            self._pending = {"all"}
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def changes(self, stop: asyncio.Event | None = None) -> AsyncIterator[set[str]]:
        """Sets of changed names; an empty set every :data:`KEEPALIVE_S` (a keep-alive)."""
        try:
            while not self.closed and not (stop is not None and stop.is_set()):
                try:
                    await asyncio.wait_for(self._ready.wait(), timeout=KEEPALIVE_S)
                except TimeoutError:
                    yield set()
                    continue
                self._ready.clear()
                if self.closed:
                    return
                names, self._pending = self._pending, set()
                yield names
        finally:
            self.leave()


class Live:
    """The hub's one broadcaster of changes to open pages."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self.closed = False
        self.sent = 0

    def subscribe(self, account: str = "") -> Subscription | None:
        """A new subscription, or None when closed, full, or when ``account`` already
        holds :data:`MAX_PER_ACCOUNT` (the page then reloads by hand)."""
        if self.closed or len(self._subs) >= MAX_SUBSCRIBERS:
            return None
        if sum(1 for s in self._subs if s.account == account) >= MAX_PER_ACCOUNT:
            return None
        sub = Subscription(self, account)
        self._subs.add(sub)
        return sub

    def sessions_ended(self, account: str) -> None:
        """``account`` logged out (here or everywhere): its streams check their sessions."""
        for sub in list(self._subs):
            if sub.account == account:
                sub.recheck()

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def changed(self, names: Iterable[str]) -> None:
        names = set(names)
        if not names:
            return
        self.sent += 1
        for sub in list(self._subs):
            sub.push(names)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def close(self) -> None:
        self.closed = True
        for sub in list(self._subs):
            sub.close()
        self._subs.clear()
