"""The hub's HTTP side: one Starlette app, routes by area, one view layer.

:func:`create_app` is the factory the service (and the tests) call with an
:class:`AppContext`. The JSON API lives in one module per area (``orders``,
``sites``, ``alerts``) under ``/api/v1`` and stays bearer-token only. With
``ctx.console`` set, the owner's console is served under ``/console``
(``console_*`` modules, collected by :mod:`hub.web.console_routes`; session
cookies and CSRF in :mod:`hub.web.session`) and the customers' code pages
under ``/c/{token}`` (:mod:`hub.web.customer`). Every handler answers
through :mod:`hub.web.views`: JSON for programs, Jinja2 templates for
people.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount

from hub.alerts import AlertBook
from hub.archive import SqliteArchive
from hub.config import Config
from hub.console import Console
from hub.db import Runner
from hub.orders import OrderBook
from hub.staff import StaffBook
from hub.tokens import Tokens
from hub.web.headers import SafeHeaders


@dataclass
class AppContext:
    """What the HTTP side may use; built by the service's composition root."""

    cfg: Config
    archive: SqliteArchive
    orders: OrderBook
    tokens: Tokens
    alerts: AlertBook
    runner: Runner
    clock: Callable[[], float]
    #: called after an order changed, so the publisher sends it at once
    orders_changed: Callable[[], None] = lambda: None
    #: called after an alert was acknowledged or a mute changed
    alerts_changed: Callable[[], None] = lambda: None
    extra: dict[str, Any] = field(default_factory=dict)
    #: the owner's console and the customers' pages (None: the JSON API only)
    console: Console | None = None
    #: staff and courier codes the console issues (None: no Staff page)
    staff: StaffBook | None = None
    #: called after a staff code changed, so the publisher sends it at once
    staff_changed: Callable[[], None] = lambda: None


def create_app(ctx: AppContext, *, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    """The hub's ASGI app. ``extra_routes`` is where the console mounts (issue 15)."""
    from hub.web import alerts as alert_routes
    from hub.web import customer as customer_routes
    from hub.web import orders as order_routes
    from hub.web import sites as site_routes
    from hub.web import views

    api = [*order_routes.routes(), *site_routes.routes(), *alert_routes.routes()]
    pages: list[BaseRoute] = []
    if ctx.console is not None:
        from hub.web import console_routes

        pages = console_routes.routes()
    app = Starlette(
        routes=[
            Mount("/api/v1", routes=api),
            *customer_routes.routes(),
            *pages,
            *(extra_routes or []),
        ],
        exception_handlers=views.exception_handlers(),
        middleware=[Middleware(SafeHeaders)],
    )
    app.state.ctx = ctx
    return app
