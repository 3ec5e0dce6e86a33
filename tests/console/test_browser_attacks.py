"""An outside attacker with a real Chromium against a real hub, where the browser
matters: what a browser does with a live page whose session was ended from
another phone, and whether hostile kiosk events on Tonight run anything in a
browser that enforces the page's policy."""

from __future__ import annotations

import re
import time
from pathlib import Path

import paho.mqtt.publish as mqtt_publish
import pytest
from playwright.sync_api import sync_playwright

from protocol.canonical import dumps
from protocol.events import ZERO_HASH, build_event
from protocol.topics import events as events_topic
from tests.support.browser import PHONE, Stack, browser, login
from tests.support.hub import archived
from tests.support.polling import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.broker]

HOSTILE = [
    ("code_rejected", {"reason": "<img src=x onerror=window.__pwned=1>"}),
    (
        "door_unlocked",
        {
            "by": "command",
            "account": "<script>window.__pwned=2</script>",
            "reason": "javascript:window.__pwned=3",
        },
    ),
    ("<svg onload=window.__pwned=4>", {}),
    ("staff_entry", {"name": '"><img src=x onerror=window.__pwned=5>', "action": "other"}),
]


def test_a_logout_everywhere_ends_the_other_phones_live_page(tmp_path: Path) -> None:
    stack = Stack(tmp_path).start_hub()
    try:
        with sync_playwright() as p:
            b = browser(p)
            phone = b.new_context(viewport=PHONE, locale="en-US").new_page()
            laptop = b.new_context(viewport=PHONE, locale="en-US").new_page()
            login(phone, stack.base, "amy")
            login(laptop, stack.base, "amy")
            wait_for(lambda: phone.evaluate("window.pickupLive.readyState") == 1, what="live")
            laptop.goto(stack.base + "/console/account")
            laptop.click("form[action='/console/logout-everywhere'] button")
            laptop.wait_for_url(re.compile(r".*/console/login.*"))
            # the phone's stream ends; its reconnection meets the login page, and the
            # browser gives up (CLOSED), rather than following the stream for ever
            wait_for(
                lambda: phone.evaluate("window.pickupLive.readyState") == 2,
                timeout=20,
                what="the phone's live stream to be closed",
            )
            phone.reload()
            assert "/console/login" in phone.url
    finally:
        stack.close()


def test_hostile_kiosk_events_run_nothing_in_the_browser(tmp_path: Path) -> None:
    stack = Stack(tmp_path).start_hub()
    assert stack.broker is not None and stack.cfg is not None
    try:
        prev = ZERO_HASH
        for seq, (kind, detail) in enumerate(HOSTILE, 1):
            ev = build_event(
                site=stack.site,
                seq=seq,
                prev_hash=prev,
                ts=time.time() - 60,
                clock="synced",
                type_=kind,
                detail=detail,
            )
            prev = ev["hash"]
            mqtt_publish.single(
                events_topic(stack.site),
                dumps(ev),
                qos=1,
                hostname="127.0.0.1",
                port=stack.broker.port,
            )
        cfg = stack.cfg
        wait_for(lambda: len(archived(cfg, stack.site)) == len(HOSTILE), what="archived")
        with sync_playwright() as p:
            b = browser(p)
            page = b.new_context(viewport=PHONE, locale="en-US").new_page()
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text))
            page.on("dialog", lambda d: violations.append("dialog " + d.message))
            login(page, stack.base, "amy")
            for path in (
                "/console/",
                f"/console/sites/{stack.site}/tonight",
                f"/console/sites/{stack.site}/events/2",
            ):
                page.goto(stack.base + path)
                page.wait_for_load_state("load")  # the live stream never idles
                assert page.evaluate("window.__pwned") is None, path
            # the last page, the raw event, shows the markup as text
            assert "<script>window.__pwned=2</script>" in page.inner_text("body")
            assert not [v for v in violations if "dialog" in v], violations
    finally:
        stack.close()
