"""The console's routes in one list, its static files, the language switch and
the live stream.

``GET /console/live`` is a Server-Sent Events stream (sse-starlette) of
change names (:mod:`hub.console.live`): an event ``change`` whose data is
the names, space-separated. The page's script (``static/console.js``)
turns each name into an htmx trigger (``live:sites``, ``live:site:ID``,
...) on which fragments fetch themselves again. Without JavaScript, or
when the stream is refused, pages still work (and reload by hand).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from hub.console.live import KEEPALIVE_S, Subscription
from hub.web import (
    console_account,
    console_alerts,
    console_orders,
    console_sites,
    console_staff,
    console_unlock,
    i18n,
)
from hub.web.common import ctx
from hub.web.session import console, require, safe_next


async def root(_request: Request) -> Response:
    return RedirectResponse("/console/", status_code=303)


async def lang(request: Request) -> Response:
    """``/console/lang/{lang}?next=PATH``: the language switch (a cookie for a year)."""
    chosen = str(request.path_params["lang"])
    target = safe_next(request.query_params.get("next"))
    response = RedirectResponse(target, status_code=303)
    if chosen in i18n.LANGS:
        response.set_cookie(i18n.COOKIE, chosen, max_age=365 * 86400, samesite="lax", path="/")
    return response


async def live(request: Request) -> Response:
    session = await require(request)
    c = ctx(request)
    con = console(request)
    sub = con.live.subscribe(session.account.name)
    if sub is None:
        return Response(status_code=204)  # the page falls back to reloading by hand
    limits = c.cfg.console

    async def still_live() -> bool:
        return bool(
            await c.runner.call(
                con.accounts.still_live,
                session.sid_hash,
                c.clock(),
                max_age_s=limits.session_days * 86400,
                idle_s=limits.idle_days * 86400,
            )
        )

    async def stream() -> AsyncIterator[dict[str, Any]]:
        yield {"event": "ready", "data": "ok", "retry": 3000}
        checked = time.monotonic()
        async for names in sub.changes():
            # when the account logged out, and every KEEPALIVE_S even while changes keep
            # coming: a stream ends with its session (logout everywhere, idle, a new
            # password or role from `adduser --replace` in another process)
            due = time.monotonic() - checked >= KEEPALIVE_S
            if sub.take_recheck() or due or not names:
                checked = time.monotonic()
                if not await still_live():
                    return
            if names:
                yield {"event": "change", "data": " ".join(sorted(names))}
            else:
                yield {"comment": "keep-alive"}

    return _Stream(sub, stream(), ping=0, headers={"X-Accel-Buffering": "no"})


class _Stream(EventSourceResponse):
    """The live stream; its place is given back however the response ends (a page
    that goes away before its stream started never enters ``changes()``)."""

    def __init__(self, sub: Subscription, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._sub = sub

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._sub.leave()


def routes() -> list[BaseRoute]:
    return [
        Route("/", root, methods=["GET"]),
        Route("/console", root, methods=["GET"]),
        Route("/console/lang/{lang}", lang, methods=["GET"]),
        Route("/console/live", live, methods=["GET"]),
        *console_account.routes(),
        *console_sites.routes(),
        *console_alerts.routes(),
        *console_unlock.routes(),
        *console_staff.routes(),
        *console_orders.routes(),
        Mount("/static", app=StaticFiles(packages=[("hub.web", "static")]), name="static"),
    ]
