"""``/api/v1/alerts`` and ``/api/v1/mutes``: see, acknowledge and mute alerts."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.alerts import KINDS
from hub.errors import RequestError
from hub.web.common import client, ctx, int_query, json_body
from hub.web.views import render
from protocol.topics import valid_site


def _site_filter(request: Request) -> str | None:
    site = request.query_params.get("site")
    if site is not None and (not valid_site(site) or ctx(request).cfg.site(site) is None):
        raise RequestError("site must be a site in hub.toml", "site", 404)
    return site


async def search(request: Request) -> Response:
    await client(request)
    c = ctx(request)
    state = request.query_params.get("state")
    if state is not None and state not in ("active", "cleared"):
        raise RequestError("state must be active or cleared", "state")
    limit = int_query(request, "limit", 100, 1, 1000)
    rows = await c.runner.call(
        c.alerts.search, site=_site_filter(request), state=state, limit=limit
    )
    return render(request, {"alerts": [a.as_dict() for a in rows]}, template="alerts.html")


async def ack(request: Request) -> Response:
    name = await client(request)
    raw = str(request.path_params["alert_id"])
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise RequestError("an alert id is a whole number", "id", 404)
    c = ctx(request)
    alert = await c.runner.call(c.alerts.ack, int(raw), f"token:{name}", c.clock())
    c.alerts_changed()
    return render(request, alert.as_dict())


async def mutes(request: Request) -> Response:
    await client(request)
    c = ctx(request)
    return render(request, {"mutes": await c.runner.call(c.alerts.mutes, c.clock())})


async def mute(request: Request) -> Response:
    await client(request)
    body = await json_body(request)
    unknown = [k for k in body if k not in ("site", "kind", "minutes")]
    if unknown:
        raise RequestError(
            f"unknown field {unknown[0]!r}; a mute takes site, kind, minutes", unknown[0], 422
        )
    c = ctx(request)
    site = body.get("site")
    if not isinstance(site, str) or c.cfg.site(site) is None:
        raise RequestError("site must be a site in hub.toml", "site", 422)
    kind = body.get("kind", "*")
    if kind not in (*KINDS, "*"):
        raise RequestError("kind must be one of " + ", ".join((*KINDS, "*")), "kind", 422)
    minutes = body.get("minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)):
        raise RequestError("minutes must be a number", "minutes", 422)
    result = await c.runner.call(c.alerts.mute, site, str(kind), float(minutes) * 60, c.clock())
    c.alerts_changed()
    return render(request, result, status=201)


async def unmute(request: Request) -> Response:
    await client(request)
    c = ctx(request)
    site, kind = str(request.path_params["site"]), str(request.path_params["kind"])
    if not await c.runner.call(c.alerts.unmute, site, kind):
        raise RequestError(f"no mute for {site[:64]}/{kind[:64]}", "kind", 404)
    return render(request, {"site": site, "kind": kind, "muted": False})


def routes() -> list[BaseRoute]:
    return [
        Route("/alerts", search, methods=["GET"]),
        Route("/alerts/{alert_id}/ack", ack, methods=["POST"]),
        Route("/mutes", mutes, methods=["GET"]),
        Route("/mutes", mute, methods=["POST"]),
        Route("/mutes/{site}/{kind}", unmute, methods=["DELETE"]),
    ]
