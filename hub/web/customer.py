"""``/c/{token}``: the customer's link. The page itself is issue 15.

Until then the link answers a small JSON status (never the code or the
secret) for a valid token, and the same plain 404 for any wrong, revoked
or forgotten one, so the link a shop sends today keeps working when the
page arrives.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.web.common import ctx
from hub.web.views import error, render


async def page(request: Request) -> Response:
    c = ctx(request)
    row = await c.runner.call(c.orders.by_token, str(request.path_params["token"]))
    if row is None:
        return error(404, "this link is not valid (wrong, replaced or expired)", None)
    site = c.cfg.site(row["site"])
    return render(
        request,
        {
            "shop": site.name if site else row["site"],
            "pickup_no": row["pickup_no"],
            "status": row["status"],
            "slot": row["slot"],
        },
        template="customer.html",
    )


def routes() -> list[BaseRoute]:
    return [Route("/c/{token}", page, methods=["GET"])]
