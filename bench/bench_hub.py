"""The hub's archive rate for 1,000 sites, against a bare aiomqtt subscriber.

Run: .venv/bin/python bench/bench_hub.py [SITES] [EVENTS_PER_SITE]

Starts its own Mosquitto (tests/support/broker.py, ``max_queued_messages 0``) and
1,000 light publishers' worth of protocol events (valid chained events,
100 per site, interleaved across sites as live kiosks would send them).
Both consumers have a persistent session queued with the same 100,000
messages before they connect, so each is timed draining them as fast as it
can, in the same run:

- bare: an aiomqtt client that only receives (QoS 1, auto-acknowledged);
- hub: the real ``pickup-hub serve`` (de-duplication, chain verification,
  durable commit with ``synchronous=FULL``, acknowledgement after commit),
  timed from its "receiving from the broker" log line (right after CONNACK)
  to the archive holding every event.

Also the hub's peak resident memory (VmHWM) under that load. Budgets
(docs/design.md): hub rate >= 0.5 x bare; memory < 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiomqtt  # noqa: E402
from paho.mqtt import client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from protocol.canonical import dumps  # noqa: E402
from tests.support.broker import Broker, free_port  # noqa: E402
from tests.support.hub import chain, write_config  # noqa: E402
from tests.support.procs import env  # noqa: E402


def messages(sites: int, per_site: int) -> list[tuple[str, bytes]]:
    chains = [chain(f"bench-{i:04d}", per_site) for i in range(sites)]
    out = []
    for seq in range(per_site):  # interleaved: every site's seq 1, then seq 2, ...
        for i, evs in enumerate(chains):
            out.append((f"pickup/v1/bench-{i:04d}/events", dumps(evs[seq])))
    return out


def publish(port: int, msgs: list[tuple[str, bytes]]) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    while not c.is_connected():
        time.sleep(0.01)
    for i in range(0, len(msgs), 5000):
        infos = [c.publish(t, p, qos=1) for t, p in msgs[i : i + 5000]]
        for info in infos:
            info.wait_for_publish(120)
    c.disconnect()
    c.loop_stop()


def _props() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    return props


async def bare(port: int, n: int, *, subscribe_only: bool = False) -> float:
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier="bench-bare",
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=_props(),
    ) as client:
        if subscribe_only:
            await client.subscribe("pickup/v1/+/events", qos=1)
            return 0.0
        start = time.perf_counter()
        got = 0
        async for _msg in client.messages:
            got += 1
            if got >= n:
                break
        return time.perf_counter() - start


def archived(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        (count,) = con.execute("SELECT COUNT(*) FROM events").fetchone()
        con.close()
        return int(count)
    except sqlite3.Error:
        return 0


def hub_proc(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    e = env()
    e.pop("PICKUP_HUB_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),
        env=e,
    )


def wait_log(log: Path, text: str, count: int, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count(text) >= count:
            return time.perf_counter()
        time.sleep(0.005)
    raise SystemExit(f"the hub did not log {text!r}: {log.read_text()[-2000:]}")


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("sites", nargs="?", type=int, default=1000, help="default 1000")
    parser.add_argument("per_site", nargs="?", type=int, default=100, help="events per site")
    args = parser.parse_args()
    sites, per_site = args.sites, args.per_site
    n = sites * per_site
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = Broker(
            tmp / "broker",
            persistence=False,
            extra_conf=["max_queued_messages 0", "max_inflight_messages 1000"],
        ).start()
        try:
            ids = tuple(f"bench-{i:04d}" for i in range(sites))
            cfg = write_config(
                tmp,
                ids,
                mqtt_url=broker.url,
                listen=f"127.0.0.1:{free_port()}",
                extra="[gaps]\ngrace_s = 3600\n",
            )
            log = tmp / "hub.log"
            # persistent sessions for both, then the same messages queued for both
            asyncio.run(bare(broker.port, n, subscribe_only=True))
            hub = hub_proc(cfg, log)
            wait_log(log, "connected to the broker", 1)
            stop(hub)
            msgs = messages(sites, per_site)
            t = time.perf_counter()
            publish(broker.port, msgs)
            print(f"queued {n} events of {sites} sites for both in {time.perf_counter() - t:.1f} s")

            bare_s = asyncio.run(bare(broker.port, n))
            hub = hub_proc(cfg, log)
            # from CONNACK: the session's queue is taken from then on, ahead of the SUBACK
            start = wait_log(log, "receiving from the broker", 2)
            db = tmp / "hub.db"
            peak = 0.0
            while archived(db) < n:
                peak = max(peak, vm_hwm_mb(hub.pid))
                if hub.poll() is not None:
                    raise SystemExit(f"the hub exited: {log.read_text()[-2000:]}")
                time.sleep(0.02)
            hub_s = time.perf_counter() - start
            peak = max(peak, vm_hwm_mb(hub.pid))
            stop(hub)
            ok = subprocess.run(
                [sys.executable, "-m", "hub.cli", "verify", ids[-1], "--config", str(cfg)],
                capture_output=True,
                text=True,
                check=False,
                env=env(),
            )
            bare_rate, hub_rate = n / bare_s, n / hub_s
            print(f"bare aiomqtt subscriber: {bare_s:.2f} s ({bare_rate:,.0f} events/s)")
            print(
                f"hub archive (de-dup, chain, durable): {hub_s:.2f} s ({hub_rate:,.0f} events/s), "
                f"ratio {hub_rate / bare_rate:.2f} x bare (goal >= 0.50)"
            )
            print(
                f"hub peak RSS: {peak:.0f} MB (goal < 150 MB); "
                f"verify {ids[-1]}: {ok.stdout.strip()}"
            )
            print(f"cpus: {os.cpu_count()}")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
