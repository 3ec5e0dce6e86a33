"""The simulated attacker and vandal, on the real code engine (tests and bench)."""

from __future__ import annotations

import random
from pathlib import Path

from kiosk.clock import FakeClock
from kiosk.codes import CodeEngine
from kiosk.store import OrderRow
from protocol.otp import new_secret
from tests.support.world import World


def world(tmp: Path, name: str, night: int, short: int, full: int) -> World:
    w = World(tmp / f"{name}-{night}.db", clock=FakeClock(wall=1_780_000_000 + night * 86400))
    w.engine = CodeEngine(w.store, w.cfg.codes, w.throttle, width=3, short=short, full=full)
    return w


def add_orders(w: World, numbers: list[str], digits: int) -> list[OrderRow]:
    rows = []
    with w.store.atomic():
        for i, no in enumerate(numbers):
            row = OrderRow(
                order_id=f"O-{i}",
                version=1,
                status="ready",
                pickup_no=no,
                slot="A1",
                issued_at=w.clock.wall(),
                expires_at=None,
                collected_at=None,
                collected_locally=False,
                otp_secret=new_secret(),
                otp_digits=digits,
                otp_period=30,
                backup_code=True,
                doc={},
                updated_at=w.clock.wall(),
            )
            w.store.put_order(row)
            rows.append(row)
    return rows


def attack_one_night(
    tmp: Path, night: int, short: int, full: int, orders: int, rng: random.Random
) -> tuple[bool, int, int]:
    """A patient attacker who knows the active pickup numbers guesses values at
    random, in both tiers, as fast as the throttle lets them, for one night.
    Returns (got in, short guesses, full guesses)."""
    w = world(tmp, "night", night, short, full)
    numbers = [f"{i:03d}" for i in rng.sample(range(1000), orders)]
    add_orders(w, numbers, full)
    end = w.clock.wall() + w.cfg.throttle.night_hours * 3600
    counts = {short: 0, full: 0}
    while w.clock.wall() < end:
        waits = []
        for digits in (short, full):
            entry = rng.choice(numbers) + f"{rng.randrange(10**digits):0{digits}d}"
            d = w.engine.check(entry, w.snap())
            if d.reason in ("throttled", "full_code_needed"):
                waits.append(d.wait_s)
                continue
            counts[digits] += 1
            if d.ok:
                w.store.close()
                return True, counts[short], counts[full]
            break
        else:
            w.clock.advance(min(x for x in waits if x > 0) + 0.001 if any(waits) else 1.0)
    w.store.close()
    return False, counts[short], counts[full]


def vandalize(w: World) -> int:
    """Type garbage at made-up numbers until both tiers refuse; return entries typed."""
    typed = 0
    for i in range(10_000):
        refused = 0
        for digits in (6, 8):
            d = w.engine.check(f"{100 + i % 800:03d}" + "1" * digits, w.snap())
            if (d.reason == "throttled" and d.wait_s > 600) or (digits == 8 and not d.counted):
                refused += 1
            else:
                typed += 1
        if refused == 2:
            return typed
    raise AssertionError("the keypad never stopped the vandal")
