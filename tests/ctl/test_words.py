"""kioskctl's words for people: events as sentences, times in a stated zone (issue 12 item 10)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hub.ctl.words import Describer, Times, clean
from protocol.events import EVENT_TYPES

KID = "5f1c0e9a2b7d4c38"


@pytest.fixture
def shanghai() -> Iterator[None]:
    """The laptop's zone is UTC+08:00 (no daylight saving: stable answers)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Shanghai"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def ev(type_: str, detail: dict[str, Any] | None = None, **over: Any) -> dict[str, Any]:
    base = {
        "v": 1,
        "site": "shop-1",
        "seq": 7,
        "ts": "2026-05-13T17:12:09Z",
        "clock": "synced",
        "type": type_,
        "order_id": None,
        "detail": detail or {},
    }
    base.update(over)
    return base


def test_times_are_local_with_the_zone_said_once_or_utc(shanghai: None) -> None:
    local, utc = Times(), Times(utc=True)
    assert local.stamp("2026-05-13T17:12:09Z") == "2026-05-14 01:12:09"
    assert utc.stamp("2026-05-13T17:12:09Z") == "2026-05-13 17:12:09"
    assert local.zone() == "UTC+08:00"
    assert local.zone_note() == (
        "times are this computer's local time (UTC+08:00); kioskctl does not know the "
        "kiosk's time zone (--utc for UTC)"
    )
    assert utc.zone_note() == "times are UTC"
    assert (local.stamp(None), local.stamp("yesterday"), local.stamp(True)) == ("-", "?", "?")
    t = 1_778_692_360.0  # 2026-05-14 01:12:40 in Shanghai
    assert local.clock(t, ref=t) == "01:12:40"
    assert local.clock(t, ref=t + 86400) == "2026-05-14 01:12:40"
    assert local.clock(1e20) == "?"


def test_event_lines_say_what_happened_in_words(shanghai: None) -> None:
    d = Describer(key_names={KID: "laptop"})
    lines = [
        d.event(
            ev(
                "clock_untrusted",
                {"wall": 1_778_692_320.66, "floor": 1_778_692_200.0},
                clock="untrusted",
            )
        ),
        d.event(
            ev(
                "command",
                {
                    "cmd_id": "unlock-1-abc",
                    "cmd": "unlock",
                    "ok": True,
                    "error": "",
                    "key_id": KID,
                    "reason": "courier",
                },
            )
        ),
        d.event(ev("door_unlocked", {"by": "command", "cmd_id": "unlock-1-abc"})),
        d.event(ev("code_rejected", {"reason": "wrong_code"})),
        d.event(
            ev(
                "rejections_summarized",
                {
                    "total": 1532,
                    "seconds": 60,
                    "counts": [
                        {"source": "mqtt", "reason": "bad_signature", "count": 1200},
                        {"source": "mqtt", "reason": "malformed", "count": 332},
                    ],
                },
            )
        ),
    ]
    assert lines == [
        "2026-05-14 01:12:09  #7      the kiosk's clock is not trusted "
        "(wall 01:12, lower bound 01:10)",
        '2026-05-14 01:12:09  #7      remote unlock unlock-1-abc accepted (reason "courier", '
        'key "laptop")',
        "2026-05-14 01:12:09  #7      door unlocked by remote command unlock-1-abc "
        '(reason "courier", key "laptop")',
        "2026-05-14 01:12:09  #7      code refused: the one-time value was wrong",
        "2026-05-14 01:12:09  #7      1532 bad messages ignored in 60 s "
        "(bad signature 1200, malformed 332)",
    ]


def test_a_clock_without_a_lower_bound_and_a_key_without_a_name(shanghai: None) -> None:
    d = Describer()
    line = d.event(ev("clock_untrusted", {"wall": 1_778_692_320.66, "floor": 0.0026}))
    assert line.endswith("the kiosk's clock is not trusted (wall 01:12, no lower bound yet)")
    refused = d.event(
        ev(
            "command",
            {
                "cmd_id": "unlock-2-abc",
                "cmd": "unlock",
                "ok": False,
                "error": "expired: the command expired (expires_at is not after the kiosk's time)",
                "refusal": "expired",
                "key_id": KID,
            },
        )
    )
    assert refused.endswith(
        "remote unlock unlock-2-abc refused: the command expired (expires_at is not after "
        f"the kiosk's time) (key {KID})"
    )
    failed = d.event(
        ev(
            "command",
            {
                "cmd_id": "u",
                "cmd": "unlock",
                "ok": False,
                "error": "door daemon not running",
                "refusal": "door_timeout",
            },
        )
    )
    assert failed.endswith("remote unlock u failed: door daemon not running")


@pytest.mark.parametrize(
    ("event", "words"),
    [
        (
            ev("boot", {"version": "0.1.0", "board": "sim", "clock": "synced"}),
            "door daemon started (version 0.1.0, sim board)",
        ),
        (
            ev("code_accepted", {"kind": "backup"}, order_id="HM-1"),
            "backup code accepted for order HM-1",
        ),
        (ev("throttled", {"reason": "throttled", "wait_s": 60}), "next try in 60 s"),
        (ev("door_unlocked", {"by": "exit"}), "door unlocked from inside (exit button)"),
        (ev("door_opened", {}, order_id="HM-1"), "door opened (customer of order HM-1)"),
        (ev("door_held_open", {"held_s": 60}), "ALARM: door held open longer than 60 s"),
        (ev("door_forced", {}), "ALARM: door forced open (opened while locked)"),
        (
            ev(
                "order_updated",
                {"version": 3, "status": "ready", "pickup_no": "042", "slot": "B3"},
                order_id="HM-1",
            ),
            "order HM-1 received: ready (pickup number 042, slot B3, version 3)",
        ),
        (
            ev("order_cancelled", {"by": "cli", "was": "ready"}, order_id="HM-1"),
            "order HM-1 cancelled at the kiosk (was ready)",
        ),
        (
            ev(
                "message_rejected",
                {
                    "source": "mqtt",
                    "reason": "bad_signature",
                    "message": "the signature matches no trusted key",
                    "topic": "pickup/v1/shop-1/orders/X",
                },
            ),
            "bad message ignored on orders/X: the signature matches no trusted key",
        ),
        (
            ev("store_unwritable", {"error": "disk I/O error"}),
            "ALARM: the kiosk cannot write its database: disk I/O error (codes are refused until "
            "it can)",
        ),
        (ev("mode_changed", {"mode": "night"}), "now in night mode"),
        (ev("some_future_type", {"x": 1}), "some future type (x 1)"),
    ],
)
def test_each_type_in_words(event: dict[str, Any], words: str) -> None:
    assert Describer().event(event).endswith(words)


def test_every_event_type_has_a_sentence_without_raw_json() -> None:
    d = Describer()
    for type_ in sorted(EVENT_TYPES):
        line = d.event(ev(type_, {}))
        words = line.split("#7", 1)[1]
        assert words.strip() and "{" not in words and "_" not in words, line


def test_text_from_the_broker_cannot_drive_the_terminal() -> None:
    assert clean("a\x1b[2Jb\r\nc\x07\u202eevil") == "a\\u001b[2Jb\\u000d\\u000ac\\u0007\\u202eevil"
    assert clean("x" * 500, 10) == "xxxxxxx..."
    line = Describer().event(ev("message_rejected", {"message": "\x1b]0;owned\x07", "topic": 5}))
    assert "\x1b" not in line and "\x07" not in line
