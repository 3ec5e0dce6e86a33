"""The view layer: one place that turns a handler's data into a response.

Handlers return plain data; :func:`render` answers JSON now. The console
(issue 15) adds Jinja2 templates here: when a view names a template and
the client asks for HTML, the same data renders as a page. Every error,
expected or not, leaves as JSON ``{"error": ..., "field": ...}`` with a
4xx status (5xx only for the hub's own faults, never with a traceback).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub.errors import ArchiveError, RequestError

log = logging.getLogger(__name__)

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


async def _request_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    return error(exc.status, exc.error, exc.field)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if exc.detail and exc.status_code not in _HTTP_WORDS else None
    return error(exc.status_code, message or _HTTP_WORDS.get(exc.status_code, "error"), None)


async def _archive_error(_request: Request, exc: Exception) -> Response:
    log.error("archive error answering a request: %s", exc)
    return error(503, "the hub cannot use its archive right now; try again", None)


async def _internal(_request: Request, exc: Exception) -> Response:
    log.exception("unexpected error answering a request", exc_info=exc)
    return error(500, "internal error in the hub (logged)", None)


def exception_handlers() -> dict[Any, Any]:
    return {
        RequestError: _request_error,
        HTTPException: _http_error,
        ArchiveError: _archive_error,
        Exception: _internal,
    }
