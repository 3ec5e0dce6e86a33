"""What every API handler shares: the context, bearer tokens, bounded JSON bodies."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request

from hub.errors import RequestError
from hub.web import AppContext
from protocol.canonical import decode_json_object
from protocol.errors import ValidationError
from protocol.topics import valid_site

BODY_TIMEOUT_S = 30


def ctx(request: Request) -> AppContext:
    context: AppContext = request.app.state.ctx
    return context


async def client(request: Request) -> str:
    """The integration's name from ``Authorization: Bearer TOKEN``; 401 otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RequestError(
            "missing bearer token: send Authorization: Bearer TOKEN (`pickup-hub token add`)",
            "Authorization",
            401,
        )
    c = ctx(request)
    name = await c.runner.call(c.tokens.check, token.strip())
    if name is None:
        raise RequestError(
            "the bearer token is not valid (unknown or revoked)", "Authorization", 401
        )
    return name


def site_param(request: Request) -> str:
    site = str(request.path_params.get("site", ""))
    if not valid_site(site) or ctx(request).cfg.site(site) is None:
        raise RequestError(f"no site {site[:64]!r} in hub.toml", "site", 404)
    return site


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, read with the size limit enforced while reading."""
    limit = ctx(request).cfg.api.max_body_bytes
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in ("application/json", ""):
        raise RequestError("send the body as application/json", "Content-Type", 415)
    declared = request.headers.get("content-length")
    if declared is not None and (
        not (declared.isascii() and declared.isdigit())
        or len(declared) > 18
        or int(declared) > limit
    ):
        raise RequestError(f"the body is larger than {limit} bytes", "body", 413)
    chunks: list[bytes] = []
    size = 0
    try:
        # A client that sends its body a byte a minute holds a connection and a
        # task for ever; a whole body gets BODY_TIMEOUT_S.
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestError(f"the body is larger than {limit} bytes", "body", 413)
                chunks.append(chunk)
    except TimeoutError:
        raise RequestError(
            f"the body did not arrive within {BODY_TIMEOUT_S} s", "body", 408
        ) from None
    try:
        return decode_json_object(b"".join(chunks), max_bytes=limit)
    except ValidationError as err:
        words = {
            "malformed": "the body is not valid JSON",
            "not_object": "the body must be a JSON object",
            "not_utf8": "the body is not UTF-8",
        }
        raise RequestError(words.get(err.reason, str(err)), "body", 400) from None


def int_query(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18 or not lo <= int(raw) <= hi:
        raise RequestError(f"{name} must be a whole number from {lo} to {hi}", name)
    return int(raw)
