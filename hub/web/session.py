"""Console sessions on the web: the cookie, who is asking, CSRF, bounded forms.

- ``ph_session`` = the session id and its HMAC (:class:`hub.console.guard.Signer`),
  ``HttpOnly``, ``SameSite=Lax`` (a link from a WeChat message still opens
  the console; no other site can post with it), ``Secure`` when the hub's
  public URL is https, ``Path=/``.
- Every state-changing request (POST) must carry the session's CSRF token,
  as the form field ``csrf`` or the ``X-CSRF-Token`` header (htmx sends it,
  from ``hx-headers`` on the page's body), and must not come from another
  site (``Origin`` and ``Sec-Fetch-Site`` are checked when the browser sends
  them). A form posted before the session started, from an ended session,
  or with a token of another session is refused and changes nothing.
- The login form, before any session, uses a double-submit token: the
  ``ph_pre`` cookie and the same value in the form.
- Form bodies are read with a size limit while reading (like the JSON API)
  before they are parsed.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from hub.console import Console
from hub.console.accounts import Session
from hub.errors import RequestError
from hub.web.common import ctx
from hub.web.views import LoginRequired, words

COOKIE = "ph_session"
PRE_COOKIE = "ph_pre"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
MAX_FORM_BYTES = 64 * 1024
MAX_UPLOAD_BYTES = 2 * 1024 * 1024


def safe_next(target: str | None, default: str = "/console/") -> str:
    """A local path to go back to (never another site: no ``//``, no scheme)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or len(target) > 512
        or any(ord(ch) < 32 for ch in target)
    ):
        return default
    return target


def console(request: Request) -> Console:
    c = ctx(request).console
    assert c is not None
    return c


def secure(request: Request) -> bool:
    return ctx(request).cfg.hub.base_url.startswith("https://")


def address(request: Request) -> str:
    """The client's address (X-Forwarded-For's last hop behind a trusted proxy)."""
    if ctx(request).cfg.console.trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for", "")
        last = forwarded.split(",")[-1].strip()
        if last:
            return last[:64]
    return request.client.host if request.client else ""


async def current(request: Request) -> Session | None:
    """The request's live session, or None."""
    if hasattr(request.state, "session"):
        found: Session | None = request.state.session
        return found
    c = ctx(request)
    con = console(request)
    sid = con.signer.unsign("session", request.cookies.get(COOKIE))
    session = None
    if sid is not None:
        cfg = c.cfg.console
        session = await c.runner.call(
            con.accounts.session,
            sid,
            c.clock(),
            max_age_s=cfg.session_days * 86400,
            idle_s=cfg.idle_days * 86400,
        )
    request.state.session = session
    if session is not None:
        request.state.badge = await c.runner.call(_active_alerts, c)
    return session


def _active_alerts(c: Any) -> int:
    row = c.alerts.db.one("SELECT COUNT(*) AS n FROM alerts WHERE state = 'active'")
    return int(row["n"]) if row else 0


async def require(request: Request, *, owner: bool = False) -> Session:
    """The live session; LoginRequired without one, 403 for staff where owners only."""
    session = await current(request)
    if session is None:
        raise LoginRequired("log in first")
    if owner and not session.account.owner:
        raise RequestError(words(request)("error.owner_only"), None, 403)
    return session


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> FormData:
    """The posted form, its size bounded while reading; 413 beyond ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and (
        not (declared.isascii() and declared.isdigit())
        or len(declared) > 18
        or int(declared) > limit
    ):
        raise RequestError(words(request)("error.too_large", n=limit // 1024), "body", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(words(request)("error.too_large", n=limit // 1024), "body", 413)
        chunks.append(chunk)
    request._body = b"".join(chunks)  # Starlette's form parser reads the cached body
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise RequestError(words(request)("error.not_a_form"), "body", 415)
    return await request.form(max_files=1, max_fields=100, max_part_size=limit)


def _same_site(request: Request) -> bool:
    """False when the browser says the request came from another site.

    ``Sec-Fetch-Site`` (Chrome, Firefox, Safari 16.4+) and ``Origin`` are
    checked when sent; ``Origin: null`` (privacy modes) says nothing. The
    CSRF token and the SameSite cookie are the defence either way.
    """
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def post(
    request: Request, *, owner: bool = False, limit: int = MAX_FORM_BYTES
) -> tuple[Session, FormData]:
    """A state-changing request: live session, right CSRF token, same site; the form."""
    session = await require(request, owner=owner)
    form = await read_form(request, limit)
    token = request.headers.get(CSRF_HEADER) or str(form.get(CSRF_FIELD) or "")
    if not _same_site(request) or not hmac.compare_digest(
        token.encode("utf-8", "replace"), session.csrf.encode()
    ):
        raise RequestError(words(request)("error.csrf"), CSRF_FIELD, 403)
    return session, form


def set_session_cookie(request: Request, response: Response, sid: str) -> None:
    c = ctx(request)
    response.set_cookie(
        COOKIE,
        console(request).signer.sign("session", sid),
        max_age=int(c.cfg.console.session_days * 86400),
        httponly=True,
        samesite="lax",
        secure=secure(request),
        path="/",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=secure(request))


def pre_token(request: Request) -> tuple[str, bool]:
    """The login form's double-submit token: (token, whether the cookie must be set)."""
    current_token = console(request).signer.unsign("pre", request.cookies.get(PRE_COOKIE))
    if current_token:
        return current_token, False
    return secrets.token_urlsafe(18), True


def set_pre_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        PRE_COOKIE,
        console(request).signer.sign("pre", token),
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=secure(request),
        path="/console",
    )


def check_pre(request: Request, form: FormData) -> bool:
    cookie = console(request).signer.unsign("pre", request.cookies.get(PRE_COOKIE))
    sent = str(form.get(CSRF_FIELD) or "")
    return (
        bool(cookie)
        and _same_site(request)
        and hmac.compare_digest(sent.encode("utf-8", "replace"), str(cookie).encode())
    )


async def log_action(
    request: Request,
    account: str,
    action: str,
    *,
    site: str | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """One console-log line for this request: the account, the hub's time, the address."""
    c = ctx(request)
    await c.runner.call(
        console(request).accounts.audit,
        account,
        action,
        c.clock(),
        site=site,
        target=target,
        detail=detail,
        address=address(request),
    )
