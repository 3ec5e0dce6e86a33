"""Forms in a real browser against a real hub: a forged post and an ended
session are refused and change nothing; a CSV import shows every row's error
before anything is stored, then stores all rows once they are right."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.support.browser import PHONE, Stack, browser, login

pytestmark = [pytest.mark.slow, pytest.mark.broker]

BAD_CSV = """site,order_id,status,slot,customer_name,phone_tail,items
shop-e2e,A-1,ready,B3,李少云,1234,红提:1:盒
shop-e2e,A-2,shipped,,王芳,5678,牛奶:2:瓶
shop-e2e,A-3,paid,,张伟,12345,大米:1:袋
"""
GOOD_CSV = BAD_CSV.replace("shipped", "paid").replace("12345", "2345")


def test_forged_and_stale_posts_and_the_import_preview(tmp_path: Path) -> None:
    stack = Stack(tmp_path).start_hub()
    base = stack.base
    try:
        with sync_playwright() as p:
            b = browser(p)
            ctx = b.new_context(viewport=PHONE, locale="en-US")
            page = ctx.new_page()
            login(page, base, "amy")
            # a post without the session's token (another site's form) is refused
            forged = page.request.post(
                f"{base}/console/orders/new",
                form={"site": "shop-e2e", "order_id": "F-1", "status": "paid", "items": ""},
                headers={"Accept-Language": "en"},
            )
            assert forged.status == 403 and "out of date" in forged.text()
            # ... and one from another origin even with the token
            page.goto(base + "/console/orders/new")
            token = page.get_attribute("#order-form input[name=csrf]", "value")
            cross = page.request.post(
                f"{base}/console/orders/new",
                form={"csrf": str(token), "site": "shop-e2e", "order_id": "F-2", "status": "paid"},
                headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
            )
            assert cross.status == 403
            # the import preview: every row's error, nothing stored
            page.goto(base + "/console/import")
            (tmp_path / "orders.csv").write_text(BAD_CSV, encoding="utf-8")
            page.set_input_files("input[name=file]", str(tmp_path / "orders.csv"))
            page.click("#import-form button[type=submit]")
            page.wait_for_selector("#import-preview")
            assert "2 of 3 rows have errors" in page.inner_text("#import-summary")
            assert "status" in page.inner_text("tr[data-line='3']")
            assert "phone_tail" in page.inner_text("tr[data-line='4']")
            assert "would be created" in page.inner_text("tr[data-line='2']")
            assert page.query_selector("#import-store") is None
            assert stack.api("GET", "/orders").json()["orders"] == []
            # fixed: stored, all three
            (tmp_path / "orders.csv").write_text(GOOD_CSV, encoding="utf-8")
            page.set_input_files("input[name=file]", str(tmp_path / "orders.csv"))
            page.click("#import-form button[type=submit]")
            page.click("#import-store")
            page.wait_for_selector("#import-stored")
            assert len(stack.api("GET", "/orders").json()["orders"]) == 3
            # logout everywhere: the old cookie is dead; its form posts are refused
            page.goto(base + "/console/orders/new")
            stale_token = page.get_attribute("#order-form input[name=csrf]", "value")
            other = b.new_context(viewport=PHONE, locale="en-US", storage_state=ctx.storage_state())
            other_page = other.new_page()
            other_page.goto(base + "/console/account")
            other_page.click("#logout-everywhere")
            other_page.wait_for_url(base + "/console/login")
            page.fill("input[name=order_id]", "S-1")
            page.click("#order-form button[type=submit]")
            assert page.locator("text=Your session has ended").count() == 1
            assert stale_token
            page.goto(base + "/console/orders")
            assert page.url.startswith(base + "/console/login")  # sent to log in again
            assert len(stack.api("GET", "/orders").json()["orders"]) == 3  # nothing stored
            b.close()
    finally:
        stack.close()


def test_the_hub_key_fallback_opens_the_real_door(tmp_path: Path) -> None:
    """Option (a), for phones without Ed25519: the hub signs with an owner key the
    owner put in hub.toml; a plain form (no JavaScript) opens the real door."""
    from protocol.keys import generate_private_key, private_key_pem, public_key_text

    key = generate_private_key()
    (tmp_path / "owner.key").write_bytes(private_key_pem(key))
    stack = Stack(tmp_path).start_hub(
        extra=f'[console]\nhub_holds_owner_key = true\nowner_key = "{tmp_path / "owner.key"}"\n'
    )
    stack.owner_keys = f'owner_keys = ["{public_key_text(key.public_key())}"]'
    try:
        stack.start_sync()
        stack.start_door()
        with sync_playwright() as p:
            b = browser(p)
            ctx = b.new_context(viewport=PHONE, locale="en-US", java_script_enabled=False)
            page = ctx.new_page()
            login(page, stack.base, "amy")
            page.wait_for_selector("#site-shop-e2e[data-online=yes]", timeout=20_000)
            page.goto(f"{stack.base}/console/sites/shop-e2e/unlock")
            page.fill("textarea[name=reason]", "courier at the door")
            page.click("#unlock-continue")
            page.click("#hub-send button")
            for _ in range(40):  # no JavaScript: the owner reloads by hand
                if page.query_selector("#cmd-state[data-state=done]"):
                    break
                page.wait_for_timeout(500)
                page.reload()
            assert page.get_attribute("#cmd-state", "data-state") == "done"
            b.close()
        unlocked = [
            e
            for e in stack.kiosk_events()
            if e["type"] == "door_unlocked" and e["detail"].get("by") == "command"
        ]
        assert unlocked[-1]["detail"]["account"] == "amy"
        assert unlocked[-1]["detail"]["reason"] == "courier at the door"
    finally:
        stack.close()
