"""Property tests on every console form: random and mutated fields mixed with
valid ones. Each post either does exactly what it says or answers with a
message next to the field it is about and stores nothing; none fails with
a 5xx."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tests.support.console import Env, make_env

FORM = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
text = st.text(max_size=80)
hostile = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\u202e",
        "💥" * 20,
        "<script>",
        "'; DROP TABLE orders;--",
        "9" * 40,
        "a" * 300,
    ]
)
field = st.one_of(text, hostile)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = make_env(tmp_path)
    e.add_account("amy")
    e.login("amy")
    return e


def _count(env: Env) -> int:
    return len(env.ctx.orders.search("shop-a", env.clock(), limit=10000)) + len(
        env.ctx.orders.search("shop-b", env.clock(), limit=10000)
    )


VALID = {
    "site": "shop-a",
    "customer_name": "李少云",
    "phone_tail": "1234",
    "items": "红提 1 盒",
    "slot": "B3",
    "status": "ready",
}


@FORM
@given(
    mutate=st.dictionaries(
        st.sampled_from([*sorted(VALID), "order_id", "extra"]), field, max_size=4
    ),
    n=st.integers(0, 10**9),
)
def test_order_form(env: Env, mutate: dict[str, str], n: int) -> None:
    body: dict[str, Any] = {**VALID, "order_id": f"P-{n}", **mutate}
    before = _count(env)
    r = env.post("/console/orders/new", body)
    assert r.status_code < 500
    if r.status_code == 303:
        assert _count(env) == before + 1
        site, oid = r.headers["location"].rsplit("/", 2)[-2:]
        view = env.ctx.orders.get(site, oid, env.clock())
        assert view["status"] == body["status"].strip()
        assert (view["slot"] or "") == body["slot"].strip()[:2000]
    else:
        assert r.status_code in (403, 422), r.status_code
        assert 'class="field-error"' in r.text
        assert _count(env) == before


@FORM
@given(status=field, slot=field)
def test_order_change_form(env: Env, status: str, slot: str) -> None:
    if not env.ctx.orders.search("shop-a", env.clock()):
        env.ctx.orders.create("shop-a", {"order_id": "C-1", "status": "paid"}, env.clock())
    before = env.ctx.orders.get("shop-a", "C-1", env.clock())
    r = env.post("/console/orders/shop-a/C-1/change", {"status": status, "slot": slot})
    after = env.ctx.orders.get("shop-a", "C-1", env.clock())
    assert r.status_code < 500
    if r.status_code == 303:
        assert after["status"] == status and (after["slot"] or "") == slot.strip()
    else:
        assert r.status_code == 422 and 'class="field-error"' in r.text
        assert after == before


@FORM
@given(
    site=st.one_of(st.just("shop-a"), field),
    kind=st.one_of(st.just("*"), field),
    minutes=st.one_of(st.just("60"), field),
)
def test_mute_form(env: Env, site: str, kind: str, minutes: str) -> None:
    before = env.ctx.alerts.mutes(env.clock())
    r = env.post("/console/mutes", {"site": site, "kind": kind, "minutes": minutes})
    assert r.status_code < 500
    if r.status_code == 303:
        assert {"site": site, "kind": kind} in [
            {k: m[k] for k in ("site", "kind")} for m in env.ctx.alerts.mutes(env.clock())
        ]
        env.ctx.alerts.unmute(site, kind)
    else:
        assert r.status_code == 422 and 'class="field-error"' in r.text
        assert env.ctx.alerts.mutes(env.clock()) == before


@FORM
@given(reason=st.one_of(st.just("customer locked out"), field))
def test_unlock_reason(env: Env, reason: str) -> None:
    r = env.post("/console/sites/shop-a/unlock", {"reason": reason})
    assert r.status_code < 500
    recent = env.console.commands.recent("shop-a", env.clock(), limit=1000)
    if r.status_code == 200:
        assert recent[0]["reason"] == reason[:1000].strip() and recent[0]["state"] == "prepared"
    else:
        assert r.status_code == 422 and 'id="err-reason"' in r.text
    assert env.published == []  # nothing leaves the hub without a signature


@FORM
@given(name=field, password=field)
def test_login_form(env: Env, name: str, password: str) -> None:
    from starlette.testclient import TestClient

    from hub.web import create_app

    other = TestClient(create_app(env.ctx), base_url="http://127.0.0.1:8080")
    r = env.login(name, password, client=other)
    assert r.status_code in (401, 403, 429)
    assert other.get("/console/", follow_redirects=False).status_code == 303


@FORM
@given(
    public_key=st.one_of(
        field, st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789-_", min_size=40, max_size=46)
    ),
    label=field,
)
@example(public_key="0" * 43, label="\x1b")  # a bad hidden label: its message shows by the key box
def test_key_form(env: Env, public_key: str, label: str) -> None:
    before = env.console.keys.active()
    r = env.post("/console/account/keys", {"public_key": public_key, "label": label})
    assert r.status_code < 500
    if r.status_code == 303:
        assert len(env.console.keys.active()) == len(before) + 1
        env.console.keys.revoke("amy", env.console.keys.active()[-1]["key_id"], env.clock())
    else:
        assert r.status_code == 422 and 'id="err-public_key"' in r.text
        assert env.console.keys.active() == before


@FORM
@given(rows=st.lists(st.tuples(field, st.one_of(st.just("ready"), field), field), max_size=6))
def test_import_form(env: Env, rows: list[tuple[str, str, str]]) -> None:
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["order_id", "status", "phone_tail"])
    w.writerows(rows)
    before = _count(env)
    r = env.post(
        "/console/import",
        {"site": "shop-a"},
        files={"file": ("o.csv", out.getvalue().encode("utf-8"), "text/csv")},
    )
    assert r.status_code < 500
    assert _count(env) == before  # a preview never stores


@FORM
@given(start=field, end=field, kind=field, order=field, before=field)
def test_timeline_filters(
    env: Env, start: str, end: str, kind: str, order: str, before: str
) -> None:
    r = env.client.get(
        "/console/sites/shop-a/tonight",
        params={"from": start, "to": end, "type": kind, "order": order, "before": before},
    )
    assert r.status_code in (200, 422)
    c = env.client.get(
        "/console/sites/shop-a/tonight.csv",
        params={"from": start, "to": end, "type": kind, "order": order},
    )
    assert c.status_code in (200, 422)


STAFF = {
    "name": "林师傅",
    "role": "courier",
    "valid_from": "2026-06-01",
    "valid_until": "2026-12-31",
    "hours": "Mon-Sat 05:00-07:00",
}
_day = st.sampled_from(["Mon", "tue", "WED", "Thu", "Fri", "Sat", "Sun", "Fun", ""])
_hhmm = st.tuples(st.integers(0, 26), st.integers(0, 61)).map(lambda t: f"{t[0]:02d}:{t[1]:02d}")
_window = st.builds(lambda a, b, s, e: f"{a}-{b} {s}-{e}", _day, _day, _hhmm, _hhmm)
_dates = st.dates(min_value=date(2019, 12, 25), max_value=date(2100, 1, 5)).map(str)
staff_value = st.one_of(
    field,
    _dates,
    st.lists(_window, max_size=16).map("\n".join),
    st.sampled_from(["staff", "courier", "owner", "2026-02-30", "2026-05-29"]),
)


@FORM
@given(mutate=st.dictionaries(st.sampled_from([*sorted(STAFF), "extra"]), staff_value, max_size=4))
@example(mutate={"valid_from": "2099-12-31", "valid_until": "2099-12-31"})  # the last day there is
@example(mutate={"hours": "Sun-Sat 24:00-00:00"})
def test_staff_form(env: Env, mutate: dict[str, str]) -> None:
    from zoneinfo import ZoneInfo

    from protocol.staff import validate_staff

    body = {**STAFF, **mutate}
    db = env.ctx.archive.db
    before = db.query("SELECT staff_id FROM staff")
    r = env.post("/console/sites/shop-a/staff", body)
    event(f"staff form answered {r.status_code}")
    assert r.status_code < 500
    after = db.query("SELECT * FROM staff ORDER BY rowid")
    if r.status_code != 303:
        assert r.status_code in (409, 422), r.status_code
        assert 'class="field-error"' in r.text
        assert len(after) == len(before)
        return
    assert len(after) == len(before) + 1
    row = after[-1]
    doc = validate_staff(json.loads(row["doc"]), site="shop-a", width=3)
    assert doc.name == body["name"].strip() and doc.role == body["role"].strip()
    lines = [x for x in body["hours"].replace(";", "\n").splitlines() if x.strip()]
    assert len(doc.schedule) == len(lines)
    start = body["valid_from"].strip()
    if start:
        midnight = datetime.fromisoformat(start).replace(tzinfo=ZoneInfo("Asia/Shanghai"))
        assert doc.valid_from == midnight.timestamp()
    if doc.valid_until is not None:
        assert doc.valid_until > env.clock() and doc.valid_until > (doc.valid_from or 0)
    shown = env.client.get(r.headers["location"])
    assert shown.status_code == 200 and doc.secret[:4] in shown.text
    assert env.client.get(r.headers["location"]).status_code == 410
