"""A staff code from the console, end to end: a real Mosquitto, the real
``pickup-hub serve``, the real ``kiosk door`` and ``kiosk sync``.

The owner adds a courier's code on the console's Staff page (over HTTP, as
the form posts it) while the broker is down; the hub keeps it and publishes
it once the broker is back, as it does orders. The code, read from the page
that shows it once, opens the simulated door inside its hours; after
**Revoke** on the same page the kiosk refuses it as revoked.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx2 as httpx
import pytest

from protocol.otp import hotp
from tests.support.browser import PASSWORD, Stack
from tests.support.console import csrf_of
from tests.support.polling import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.broker]
TZ = "Asia/Shanghai"  # the hub's default [[site]] timezone; the kiosk is given the same


def login(base: str, name: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=10)
    page = c.get("/console/login")
    r = c.post(
        "/console/login", data={"name": name, "password": PASSWORD, "csrf": csrf_of(page.text)}
    )
    assert r.status_code == 303, r.text[:500]
    return c


def hours_around_now() -> str:
    """Weekly hours from 30 min ago to 60 min ahead, in the site's zone (a span
    past midnight belongs to the day it starts on)."""
    start = datetime.now(ZoneInfo(TZ)) - timedelta(minutes=30)
    end = start + timedelta(minutes=90)
    day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[start.weekday()]
    return f"{day} {start:%H:%M}-{end:%H:%M}"


def events(stack: Stack, kind: str, **detail: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in stack.kiosk_events()
        if e["type"] == kind and all(e["detail"].get(k) == v for k, v in detail.items())
    ]


def test_a_code_from_the_console_opens_the_door_until_revoked(tmp_path: Path) -> None:
    stack = Stack(tmp_path).start_hub()
    assert stack.broker is not None
    try:
        stack.start_sync()  # writes the kiosk's config; the door reads it with the zone
        assert stack.kcfg is not None
        stack.kcfg.write_text(
            stack.kcfg.read_text().replace(
                f'id = "{stack.site}"', f'id = "{stack.site}"\ntimezone = "{TZ}"'
            )
        )
        stack.start_door()
        wait_for(lambda: events(stack, "boot"), 30, what="the door to start", interval=0.5)
        owner = login(stack.base, "amy")
        page = f"/console/sites/{stack.site}/staff"

        stack.broker.stop()  # the broker is down while the owner adds the code
        today = datetime.now(ZoneInfo(TZ)).date()
        r = owner.post(
            page,
            data={
                "csrf": csrf_of(owner.get(page).text),
                "name": "林师傅",
                "role": "courier",
                "valid_from": str(today - timedelta(days=1)),
                "valid_until": str(today + timedelta(days=1)),
                "hours": hours_around_now(),
            },
        )
        assert r.status_code == 303, r.text[-2000:]
        shown = owner.get(r.headers["location"])
        assert shown.status_code == 200
        secret = re.search(r'id="staff-secret">([A-Z2-7 ]+)<', shown.text)
        number = re.search(r'id="staff-no">(\d+)<', shown.text)
        staff_id = re.search(r'data-staff-id="([^"]+)"', shown.text)
        assert secret and number and staff_id
        secret_text, staff_no, sid = secret[1].replace(" ", ""), number[1], staff_id[1]
        assert owner.get(r.headers["location"]).status_code == 410  # shown once
        assert "还没有" in owner.get(page).text  # not sent: no broker
        stack.broker.start()  # same port, its retained messages kept

        wait_for(
            lambda: events(stack, "staff_updated", staff_id=sid, revoked=False),
            90,
            what="the kiosk to get the staff code once the broker is back",
            interval=0.5,
        )

        def type_code() -> None:
            stack.type_keys(staff_no + hotp(secret_text, int(time.time() // 30), 8) + "#")

        type_code()
        (entry,) = wait_for(
            lambda: events(stack, "staff_entry", staff_id=sid),
            30,
            what="the staff entry",
            interval=0.5,
        )
        assert entry["detail"]["name"] == "林师傅" and entry["detail"]["role"] == "courier"
        assert any(e["detail"].get("by") == "staff" for e in events(stack, "door_unlocked"))
        assert "还没有" not in owner.get(page).text  # sent to the kiosk

        r = owner.post(f"{page}/{sid}/revoke", data={"csrf": csrf_of(owner.get(page).text)})
        assert r.status_code == 303
        wait_for(
            lambda: events(stack, "staff_updated", staff_id=sid, revoked=True),
            30,
            what="the revocation at the kiosk",
            interval=0.5,
        )
        type_code()  # even in the same step: revoked says so before "already used"
        (refused,) = wait_for(
            lambda: events(stack, "code_rejected", staff_id=sid),
            30,
            what="the refusal",
            interval=0.5,
        )
        assert refused["detail"]["reason"] == "staff_revoked"
        assert len(events(stack, "staff_entry", staff_id=sid)) == 1

        log = owner.get("/console/audit").text
        assert log.count(sid) == 2 and 'data-action="staff_revoked"' in log
        owner.cookies.set("ph_lang", "en")
        wait_for(
            lambda: (
                "refused: staff code revoked"
                in owner.get(f"/console/sites/{stack.site}/tonight").text
            ),
            30,
            what="the refusal in Tonight",
            interval=0.5,
        )
    finally:
        stack.close()
