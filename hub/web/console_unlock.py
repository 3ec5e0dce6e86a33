"""Remote unlock: a reason, a confirmation, then pending, done or refused.

Owners only: for a staff account the button is not on the page and every
POST here is refused (403). The flow (docs/hub.md, "Remote unlock"):

1. ``GET /console/sites/{site}/unlock``: the form (a reason), what is
   pending, recent commands.
2. ``POST`` the reason: the hub prepares the command document (the account
   and the reason in ``args``) and shows the confirmation page: the door,
   the reason, until when the command is valid.
3. "Open the door": the phone signs the document's canonical JSON with its
   own key (``static/console.js``) and posts the signature to
   ``/console/commands/{cmd_id}/sign``; or, where the hub holds an owner key
   (``console.hub_holds_owner_key``), a plain form posts to ``.../send``.
4. ``/console/commands/{cmd_id}``: pending (until when it can still open the
   door), done, refused with the kiosk's reason, failed, cancelled or expired,
   live as the kiosk answers. A pending unlock can be cancelled the same way.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.errors import RequestError
from hub.web.common import ctx, site_param
from hub.web.session import console, log_action, post, require
from hub.web.views import page, words
from protocol.topics import valid_id


def _cmd_id(request: Request) -> str:
    raw = str(request.path_params["cmd_id"])
    if not valid_id(raw):
        raise RequestError(words(request)("error.http_404"), "cmd_id", 404)
    return raw


def _decorate(request: Request, view: dict[str, Any]) -> dict[str, Any]:
    from hub.web.console_sites import local_time

    c = ctx(request)
    t = words(request)
    slug = view["refusal"]
    view["refusal_text"] = (
        t(f"cmd.refusal.{slug}") if slug and t.has(f"cmd.refusal.{slug}") else view["error"]
    )
    view["expires_local"] = local_time(c.cfg, view["site"], view["expires_at"], "%H:%M:%S")
    view["created_local"] = local_time(c.cfg, view["site"], view["created_at"], "%m-%d %H:%M:%S")
    return view


async def unlock_page(
    request: Request, *, errors: dict[str, str] | None = None, reason: str = ""
) -> Response:
    session = await require(request)
    site = site_param(request)
    c = ctx(request)
    con = console(request)
    now = c.clock()
    pending = await c.runner.call(con.commands.pending_unlock, site, now)
    recent = await c.runner.call(con.commands.recent, site, now)
    keys = await c.runner.call(con.keys.active, session.account.name)
    section = c.cfg.site(site)
    return page(
        request,
        "unlock.html",
        {
            "site": site,
            "name": (section.name if section else "") or site,
            "pending": _decorate(request, pending) if pending else None,
            "recent": [_decorate(request, v) for v in recent],
            "errors": errors or {},
            "reason": reason,
            "has_key": bool(keys),
            "hub_signs": c.cfg.console.hub_signs,
        },
        status=422 if errors else 200,
    )


def _confirm(request: Request, doc: dict[str, Any], *, cancel_of: str | None = None) -> Response:
    from hub.web.console_sites import local_time
    from protocol.times import parse_time

    c = ctx(request)
    site = str(doc["site"])
    section = c.cfg.site(site)
    return page(
        request,
        "confirm.html",
        {
            "doc": doc,
            "site": site,
            "name": (section.name if section else "") or site,
            "reason": doc["args"]["reason"],
            "cancel_of": cancel_of,
            "expires_local": local_time(c.cfg, site, parse_time(doc["expires_at"]), "%H:%M:%S"),
            "hub_signs": c.cfg.console.hub_signs,
        },
    )


async def prepare(request: Request) -> Response:
    session, form = await post(request, owner=True)
    site = site_param(request)
    c = ctx(request)
    con = console(request)
    reason = str(form.get("reason") or "")[:1000]
    try:
        doc = await c.runner.call(
            con.commands.prepare,
            site,
            "unlock",
            {"reason": reason},
            session.account.name,
            c.clock(),
        )
    except RequestError as err:  # the message goes next to the reason, pending or not
        return await unlock_page(request, errors={"reason": err.error}, reason=reason)
    await log_action(
        request,
        session.account.name,
        "unlock_prepared",
        site=site,
        target=doc["cmd_id"],
        detail={"reason": doc["args"]["reason"]},
    )
    return _confirm(request, doc)


async def _publish(request: Request, cmd_id: str, payload: bytes, account: str) -> Response:
    c = ctx(request)
    con = console(request)
    topic = await c.runner.call(con.commands.topic, cmd_id)
    if not await con.publish(topic, payload):
        await c.runner.call(con.commands.unsent, cmd_id)
        raise RequestError(words(request)("cmd.not_sent"), None, 503)
    view = await c.runner.call(con.commands.view, cmd_id, c.clock())
    await log_action(
        request,
        account,
        "unlock_cancel_sent" if view["cmd"] == "cancel" else "unlock_sent",
        site=view["site"],
        target=view["target"] or cmd_id,
        detail={"cmd_id": cmd_id, "reason": view["reason"], "signer": view["signer"]},
    )
    con.live.changed(
        {f"cmd:{cmd_id}", f"cmd:{view['target']}"} if view["target"] else {f"cmd:{cmd_id}"}
    )
    shown = view["target"] or cmd_id
    return RedirectResponse(f"/console/commands/{shown}", status_code=303)


async def sign(request: Request) -> Response:
    session, form = await post(request, owner=True)
    cmd_id = _cmd_id(request)
    c = ctx(request)
    con = console(request)
    payload = await c.runner.call(
        con.commands.signed_by_browser,
        cmd_id,
        session.account.name,
        str(form.get("sig") or "")[:200],
        c.clock(),
    )
    return await _publish(request, cmd_id, payload, session.account.name)


async def send(request: Request) -> Response:
    session, _form = await post(request, owner=True)
    cmd_id = _cmd_id(request)
    c = ctx(request)
    con = console(request)
    payload = await c.runner.call(
        con.commands.signed_by_hub, cmd_id, session.account.name, c.clock()
    )
    return await _publish(request, cmd_id, payload, session.account.name)


async def status(request: Request) -> Response:
    await require(request)
    cmd_id = _cmd_id(request)
    c = ctx(request)
    con = console(request)
    view = _decorate(request, await c.runner.call(con.commands.view, cmd_id, c.clock()))
    section = c.cfg.site(view["site"])
    template = "_command.html" if request.headers.get("hx-request") else "command.html"
    return page(
        request,
        template,
        {"v": view, "name": (section.name if section else "") or view["site"]},
    )


async def cancel(request: Request) -> Response:
    session, _form = await post(request, owner=True)
    cmd_id = _cmd_id(request)
    c = ctx(request)
    con = console(request)
    doc = await c.runner.call(con.commands.prepare_cancel, cmd_id, session.account.name, c.clock())
    return _confirm(request, doc, cancel_of=cmd_id)


def routes() -> list[BaseRoute]:
    return [
        Route("/console/sites/{site}/unlock", unlock_page, methods=["GET"]),
        Route("/console/sites/{site}/unlock", prepare, methods=["POST"]),
        Route("/console/commands/{cmd_id}", status, methods=["GET"]),
        Route("/console/commands/{cmd_id}/sign", sign, methods=["POST"]),
        Route("/console/commands/{cmd_id}/send", send, methods=["POST"]),
        Route("/console/commands/{cmd_id}/cancel", cancel, methods=["POST"]),
    ]
