"""Every console page and form through the ASGI app (Starlette's TestClient)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.archive import Incoming
from hub.console.guard import ACCOUNT_FREE
from protocol.canonical import dumps
from protocol.events import build_event
from tests.support.console import Env, csrf_of, make_env

PAGES = (
    "/console/",
    "/console/sites",
    "/console/sites/shop-a/tonight",
    "/console/sites/shop-a/unlock",
    "/console/sites/shop-a/staff",
    "/console/alerts",
    "/console/orders",
    "/console/account",
    "/console/audit",
    "/console/badge",
)
OWNER_PAGES = ("/console/orders/new", "/console/import")


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = make_env(tmp_path)
    e.add_account("amy", "owner")
    e.add_account("sam", "staff")
    return e


def test_every_page_needs_a_session(env: Env) -> None:
    for path in (*PAGES, *OWNER_PAGES, "/console/live"):
        r = env.client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login"), path
    r = env.client.get("/console/alerts", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 401 and r.headers["HX-Redirect"].startswith("/console/login")
    assert env.client.post("/console/logout", data={}).status_code == 401


def test_owner_sees_every_page_with_safe_headers(env: Env) -> None:
    assert env.login("amy").status_code == 303
    for path in (*PAGES, *OWNER_PAGES):
        r = env.client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
    assert "unlock-form" in env.client.get("/console/sites/shop-a/unlock").text


def test_staff_sees_but_cannot_change(env: Env) -> None:
    env.login("sam")
    for path in PAGES:
        assert env.client.get(path).status_code == 200, path
    assert "unlock-form" not in env.client.get("/console/sites/shop-a/unlock").text
    assert "/unlock" not in env.client.get("/console/").text
    for path in OWNER_PAGES:
        assert env.client.get(path).status_code == 403
    for path, data in (
        ("/console/sites/shop-a/unlock", {"reason": "x"}),
        ("/console/orders/new", {"site": "shop-a", "order_id": "S-1", "status": "paid"}),
        ("/console/mutes", {"site": "shop-a", "kind": "*", "minutes": "60"}),
        ("/console/account/keys", {"public_key": "x", "label": "y"}),
    ):
        r = env.post(path, data)
        assert r.status_code == 403, path
    assert env.ctx.orders.search("shop-a", env.clock()) == []
    assert env.console.commands.recent("shop-a", env.clock()) == []


def test_login_failures_are_limited_and_logged(env: Env) -> None:
    for _ in range(ACCOUNT_FREE):
        assert env.login("amy", "wrong password!").status_code == 401
    r = env.login("amy")  # right password, but the account must wait now
    assert r.status_code == 429 and ("Wait" in r.text or "等" in r.text)
    env.clock.advance(31)
    assert env.login("amy").status_code == 303
    actions = [r["action"] for r in env.console.accounts.audit_log()]
    assert actions.count("login_failed") == ACCOUNT_FREE and actions[0] == "login"
    # unknown names and garbage cost the same and never crash
    for name in ("nobody", "", "x" * 500, "名字", "a\x00b"):
        assert env.login(name, "whatever").status_code in (401, 429)


def test_login_form_needs_its_own_token(env: Env) -> None:
    r = env.client.post(
        "/console/login",
        data={"name": "amy", "password": "correct horse battery", "csrf": "forged"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert env.client.get("/console/", follow_redirects=False).status_code == 303


def test_csrf_and_ended_sessions_refuse_and_store_nothing(env: Env) -> None:
    env.login("amy")
    body = {"site": "shop-a", "order_id": "X-1", "status": "paid", "items": ""}
    assert env.client.post("/console/orders/new", data=body).status_code == 403
    r = env.client.post("/console/orders/new", data={**body, "csrf": "x" * 32})
    assert r.status_code == 403 and ("out of date" in r.text or "过期" in r.text)
    token = env.csrf()
    r = env.client.post(
        "/console/orders/new",
        data={**body, "csrf": token},
        headers={"Origin": "http://evil.example"},
    )
    assert r.status_code == 403
    # the session goes idle past console.idle_days: the same form is refused
    env.clock.advance(env.ctx.cfg.console.idle_days * 86400 + 1)
    r = env.client.post("/console/orders/new", data={**body, "csrf": token})
    assert r.status_code == 401
    assert env.ctx.orders.search("shop-a", env.clock()) == []
    # and a fresh login works
    env.login("amy")
    assert env.post("/console/orders/new", body).status_code == 303


def test_logout_and_logout_everywhere(env: Env, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from hub.web import create_app

    env.login("amy")
    second = TestClient(create_app(env.ctx), base_url="http://127.0.0.1:8080")
    env.login("amy", client=second)
    assert second.get("/console/", follow_redirects=False).status_code == 200
    r = env.post("/console/logout-everywhere")
    assert r.status_code == 303
    assert second.get("/console/", follow_redirects=False).status_code == 303
    assert env.client.get("/console/", follow_redirects=False).status_code == 303
    env.login("amy")
    assert env.post("/console/logout").status_code == 303
    assert env.client.get("/console/", follow_redirects=False).status_code == 303
    actions = [r["action"] for r in env.console.accounts.audit_log()]
    assert "logout_everywhere" in actions and actions[0] == "logout"


def test_create_change_cancel_and_link(env: Env) -> None:
    env.login("amy")
    r = env.post(
        "/console/orders/new",
        {
            "site": "shop-a",
            "order_id": "HM-1",
            "customer_name": "李少云",
            "phone_tail": "1234",
            "items": "红提 1 盒\n牛奶 2 瓶",
            "slot": "",
            "status": "paid",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/orders/shop-a/HM-1"
    view = env.ctx.orders.get("shop-a", "HM-1", env.clock())
    assert view["items"] == [
        {"name": "红提", "qty": 1, "unit": "盒"},
        {"name": "牛奶", "qty": 2, "unit": "瓶"},
    ]
    page = env.client.get("/console/orders/shop-a/HM-1").text
    assert "李*云" in page and "secret" not in page.lower() and view["customer_url"] in page
    svg = env.client.get("/console/orders/shop-a/HM-1/qr.svg")
    assert svg.status_code == 200 and svg.text.startswith("<svg")
    assert (
        env.post(
            "/console/orders/shop-a/HM-1/change", {"status": "ready", "slot": "B3"}
        ).status_code
        == 303
    )
    assert env.ctx.orders.get("shop-a", "HM-1", env.clock())["slot"] == "B3"
    r = env.post("/console/orders/shop-a/HM-1/change", {"status": "ready", "slot": "x" * 40})
    assert r.status_code == 422 and 'id="err-slot"' in r.text
    old = view["customer_url"]
    assert env.post("/console/orders/shop-a/HM-1/link").status_code == 303
    assert env.ctx.orders.get("shop-a", "HM-1", env.clock())["customer_url"] != old
    assert env.post("/console/orders/shop-a/HM-1/cancel").status_code == 303
    assert env.ctx.orders.get("shop-a", "HM-1", env.clock())["status"] == "cancelled"
    r = env.post("/console/orders/shop-a/HM-1/change", {"status": "ready", "slot": ""})
    assert r.status_code == 422 and "cannot change status" in r.text
    actions = [a["action"] for a in env.console.accounts.audit_log()]
    for a in ("order_created", "order_changed", "order_new_link", "order_cancelled"):
        assert a in actions
    assert all(a["account"] == "amy" for a in env.console.accounts.audit_log())
    listed = env.client.get("/console/orders?site=shop-a&status=all&q=李").text
    assert "HM-1" in listed


def test_bad_fields_each_get_a_message(env: Env) -> None:
    env.login("amy")
    r = env.post(
        "/console/orders/new",
        {
            "site": "nowhere",
            "order_id": "bad id!",
            "customer_name": "x" * 70,
            "phone_tail": "12345",
            "items": ":3",
            "slot": "s" * 20,
            "status": "shipped",
        },
    )
    assert r.status_code == 422
    for field in ("site", "order_id", "customer_name", "phone_tail", "items", "slot", "status"):
        assert f'id="err-{field}"' in r.text, field
    assert env.ctx.orders.search("shop-a", env.clock(), status=None) == []


def test_csv_import_preview_then_store(env: Env) -> None:
    env.login("amy")
    bad = "order_id,status,phone_tail\nA-1,ready,1\nA-2,nope,2\nA-1,paid,3\n"
    r = env.post(
        "/console/import",
        {"site": "shop-a"},
        files={"file": ("orders.csv", bad.encode(), "text/csv")},
    )
    assert r.status_code == 200 and "import-store" not in r.text
    assert 'data-line="3"' in r.text and "appears twice" in r.text
    assert env.ctx.orders.search("shop-a", env.clock()) == []
    good = "order_id,status\nA-1,ready\nA-2,paid\n"
    r = env.post(
        "/console/import", {"site": "shop-a"}, files={"file": ("o.csv", good.encode(), "text/csv")}
    )
    preview = r.text.split('name="preview" value="')[1].split('"')[0]
    assert env.ctx.orders.search("shop-a", env.clock()) == []  # a preview stores nothing
    r = env.post("/console/import/store", {"preview": preview})
    assert "import-stored" in r.text and len(env.ctx.orders.search("shop-a", env.clock())) == 2
    r = env.post("/console/import/store", {"preview": preview})  # not twice
    assert "expired" in r.text or "过期" in r.text
    r = env.post(
        "/console/import", {"site": "shop-a"}, files={"file": ("o.xls", b"\xff\xfe", "x/y")}
    )
    assert r.status_code == 422 and 'id="err-file"' in r.text


def _events(env: Env, site: str, specs: list[tuple[str, str | None, dict[str, object]]]) -> None:
    prev, out = "0" * 64, []
    for seq, (kind, oid, detail) in enumerate(specs, 1):
        ev = build_event(
            site=site,
            seq=seq,
            prev_hash=prev,
            ts=env.clock() - 600 + seq,
            clock="synced",
            type_=kind,
            order_id=oid,
            detail=detail,
        )
        prev = ev["hash"]
        out.append(Incoming(site, dumps(ev)))
    env.ctx.archive.ingest(out, env.clock())


def test_tonight_reads_like_a_person_wrote_it(env: Env) -> None:
    env.ctx.orders.create(
        "shop-a",
        {"order_id": "HM-42", "status": "ready", "slot": "B3", "customer": {"name": "李少云"}},
        env.clock(),
    )
    _events(
        env,
        "shop-a",
        [
            ("code_accepted", "HM-42", {"kind": "totp"}),
            ("door_unlocked", "HM-42", {"by": "code"}),
            ("order_collected", "HM-42", {}),
            ("code_rejected", "HM-42", {"reason": "not_paid"}),
            ("door_forced", None, {}),
            ("exit_pressed", None, {}),
            ("door_unlocked", None, {"by": "command", "reason": "locked out", "account": "amy"}),
        ],
    )
    env.console.timeline.record_presence("shop-a", False, env.clock() - 300)
    env.login("amy")
    page = env.client.get("/console/sites/shop-a/tonight", headers={"Accept-Language": "en"})
    text = page.text
    assert "李*云 collected order 001 (slot B3)" in text
    assert "refused: order 001 not paid yet" in text
    assert "ALARM: door forced open" in text and "exit button pressed" in text
    assert "door opened remotely by amy: “locked out”" in text
    assert "kiosk went offline" in text
    zh = env.client.get("/console/sites/shop-a/tonight", headers={"Accept-Language": "zh-CN"})
    assert "李*云 取走了订单 001（格口 B3）" in zh.text
    only = env.client.get("/console/sites/shop-a/tonight?type=alarms").text
    assert 'data-type="door_forced"' in only and 'data-type="exit_pressed"' not in only
    by_no = env.client.get("/console/sites/shop-a/tonight?order=001").text
    assert 'data-type="order_collected"' in by_no and 'data-type="door_forced"' not in by_no
    bad = env.client.get("/console/sites/shop-a/tonight?from=2026-13-40&type=nope&order=a b")
    assert bad.status_code == 422
    assert all(f'id="err-{f}"' in bad.text for f in ("from", "type", "order"))
    raw = env.client.get("/console/sites/shop-a/events/3", headers={"Accept-Language": "en"})
    assert "chain verified" in raw.text and "order_collected" in raw.text
    assert env.client.get("/console/sites/shop-a/events/99").status_code == 404
    assert env.client.get("/console/sites/shop-a/events/abc").status_code == 404
    assert env.client.get("/console/sites/nowhere/tonight").status_code == 404
    csv = env.client.get("/console/sites/shop-a/tonight.csv", headers={"Accept-Language": "en"})
    rows = csv.text.lstrip("\ufeff").strip().splitlines()
    assert rows[0].startswith("site,seq,ts_utc") and len(rows) == 8
    assert "collected order 001" in csv.text


def test_alerts_ack_and_mute(env: Env) -> None:
    env.ctx.alerts.raise_("shop-a", "door_forced", "seq:5", {"seq": 5}, env.clock())
    env.login("sam")
    page = env.client.get("/console/alerts")
    assert "alert-1" in page.text and 'class="badge"' in page.text
    assert env.post("/console/alerts/1/ack").status_code == 303  # staff may say they saw it
    assert env.ctx.alerts.search(state="active") == []
    assert (
        env.post("/console/mutes", {"site": "shop-a", "kind": "*", "minutes": "60"}).status_code
        == 403
    )
    env.login("amy")
    r = env.post("/console/mutes", {"site": "shop-x", "kind": "nope", "minutes": "0"})
    assert r.status_code == 422 and all(
        f'id="err-{f}"' in r.text for f in ("site", "kind", "minutes")
    )
    assert env.ctx.alerts.mutes(env.clock()) == []
    assert (
        env.post("/console/mutes", {"site": "shop-a", "kind": "*", "minutes": "60"}).status_code
        == 303
    )
    assert len(env.ctx.alerts.mutes(env.clock())) == 1
    assert env.post("/console/mutes/delete", {"site": "shop-a", "kind": "*"}).status_code == 303
    assert env.ctx.alerts.mutes(env.clock()) == []
    actions = [(a["account"], a["action"]) for a in env.console.accounts.audit_log()]
    assert ("sam", "alert_acked") in actions and ("amy", "alert_muted") in actions
    assert json.dumps(env.ctx.alerts.search()[0].as_dict()).count("console:sam") == 1


def test_language_switch_and_safe_next(env: Env) -> None:
    env.login("amy")
    r = env.client.get("/console/lang/en?next=/console/alerts", follow_redirects=False)
    assert r.headers["location"] == "/console/alerts" and "ph_lang=en" in r.headers["set-cookie"]
    for evil in ("//evil.example", "https://evil.example", "/\\evil", "javascript:x"):
        r = env.client.get(f"/console/lang/en?next={evil}", follow_redirects=False)
        assert r.headers["location"] == "/console/", evil
    assert "Sites" in env.client.get("/console/lang/en?next=/console/").text
    assert "站点" in env.client.get("/console/lang/zh?next=/console/").text


def test_the_login_page_names_no_secret_and_escapes(env: Env) -> None:
    r = env.login("<script>alert(1)</script>", "x")
    assert "<script>alert(1)</script>" not in r.text
    assert csrf_of(env.client.get("/console/login").text)
