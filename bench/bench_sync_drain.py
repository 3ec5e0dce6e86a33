"""10,000 queued events drained after reconnect, versus a bare paho QoS 1 publisher.

Run: .venv/bin/python bench/bench_sync_drain.py [N] [ROUNDS]
Starts its own Mosquitto (tests/support/broker.py), records N hash-chained events in a
fresh store, then times, in alternating rounds on the same broker:
  - bare: a paho client connects and publishes the same N stored bodies on
    `events` with QoS 1 (paho's default window), until every PUBACK is in;
  - agent: the sync agent connects and drains the store's outbox (window
    mqtt.inflight = 50) until every event is marked acknowledged in SQLite.
Before each agent round the events are marked unacknowledged again.
docs/design.md budget: agent <= 2 x bare.
"""

from __future__ import annotations

import argparse
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

from kiosk.audit import Audit  # noqa: E402
from kiosk.clock import FakeClock, SystemClock, TrustedClock  # noqa: E402
from kiosk.config import from_mapping  # noqa: E402
from kiosk.store import Store  # noqa: E402
from sync.agent import Agent  # noqa: E402
from tests.support.broker import Broker  # noqa: E402
from tests.support.sync import SITE, T0, topic  # noqa: E402


def bare(port: int, bodies: list[bytes], round_no: int) -> float:
    acked = 0
    done = threading.Event()
    connected = threading.Event()

    def on_connect(client: Any, ud: Any, flags: Any, rc: Any, props: Any) -> None:
        connected.set()

    def on_publish(client: Any, ud: Any, mid: int, rc: Any, props: Any) -> None:
        nonlocal acked
        acked += 1
        if acked >= len(bodies):
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bare-{round_no}", protocol=mqtt.MQTTv5)
    c.on_connect = on_connect
    c.on_publish = on_publish
    start = time.perf_counter()
    c.connect("127.0.0.1", port)
    c.loop_start()
    connected.wait(10)
    for body in bodies:
        c.publish(topic("events"), body, qos=1)
    if not done.wait(120):
        raise RuntimeError(f"bare publisher got {acked} acks")
    elapsed = time.perf_counter() - start
    c.loop_stop()
    c.disconnect()
    return elapsed


def agent(port: int, db: Path, n: int, round_no: int) -> float:
    cfg = from_mapping(
        {
            "site": {"id": SITE},
            "store": {"path": str(db)},
            "mqtt": {"url": f"mqtt://127.0.0.1:{port}", "client_id": f"agent-{round_no}"},
        },
        "bench",
    )
    a = Agent(cfg, SystemClock(), threading.Event(), random.Random(1))
    try:
        a.store._x("UPDATE events SET acked = 0, acked_at = NULL")
        assert a.store.outbox_size() == n
        a.open()
        start = time.perf_counter()
        while a.outbox.acked < n:
            a.step(0.01)
        elapsed = time.perf_counter() - start
        left = a.store.outbox_size()
        if left:
            raise RuntimeError(f"{left} events still unacknowledged")
    finally:
        a.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("events", nargs="?", type=int, default=10_000, help="default 10000")
    parser.add_argument("rounds", nargs="?", type=int, default=3, help="default 3")
    args = parser.parse_args()
    n, rounds = args.events, args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "drain.db"
        store = Store(db)
        audit = Audit(store, SITE)
        snap = TrustedClock(FakeClock(wall=T0), T0, synced=True).snapshot()
        with store.atomic():
            for i in range(n):
                audit.record("door_opened", snap, order_id=f"HM-{i:06d}", detail={"i": i})
        bodies = [e.body.encode() for e in store.iter_events(0)]
        store.close()
        broker = Broker(work / "broker", persistence=False).start()
        try:
            bares, agents = [], []
            for r in range(rounds):
                bares.append(bare(broker.port, bodies, r))
                agents.append(agent(broker.port, db, n, r))
                print(f"round {r + 1}: bare {bares[-1]:.3f} s, agent {agents[-1]:.3f} s")
        finally:
            broker.stop()
    b, a = statistics.median(bares), statistics.median(agents)
    print(
        f"drain {n} queued events (median of {rounds}): bare paho QoS 1 {b:.3f} s "
        f"({n / b:,.0f}/s); agent {a:.3f} s ({n / a:,.0f}/s), ratio {a / b:.2f} x "
        f"(budget 2.00 x)"
    )


if __name__ == "__main__":
    main()
