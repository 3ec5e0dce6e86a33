"""The demo hub: a hub.toml, keys, a token and sample orders, for ``scripts/run``.

``python -m hub.demo --dir DIR --site SITE --broker mqtt://127.0.0.1:PORT``
writes ``DIR/hub.toml`` (archive ``DIR/hub.db``, keys ``DIR/hub.key`` and
``DIR/auditor.key``), prints the ``[trust]`` lines the demo kiosk needs,
starts ``pickup-hub serve``, creates the sample orders through the hub's
own API (so they are numbered, signed and published like any other) and
prints the console's address and a demo login (an owner account
``demo``), where the API listens with the demo token, and each order's
customer link. It runs until interrupted, then stops the hub.

From Python (what ``scripts/run`` can call): :func:`prepare`, then
:func:`start`, then :func:`create_samples`, then print :func:`announce`.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub import config as hub_config
from hub.console.accounts import Accounts, hash_password
from hub.db import Database
from hub.keys import keygen, load_keys
from hub.tokens import Tokens

SAMPLES: tuple[dict[str, Any], ...] = (
    {
        "order_id": "DEMO-0001",
        "status": "ready",
        "slot": "B3",
        "customer": {"name": "李少云", "phone_tail": "1234"},
        "items": [
            {"name": "红提", "qty": 1, "unit": "盒"},
            {"name": "牛奶", "qty": 2, "unit": "瓶"},
        ],
        "backup_code": True,
    },
    {
        "order_id": "DEMO-0002",
        "status": "ready",
        "slot": "A1",
        "customer": {"name": "Wang Fang", "phone_tail": "5678"},
        "items": [{"name": "Apples", "qty": 6, "unit": ""}],
    },
    {
        "order_id": "DEMO-0003",
        "status": "pending_payment",
        "slot": None,
        "customer": {"name": "张伟", "phone_tail": "9012"},
        "items": [{"name": "大米", "qty": 1, "unit": "袋"}],
    },
    {
        "order_id": "DEMO-0004",
        "status": "paid",
        "slot": None,
        "customer": {"name": "Chen Jing", "phone_tail": "3456"},
        "items": [{"name": "Eggs", "qty": 12, "unit": ""}],
    },
)


DEMO_ACCOUNT = "demo"
DEMO_PASSWORD = "pickup-demo"  # noqa: S105 - the demo on a laptop's loopback only


@dataclass(frozen=True)
class Demo:
    config: Path
    trust: str  # the kiosk's [trust] lines
    token: str
    api: str  # http://host:port/api/v1
    console: str = ""  # http://host:port/console/
    login: tuple[str, str] = (DEMO_ACCOUNT, DEMO_PASSWORD)


def prepare(directory: Path, site: str, broker: str, listen: str = "127.0.0.1:8080") -> Demo:
    """Write the demo's hub.toml and keys (kept when they exist) and a fresh token."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "hub.toml"
    hub_key, auditor_key = directory / "hub.key", directory / "auditor.key"
    path.write_text(
        f"""# The demo hub (python -m hub.demo); docs/hub.md explains every key.
[hub]
listen = "{listen}"
archive = "{directory / "hub.db"}"

[keys]
hub_key = "{hub_key}"
auditor_key = "{auditor_key}"

[mqtt]
url = "{broker}"
client_id = "pickup-hub-demo"

[[site]]
id = "{site}"
name = "Demo shop 演示店"
language = "zh"
offline_alert_s = 60

[gaps]
grace_s = 2
""",
        encoding="utf-8",
    )
    cfg = hub_config.load(path)
    if hub_key.exists() and auditor_key.exists():
        keys = load_keys(str(hub_key), str(auditor_key))
    else:
        keys = keygen(str(hub_key), str(auditor_key), force=True)
    db = Database(cfg.hub.archive)
    tokens = Tokens(db)
    tokens.revoke("demo", time.time())
    token = tokens.add("demo", time.time())
    Accounts(db).add(DEMO_ACCOUNT, "owner", hash_password(DEMO_PASSWORD), time.time(), replace=True)
    db.close()
    return Demo(
        path,
        keys.trust_lines(),
        token,
        f"http://{listen}/api/v1",
        f"http://{listen}/console/",
    )


def start(demo: Demo, log: Path | None = None) -> subprocess.Popen[bytes]:
    """``pickup-hub serve`` for the demo; returns once the API answers."""
    err = open(log, "ab") if log else None  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--config", str(demo.config)],
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log else []
            said = ("; it said:\n  " + "\n  ".join(tail)) if tail else ""
            raise RuntimeError(f"pickup-hub serve exited with {proc.returncode}{said}")
        try:
            with urllib.request.urlopen(f"{demo.api}/health", timeout=1) as r:  # noqa: S310
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("the demo hub's API did not answer within 30 s")


def _post(url: str, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(  # noqa: S310 - the demo's own http:// address
        url,
        data=json.dumps(body).encode("utf-8"),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"demo-{body['order_id']}",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def create_samples(demo: Demo, site: str) -> list[dict[str, Any]]:
    """The sample orders, created through the API (an existing one is kept)."""
    out = []
    for body in SAMPLES:
        status, answer = _post(f"{demo.api}/sites/{site}/orders", demo.token, body)
        if status == 409 and answer.get("field") == "order_id":
            continue  # from an earlier demo run: already there
        if status != 201:
            raise RuntimeError(f"creating {body['order_id']}: {status} {answer}")
        out.append(answer)
    return out


def orders(demo: Demo, site: str) -> list[dict[str, Any]]:
    """The demo site's orders as the API lists them (those of earlier runs too)."""
    req = urllib.request.Request(  # noqa: S310 - the demo's own http:// address
        f"{demo.api}/sites/{site}/orders?limit=100",
        headers={"Authorization": f"Bearer {demo.token}"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
        return list(json.loads(r.read())["orders"])


def announce(demo: Demo, made: list[dict[str, Any]]) -> str:
    """What the demo prints: the console, its login, the API, each customer link."""
    name, password = demo.login
    lines = [
        f"console:  {demo.console}  (log in as {name} / {password})",
        f"hub API:  {demo.api}  (token: {demo.token})",
        "customer links (each shows the order's live code):",
    ]
    for o in sorted(made, key=lambda o: str(o["pickup_no"])):
        status = "expired" if o.get("expired") else o["status"]
        lines.append(f"  {o['pickup_no']}  {o['order_id']:<10} {status:<16} {o['customer_url']}")
    lines.append("type a code on the simulated keypad and watch it appear in Tonight")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hub.demo", description=__doc__.split("\n")[0])
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--site", default="demo-site")
    p.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    p.add_argument("--listen", default="127.0.0.1:8080")
    args = p.parse_args(argv)
    demo = prepare(args.dir, args.site, args.broker, args.listen)
    print("kiosk [trust] lines:")
    print(demo.trust)
    proc = start(demo, args.dir / "hub.log")
    try:
        create_samples(demo, args.site)
        print(announce(demo, orders(demo, args.site)), flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        pass
    finally:
        proc.terminate()
        proc.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
