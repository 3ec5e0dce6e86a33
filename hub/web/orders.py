"""``/api/v1/sites/{site}/orders``: create, list, get, change, cancel, forget."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.errors import RequestError
from hub.web.common import client, ctx, int_query, json_body, site_param
from hub.web.views import render
from protocol.topics import valid_id


def _order_id(request: Request) -> str:
    oid = str(request.path_params["order_id"])
    if not valid_id(oid):
        raise RequestError("order_id must match [A-Za-z0-9_.-]{1,64}", "order_id", 404)
    return oid


async def create(request: Request) -> Response:
    name = await client(request)
    site = site_param(request)
    body = await json_body(request)
    c = ctx(request)
    key = request.headers.get("idempotency-key")
    result = await c.runner.call(
        c.orders.create, site, body, c.clock(), client=name, idempotency_key=key
    )
    c.orders_changed()
    return render(request, result.body, status=result.status, template="order.html")


async def search(request: Request) -> Response:
    await client(request)
    site = site_param(request)
    c = ctx(request)
    status = request.query_params.get("status")
    pickup_no = request.query_params.get("pickup_no")
    after = request.query_params.get("after")
    if after is not None and not valid_id(after):
        raise RequestError("after must be an order_id", "after")
    limit = int_query(request, "limit", 100, 1, c.cfg.api.max_list)
    rows = await c.runner.call(
        c.orders.search,
        site,
        c.clock(),
        status=status,
        pickup_no=pickup_no,
        limit=limit,
        after=after,
    )
    return render(request, {"orders": rows}, template="orders.html")


async def get(request: Request) -> Response:
    await client(request)
    site = site_param(request)
    c = ctx(request)
    view = await c.runner.call(c.orders.get, site, _order_id(request), c.clock())
    return render(request, view, template="order.html")


async def patch(request: Request) -> Response:
    await client(request)
    site = site_param(request)
    oid = _order_id(request)
    body = await json_body(request)
    c = ctx(request)
    result = await c.runner.call(c.orders.update, site, oid, body, c.clock())
    c.orders_changed()
    return render(request, result.body, status=result.status, template="order.html")


async def cancel(request: Request) -> Response:
    await client(request)
    site = site_param(request)
    c = ctx(request)
    result = await c.runner.call(c.orders.cancel, site, _order_id(request), c.clock())
    c.orders_changed()
    return render(request, result.body, status=result.status, template="order.html")


async def forget(request: Request) -> Response:
    await client(request)
    site = site_param(request)
    c = ctx(request)
    result = await c.runner.call(c.orders.forget, site, _order_id(request), c.clock())
    c.orders_changed()
    return render(request, result.body, status=result.status)


async def new_link(request: Request) -> Response:
    await client(request)
    site = site_param(request)
    c = ctx(request)
    result = await c.runner.call(c.orders.new_link, site, _order_id(request), c.clock())
    return render(request, result.body, status=result.status, template="order.html")


def routes() -> list[BaseRoute]:
    base = "/sites/{site}/orders"
    one = base + "/{order_id}"
    return [
        Route(base, create, methods=["POST"]),
        Route(base, search, methods=["GET"]),
        Route(one, get, methods=["GET"]),
        Route(one, patch, methods=["PATCH"]),
        Route(one, forget, methods=["DELETE"]),
        Route(one + "/cancel", cancel, methods=["POST"]),
        Route(one + "/link", new_link, methods=["POST"]),
    ]
