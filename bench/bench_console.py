"""Console pages with 1,000,000 archived events: p95 and the hub's memory.

Fills a hub archive with 1,000,000 chained events of one site (100 days of
a busy door, one every 8.64 s: codes, doors, refusals, alarms) by direct
inserts into the hub's own schema, and 1,000 orders through the hub's
order book, then starts a real ``pickup-hub serve`` on it (with a real
Mosquitto on loopback), logs in, and times each console page through HTTP
on loopback: Sites, Tonight (tonight's window, an order's history, a
month of alarms), an event's raw page, Orders, Alerts, a customer's code
page and a night's CSV. Reports p50/p95 per page and the hub's peak
resident memory (VmHWM). Budget (docs/design.md): p95 under 100 ms, memory
under 150 MB.

    .venv/bin/python bench/bench_console.py [--events 1000000] [--rounds 40]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401 - puts the repository on sys.path
from common import pct

from hub import config as hub_config
from hub.db import Database
from hub.keys import keygen
from hub.orders import OrderBook
from protocol.canonical import dumps
from protocol.events import build_event
from tests.support.broker import Broker, free_port

SITE = "bench-site"
KINDS = [
    ("code_accepted", True, {"kind": "totp", "reentry": False, "full": False}),
    ("door_unlocked", True, {"by": "code"}),
    ("door_opened", True, {}),
    ("door_closed", True, {}),
    ("order_collected", True, {}),
    ("code_rejected", False, {"reason": "wrong_code"}),
    ("code_rejected", True, {"reason": "not_paid"}),
    ("exit_pressed", False, {}),
    ("door_forced", False, {}),
]
WEIGHTS = [20, 20, 20, 20, 15, 8, 3, 3, 1]


def fill(tmp: Path, n: int, orders: int) -> Path:
    cfg_path = tmp / "hub.toml"
    port = free_port()
    cfg_path.write_text(
        f"""[hub]
listen = "127.0.0.1:{port}"
archive = "{tmp / "hub.db"}"
[keys]
hub_key = "{tmp / "hub.key"}"
auditor_key = "{tmp / "auditor.key"}"
[mqtt]
url = "mqtt://127.0.0.1:1"
[[site]]
id = "{SITE}"
name = "Bench shop"
order_expiry_days = 365
""",
        encoding="utf-8",
    )
    keys = keygen(str(tmp / "hub.key"), str(tmp / "auditor.key"))
    cfg = hub_config.load(cfg_path)
    db = Database(cfg.hub.archive)
    book = OrderBook(db, cfg, keys.hub)
    now = time.time()
    ids = []
    for i in range(orders):
        body = {
            "order_id": f"B-{i:05d}",
            "status": "ready",
            "slot": f"S{i % 40}",
            "customer": {"name": "李少云" if i % 2 else "Wang Fang", "phone_tail": "1234"},
            "items": [{"name": "红提", "qty": 1, "unit": "盒"}],
        }
        book.create(SITE, body, now - 86400)
        ids.append(body["order_id"])
        if i % 900 == 899:  # keep pickup numbers free: collect most of them
            db.conn.execute("UPDATE orders SET status = 'collected' WHERE status = 'ready'")
    db.close()
    con = sqlite3.connect(cfg.hub.archive)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA journal_mode=WAL")
    rng = random.Random(7)
    start = now - 100 * 86400
    step = 100 * 86400 / n
    prev = "0" * 64
    rows = []
    t0 = time.perf_counter()
    for seq in range(1, n + 1):
        kind, with_order, detail = rng.choices(KINDS, WEIGHTS)[0]
        oid = ids[rng.randrange(len(ids))] if with_order else None
        ev = build_event(
            site=SITE,
            seq=seq,
            prev_hash=prev,
            ts=start + seq * step,
            clock="synced",
            type_=kind,
            order_id=oid,
            detail=detail,
        )
        prev = ev["hash"]
        rows.append((SITE, seq, prev, kind, oid, ev["ts"], dumps(ev), "live", start + seq * step))
        if len(rows) == 50000:
            con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            con.commit()
            rows = []
    if rows:
        con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    size = con.execute("SELECT SUM(length(body)) FROM events").fetchone()[0]
    con.execute(
        "INSERT OR REPLACE INTO chain(site, tail_seq, tail_hash, bytes) VALUES (?, ?, ?, ?)",
        (SITE, n, prev, size),
    )
    con.commit()
    con.execute("ANALYZE")
    con.close()
    print(f"filled {n} events and {orders} orders in {time.perf_counter() - t0:.0f} s", flush=True)
    return cfg_path


def vm_hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    import httpx2 as httpx

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--orders", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=40)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-console-"))
    broker = Broker(tmp / "broker").start()
    hub = None
    try:
        cfg_path = fill(tmp, args.events, args.orders)
        text = cfg_path.read_text().replace("mqtt://127.0.0.1:1", broker.url)
        cfg_path.write_text(text)
        cfg = hub_config.load(cfg_path)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "hub.cli",
                "adduser",
                "amy",
                "--role",
                "owner",
                "--config",
                str(cfg_path),
            ],
            input="bench password\n",
            capture_output=True,
            text=True,
            check=True,
        )
        del out
        hub = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve", "--config", str(cfg_path)],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "hub.log", "ab"),  # noqa: SIM115
        )
        base = f"http://{cfg.hub.listen}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        print(f"hub up, resident {vm_hwm(hub.pid):.0f} MB peak so far", flush=True)
        c = httpx.Client(base_url=base, follow_redirects=True, timeout=30)
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/console/login").text)
        assert token
        r = c.post(
            "/console/login",
            data={"name": "amy", "password": "bench password", "csrf": token.group(1)},
        )
        assert 'id="site-bench-site"' in r.text, r.text[:500]
        con = sqlite3.connect(cfg.hub.archive)
        (tok,) = con.execute("SELECT token FROM orders WHERE status = 'ready' LIMIT 1").fetchone()
        (seq,) = con.execute("SELECT MAX(seq) / 2 FROM events").fetchone()
        con.close()
        month_ago = time.strftime("%Y-%m-%d", time.localtime(time.time() - 30 * 86400))
        today = time.strftime("%Y-%m-%d")
        pages = {
            "health (API, no page)": "/api/v1/health",
            "sites": "/console/",
            "tonight": f"/console/sites/{SITE}/tonight",
            "tonight, one order": f"/console/sites/{SITE}/tonight?order=B-00042"
            f"&from=2020-01-01&to={today}",
            "tonight, a month of alarms": f"/console/sites/{SITE}/tonight?type=alarms"
            f"&from={month_ago}&to={today}",
            "raw event": f"/console/sites/{SITE}/events/{seq}",
            "orders": f"/console/orders?site={SITE}&status=all",
            "alerts": "/console/alerts",
            "customer page": f"/c/{tok}",
            "tonight CSV": f"/console/sites/{SITE}/tonight.csv",
        }
        results = {}
        for name, path in pages.items():
            r = c.get(path)
            assert r.status_code == 200, (name, r.status_code, r.text[:300])
            times = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                r = c.get(path)
                times.append(time.perf_counter() - t0)
            ms = [t * 1000 for t in times]
            results[name] = {
                "p50_ms": round(pct(ms, 50), 1),
                "p95_ms": round(pct(ms, 95), 1),
                "bytes": len(r.content),
            }
            size = len(r.content)
            p50, p95 = pct(ms, 50), pct(ms, 95)
            print(f"{name:<28} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   {size:>7} bytes", flush=True)
        peak = vm_hwm(hub.pid)
        print(f"hub peak resident memory (VmHWM): {peak:.0f} MB")
        print(json.dumps({"events": args.events, "pages": results, "vm_hwm_mb": round(peak)}))
    finally:
        if hub is not None:
            hub.terminate()
            hub.wait(30)
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
