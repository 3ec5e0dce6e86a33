"""The full-size fault campaign of issue 8 (tests/reliability runs it scaled down).

    .venv/bin/python bench/campaign.py [--kills 1000] [--sync-kills 100]
        [--broker-down-s 120] [--frozen-s 30] [--nights 1000] [--seed 8008]
        [--only door,sync,broker,brute]

- door: SIGKILL ``kiosk door`` at random instants during pickups, ``--kills``
  times; after each: integrity_check, gap-free seq, verify_store, relay trace,
  ``kiosk verify-log`` and ``kiosk relock``.
- sync: SIGKILL ``kiosk sync`` ``--sync-kills`` times during drains to a real
  Mosquitto while the door takes pickups; every event at a subscriber exactly
  once after de-dup, in seq order.
- broker: broker killed for ``--broker-down-s`` and restarted without
  persistence, then frozen (SIGSTOP) for ``--frozen-s``; the door keeps
  opening, nothing is lost.
- brute: the simulated attacker of tests/kiosk/test_security.py for
  ``--nights`` nights against the real engine (2-digit codes, 20 orders),
  next to ``kiosk security``'s bound.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import common  # noqa: F401 - puts the repository on sys.path

from kiosk.config import Config
from kiosk.security import bound

PARTS = ("door", "sync", "broker", "brute")


def door(args: argparse.Namespace, tmp: Path) -> None:
    from tests.support.harness import door_crash_campaign

    t0 = time.monotonic()

    def progress(n: int, res: object) -> None:
        if n % 50 == 0:
            print(f"  {n} kills, {time.monotonic() - t0:.0f} s", flush=True)

    res = door_crash_campaign(
        tmp, kills=args.kills, seed=args.seed, orders=max(200, args.kills), progress=progress
    )
    print(f"door: {res.summary()} ({time.monotonic() - t0:.0f} s)")


def sync(args: argparse.Namespace, tmp: Path) -> None:
    from tests.support.scenarios import sync_kill_campaign

    sync_kill_campaign(tmp, kills=args.sync_kills, seed=args.seed)


def broker(args: argparse.Namespace, tmp: Path) -> None:
    from tests.support.scenarios import broker_outage_campaign

    broker_outage_campaign(tmp, down_s=args.broker_down_s, frozen_s=args.frozen_s, seed=args.seed)


def brute(args: argparse.Namespace, tmp: Path) -> None:
    from tests.support.attacks import attack_one_night

    rng = random.Random(args.seed)
    digits, full, orders = 2, 4, 20
    report = bound(Config(), orders, digits=digits, full_digits=full)
    t0 = time.monotonic()
    results = [attack_one_night(tmp, n, digits, full, orders, rng) for n in range(args.nights)]
    wins = sum(ok for ok, _, _ in results)
    failed = [s for ok, s, _ in results if not ok]
    rate = wins / args.nights
    sigma = (report.p_night * (1 - report.p_night) / args.nights) ** 0.5
    print(
        f"brute: {args.nights} simulated {report.night_hours:g}-hour nights, {orders} orders, "
        f"{digits}- and {full}-digit codes, default policy: door opened in {wins} nights "
        f"(rate {rate:.4f}, bound p_night {report.p_night:.4f}, +-{sigma:.4f} 1 sigma); "
        f"guesses per failed night max {max(failed)} (bound {report.guesses_per_night}) "
        f"({time.monotonic() - t0:.0f} s)"
    )
    six = bound(Config(), 500)
    print(
        f"brute: with real 6- and 8-digit codes and 500 orders `kiosk security` bounds "
        f"p_night at {six.p_night:.2e} ({six.guesses_per_night} short and "
        f"{six.full_code_attempts} full guesses a night)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kills", type=int, default=1000)
    p.add_argument("--sync-kills", type=int, default=100)
    p.add_argument("--broker-down-s", type=float, default=120.0)
    p.add_argument("--frozen-s", type=float, default=30.0)
    p.add_argument("--nights", type=int, default=1000)
    p.add_argument("--seed", type=int, default=8008)
    p.add_argument("--only", default=",".join(PARTS))
    args = p.parse_args()
    os.environ["KIOSK_CAMPAIGN_SEED"] = str(args.seed)
    print(f"seed {args.seed}")
    parts = {"door": door, "sync": sync, "broker": broker, "brute": brute}
    for name in args.only.split(","):
        with tempfile.TemporaryDirectory(prefix=f"campaign-{name}-") as tmp:
            print(f"== {name}", flush=True)
            parts[name](args, Path(tmp))


if __name__ == "__main__":
    main()
