"""The console in a real browser (Debian's Chromium, phone size) against a real
hub, a real Mosquitto and a real simulated kiosk (``kiosk door`` + ``kiosk sync``).

One flow, as the owner lives it: log in; the site comes online and goes
offline and back on an open page; a customer opens her link, the code there
is what ``oathtool`` computes, she types it on the kiosk and the entry
appears in Tonight; the link stops showing a code; the owner makes a door key
on her phone, adds it to the kiosk and opens the door remotely (the kiosk's
events carry her reason and account); staff cannot; the hub stops on SIGTERM
with pages connected.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.support.browser import PHONE, Stack, browser, login, oathtool, stop
from tests.support.polling import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.broker]
T = 20_000  # ms: generous polling timeouts, never a latency threshold


def _kiosk_orders(db: Path) -> int:
    try:
        con = sqlite3.connect(db)
        (n,) = con.execute("SELECT COUNT(*) FROM orders WHERE status = 'ready'").fetchone()
        con.close()
        return int(n)
    except sqlite3.Error:
        return 0


def _code_on_page(page: object, stack: Stack, order_id: str) -> str:
    """The full code the page shows, checked against oathtool for the same instant."""
    doc = stack.secret(order_id)
    secret, digits = doc["otp"]["secret"], doc["otp"]["digits"]
    for _ in range(3):
        page.reload()  # type: ignore[attr-defined]
        before = time.time()
        shown = page.get_attribute("#code", "aria-label")  # type: ignore[attr-defined]
        after = time.time()
        if int(before // 30) == int(after // 30):
            expected = doc["pickup_no"] + oathtool(secret, digits, before)
            assert shown == expected, (shown, expected)
            return str(shown)
    raise AssertionError("could not read the code within one 30 s step")


def test_the_owners_night(tmp_path: Path) -> None:
    stack = Stack(tmp_path).start_hub()
    base = stack.base
    try:
        with sync_playwright() as p:
            b = browser(p)
            owner = b.new_context(viewport=PHONE, locale="en-US", is_mobile=True, has_touch=True)
            page = owner.new_page()
            login(page, base, "amy")
            card = "#site-shop-e2e"
            assert "no status yet" in page.inner_text(card)
            page.evaluate("window.__kept = 1")  # gone if the page reloads
            # the kiosk comes up: the open page shows it online, live
            stack.start_sync()
            stack.start_door()
            page.wait_for_selector(f"{card}[data-online=yes]", timeout=T)
            assert page.evaluate("window.__kept") == 1
            assert page.evaluate("window.pickupLive.readyState") == 1

            # an order through the API; the customer opens her link
            r = stack.api(
                "POST",
                "/orders",
                {
                    "order_id": "HM-0042",
                    "status": "ready",
                    "slot": "B3",
                    "customer": {"name": "李少云", "phone_tail": "1234"},
                    "items": [{"name": "红提", "qty": 1, "unit": "盒"}],
                },
            )
            assert r.status_code == 201, r.text
            link = r.json()["customer_url"]
            assert stack.kcfg is not None
            wait_for(lambda: _kiosk_orders(stack.tmp / "kiosk" / "kiosk.db") >= 1, what="order")
            cust = b.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True).new_page()
            cust.goto(link)
            assert cust.inner_text("#pickup-no") == "001"
            assert "B3" in cust.inner_text("#slot")
            full = _code_on_page(cust, stack, "HM-0042")
            assert len(full) == 3 + 8 and "otp" not in cust.content().lower()
            short = full[:3] + full[-6:]
            assert short in cust.inner_text("#how") and full in cust.inner_text("#how")

            # Tonight is open while she types the code at the door
            page.goto(f"{base}/console/sites/shop-e2e/tonight")
            page.evaluate("window.__kept = 2")
            stack.type_keys(short + "#")
            wait_for(
                lambda: any(e["type"] == "door_unlocked" for e in stack.kiosk_events()),
                what="the door to unlock for the code from the page",
            )
            stack.type_keys("oc")  # she opens the door, takes the box, closes it
            page.wait_for_selector("text=李*云 collected order 001 (slot B3)", timeout=T)
            assert page.evaluate("window.__kept") == 2  # live, not reloaded
            # the line links to the raw event, verified
            page.click("li[data-type=order_collected] a.raw")
            assert page.inner_text("#chain-state") == "chain verified"

            # her page stops showing a code once the hub has learned the collection
            def collected() -> bool:
                cust.reload()
                return cust.query_selector("#code") is None

            wait_for(collected, timeout=30, what="the customer page to stop showing a code")
            assert "已于" in cust.inner_text("#status") and "取走" in cust.inner_text("#status")

            # the kiosk goes offline and comes back; the open page follows
            page.goto(base + "/console/")
            page.evaluate("window.__kept = 3")
            stop(stack.sync)
            page.wait_for_selector(f"{card}[data-online=no]", timeout=T)
            stack.start_sync()
            page.wait_for_selector(f"{card}[data-online=yes]", timeout=T)
            assert page.evaluate("window.__kept") == 3

            # the owner makes a door key on her phone and adds it to the kiosk
            page.goto(base + "/console/account")
            page.wait_for_selector("#make-key:not([disabled])", timeout=T)
            page.click("#make-key")
            page.wait_for_selector("#trust-line", timeout=T)
            line = page.inner_text("#trust-line").splitlines()[-1]
            assert line.startswith("owner_keys = [")
            page.wait_for_selector("#key-here[data-key-id]", timeout=T)
            stack.owner_keys = line
            stop(stack.sync)
            stack.start_sync()  # the kiosk now trusts the phone's key
            page.goto(base + "/console/")
            page.wait_for_selector(f"{card}[data-online=yes]", timeout=T)

            # remote unlock: a reason, a confirmation, then done
            page.goto(f"{base}/console/sites/shop-e2e/unlock")
            page.fill("textarea[name=reason]", "customer 001 locked out, phone flat")
            page.click("#unlock-continue")
            page.wait_for_selector("#sign-button:not([disabled])", timeout=T)
            assert "Valid until" in page.inner_text("main")
            page.click("#sign-button")
            page.wait_for_selector("#cmd-state[data-state=pending], #cmd-state[data-state=done]")
            page.wait_for_selector("#cmd-state[data-state=done]", timeout=30_000)
            events = stack.kiosk_events()
            unlocked = [
                e
                for e in events
                if e["type"] == "door_unlocked" and e["detail"].get("by") == "command"
            ]
            assert unlocked and unlocked[-1]["detail"]["account"] == "amy"
            assert unlocked[-1]["detail"]["reason"] == "customer 001 locked out, phone flat"
            cmd = [e for e in events if e["type"] == "command" and e["detail"]["cmd"] == "unlock"]
            assert cmd[-1]["detail"]["account"] == "amy" and cmd[-1]["detail"]["ok"] is True
            page.goto(f"{base}/console/sites/shop-e2e/tonight")
            page.wait_for_selector(
                "text=door opened remotely by amy: “customer 001 locked out, phone flat”",
                timeout=T,
            )

            # staff: no button, and the POST is refused
            staff = b.new_context(viewport=PHONE, locale="en-US").new_page()
            login(staff, base, "sam")
            assert staff.query_selector(f"{card} a[href$='/unlock']") is None
            staff.goto(f"{base}/console/sites/shop-e2e/unlock")
            assert staff.query_selector("#unlock-form") is None
            assert staff.query_selector("#staff-note") is not None
            token = staff.get_attribute("footer input[name=csrf]", "value")
            refused = staff.request.post(
                f"{base}/console/sites/shop-e2e/unlock",
                form={"csrf": str(token), "reason": "let me in"},
                headers={"Origin": base},
            )
            assert refused.status == 403

            # SIGTERM stops the hub while pages hold live streams open
            page.goto(base + "/console/")
            page.wait_for_function("window.pickupLive && window.pickupLive.readyState === 1")
            assert stack.hub is not None
            stack.hub.send_signal(15)
            assert stack.hub.wait(timeout=20) == 0
            b.close()
    finally:
        stack.close()
