"""Screenshots of the console's main pages and the customer page in each status,
in Chinese and English, at phone size, from a real hub and a real simulated
kiosk (for docs/console/, linked from docs/hub.md).

    .venv/bin/python -m tests.support.console_shots docs/console

File names are stable: ``{page}-{lang}.png``. tests/console/test_screenshots.py
runs this into a temporary folder, so it keeps working.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from tests.support.browser import PHONE, Stack, browser, login
from tests.support.polling import wait_for

LANGS = {"zh": "zh-CN", "en": "en-US"}


def _orders(stack: Stack) -> dict[str, str]:
    """One order per customer-page status; returns status -> customer link."""
    now = time.time()
    specs: dict[str, dict[str, Any]] = {
        "ready": {
            "order_id": "HM-0042",
            "status": "ready",
            "slot": "B3",
            "customer": {"name": "李少云", "phone_tail": "1234"},
        },
        "pending_payment": {
            "order_id": "HM-0057",
            "status": "pending_payment",
            "customer": {"name": "张伟"},
        },
        "paid": {"order_id": "HM-0058", "status": "paid", "customer": {"name": "Chen Jing"}},
        "collected": {
            "order_id": "HM-0031",
            "status": "ready",
            "slot": "A1",
            "customer": {"name": "王芳"},
        },
        "cancelled": {"order_id": "HM-0033", "status": "paid"},
        "expired": {
            "order_id": "HM-0029",
            "status": "ready",
            "slot": "C2",
            "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 4)),
        },
    }
    links = {}
    for status, body in specs.items():
        r = stack.api("POST", "/orders", body)
        assert r.status_code == 201, r.text
        links[status] = r.json()["customer_url"]
    stack.api("POST", "/orders/HM-0033/cancel")
    return links


def take(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []
    with TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp)).start_hub()
        try:
            stack.start_sync()
            stack.start_door()
            links = _orders(stack)
            wait_for(
                lambda: len([e for e in stack.kiosk_events() if e["type"] == "order_updated"]) >= 6,
                what="orders at the kiosk",
            )
            # a night: the collected order, a refusal, the exit button, a forced door
            doc = stack.secret("HM-0031")
            from protocol.otp import pickup_code

            stack.type_keys(
                pickup_code(doc["pickup_no"], doc["otp"]["secret"], time.time(), 8)[:3]
                + pickup_code(doc["pickup_no"], doc["otp"]["secret"], time.time(), 8)[-6:]
                + "#"
            )
            wait_for(
                lambda: any(e["type"] == "door_unlocked" for e in stack.kiosk_events()),
                what="unlock",
            )
            stack.type_keys("oc")
            pend = stack.secret("HM-0057")
            wait_for(
                lambda: any(e["type"] == "order_collected" for e in stack.kiosk_events()),
                what="collected",
            )
            stack.type_keys(
                pickup_code(pend["pickup_no"], pend["otp"]["secret"], time.time(), 8) + "#"
            )
            time.sleep(1)
            stack.type_keys("oc")  # opened without a code: forced
            wait_for(
                lambda: any(e["type"] == "door_forced" for e in stack.kiosk_events()), what="forced"
            )
            stack.type_keys("x")
            time.sleep(5)  # the expired order expires; the hub archives the night
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                b = browser(p)
                for lang, locale in LANGS.items():
                    ctx = b.new_context(viewport=PHONE, locale=locale, is_mobile=True)
                    page = ctx.new_page()
                    login(page, stack.base, "amy")
                    site = f"{stack.base}/console/sites/{stack.site}"
                    pages = {
                        "sites": stack.base + "/console/",
                        "tonight": site + "/tonight",
                        "alerts": stack.base + "/console/alerts",
                        "unlock": site + "/unlock",
                        "orders": stack.base + "/console/orders",
                        "order": stack.base + f"/console/orders/{stack.site}/HM-0042",
                        "account": stack.base + "/console/account",
                    }
                    for name, url in pages.items():
                        page.goto(url)
                        page.wait_for_load_state("networkidle") if name != "sites" else None
                        shots.append(out / f"{name}-{lang}.png")
                        page.screenshot(path=str(shots[-1]), full_page=True)
                    page.goto(site + "/unlock")
                    page.fill(
                        "textarea[name=reason]",
                        "042 号顾客手机没电"
                        if lang == "zh"
                        else "customer 042 locked out, phone flat",
                    )
                    page.click("#unlock-continue")
                    shots.append(out / f"unlock-confirm-{lang}.png")
                    page.screenshot(path=str(shots[-1]), full_page=True)
                    page.goto(stack.base + "/console/import")
                    csv = Path(tmp) / "orders.csv"
                    csv.write_text(
                        "order_id,status,slot,customer_name,phone_tail,items\n"
                        "A-1,ready,B3,李少云,1234,红提:1:盒\nA-2,shipped,,王芳,5678,牛奶:2:瓶\n"
                        "A-3,paid,,张伟,12345,大米:1:袋\n",
                        encoding="utf-8",
                    )
                    page.set_input_files("input[name=file]", str(csv))
                    page.click("#import-form button[type=submit]")
                    page.wait_for_selector("#import-preview")
                    shots.append(out / f"import-preview-{lang}.png")
                    page.screenshot(path=str(shots[-1]), full_page=True)
                    cust = b.new_context(viewport=PHONE, locale=locale, is_mobile=True).new_page()
                    for status, link in links.items():
                        cust.goto(link)
                        shots.append(out / f"customer-{status}-{lang}.png")
                        cust.screenshot(path=str(shots[-1]), full_page=True)
                    cust.goto(stack.base + "/c/" + "A" * 32)
                    shots.append(out / f"customer-invalid-{lang}.png")
                    cust.screenshot(path=str(shots[-1]), full_page=True)
                b.close()
        finally:
            stack.close()
    return shots


if __name__ == "__main__":
    for path in take(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console")):
        print(path)
