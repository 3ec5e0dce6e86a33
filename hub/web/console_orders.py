"""Orders on the console: list and search, create, change status and slot, cancel,
a new customer link, the link's QR code, and a CSV import with a preview.

Every form is judged on the server: each bad field gets its message next to
it and nothing is stored (an order is created or changed in one
transaction, an import stores all its rows or none). Staff see orders and
their links; only owners change them (the forms are absent and every POST
is refused). The console never shows an OTP secret.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import segno
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.errors import RequestError
from hub.imports import RowError, preview_rows, rows_from_bytes, store_rows
from hub.orders import CREATE_STATUSES
from hub.web.common import ctx
from hub.web.session import MAX_UPLOAD_BYTES, console, log_action, post, require
from hub.web.views import page, words
from kiosk.screens import mask_name
from protocol.orders import STATUSES, printable
from protocol.topics import valid_id

PREVIEW_KEEP_S = 1800.0
MAX_PREVIEWS = 20
FIELDS = ("site", "order_id", "customer_name", "phone_tail", "items", "slot", "status")


def _site(request: Request, raw: str | None) -> str:
    c = ctx(request)
    if raw in c.cfg.site_ids:
        return str(raw)
    return c.cfg.site_ids[0] if c.cfg.site_ids else ""


def _order_param(request: Request) -> tuple[str, str]:
    site = str(request.path_params["site"])
    oid = str(request.path_params["order_id"])
    if site not in ctx(request).cfg.site_ids or not valid_id(oid):
        raise RequestError(words(request)("orders.no_order"), "order_id", 404)
    return site, oid


def _matches(o: dict[str, Any], q: str) -> bool:
    q = q.lower()
    customer = o.get("customer") or {}
    return any(
        q in str(v).lower()
        for v in (
            o["order_id"],
            o["pickup_no"],
            customer.get("name", ""),
            customer.get("phone_tail", ""),
            o.get("slot") or "",
        )
    )


async def orders(request: Request) -> Response:
    await require(request)
    c = ctx(request)
    site = _site(request, request.query_params.get("site"))
    status = request.query_params.get("status") or "active"
    if status not in (*STATUSES, "active", "expired", "all"):
        status = "active"
    q = (request.query_params.get("q") or "").strip()[:64]
    rows = await c.runner.call(
        c.orders.search,
        site,
        c.clock(),
        status=None if status == "all" else status,
        limit=c.cfg.api.max_list,
    )
    if q:
        rows = [o for o in rows if _matches(o, q)]
    rows.sort(key=lambda o: o["updated_at"], reverse=True)
    for o in rows:
        o["masked"] = mask_name(str((o.get("customer") or {}).get("name", "")))
    template = "_orders.html" if request.headers.get("hx-request") else "orders.html"
    return page(
        request,
        template,
        {
            "orders": rows[:300],
            "site": site,
            "sites": c.cfg.site_ids,
            "status": status,
            "statuses": ("active", *STATUSES, "expired", "all"),
            "q": q,
        },
    )


def _new_id() -> str:
    return time.strftime("C%Y%m%d-") + secrets.token_hex(3).upper()


def _form_page(request: Request, values: dict[str, str], errors: dict[str, str]) -> Response:
    c = ctx(request)
    return page(
        request,
        "order_new.html",
        {
            "values": values,
            "errors": errors,
            "sites": c.cfg.site_ids,
            "statuses": CREATE_STATUSES,
        },
        status=422 if errors else 200,
    )


async def new_form(request: Request) -> Response:
    await require(request, owner=True)
    values = {k: "" for k in FIELDS}
    values.update(
        site=_site(request, request.query_params.get("site")), order_id=_new_id(), status="paid"
    )
    return _form_page(request, values, {})


def _number(text: str) -> bool:
    """ASCII digits with at most one point (``str.isdigit`` also takes ``¹``, which
    ``int`` refuses)."""
    plain = text.replace(".", "", 1)
    return plain.isascii() and plain.isdigit()


def parse_items(text: str, t: Any) -> list[dict[str, Any]]:
    """One item a line: ``name``, ``name qty`` or ``name qty unit`` (or ``name:qty:unit``)."""
    items: list[dict[str, Any]] = []
    for raw in text.replace(";", "\n").splitlines():
        line = raw.strip()
        if not line:
            continue
        parts = line.split(":") if ":" in line else line.rsplit(None, 2)
        name, qty, unit = parts[0].strip(), "1", ""
        if len(parts) >= 2:
            if _number(parts[1].strip()):
                qty = parts[1].strip()
                unit = parts[2].strip() if len(parts) > 2 else ""
            else:
                name = line  # no number: the whole line is the name
        if not name or len(name) > 64 or not printable(name) or len(unit) > 16:
            raise RequestError(t("orders.bad_item", line=line[:40]), "items", 422)
        number = float(qty) if "." in qty else int(qty)
        if not 0 < number <= 100000:
            raise RequestError(t("orders.bad_qty", line=line[:40]), "items", 422)
        items.append({"name": name, "qty": number, "unit": unit})
        if len(items) > 100:
            raise RequestError(t("orders.too_many_items"), "items", 422)
    return items


def order_body(values: dict[str, str], t: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The API body of the create form, and each field's error."""
    errors: dict[str, str] = {}
    body: dict[str, Any] = {"order_id": values["order_id"], "status": values["status"]}
    if not valid_id(values["order_id"]):
        errors["order_id"] = t("orders.bad_order_id")
    if values["status"] not in CREATE_STATUSES:
        errors["status"] = t("orders.bad_status")
    name, tail = values["customer_name"], values["phone_tail"]
    if len(name) > 64 or not printable(name):
        errors["customer_name"] = t("orders.bad_name")
    if tail and not (len(tail) <= 4 and tail.isascii() and tail.isdigit()):
        errors["phone_tail"] = t("orders.bad_tail")
    if name or tail:
        body["customer"] = {"name": name, "phone_tail": tail}
    if values["slot"]:
        if len(values["slot"]) > 16 or not printable(values["slot"]):
            errors["slot"] = t("orders.bad_slot")
        body["slot"] = values["slot"]
    try:
        body["items"] = parse_items(values["items"], t)
    except RequestError as err:
        errors["items"] = err.error
    return body, errors


_API_FIELD = {"customer": "customer_name", "pickup_no": "order_id", None: "order_id"}


async def create(request: Request) -> Response:
    session, form = await post(request, owner=True)
    c = ctx(request)
    t = words(request)
    values = {k: str(form.get(k) or "").strip()[:2000] for k in FIELDS}
    errors: dict[str, str] = {}
    if values["site"] not in c.cfg.site_ids:
        errors["site"] = t("orders.bad_site")
    body, more = order_body(values, t)
    errors.update(more)
    if errors:
        return _form_page(request, values, errors)
    try:
        result = await c.runner.call(
            c.orders.create,
            values["site"],
            body,
            c.clock(),
            client=f"console:{session.account.name}",
        )
    except RequestError as err:
        field = _API_FIELD.get(err.field, err.field or "order_id")
        return _form_page(request, values, {field if field in FIELDS else "order_id": err.error})
    await log_action(
        request,
        session.account.name,
        "order_created",
        site=values["site"],
        target=values["order_id"],
        detail={"pickup_no": result.body["pickup_no"], "status": values["status"]},
    )
    c.orders_changed()
    console(request).live.changed({"orders"})
    return RedirectResponse(
        f"/console/orders/{values['site']}/{values['order_id']}", status_code=303
    )


async def detail(request: Request, *, errors: dict[str, str] | None = None) -> Response:
    await require(request)
    site, oid = _order_param(request)
    c = ctx(request)
    view = await c.runner.call(c.orders.get, site, oid, c.clock())
    view["masked"] = mask_name(str((view.get("customer") or {}).get("name", "")))
    return page(
        request,
        "order.html",
        {"o": view, "statuses": STATUSES, "errors": errors or {}},
        status=422 if errors else 200,
    )


async def change(request: Request) -> Response:
    session, form = await post(request, owner=True)
    site, oid = _order_param(request)
    c = ctx(request)
    t = words(request)
    status = str(form.get("status") or "")[:32]
    slot = str(form.get("slot") or "").strip()[:64]
    errors: dict[str, str] = {}
    if status not in STATUSES:
        errors["status"] = t("orders.bad_status")
    if len(slot) > 16 or not printable(slot):
        errors["slot"] = t("orders.bad_slot")
    if errors:
        return await detail(request, errors=errors)
    try:
        await c.runner.call(
            c.orders.update, site, oid, {"status": status, "slot": slot or None}, c.clock()
        )
    except RequestError as err:
        return await detail(
            request, errors={err.field if err.field in ("status", "slot") else "status": err.error}
        )
    await log_action(
        request,
        session.account.name,
        "order_changed",
        site=site,
        target=oid,
        detail={"status": status, "slot": slot or None},
    )
    c.orders_changed()
    console(request).live.changed({"orders"})
    return RedirectResponse(f"/console/orders/{site}/{oid}", status_code=303)


async def cancel(request: Request) -> Response:
    session, _form = await post(request, owner=True)
    site, oid = _order_param(request)
    c = ctx(request)
    try:
        await c.runner.call(c.orders.cancel, site, oid, c.clock())
    except RequestError as err:
        return await detail(request, errors={"status": err.error})
    await log_action(
        request,
        session.account.name,
        "order_cancelled",
        site=site,
        target=oid,
    )
    c.orders_changed()
    console(request).live.changed({"orders"})
    return RedirectResponse(f"/console/orders/{site}/{oid}", status_code=303)


async def new_link(request: Request) -> Response:
    session, _form = await post(request, owner=True)
    site, oid = _order_param(request)
    c = ctx(request)
    await c.runner.call(c.orders.new_link, site, oid, c.clock())
    await log_action(
        request,
        session.account.name,
        "order_new_link",
        site=site,
        target=oid,
    )
    return RedirectResponse(f"/console/orders/{site}/{oid}", status_code=303)


async def qr(request: Request) -> Response:
    await require(request)
    site, oid = _order_param(request)
    c = ctx(request)
    view = await c.runner.call(c.orders.get, site, oid, c.clock())
    code = segno.make(view["customer_url"], error="m")
    svg = code.svg_inline(scale=6, border=2, dark="#000", light="#fff")
    return Response(
        svg,
        media_type="image/svg+xml",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


# ----- CSV import -----------------------------------------------------------------


def _import_page(request: Request, **data: Any) -> Response:
    c = ctx(request)
    base: dict[str, Any] = {
        "sites": c.cfg.site_ids,
        "site": c.cfg.site_ids[0] if c.cfg.site_ids else "",
        "errors": {},
        "results": None,
        "preview_id": "",
        "stored": None,
    }
    base.update(data)
    return page(request, "import.html", base, status=422 if base["errors"] else 200)


async def import_form(request: Request) -> Response:
    await require(request, owner=True)
    return _import_page(request)


def _rows(raw: bytes, filename: str, site: str) -> list[tuple[int, dict[str, Any] | RowError]]:
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ".csv"
    return rows_from_bytes(raw, suffix, site, filename[:100] or "the file")


async def import_preview(request: Request) -> Response:
    session, form = await post(request, owner=True, limit=MAX_UPLOAD_BYTES)
    c = ctx(request)
    t = words(request)
    con = console(request)
    site = str(form.get("site") or "")
    upload = form.get("file")
    if site not in c.cfg.site_ids:
        return _import_page(request, errors={"site": t("orders.bad_site")})
    if upload is None or isinstance(upload, str):
        return _import_page(request, site=site, errors={"file": t("import.no_file")})
    raw = await upload.read()
    filename = str(upload.filename or "orders.csv")
    try:
        rows = _rows(raw, filename, site)
    except RequestError as err:
        return _import_page(request, site=site, errors={"file": err.error})
    if not rows:
        return _import_page(request, site=site, errors={"file": t("import.empty")})
    results = await c.runner.call(
        preview_rows, c.orders, rows, c.clock(), client=f"console:{session.account.name}"
    )
    now = c.clock()
    for key in [k for k, v in con.previews.items() if now - v["at"] > PREVIEW_KEEP_S]:
        del con.previews[key]
    while len(con.previews) >= MAX_PREVIEWS:
        con.previews.pop(next(iter(con.previews)))
    preview_id = secrets.token_urlsafe(16)
    bad = [r for r in results if r.error is not None]
    if not bad:
        con.previews[preview_id] = {
            "at": now,
            "account": session.account.name,
            "raw": raw,
            "filename": filename,
            "site": site,
        }
    return _import_page(
        request,
        site=site,
        results=results,
        bad=len(bad),
        preview_id=preview_id if not bad else "",
        filename=filename,
    )


async def import_store(request: Request) -> Response:
    session, form = await post(request, owner=True)
    c = ctx(request)
    t = words(request)
    con = console(request)
    pid = str(form.get("preview") or "")[:64]
    held = con.previews.get(pid)
    if held is None or held["account"] != session.account.name:
        return _import_page(request, errors={"file": t("import.expired")})
    rows = _rows(held["raw"], held["filename"], held["site"])
    try:
        created = await c.runner.call(
            store_rows, c.orders, rows, c.clock(), client=f"console:{session.account.name}"
        )
    except RequestError as err:  # something changed since the preview: nothing stored
        return _import_page(
            request, site=held["site"], errors={"file": f"{t('import.changed')} {err.error}"}
        )
    con.previews.pop(pid, None)
    await log_action(
        request,
        session.account.name,
        "orders_imported",
        site=held["site"],
        target=held["filename"][:100],
        detail={"orders": len(created)},
    )
    c.orders_changed()
    con.live.changed({"orders"})
    return _import_page(request, site=held["site"], stored=created)


def routes() -> list[BaseRoute]:
    one = "/console/orders/{site}/{order_id}"
    return [
        Route("/console/orders", orders, methods=["GET"]),
        Route("/console/orders/new", new_form, methods=["GET"]),
        Route("/console/orders/new", create, methods=["POST"]),
        Route("/console/import", import_form, methods=["GET"]),
        Route("/console/import", import_preview, methods=["POST"]),
        Route("/console/import/store", import_store, methods=["POST"]),
        Route(one, detail, methods=["GET"]),
        Route(one + "/change", change, methods=["POST"]),
        Route(one + "/cancel", cancel, methods=["POST"]),
        Route(one + "/link", new_link, methods=["POST"]),
        Route(one + "/qr.svg", qr, methods=["GET"]),
    ]
