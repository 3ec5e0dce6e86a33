"""``/api/v1/sites``: each site's live state, chain state and archived events."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.web import AppContext
from hub.web.common import client, ctx, int_query, site_param
from hub.web.views import render
from protocol.canonical import decode_json_object
from protocol.times import format_time


def site_view(c: AppContext, site: str) -> dict[str, Any]:
    """One site for people and programs (runs on the archive thread)."""
    section = c.cfg.site(site)
    status = c.archive.status(site)
    return {
        "site": site,
        "name": section.name if section else "",
        "status": status[0] if status else None,
        "status_received_at": format_time(status[1]) if status else None,
        "chain": c.archive.chain(site).as_dict(),
        "archived": c.archive.count(site),
        "rejected": c.archive.rejections(site),
        "alerts": [a.as_dict() for a in c.alerts.search(site=site, state="active")],
    }


async def health(request: Request) -> Response:
    return render(request, {"ok": True})


async def all_sites(request: Request) -> Response:
    await client(request)
    c = ctx(request)

    def views() -> list[dict[str, Any]]:
        return [site_view(c, s) for s in c.cfg.site_ids]

    return render(request, {"sites": await c.runner.call(views)}, template="sites.html")


async def one_site(request: Request) -> Response:
    await client(request)
    site = site_param(request)
    c = ctx(request)
    return render(request, await c.runner.call(site_view, c, site), template="site.html")


async def events(request: Request) -> Response:
    await client(request)
    site = site_param(request)
    c = ctx(request)
    since = int_query(request, "since", 0, 0, 2**53)
    limit = int_query(request, "limit", 200, 1, 1000)

    def read() -> list[dict[str, Any]]:
        return [decode_json_object(b) for b in c.archive.events(site, since, limit)]

    return render(request, {"events": await c.runner.call(read)}, template="events.html")


def routes() -> list[BaseRoute]:
    return [
        Route("/health", health, methods=["GET"]),
        Route("/sites", all_sites, methods=["GET"]),
        Route("/sites/{site}", one_site, methods=["GET"]),
        Route("/sites/{site}/events", events, methods=["GET"]),
    ]
