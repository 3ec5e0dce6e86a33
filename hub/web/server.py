"""The HTTP connections uvicorn accepts for the hub: bounded, and never held idle.

Plain uvicorn (h11) keeps a connection that sends nothing, or sends its
request's head one byte at a time, open for ever. About a thousand of them
(``LimitNOFILE`` is 1024 under systemd) used up the hub's file descriptors:
the console and the API stopped answering, and a broker reconnect would have
failed too (tests/console/test_attacks_served.py). So here:

- a request's head (request line and headers) must arrive within
  :data:`HEAD_TIMEOUT_S` of the connection opening or of the previous
  response ending, else the connection is closed; a body or a response may
  take as long as it needs (a slow import, the live stream);
- at most :data:`MAX_CONNECTIONS` connections at once, and at most
  :data:`MAX_PER_ADDRESS` from one address (not counted behind a trusted
  proxy, where every connection comes from the proxy); a connection over
  either is closed at once, so descriptors stay free for the archive;
- :func:`raise_file_limit` lifts the soft descriptor limit to the hard one
  at start-up.

Many addresses together can still keep the console busy (put a reverse
proxy in front of a hub on the internet); they cannot stop the archive.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

HEAD_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 600
MAX_PER_ADDRESS = 64


def raise_file_limit() -> int:
    """Lift the soft limit on open files to the hard one; the soft limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d: %s", soft, exc)
    return soft


def protocol(*, per_address: bool) -> type[asyncio.Protocol]:
    """uvicorn's ``http`` protocol class for the hub (``per_address``: count addresses)."""

    class Guarded(_Guarded):
        count_addresses = per_address

    return Guarded


class _Guarded(H11Protocol):
    count_addresses = True
    _refused = 0  # connections closed over a limit (for the log, once per 100)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > MAX_CONNECTIONS or (
            self.count_addresses and self._from_here() > MAX_PER_ADDRESS
        ):
            self.connections.discard(self)  # not counted while the close is under way
            type(self)._refused += 1
            if type(self)._refused % 100 == 1:
                log.warning(
                    "too many HTTP connections (%d open; this one from %s): closing new ones",
                    len(self.connections),
                    self.client[0] if self.client else "?",
                )
            transport.abort()
            return
        self._arm()

    def _from_here(self) -> int:
        host = self.client[0] if self.client else None
        mine = (getattr(c, "client", None) for c in self.connections)
        return sum(1 for peer in mine if peer and peer[0] == host)

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.cycle is None or self.cycle.response_complete:  # no request under way
            self.transport.abort()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # the head arrived; the request may take its time

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's head has the same limit

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
