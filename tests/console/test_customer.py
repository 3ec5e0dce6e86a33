"""The customer's code page: the code from protocol.otp (the secret never in
the page), the status in words, no code once collected, cancelled or
expired, and a plain page for any wrong, replaced or forgotten token."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from protocol.otp import hotp, totp
from tests.support.console import Env, make_env

BODY = {"order_id": "HM-1", "status": "ready", "slot": "B3", "customer": {"name": "李少云"}}


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path, site_extra='name = "蔡甸一店"')


def _token(env: Env, body: dict[str, object] = BODY) -> str:
    view = env.ctx.orders.create("shop-a", body, env.clock()).body
    return str(view["customer_url"].rsplit("/", 1)[1])


def test_the_code_and_what_to_do(env: Env) -> None:
    token = _token(env, {**BODY, "backup_code": True})
    secret = env.ctx.orders.secret_doc("shop-a", "HM-1")["otp"]["secret"]
    r = env.client.get(f"/c/{token}", headers={"Accept-Language": "en"})
    assert r.status_code == 200
    text = html.unescape(r.text)
    value = totp(secret, env.clock(), 8)
    assert f'aria-label="001{value}"' in text
    assert f"001{value[-6:]} then #" in text and f"001{value} then #" in text
    assert '<span class="lead">' + value[:2] in text and value[-6:] in text
    assert "蔡甸一店" in text and "Ready in slot B3" in text
    assert secret not in r.text and "otp" not in r.text.lower().replace("otp.", "")
    assert f'http-equiv="refresh" content="{30 - int(env.clock()) % 30 + 1}"' in r.text
    assert "001" + hotp(secret, 0, 8) in text  # the backup code, for a kiosk whose clock is off
    assert (
        r.headers["referrer-policy"] == "same-origin" and "no-store" in r.headers["cache-control"]
    )
    # the next step: a new code
    env.clock.advance(30)
    assert totp(secret, env.clock(), 8) in env.client.get(f"/c/{token}").text
    # JSON for programs, never the code
    j = env.client.get(f"/c/{token}", headers={"Accept": "application/json"}).json()
    assert j == {"shop": "蔡甸一店", "pickup_no": "001", "status": "ready", "slot": "B3"}


@pytest.mark.parametrize(
    ("status", "words", "code"),
    [
        ("pending_payment", "Not paid yet: pay on your order page", True),
        ("paid", "this page shows the slot when they are ready", True),
        ("collected", "Collected at", False),
        ("cancelled", "This order was cancelled", False),
    ],
)
def test_each_status_in_words(env: Env, status: str, words: str, code: bool) -> None:
    first = "ready" if status in ("collected", "cancelled") else status
    token = _token(env, {**BODY, "status": first, "slot": None})
    if status != first:
        env.ctx.orders.update("shop-a", "HM-1", {"status": status}, env.clock())
    page = env.client.get(f"/c/{token}", headers={"Accept-Language": "en"}).text
    assert words in page
    assert ('id="code"' in page) is code and ("http-equiv" in page) is code


def test_an_expired_order_shows_no_code(env: Env) -> None:
    token = _token(env)
    env.clock.advance(8 * 86400)
    page = env.client.get(f"/c/{token}", headers={"Accept-Language": "zh-CN"}).text
    assert 'id="code"' not in page and "已于" in page and "过期" in page


def test_wrong_replaced_and_forgotten_links_get_a_plain_page(env: Env) -> None:
    token = _token(env)
    env.ctx.orders.new_link("shop-a", "HM-1", env.clock())
    for bad in (token, "A" * 32, "x", "%00" * 20, "t" * 200):
        r = env.client.get(f"/c/{bad}", headers={"Accept-Language": "en"})
        assert r.status_code == 404, bad
        assert "This link is not valid" in r.text and "Traceback" not in r.text
    r = env.client.get("/c/a/../../etc/passwd")
    assert r.status_code == 404 and "Traceback" not in r.text
    fresh = env.ctx.orders.get("shop-a", "HM-1", env.clock())["customer_url"].rsplit("/", 1)[1]
    env.ctx.orders.forget("shop-a", "HM-1", env.clock())
    assert env.client.get(f"/c/{fresh}").status_code == 404


def test_the_page_is_small(env: Env) -> None:
    token = _token(env)
    page = env.client.get(f"/c/{token}")
    css = env.client.get("/static/customer.css")
    js = env.client.get("/static/customer.js")
    assert css.status_code == js.status_code == 200
    assert len(page.content) + len(css.content) + len(js.content) < 8 * 1024
    assert "http://" not in page.text.replace(env.ctx.cfg.hub.base_url, "")  # no external assets
