"""10,000 signed retained orders ingested on connect, versus a bare paho subscriber.

Run: .venv/bin/python bench/bench_sync_ingest.py [N] [ROUNDS]
Starts its own Mosquitto (tests/support/broker.py), publishes N signed retained
orders, then times, in alternating rounds on the same broker:
  - bare: a paho client connects, subscribes orders/+ (QoS 1) and receives N
    retained messages (nothing else);
  - agent: the sync agent connects, subscribes, validates, verifies the
    Ed25519 signatures and stores all N (fresh SQLite file each round).
docs/design.md budget: agent <= 2 x bare.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paho.mqtt import client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from kiosk.clock import SystemClock  # noqa: E402
from kiosk.config import from_mapping  # noqa: E402
from sync.agent import Agent  # noqa: E402
from tests.support.broker import Broker  # noqa: E402
from tests.support.sync import HUB, SITE, order, pub, topic  # noqa: E402


def publish_all(port: int, n: int) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-hub", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(100)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = []
    for i in range(n):
        doc = order(f"B-{i:06d}", pickup_no=f"{i:05d}")
        infos.append(
            c.publish(
                topic("orders", f"B-{i:06d}"),
                json.dumps(doc, ensure_ascii=False).encode(),
                qos=1,
                retain=True,
            )
        )
    for info in infos:
        info.wait_for_publish(30)
    c.loop_stop()
    c.disconnect()


def bare(port: int, n: int, round_no: int) -> float:
    got = 0
    done = threading.Event()

    def on_connect(client: Any, ud: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe(topic("orders/+"), qos=1)

    def on_message(client: Any, ud: Any, msg: Any) -> None:
        nonlocal got
        got += 1
        if got >= n:
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bare-{round_no}", protocol=mqtt.MQTTv5)
    c.on_connect = on_connect
    c.on_message = on_message
    start = time.perf_counter()
    c.connect("127.0.0.1", port)
    c.loop_start()
    if not done.wait(120):
        raise RuntimeError(f"bare subscriber got only {got}")
    elapsed = time.perf_counter() - start
    c.loop_stop()
    c.disconnect()
    return elapsed


def agent(port: int, n: int, round_no: int, work: Path, db: str = "") -> float:
    cfg = from_mapping(
        {
            "site": {"id": SITE, "pickup_no_width": 5},
            "store": {"path": str(work / (db or f"ingest-{round_no}.db"))},
            "trust": {"hub_keys": [pub(HUB)]},
            "mqtt": {"url": f"mqtt://127.0.0.1:{port}", "client_id": f"agent-{round_no}"},
        },
        "bench",
    )
    a = Agent(cfg, SystemClock(), threading.Event(), random.Random(1))
    try:
        a.open()
        start = time.perf_counter()
        while a.ingested < n:
            a.step(0.01)
        elapsed = time.perf_counter() - start
        stored = a.store.count_orders()
        if db:
            print(f"  (replay: {a.replays_skipped} already-held documents skipped)")
        if stored != n:
            raise RuntimeError(f"agent stored {stored} of {n}")
    finally:
        a.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("orders", nargs="?", type=int, default=10_000, help="default 10000")
    parser.add_argument("rounds", nargs="?", type=int, default=3, help="default 3")
    args = parser.parse_args()
    n, rounds = args.orders, args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # mosquitto drops what exceeds max_queued_messages (default 1,000) even for
        # the retained burst on subscribe: a kiosk's broker must raise it (docs).
        broker = Broker(
            work / "broker", persistence=False, extra_conf=["max_queued_messages 0"]
        ).start()
        try:
            t = time.perf_counter()
            publish_all(broker.port, n)
            print(f"published {n} signed retained orders in {time.perf_counter() - t:.2f} s")
            bares, agents, replays = [], [], []
            for r in range(rounds):
                bares.append(bare(broker.port, n, r))
                agents.append(agent(broker.port, n, r, work))
                # The same kiosk reconnecting: every retained order comes again.
                replays.append(agent(broker.port, n, r + 100, work, f"ingest-{r}.db"))
                print(
                    f"round {r + 1}: bare {bares[-1]:.3f} s, agent first ingest "
                    f"{agents[-1]:.3f} s, agent replay on reconnect {replays[-1]:.3f} s"
                )
        finally:
            broker.stop()
    b, a, p = statistics.median(bares), statistics.median(agents), statistics.median(replays)
    print(
        f"ingest {n} retained orders (median of {rounds}): bare paho {b:.3f} s "
        f"({n / b:,.0f}/s); agent first ingest {a:.3f} s ({n / a:,.0f}/s), ratio "
        f"{a / b:.2f} x; agent replay on reconnect {p:.3f} s, ratio {p / b:.2f} x "
        f"(budget 2.00 x)"
    )


if __name__ == "__main__":
    main()
