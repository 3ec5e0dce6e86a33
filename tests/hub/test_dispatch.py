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
