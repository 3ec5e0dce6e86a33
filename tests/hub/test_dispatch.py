"""Routing a received batch: events, status, log records, pages; defects isolated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.alerts import AlertEngine
from hub.dispatch import Dispatcher
from hub.gaps import GapFiller
from hub.ingest import Msg
from protocol.canonical import dumps
from tests.support.hub import T0, chain, context


def msg(topic: str, payload: Any) -> Msg:
    return Msg(topic, payload if isinstance(payload, bytes) else dumps(payload), False, 1, 1)


@pytest.fixture
def dispatcher(tmp_path: Path) -> Dispatcher:
    ctx = context(tmp_path)
    engine = AlertEngine(ctx.alerts, ctx.cfg, T0)
    gaps = GapFiller(ctx.cfg.gaps, ctx.extra["keys"].auditor)
    return Dispatcher(ctx.cfg, ctx.archive, ctx.orders, ctx.alerts, engine, gaps)


def test_routes_by_topic(dispatcher: Dispatcher) -> None:
    a = chain("shop-a", 3)
    rec = {
        "v": 1,
        "site": "shop-a",
        "seq": 1,
        "ts": "2026-05-28T00:00:00Z",
        "level": "INFO",
        "logger": "x",
        "message": "hi",
    }
    out = dispatcher.process(
        [
            *(msg("pickup/v1/shop-a/events", e) for e in a),
            msg("pickup/v1/shop-a/status", {"online": True, "site": "shop-a", "last_seq": 3}),
            msg("pickup/v1/shop-b/status", {"online": True, "site": "shop-a"}),  # another site's
            msg("pickup/v1/shop-a/log", rec),
            msg("pickup/v1/elsewhere/events", a[0]),
            msg("other/topic", b"x"),
        ],
        T0,
    )
    assert out.status_changed == {"shop-a"}
    assert dispatcher.archive.verify("shop-a").ok
    assert dispatcher.archive.status("shop-b") is None
    assert dispatcher.archive.logs("shop-a") == [dumps(rec)]
    assert dispatcher.ignored["foreign_topic"] == 2 and dispatcher.ignored["status:wrong_site"] == 1


def test_a_defect_met_by_one_message_spares_the_rest(
    dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(site: str, events: Any, now: float) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(dispatcher.orders, "learn", broken)
    a = chain("shop-a", 2)
    b = chain("shop-b", 1, type_="order_collected", order_id="X")
    dispatcher.process(
        [*(msg("pickup/v1/shop-a/events", e) for e in a), msg("pickup/v1/shop-b/events", b[0])], T0
    )
    assert dispatcher.archive.verify("shop-a").count == 2
    assert dispatcher.archive.verify("shop-b").count == 1


def answer(cmd: bytes, events: list[dict[str, Any]], per_page: int = 2) -> list[Msg]:
    """What an honest kiosk publishes for a ``logs`` fetch: its events after since_seq."""
    import json

    doc = json.loads(cmd)
    since = doc["args"]["since_seq"]
    mine = [e for e in events if e["seq"] > since]
    pages = [mine[i : i + per_page] for i in range(0, len(mine), per_page)] or [[]]
    topic = f"pickup/v1/{doc['site']}/cmd_result/{doc['cmd_id']}"
    return [
        msg(
            topic,
            {
                "cmd_id": doc["cmd_id"],
                "ok": True,
                "page": n,
                "last": n == len(pages),
                "events": page,
                "logs": [],
            },
        )
        for n, page in enumerate(pages, 1)
    ]


def fetch(dispatcher: Dispatcher, now: float) -> bytes | None:
    out = dispatcher.tick(now)
    cmds = [p for t, p, _r in out.publish if "/cmd/" in t]
    return cmds[0] if cmds else None


@pytest.mark.parametrize("order", ["in order", "last page first"])
def test_a_phantom_event_far_ahead_does_not_hold_the_gap_open(
    dispatcher: Dispatcher, order: str
) -> None:
    """A forged event with a valid hash at seq 2**53 (or any seq the kiosk
    never wrote) was held for ever: a gap to 2**53 that no fetch could fill,
    ``verify`` failing and a fetch every retry_max_s, forever."""
    real = chain("shop-a", 5)
    phantom = chain("shop-a", 1, start=2**53, prev="cd" * 32)[0]
    t = T0
    dispatcher.process([msg("pickup/v1/shop-a/events", e) for e in real[:2]], t)
    dispatcher.process([msg("pickup/v1/shop-a/events", phantom)], t + 1)
    # ... and a status that lies about the kiosk's newest seq (retained, the kiosk offline)
    lie = {"online": False, "site": "shop-a", "last_seq": 2**40}
    dispatcher.process([msg("pickup/v1/shop-a/status", lie)], t + 1)
    assert dispatcher.archive.chain("shop-a").missing() == (3, 2**53 - 1)
    assert fetch(dispatcher, t + 2) is None  # the grace
    cmd = fetch(dispatcher, t + 2 + dispatcher.cfg.gaps.grace_s)
    assert cmd is not None
    import json

    assert json.loads(cmd)["args"] == {"since_seq": 2, "since_log_seq": 0}
    pages = answer(cmd, real)
    if order != "in order":
        pages = pages[::-1]
    dispatcher.process(pages, t + 10)
    arch = dispatcher.archive
    assert arch.chain("shop-a").missing() is None and arch.chain("shop-a").early == 0
    assert arch.verify("shop-a").ok and arch.verify("shop-a").count == 5
    assert list(arch.events("shop-a")) == [dumps(e) for e in real]
    assert arch.rejections("shop-a")["phantom"] == 2  # the event and the status's claim
    kinds = {a.kind for a in dispatcher.alerts.search(site="shop-a", state="active")}
    assert "chain_break" in kinds  # the forgery is an alarm
    assert all(fetch(dispatcher, t + 20 + s) is None for s in range(0, 3600, 30))  # no more


def test_a_held_event_the_kiosk_wrote_after_the_fetch_is_kept(dispatcher: Dispatcher) -> None:
    """Only events received before the fetch was asked can be judged by its answer."""
    real = chain("shop-a", 8)
    t = T0
    dispatcher.process([msg("pickup/v1/shop-a/events", e) for e in real[:2]], t)
    dispatcher.process([msg("pickup/v1/shop-a/events", real[3])], t + 1)  # seq 4: a gap at 3
    assert fetch(dispatcher, t + 1) is None  # the grace
    cmd = fetch(dispatcher, t + 1 + dispatcher.cfg.gaps.grace_s)
    assert cmd is not None
    # the kiosk answers from what it had then (seq 1..4), and writes 5..8 afterwards;
    # 8 reaches the hub before the answer does
    dispatcher.process([msg("pickup/v1/shop-a/events", real[7])], t + 9)
    dispatcher.process(answer(cmd, real[:4]), t + 10)
    arch = dispatcher.archive
    assert arch.chain("shop-a").tail.seq == 4 and arch.chain("shop-a").early == 1
    assert "phantom" not in arch.rejections("shop-a")
    dispatcher.process([msg("pickup/v1/shop-a/events", e) for e in real[4:7]], t + 11)
    assert arch.verify("shop-a").ok and arch.verify("shop-a").count == 8
