"""Alerts: the list, acknowledge (owner and staff: they saw it), mute (owner)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.alerts import KINDS, MAX_MUTE_S
from hub.errors import RequestError
from hub.web.common import ctx
from hub.web.session import console, log_action, post, require
from hub.web.views import page, words

MUTE_CHOICES = (60, 240, 720, 1440, 10080)  # minutes offered on the page


def _alert_view(c: Any, a: Any) -> dict[str, Any]:
    from hub.web.console_sites import local_time

    section = c.cfg.site(a.site)
    return {
        "id": a.id,
        "site": a.site,
        "name": (section.name if section else "") or a.site,
        "kind": a.kind,
        "state": a.state,
        "raised": local_time(c.cfg, a.site, a.raised_at),
        "cleared": local_time(c.cfg, a.site, a.cleared_at) if a.cleared_at else "",
        "acked_by": a.acked_by or "",
        "count": int(a.detail.get("count", 1)),
        "seq": a.detail.get("seq"),
    }


async def alerts(
    request: Request, *, errors: dict[str, str] | None = None, values: dict[str, str] | None = None
) -> Response:
    await require(request)
    c = ctx(request)

    def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        active = [_alert_view(c, a) for a in c.alerts.search(state="active", limit=200)]
        recent = [_alert_view(c, a) for a in c.alerts.search(state="cleared", limit=30)]
        return active, recent, c.alerts.mutes(c.clock())

    active, recent, mutes = await c.runner.call(read)
    template = "_alerts.html" if request.headers.get("hx-request") else "alerts.html"
    return page(
        request,
        template,
        {
            "active": active,
            "recent": recent,
            "mutes": mutes,
            "kinds": KINDS,
            "sites": c.cfg.site_ids,
            "choices": MUTE_CHOICES,
            "errors": errors or {},
            "values": values or {},
        },
        status=422 if errors else 200,
    )


async def ack(request: Request) -> Response:
    session, _form = await post(request)
    raw = str(request.path_params["alert_id"])
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise RequestError(words(request)("alerts.no_alert"), "id", 404)
    c = ctx(request)
    alert = await c.runner.call(
        c.alerts.ack, int(raw), f"console:{session.account.name}", c.clock()
    )
    await log_action(
        request,
        session.account.name,
        "alert_acked",
        site=alert.site,
        target=str(alert.id),
        detail={"kind": alert.kind},
    )
    c.alerts_changed()
    console(request).live.changed({"alerts", f"site:{alert.site}"})
    return RedirectResponse("/console/alerts", status_code=303)


async def mute(request: Request) -> Response:
    session, form = await post(request, owner=True)
    c = ctx(request)
    t = words(request)
    values = {k: str(form.get(k) or "")[:64] for k in ("site", "kind", "minutes")}
    errors: dict[str, str] = {}
    if values["site"] not in c.cfg.site_ids:
        errors["site"] = t("alerts.bad_site")
    if values["kind"] not in (*KINDS, "*"):
        errors["kind"] = t("alerts.bad_kind")
    raw = values["minutes"]
    minutes = int(raw) if raw.isascii() and raw.isdigit() else 0  # not "¹": int() refuses it
    if not 0 < minutes * 60 <= MAX_MUTE_S:
        errors["minutes"] = t("alerts.bad_minutes", max=MAX_MUTE_S // 60)
    if errors:
        return await alerts(request, errors=errors, values=values)
    await c.runner.call(c.alerts.mute, values["site"], values["kind"], minutes * 60.0, c.clock())
    await log_action(
        request,
        session.account.name,
        "alert_muted",
        site=values["site"],
        target=values["kind"],
        detail={"minutes": minutes},
    )
    c.alerts_changed()
    return RedirectResponse("/console/alerts", status_code=303)


async def unmute(request: Request) -> Response:
    session, form = await post(request, owner=True)
    c = ctx(request)
    site, kind = str(form.get("site") or "")[:64], str(form.get("kind") or "")[:64]
    if not await c.runner.call(c.alerts.unmute, site, kind):
        raise RequestError(words(request)("alerts.no_mute"), "kind", 404)
    await log_action(
        request,
        session.account.name,
        "alert_unmuted",
        site=site,
        target=kind,
    )
    c.alerts_changed()
    return RedirectResponse("/console/alerts", status_code=303)


async def badge(request: Request) -> Response:
    """The number of active alerts in the page header (refreshed live)."""
    await require(request)
    return page(request, "_badge.html")


def routes() -> list[BaseRoute]:
    return [
        Route("/console/badge", badge, methods=["GET"]),
        Route("/console/alerts", alerts, methods=["GET"]),
        Route("/console/alerts/{alert_id}/ack", ack, methods=["POST"]),
        Route("/console/mutes", mute, methods=["POST"]),
        Route("/console/mutes/delete", unmute, methods=["POST"]),
    ]
