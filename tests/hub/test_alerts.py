"""Alerts: once per occurrence, hold-down against flapping, ack and mute, and
delivery through Apprise to a local HTTP receiver standing in for a bot."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hub.alerts import AlertBook, AlertEngine, Deliverer, Observed
from hub.archive import ChainAlarm
from hub.config import Config
from hub.db import Database, Runner
from tests.support.hub import FakeClock, chain, load, write_config


class Receiver:
    """A local webhook: records every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.fail = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", 0))
                outer.bodies.append(json.loads(self.rfile.read(size)))
                self.send_response(500 if outer.fail else 200)
                self.end_headers()

            def log_message(self, *_a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def setup(tmp: Path, urls: list[str], language: str = "zh") -> tuple[Config, AlertBook, FakeClock]:
    extra = "[alerts]\nurls = [" + ", ".join(f'"{u}"' for u in urls) + "]\nhold_down_s = 60\n"
    extra += "refused_burst = 5\nrefused_window_s = 300\ngap_alert_s = 120\n"
    path = write_config(
        tmp,
        ("shop-a",),
        extra=extra,
        site_extra=f'name = "蔡甸一店"\nlanguage = "{language}"\noffline_alert_s = 300',
    )
    cfg = load(path)
    return cfg, AlertBook(Database(cfg.hub.archive)), FakeClock()


def obs(
    cfg: Config,
    tmp: Path,
    online: bool | None,
    clock: str | None = "synced",
    gap_since: float | None = None,
) -> dict[str, Observed]:
    from hub.chain import ChainState
    from protocol.events import Tail

    state = ChainState("shop-a", Tail(), gap_since=gap_since)
    if gap_since is not None:
        state.status_last_seq = 5
    return {"shop-a": Observed(online, clock, state)}


def test_flapping_link_gives_one_alert_and_one_all_clear(tmp_path: Path) -> None:
    cfg, book, clock = setup(tmp_path, [])
    engine = AlertEngine(book, cfg, clock())
    engine.tick(obs(cfg, tmp_path, True), clock())
    for _ in range(20):  # offline and online every 10 s for a while: nothing yet
        engine.tick(obs(cfg, tmp_path, False), clock())
        clock.advance(10)
        engine.tick(obs(cfg, tmp_path, True), clock())
        clock.advance(10)
    assert book.search() == []
    # offline for good: one alert after offline_alert_s
    for _ in range(40):
        engine.tick(obs(cfg, tmp_path, False), clock())
        clock.advance(10)
    assert [a.kind for a in book.search(state="active")] == ["site_offline"]
    # flapping back: no all-clear until online for the hold-down, then exactly one
    for _ in range(10):
        engine.tick(obs(cfg, tmp_path, True), clock())
        clock.advance(20)
        engine.tick(obs(cfg, tmp_path, False), clock())
        clock.advance(5)
    assert [a.state for a in book.search()] == ["active"]
    for _ in range(10):
        engine.tick(obs(cfg, tmp_path, True), clock())
        clock.advance(10)
    alerts = book.search()
    assert [(a.kind, a.state) for a in alerts] == [("site_offline", "cleared")]


def test_occurrences_once_with_clear_events(tmp_path: Path) -> None:
    cfg, book, clock = setup(tmp_path, [])
    engine = AlertEngine(book, cfg, clock())
    forced = chain("shop-a", 3, type_="door_forced")
    engine.on_events("shop-a", forced, clock())
    engine.on_events("shop-a", forced[:1], clock())  # the same event again: nothing new
    [alert] = book.search()
    assert alert.kind == "door_forced" and alert.detail["count"] == 3
    engine.on_events("shop-a", chain("shop-a", 1, start=4, type_="door_closed"), clock())
    assert book.search()[0].state == "cleared"
    engine.on_events("shop-a", chain("shop-a", 1, start=5, type_="door_forced"), clock())
    assert [a.state for a in book.search()] == ["active", "cleared"]  # a new occurrence
    for t in ("store_unwritable", "clock_conflict", "store_rollback", "display_degraded"):
        engine.on_events("shop-a", chain("shop-a", 1, start=9, type_=t), clock())
    kinds = {a.kind for a in book.search(state="active")}
    assert {"store_unwritable", "clock_conflict", "store_rollback", "kiosk_alarm"} <= kinds
    engine.on_chain([ChainAlarm("shop-a", "chain_break", 7, "seq 7 changed")], clock())
    [brk] = [a for a in book.search() if a.kind == "chain_break"]
    acked = book.ack(brk.id, "owner", clock())
    assert acked.state == "cleared" and acked.acked_by == "owner"


def test_guessing_clock_and_gap_conditions(tmp_path: Path) -> None:
    cfg, book, clock = setup(tmp_path, [])
    engine = AlertEngine(book, cfg, clock())
    rejected = chain("shop-a", 6, type_="code_rejected", detail={"reason": "wrong_code"})
    not_paid = chain("shop-a", 6, type_="code_rejected", detail={"reason": "not_paid"})
    engine.on_events("shop-a", not_paid, clock())  # right codes refused for status: no alarm
    engine.tick(obs(cfg, tmp_path, True), clock())
    assert book.search() == []
    engine.on_events("shop-a", rejected, clock())
    engine.tick(obs(cfg, tmp_path, True), clock())
    assert [a.kind for a in book.search(state="active")] == ["code_guessing"]
    clock.advance(400)  # the window empties; cleared after the hold-down
    engine.tick(obs(cfg, tmp_path, True), clock())
    clock.advance(61)
    engine.tick(obs(cfg, tmp_path, True, clock="untrusted", gap_since=clock() - 121), clock())
    kinds = {a.kind for a in book.search(state="active")}
    assert kinds == {"gap_unfilled"}  # clock_untrusted waits for its hold-down
    clock.advance(61)
    engine.tick(obs(cfg, tmp_path, True, clock="untrusted", gap_since=clock() - 200), clock())
    assert {a.kind for a in book.search(state="active")} == {"gap_unfilled", "clock_untrusted"}
    # a restart does not raise the same condition again
    again = AlertEngine(book, cfg, clock())
    again.tick(obs(cfg, tmp_path, True, clock="untrusted", gap_since=clock() - 300), clock())
    assert len(book.search()) == 3


def test_delivery_in_the_sites_language_once_each(tmp_path: Path, receiver: Receiver) -> None:
    url = f"json://127.0.0.1:{receiver.port}/hook"
    cfg, book, clock = setup(tmp_path, [url], "zh")
    runner = Runner()
    deliverer = Deliverer(cfg, book, runner.call)
    engine = AlertEngine(book, cfg, clock())

    async def run() -> int:
        return await deliverer.run_once(clock())

    engine.on_events("shop-a", chain("shop-a", 1, type_="door_forced"), clock())
    assert asyncio.run(run()) == 1
    assert asyncio.run(run()) == 0  # once
    assert receiver.bodies[0]["title"] == "[蔡甸一店] 门被强行打开"
    engine.on_events("shop-a", chain("shop-a", 1, start=2, type_="door_closed"), clock())
    assert asyncio.run(run()) == 1
    assert "门已关闭" in receiver.bodies[1]["title"]
    # muted: recorded, not sent
    book.mute("shop-a", "door_held_open", 3600, clock())
    engine.on_events("shop-a", chain("shop-a", 1, start=3, type_="door_held_open"), clock())
    assert asyncio.run(run()) == 0 and len(receiver.bodies) == 2
    # a failing bot: retried with backoff, then delivered
    receiver.fail = True
    engine.on_events("shop-a", chain("shop-a", 1, start=4, type_="store_rollback"), clock())
    assert asyncio.run(run()) == 0
    receiver.fail = False
    clock.advance(3600)
    assert asyncio.run(run()) == 1
    assert receiver.bodies[-1]["title"] == "[蔡甸一店] 自提柜数据库被回滚"
    runner.close()


def test_english_sites_get_english(tmp_path: Path, receiver: Receiver) -> None:
    cfg, book, clock = setup(tmp_path, [f"json://127.0.0.1:{receiver.port}/"], "en")
    runner = Runner()
    AlertEngine(book, cfg, clock()).on_events(
        "shop-a", chain("shop-a", 1, type_="door_held_open"), clock()
    )
    assert asyncio.run(Deliverer(cfg, book, runner.call).run_once(clock())) == 1
    assert receiver.bodies[0]["title"] == "[蔡甸一店] Door held open"
    runner.close()


def test_a_bouncing_door_does_not_flood_the_owner(tmp_path: Path, receiver: Receiver) -> None:
    """A door contact that bounces (or a hostile kiosk) sent door_forced and
    door_closed 100 times: 100 occurrences, 200 messages to the group chat.
    Now at most FLOOD_BURST an hour per site and kind, then one summary."""
    from hub.alerts import FLOOD_BURST, FLOOD_WINDOW_S

    cfg, book, clock = setup(tmp_path, [f"json://127.0.0.1:{receiver.port}/"], "en")
    runner = Runner()
    deliverer = Deliverer(cfg, book, runner.call)
    engine = AlertEngine(book, cfg, clock())
    bounces = []
    for i in range(100):
        bounces += chain("shop-a", 1, start=2 * i + 1, type_="door_forced")
        bounces += chain("shop-a", 1, start=2 * i + 2, type_="door_closed")
    engine.on_events("shop-a", bounces, clock())
    assert len(book.search(site="shop-a")) == 100  # every occurrence is kept

    async def run() -> int:
        return await deliverer.run_once(clock())

    while book.undelivered():
        asyncio.run(run())
    assert len(receiver.bodies) == FLOOD_BURST
    other = chain("shop-a", 1, start=500, type_="store_rollback")  # another kind goes on
    engine.on_events("shop-a", other, clock())
    assert asyncio.run(run()) == 1 and "rolled back" in receiver.bodies[-1]["title"].lower()
    clock.advance(FLOOD_WINDOW_S)
    assert asyncio.run(run()) == 1  # the summary, once the hour is over
    summary = receiver.bodies[-1]
    assert f"{200 - FLOOD_BURST} more alerts of this kind" in summary["message"], summary
    assert asyncio.run(run()) == 0
    runner.close()
