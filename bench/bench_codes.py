"""`#` to decision with 10,000 active orders, against checking every order with pyotp.

Also: importing 10,000 signed orders through the same intake as
``kiosk orders import``. Prints p50/p99 and the ratio to the baseline in the
same run (docs/design.md: p99 <= 5 ms, at least 50x faster than the baseline).

    .venv/bin/python bench/bench_codes.py [--orders 10000] [--checks 2000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import common  # noqa: F401 - puts the repository on sys.path
import pyotp
from common import pct, summary
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.audit import Audit
from kiosk.clock import SystemClock, TrustedClock
from kiosk.codes import CodeEngine
from kiosk.config import Config
from kiosk.orders import Intake
from kiosk.sample import order_doc
from kiosk.store import Store
from kiosk.throttle import Throttle
from protocol.keys import Keyring, public_key_text, sign_document

SITE = "bench-site"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=10_000)
    ap.add_argument("--checks", type=int, default=2_000)
    args = ap.parse_args()
    hub = Ed25519PrivateKey.generate()
    cfg = Config().replace("site", id=SITE, pickup_no_width=5)
    cfg = cfg.replace("trust", hub_keys=(public_key_text(hub.public_key()),))
    cfg = cfg.replace("throttle", keypad_burst=100)  # measure checking, not throttling
    now = time.time()
    t0 = time.perf_counter()
    docs = [
        sign_document(order_doc(SITE, f"B-{i}", f"{i:05d}", now=now), hub)
        for i in range(args.orders)
    ]
    sign_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "k.db")
        snap = TrustedClock(SystemClock(), synced=True).snapshot()
        intake = Intake(store, Audit(store, SITE), Keyring(cfg.trust.hub_keys), site=SITE, width=5)
        t0 = time.perf_counter()
        for start in range(0, len(docs), 500):
            intake.accept_many(
                [(x, None, None) for x in docs[start : start + 500]], snap, source="bench"
            )
        import_s = time.perf_counter() - t0
        assert store.count_orders() == args.orders
        print(f"signing {args.orders} orders (hub side): {sign_s:.2f} s")
        print(
            f"import {args.orders} signed orders: {import_s:.2f} s, "
            f"{args.orders / import_s:,.0f} orders/s"
        )

        engine = CodeEngine(store, cfg.codes, Throttle(store, cfg.throttle), width=5)
        rng = random.Random(1)
        ours: list[float] = []
        for _ in range(args.checks):
            doc = docs[rng.randrange(len(docs))]
            entry = doc["pickup_no"] + pyotp.TOTP(doc["otp"]["secret"]).at(time.time())
            t0 = time.perf_counter()
            decision = engine.check(entry, TrustedClock(SystemClock(), synced=True).snapshot())
            ours.append(time.perf_counter() - t0)
            assert decision.ok, decision
        # Baseline: what a naive kiosk does, verifying the value against every order.
        secrets = [(d["pickup_no"], d["otp"]["secret"]) for d in docs]
        base: list[float] = []
        for _ in range(max(20, args.checks // 100)):
            doc = docs[rng.randrange(len(docs))]
            value = pyotp.TOTP(doc["otp"]["secret"]).at(time.time())
            t0 = time.perf_counter()
            found = [
                no
                for no, s in secrets
                if pyotp.TOTP(s).verify(value, for_time=time.time(), valid_window=1)
            ]
            base.append(time.perf_counter() - t0)
            assert doc["pickup_no"] in found
        store.close()
    print(summary("'#' to decision, index look-up", ours))
    print(summary("baseline, pyotp over every order", base))
    print(
        f"ratio p50 baseline/ours: {pct(base, 50) / pct(ours, 50):,.0f}x "
        f"(budget >= 50x); p99 ours {pct(ours, 99) * 1000:.3f} ms (budget 5 ms)"
    )


if __name__ == "__main__":
    main()
