"""Safe headers on every response, not only on the pages :func:`hub.web.views.page` renders.

The pages carry :data:`hub.web.views.HTML_HEADERS`. Everything else the hub
answers (static files, the QR code's SVG, the CSV export, redirects, the
live stream, 405s, the JSON API) gets at least ``nosniff``, no framing and
no referrer to other sites; a response without its own policy gets one that
allows nothing (:data:`BARE_CSP`), so an SVG or a file opened on its own can
never run script. Headers a handler set itself are kept.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BARE_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
ALWAYS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy", BARE_CSP.encode()),
)


class SafeHeaders:
    """ASGI middleware adding :data:`ALWAYS` where a response lacks them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in ALWAYS if k not in have]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, add)
