"""``/c/{token}``: the customer's code page.

Large and readable in the dark, small on a slow link (one HTML page, one
small stylesheet and a 1 KB script, no external assets): the shop's name,
the pickup number, the current code with a countdown to the next one, the
slot once the goods are on the shelf, and the order's status in words with
what to do. The code is computed here with :mod:`protocol.otp` at the
hub's time; the secret never reaches the browser. The page refreshes
itself when the code changes (``<meta http-equiv="refresh">``, so it works
without JavaScript; the script only counts the seconds down). A collected,
cancelled or expired order shows no code and says so; a wrong, replaced or
forgotten token gets a plain page.

Orders carry 8-digit codes by default: the page shows ``042 · 12 345678``
and says to type the pickup number and the last 6 digits, or all 8 when the
kiosk asks for them (docs/protocol.md, "What the customer types").

A hub without the console (``ctx.console`` None), or a client asking for
``application/json``, gets the small JSON status the API documents (never
the code).
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.web.common import ctx
from hub.web.views import error, page, render, words
from protocol.orders import ACTIVE_STATUSES
from protocol.otp import hotp, seconds_left, totp

SHORT = 6  # digits the customer normally types after the pickup number


def code_parts(pickup_no: str, secret: str, now: float, digits: int, period: int) -> dict[str, str]:
    """The code as the page shows it: the pickup number, the lead digits, the last 6."""
    value = totp(secret, now, digits, period)
    return {
        "pickup_no": pickup_no,
        "lead": value[:-SHORT] if digits > SHORT else "",
        "tail": value[-SHORT:],
        "full": pickup_no + value,
        "short": pickup_no + value[-SHORT:],
    }


async def page_for(request: Request) -> Response:
    c = ctx(request)
    row = await c.runner.call(c.orders.by_token, str(request.path_params["token"]))
    wants_json = "application/json" in request.headers.get("accept", "")
    if c.console is None or wants_json:
        if row is None:
            return error(
                404,
                "this link is not valid (wrong, replaced or expired)",
                None,
                **{"Cache-Control": "no-store"},
            )
        site = c.cfg.site(row["site"])
        return render(
            request,
            {
                "shop": site.name if site else row["site"],
                "pickup_no": row["pickup_no"],
                "status": row["status"],
                "slot": row["slot"],
            },
            headers={"Cache-Control": "no-store"},
        )
    if row is None:
        return page(request, "customer_invalid.html", {}, status=404)
    now = c.clock()
    site = c.cfg.site(row["site"])
    doc = json.loads(row["doc"])
    otp = doc.get("otp") or {}
    period = int(otp.get("period", 30))
    digits = int(otp.get("digits", 6))
    status = str(row["status"])
    expired = (
        status in ACTIVE_STATUSES and row["expires_at"] is not None and row["expires_at"] <= now
    )
    shown = "expired" if expired else status
    code = None
    left = 0
    backup = ""
    if shown in ACTIVE_STATUSES:
        code = code_parts(str(row["pickup_no"]), str(otp["secret"]), now, digits, period)
        left = seconds_left(now, period)
        if doc.get("backup_code"):
            backup = str(row["pickup_no"]) + hotp(str(otp["secret"]), 0, digits)
    from hub.web.console_sites import local_time

    t = words(request)
    return page(
        request,
        "customer.html",
        {
            "shop": (site.name if site else "") or row["site"],
            "pickup_no": row["pickup_no"],
            "status": shown,
            "slot": row["slot"] or "",
            "code": code,
            "left": left,
            "digits": digits,
            "backup": backup,
            "when": local_time(c.cfg, row["site"], float(row["updated_at"])),
            "expires": local_time(c.cfg, row["site"], float(row["expires_at"]))
            if row["expires_at"]
            else "",
            "refresh": left + 1 if code else 0,
            "title": t("customer.title", shop=(site.name if site else "") or row["site"]),
        },
    )


def routes() -> list[BaseRoute]:
    return [Route("/c/{token}", page_for, methods=["GET"])]
