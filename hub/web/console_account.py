"""Log in, log out (here or everywhere), this phone's door key, the audit log."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.console.accounts import MAX_PASSWORD, NAME_RE, check_password
from hub.errors import RequestError
from hub.web.common import ctx
from hub.web.session import (
    address,
    check_pre,
    clear_session_cookie,
    console,
    current,
    log_action,
    post,
    pre_token,
    read_form,
    require,
    safe_next,
    set_pre_cookie,
    set_session_cookie,
)
from hub.web.views import page, words

log = logging.getLogger(__name__)

UNKNOWN_NAME = "?"  # the console log's account for a failed login with no such account


def _login_page(
    request: Request, *, error: str = "", name: str = "", status: int = 200
) -> Response:
    token, fresh = pre_token(request)
    response = page(
        request,
        "login.html",
        {
            "csrf": token,
            "error": error,
            "name": name,
            "next": safe_next(request.query_params.get("next")),
        },
        status=status,
    )
    if fresh:
        set_pre_cookie(request, response, token)
    return response


async def login_form(request: Request) -> Response:
    if await current(request) is not None:
        return RedirectResponse("/console/", status_code=303)
    return _login_page(request)


async def login(request: Request) -> Response:
    c = ctx(request)
    con = console(request)
    t = words(request)
    form = await read_form(request)
    name = str(form.get("name") or "").strip()
    password = str(form.get("password") or "")
    if not check_pre(request, form):
        return _login_page(request, error=t("login.stale"), name=name[:64], status=403)
    where = address(request)
    key = name[:64]
    well_formed = bool(NAME_RE.match(name)) and 0 < len(password) <= MAX_PASSWORD
    stored = await c.runner.call(con.accounts.password_hash, name) if well_formed else None
    # counted before the check, with no await between: logins sent at once cannot all
    # pass the limit before the first of them fails (guard.LoginLimiter)
    wait = con.limiter.attempt(key, where, c.clock(), known=stored is not None)
    if wait > 0:
        return _login_page(request, error=t("login.wait", s=int(wait) + 1), name=key, status=429)
    async with con.hash_slots:  # a wrong or malformed name costs the same as a wrong password
        ok = await asyncio.to_thread(check_password, password[:MAX_PASSWORD], stored)
    now = c.clock()
    if not ok:
        # a name that is no account is often a password typed in the wrong box: it goes
        # neither to the log nor to the console log, which staff can read
        who = name if stored is not None else UNKNOWN_NAME
        await c.runner.call(con.accounts.audit, who, "login_failed", now, address=where)
        log.info("console login failed for %s from %s", who, where)
        return _login_page(request, error=t("login.wrong"), name=key, status=401)
    con.limiter.succeeded(key, where)
    limits = c.cfg.console
    await c.runner.call(
        con.accounts.prune_sessions,
        now,
        max_age_s=limits.session_days * 86400,
        idle_s=limits.idle_days * 86400,
    )
    sid, _session = await c.runner.call(con.accounts.start_session, name, where, now)
    await c.runner.call(con.accounts.audit, name, "login", now, address=where)
    response = RedirectResponse(safe_next(str(form.get("next") or "")), status_code=303)
    set_session_cookie(request, response, sid)
    return response


async def logout(request: Request) -> Response:
    session, _form = await post(request)
    c = ctx(request)
    con = console(request)
    await c.runner.call(con.accounts.end_session, session.sid_hash)
    con.live.sessions_ended(session.account.name)
    await c.runner.call(
        con.accounts.audit, session.account.name, "logout", c.clock(), address=address(request)
    )
    response = RedirectResponse("/console/login", status_code=303)
    clear_session_cookie(request, response)
    return response


async def logout_everywhere(request: Request) -> Response:
    session, _form = await post(request)
    c = ctx(request)
    con = console(request)
    n = await c.runner.call(con.accounts.end_everywhere, session.account.name, c.clock())
    con.live.sessions_ended(session.account.name)
    await log_action(
        request,
        session.account.name,
        "logout_everywhere",
        detail={"sessions": n},
    )
    response = RedirectResponse("/console/login", status_code=303)
    clear_session_cookie(request, response)
    return response


def _trust_line(keys: list[str]) -> str:
    inner = ", ".join(f'"{k}"' for k in keys)
    return f"owner_keys = [{inner}]"


async def account(request: Request, *, errors: dict[str, str] | None = None) -> Response:
    session = await require(request)
    c = ctx(request)
    con = console(request)
    mine = await c.runner.call(con.keys.active, session.account.name)
    every = await c.runner.call(con.keys.active)
    return page(
        request,
        "account.html",
        {
            "keys": mine,
            "trust_line": _trust_line([k["public_key"] for k in every]) if every else "",
            "hub_signs": c.cfg.console.hub_signs,
            "errors": errors or {},
        },
        status=422 if errors else 200,
    )


async def add_key(request: Request) -> Response:
    session, form = await post(request, owner=True)
    c = ctx(request)
    con = console(request)
    try:
        kid = await c.runner.call(
            con.keys.add,
            session.account.name,
            str(form.get("public_key") or ""),
            str(form.get("label") or ""),
            c.clock(),
        )
    except RequestError as err:
        # the label is a hidden field the page fills in: its message goes by the key box
        return await account(request, errors={"public_key": err.error})
    await log_action(
        request,
        session.account.name,
        "browser_key_added",
        target=kid,
    )
    return RedirectResponse(f"/console/account?added={kid}", status_code=303)


async def revoke_key(request: Request) -> Response:
    session, _form = await post(request, owner=True)
    c = ctx(request)
    con = console(request)
    kid = str(request.path_params["key_id"])[:32]
    if not await c.runner.call(con.keys.revoke, session.account.name, kid, c.clock()):
        raise RequestError(words(request)("account.no_key"), "key_id", 404)
    await log_action(
        request,
        session.account.name,
        "browser_key_revoked",
        target=kid,
    )
    return RedirectResponse("/console/account", status_code=303)


async def audit(request: Request) -> Response:
    await require(request)
    c = ctx(request)
    raw = request.query_params.get("before", "")
    before = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 18 else None
    rows = await c.runner.call(console(request).accounts.audit_log, limit=100, before=before)
    from hub.web.console_sites import local_time

    for r in rows:
        r["local"] = local_time(c.cfg, r.get("site"), float(r["at"]))
    return page(request, "audit.html", {"rows": rows})


def routes() -> list[BaseRoute]:
    return [
        Route("/console/login", login_form, methods=["GET"]),
        Route("/console/login", login, methods=["POST"]),
        Route("/console/logout", logout, methods=["POST"]),
        Route("/console/logout-everywhere", logout_everywhere, methods=["POST"]),
        Route("/console/account", account, methods=["GET"]),
        Route("/console/account/keys", add_key, methods=["POST"]),
        Route("/console/account/keys/{key_id}/revoke", revoke_key, methods=["POST"]),
        Route("/console/audit", audit, methods=["GET"]),
    ]
