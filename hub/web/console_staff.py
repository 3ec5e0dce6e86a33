"""Staff codes on the console: a site's staff and courier codes, add one, revoke one.

``/console/sites/{site}/staff`` lists the codes the hub issued for the site
(number, name, role, the window from/until, weekly hours, live or revoked,
sent to the kiosk or not; never a secret). Owners add and revoke; staff
accounts only see (the forms are absent and every POST is refused, 403).

Adding (docs/hub.md, "Staff codes"): the form is judged here, each bad
field gets its message next to it and nothing is stored; a good one is
stored and written to the console log in one transaction
(:class:`hub.staff.StaffBook`), then the browser is sent (303) to a page
that shows the person's ``otpauth://`` QR code and the secret **once**: it
is held in memory under a random token for that one view, for the account
that made it, at most :data:`ONCE_KEEP_S`. A reload finds it gone (410) and
says so; a reload of the POST cannot make a second code, because the
browser only ever reloads the GET.

Dates are the site's local dates (``[[site]] timezone``): *from* starts at
its midnight, *until* is the last day the code works (it ends at the next
midnight). Weekly hours are one window a line (or ``;``-separated), as
``kioskctl staff add --hours`` takes them.
"""

from __future__ import annotations

import re
import secrets
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import segno
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.console import Console
from hub.errors import RequestError
from hub.staff import NewCode, StaffBook
from hub.web import AppContext
from hub.web.common import ctx, site_param
from hub.web.console_sites import local_time, tz_of
from hub.web.i18n import Words
from hub.web.session import address, console, post, require
from hub.web.views import page, words
from protocol.errors import ValidationError
from protocol.orders import printable
from protocol.staff import ACTION_KEYS, MAX_SCHEDULE, ROLES, STAFF_DIGITS, parse_hours, parse_when
from protocol.topics import valid_id

ONCE_KEEP_S = 600.0
MAX_ONCE = 20
MAX_NAME = 64
FIELDS = ("name", "role", "valid_from", "valid_until", "hours")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")


def _staff_param(request: Request) -> str:
    raw = str(request.path_params["staff_id"])
    if not valid_id(raw):
        raise RequestError(words(request)("staff.no_code"), "staff_id", 404)
    return raw


def _book(c: AppContext) -> StaffBook:
    if c.staff is None:
        raise RequestError("this hub issues no staff codes", None, 404)
    return c.staff


# ----- showing ----------------------------------------------------------------------


def days_text(days: list[int], t: Words) -> str:
    """ISO weekdays as ranges in words: ``Mon–Sat``, ``Sat–Mon``, ``Mon, Wed``."""
    ds = sorted(set(days))
    if len(ds) == 7:
        return t("staff.every_day")
    runs: list[list[int]] = []
    for d in ds:
        if runs and d == runs[-1][-1] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    if len(runs) > 1 and runs[0][0] == 1 and runs[-1][-1] == 7:  # a run over Sunday
        runs[0] = runs.pop() + runs[0]
    names = [
        t(f"staff.day.{r[0]}")
        if len(r) == 1
        else f"{t(f'staff.day.{r[0]}')}–{t(f'staff.day.{r[-1]}')}"
        for r in runs
    ]
    return ", ".join(names)


def hours_text(schedule: list[dict[str, Any]], t: Words) -> str:
    if not schedule:
        return t("staff.any_hour")
    return "; ".join(f"{days_text(w['days'], t)} {w['from']}–{w['until']}" for w in schedule)


def _decorate(c: AppContext, v: dict[str, Any], t: Words, now: float) -> dict[str, Any]:
    site = v["site"]
    v["from_local"] = (
        local_time(c.cfg, site, v["valid_from"], "%Y-%m-%d") if v["valid_from"] else ""
    )
    # the last day it works: the until instant is that day's end (the next midnight)
    v["until_local"] = (
        local_time(c.cfg, site, v["valid_until"] - 1, "%Y-%m-%d") if v["valid_until"] else ""
    )
    v["hours"] = hours_text(v["schedule"], t)
    if v["revoked"]:
        v["state"] = "revoked"
    elif v["valid_until"] is not None and v["valid_until"] <= now:
        v["state"] = "expired"
    elif v["valid_from"] is not None and v["valid_from"] > now:
        v["state"] = "not_yet"
    else:
        v["state"] = "active"
    v["created_local"] = local_time(c.cfg, site, v["created_at"])
    return v


async def staff_page(
    request: Request,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int | None = None,
) -> Response:
    await require(request)
    site = site_param(request)
    c = ctx(request)
    t = words(request)
    book = _book(c)
    now = c.clock()
    codes = [_decorate(c, v, t, now) for v in await c.runner.call(book.search, site)]
    section = c.cfg.site(site)
    return page(
        request,
        "staff.html",
        {
            "site": site,
            "name": (section.name if section else "") or site,
            "codes": codes,
            "roles": ROLES,
            "values": values
            or {"name": "", "role": "staff", "valid_from": "", "valid_until": "", "hours": ""},
            "errors": errors or {},
            "tz": tz_of(c.cfg, site),
            "no_len": (section.pickup_no_width + 1) if section else 4,
        },
        status=status or (422 if errors else 200),
    )


# ----- adding -----------------------------------------------------------------------


def _day_after(text: str) -> str:
    return (date.fromisoformat(text) + timedelta(days=1)).isoformat()


def parse_form(
    values: dict[str, str], t: Words, tz: str, now: float
) -> tuple[dict[str, Any], dict[str, str]]:
    """The add form's values for :meth:`hub.staff.StaffBook.add`, and each field's error."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {"name": values["name"], "role": values["role"]}
    name = values["name"]
    if not name:
        errors["name"] = t("staff.name_empty")
    elif len(name) > MAX_NAME or not printable(name):
        errors["name"] = t("staff.bad_name", n=MAX_NAME)
    if values["role"] not in ROLES:
        errors["role"] = t("staff.bad_role")
    zone = ZoneInfo(tz)
    start = end = None
    if values["valid_from"]:
        try:
            start = parse_when(values["valid_from"], zone)
        except ValidationError:
            errors["valid_from"] = t("staff.bad_date")
    if values["valid_until"]:
        raw = values["valid_until"]
        try:
            end = parse_when(_day_after(raw) if _DATE.match(raw) else raw, zone)
        except (ValidationError, ValueError):
            errors["valid_until"] = t("staff.bad_date")
        else:
            if start is not None and end <= start:
                errors["valid_until"] = t("staff.until_before_from")
            elif end <= now:
                errors["valid_until"] = t("staff.until_past")
    out["valid_from"], out["valid_until"] = start, end
    lines = [x.strip() for x in re.split(r"[;\n]", values["hours"]) if x.strip()]
    if len(lines) > MAX_SCHEDULE:
        errors["hours"] = t("staff.too_many_hours", n=MAX_SCHEDULE)
    else:
        schedule = []
        for line in lines:
            try:
                schedule.append(parse_hours(line))
            except ValidationError:
                errors["hours"] = t("staff.bad_hours", line=line[:40])
                break
        out["schedule"] = schedule
    return out, errors


def _add(
    c: AppContext, con: Console, site: str, fields: dict[str, Any], who: str, addr: str
) -> NewCode:
    """Store the code and its console log line in one transaction (the archive thread)."""
    book = _book(c)
    assert book.db is con.accounts.db  # one file, so one transaction holds both
    now = c.clock()
    with book.db.atomic():
        code = book.add(site, now=now, by=f"console:{who}", **fields)
        con.accounts.audit(
            who,
            "staff_added",
            now,
            site=site,
            target=code.staff_id,
            detail={"staff_no": code.staff_no, "name": code.name, "role": code.role},
            address=addr,
        )
    return code


def _shown(values: dict[str, str]) -> dict[str, str]:
    """Typed values to show again: control characters (but line breaks) dropped."""
    return {
        k: "".join(ch for ch in v if ch == "\n" or printable(ch))[:200] for k, v in values.items()
    }


def _hold(con: Console, account: str, code: NewCode, now: float) -> str:
    """Keep the new code for one view by this account; bounded, expiring."""
    held = con.once
    for key in [k for k, v in held.items() if now - v["at"] > ONCE_KEEP_S]:
        del held[key]
    while len(held) >= MAX_ONCE:
        held.pop(next(iter(held)))
    token = secrets.token_urlsafe(18)
    held[token] = {"at": now, "account": account, "code": code}
    return token


async def add(request: Request) -> Response:
    session, form = await post(request, owner=True)
    site = site_param(request)
    c = ctx(request)
    con = console(request)
    t = words(request)
    values = {k: str(form.get(k) or "").strip()[:2000] for k in FIELDS}
    fields, errors = parse_form(values, t, tz_of(c.cfg, site), c.clock())
    if errors:  # shown again to be corrected, without what a page cannot show
        return await staff_page(request, values=_shown(values), errors=errors)
    try:
        code = await c.runner.call(
            _add, c, con, site, fields, session.account.name, address(request)
        )
    except RequestError as err:
        field = err.field if err.field in FIELDS else "name"
        return await staff_page(
            request, values=values, errors={field: err.error}, status=err.status
        )
    c.staff_changed()
    token = _hold(con, session.account.name, code, c.clock())
    return RedirectResponse(f"/console/sites/{site}/staff/new/{token}", status_code=303)


def _grouped(secret: str) -> str:
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


async def shown_once(request: Request) -> Response:
    session = await require(request, owner=True)
    site = site_param(request)
    c = ctx(request)
    con = console(request)
    token = str(request.path_params["token"])[:64]
    held = con.once.get(token)
    if (
        held is None
        or held["account"] != session.account.name
        or held["code"].site != site
        or c.clock() - held["at"] > ONCE_KEEP_S
    ):
        return page(request, "staff_code.html", {"site": site, "code": None}, status=410)
    con.once.pop(token, None)
    code: NewCode = held["code"]
    svg = segno.make(code.uri, error="m").svg_inline(scale=5, border=2, dark="#000", light="#fff")
    return page(
        request,
        "staff_code.html",
        {
            "site": site,
            "code": code,
            "qr": svg,
            "secret": _grouped(code.secret),
            "digits": STAFF_DIGITS,
            "day_on": ACTION_KEYS["day_on"],
            "day_off": ACTION_KEYS["day_off"],
        },
    )


# ----- revoking ---------------------------------------------------------------------


def _revoke(
    c: AppContext, con: Console, site: str, staff_id: str, who: str, addr: str
) -> dict[str, Any]:
    book = _book(c)
    assert book.db is con.accounts.db
    now = c.clock()
    with book.db.atomic():
        view = book.revoke(site, staff_id, now)
        con.accounts.audit(
            who,
            "staff_revoked",
            now,
            site=site,
            target=staff_id,
            detail={"staff_no": view["staff_no"], "name": view["name"], "role": view["role"]},
            address=addr,
        )
    return view


async def revoke(request: Request) -> Response:
    session, _form = await post(request, owner=True)
    site = site_param(request)
    staff_id = _staff_param(request)
    c = ctx(request)
    con = console(request)
    try:
        await c.runner.call(_revoke, c, con, site, staff_id, session.account.name, address(request))
    except RequestError as err:
        if err.status == 404:
            raise RequestError(words(request)("staff.no_code"), "staff_id", 404) from None
        return await staff_page(
            request, errors={"revoke": words(request)("staff.already_revoked")}, status=409
        )
    c.staff_changed()
    return RedirectResponse(f"/console/sites/{site}/staff", status_code=303)


def routes() -> list[BaseRoute]:
    base = "/console/sites/{site}/staff"
    return [
        Route(base, staff_page, methods=["GET"]),
        Route(base, add, methods=["POST"]),
        Route(base + "/new/{token}", shown_once, methods=["GET"]),
        Route(base + "/{staff_id}/revoke", revoke, methods=["POST"]),
    ]
