"""The view layer: one place that turns a handler's data into a response.

API handlers return plain data through :func:`render` (JSON). Console and
customer pages render Jinja2 templates (``hub/web/templates``) through
:func:`page`, with the page's language (:mod:`hub.web.i18n`) and strict
security headers (:data:`HTML_HEADERS`: no inline scripts, no framing, no
referrer, so a customer's link never leaks to another site). Every error,
expected or not, leaves as JSON ``{"error": ..., "field": ...}`` under
``/api/`` and as a plain page elsewhere, with a 4xx status (5xx only for
the hub's own faults), never with a traceback.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Mapping
from importlib import resources
from typing import Any

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from hub.errors import ArchiveError, HubError, RequestError
from hub.web import i18n

log = logging.getLogger(__name__)

HTML_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    # a customer's link pasted somewhere public is still never indexed with its code
    "X-Robots-Tag": "noindex, nofollow",
}


class LoginRequired(HubError, PermissionError):
    """No live console session: the page answers with the login page."""


@functools.cache
def _static_version(name: str) -> str:
    data = resources.files("hub.web").joinpath(f"static/{name}").read_bytes()
    return hashlib.sha256(data).hexdigest()[:10]


def static_url(name: str) -> str:
    """``/static/NAME?v=HASH``: cached by browsers until the file changes."""
    return f"/static/{name}?v={_static_version(name)}"


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hub.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = static_url
    return env


def language(request: Request) -> str:
    lang = getattr(request.state, "lang", None)
    if lang is None:
        lang = i18n.choose(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))
        request.state.lang = lang
    return str(lang)


def words(request: Request) -> i18n.Words:
    return i18n.Words(language(request))


def page(
    request: Request,
    template: str,
    data: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An HTML page (or an htmx fragment) from ``template`` in the request's language."""
    lang = language(request)
    context: dict[str, Any] = {
        "t": i18n.Words(lang),
        "lang": lang,
        "path": request.url.path,
        "query": str(request.url.query),
        "session": getattr(request.state, "session", None),
        "badge": getattr(request.state, "badge", 0),
        **dict(data or {}),
    }
    html = environment().get_template(template).render(context)
    return HTMLResponse(html, status_code=status, headers={**HTML_HEADERS, **dict(headers or {})})


def _wants_page(request: Request) -> bool:
    return not request.url.path.startswith("/api/")


def plain_page(request: Request, status: int, message: str, field: str | None = None) -> Response:
    """The plain error page people get (never a traceback)."""
    try:
        return page(
            request,
            "error.html",
            {"status": status, "message": message, "field": field},
            status=status,
        )
    except Exception:  # the error page itself must not fail
        log.exception("rendering the error page failed")
        return HTMLResponse(f"<p>{status}</p>", status_code=status, headers=HTML_HEADERS)


_HTTP_WORDS = {
    404: "no such resource",
    405: "method not allowed here",
}


class _JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        import json

        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def render(
    request: Request,
    data: Any,
    *,
    status: int = 200,
    template: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The response for ``data`` (JSON; HTML via ``template`` once the console exists)."""
    del request, template  # the console's HTML rendering plugs in here
    return _JSON(data, status_code=status, headers=dict(headers or {}))


def error(status: int, message: str, field: str | None = None, **headers: str) -> Response:
    return _JSON({"error": message, "field": field}, status_code=status, headers=headers)


async def _request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    if _wants_page(request):
        return plain_page(request, exc.status, exc.error, exc.field)
    return error(exc.status, exc.error, exc.field)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if exc.detail and exc.status_code not in _HTTP_WORDS else None
    text = message or _HTTP_WORDS.get(exc.status_code, "error")
    extra = dict(exc.headers or {})  # a 405's Allow
    if _wants_page(request):
        response = plain_page(
            request, exc.status_code, words(request).get(f"error.http_{exc.status_code}", text)
        )
        response.headers.update(extra)
        return response
    return error(exc.status_code, text, None, **extra)


async def _login_required(request: Request, exc: Exception) -> Response:
    target = "/console/login"
    if request.method == "GET" and request.url.path != target:
        from urllib.parse import quote

        target += "?next=" + quote(
            request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe=""
        )
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": target})
    if request.method != "GET":
        return plain_page(request, 401, words(request)("error.session_ended"))
    return RedirectResponse(target, status_code=303)


async def _archive_error(request: Request, exc: Exception) -> Response:
    log.error("archive error answering a request: %s", exc)
    message = "the hub cannot use its archive right now; try again"
    if _wants_page(request):
        return plain_page(request, 503, message)
    return error(503, message, None)


async def _client_gone(_request: Request, _exc: Exception) -> Response:
    # The client closed its connection before its body arrived: nobody reads
    # an answer, and it is no defect of the hub (once a traceback each).
    log.debug("a client left before sending its whole request")
    return Response(status_code=400)


async def _internal(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error answering a request", exc_info=exc)
    if _wants_page(request):
        return plain_page(request, 500, "internal error in the hub (logged)")
    return error(500, "internal error in the hub (logged)", None)


def exception_handlers() -> dict[Any, Any]:
    return {
        RequestError: _request_error,
        LoginRequired: _login_required,
        HTTPException: _http_error,
        ArchiveError: _archive_error,
        ClientDisconnect: _client_gone,
        Exception: _internal,
    }
