"""The whole system on one machine, for ``scripts/run``: broker, hub and a simulated kiosk.

``kiosk run --simulate --with-hub`` starts, in order, a Mosquitto on a free
loopback port, the hub (``pickup-hub serve`` with a generated hub.toml and
keys, see ``hub.demo``), then the simulated kiosk (door and sync agent in
one process) trusting the hub's keys. The sample orders are created through
the hub's API, so they reach the kiosk over MQTT like any other; their live
codes are read from the kiosk's own store as they arrive. Everything stops
in reverse order; the data lives in one throwaway folder.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiosk.cli.shell import Shell
from kiosk.errors import KioskError
from kiosk.store import Store

BROKER_START_S = 10.0


class DemoError(KioskError, RuntimeError):
    """A part of the demo could not start (the message says which and why)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    raise DemoError("mosquitto is not installed: sudo apt-get install mosquitto (scripts/run does)")


def start_broker(directory: Path, shell: Shell) -> str:
    """A private Mosquitto on loopback; returns its mqtt:// URL."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nlog_dest stderr\nlog_type error\nlog_type warning\n",
        encoding="utf-8",
    )
    log = (directory / "mosquitto.log").open("ab")
    proc = subprocess.Popen(
        [mosquitto_binary(), "-c", str(conf)], stdout=log, stderr=log, start_new_session=True
    )
    shell.on_stop("broker", lambda: _stop(proc))
    deadline = time.monotonic() + BROKER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"mosquitto exited; see {directory / 'mosquitto.log'}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return f"mqtt://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    raise DemoError(f"mosquitto did not listen on 127.0.0.1:{port} within {BROKER_START_S:g} s")


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class HubDemo:
    """The running demo hub: its API address, token, trusted keys and sample orders."""

    api: str
    token: str
    hub_keys: tuple[str, ...]
    auditor_keys: tuple[str, ...]
    orders: list[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # what to print for a person


def start_hub(directory: Path, site: str, broker: str, shell: Shell) -> tuple[HubDemo, Any]:
    """The hub for the demo (needs the ``[hub]`` extra); sample orders come later."""
    try:
        from hub import demo
    except ImportError as exc:
        raise DemoError(
            f"the hub needs the [hub] extra ({exc.name} is missing): "
            "pip install -e '.[device,hub]' (scripts/run does)"
        ) from None
    listen = f"127.0.0.1:{free_port()}"
    d = demo.prepare(directory, site, broker, listen)
    trust = tomllib.loads(d.trust)
    try:
        proc = demo.start(d, directory / "hub.log")
    except RuntimeError as exc:
        raise DemoError(f"the demo hub did not start: {exc}") from None
    shell.on_stop("hub", lambda: _stop(proc))
    info = HubDemo(d.api, d.token, tuple(trust["hub_keys"]), tuple(trust["auditor_keys"]))
    return info, d


def create_orders(info: HubDemo, d: Any, site: str) -> None:
    from hub import demo

    demo.create_samples(d, site)
    info.orders = demo.orders(d, site)  # those of an earlier run in the same directory too
    info.lines = demo.announce(d, info.orders).splitlines()
    info.lines.append(
        f"try: curl -H 'Authorization: Bearer {info.token}' {info.api}/sites/{site}/orders"
    )


class StoreCodes:
    """The live codes of the orders the kiosk holds (read from its store)."""

    def __init__(self, store_path: Path, header: list[str], out: Any = None) -> None:
        self.store_path = store_path
        self.header = header
        self.out = out or sys.stdout
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="codes", daemon=True)

    def table(self, now: float, *, seconds: bool = True) -> str:
        from protocol.otp import backup_code, pickup_code, seconds_left

        lines = ["", "Live pickup codes (the last 6 digits, then #):"]
        with Store(self.store_path) as store:
            orders = store.list_orders()
        if not orders:
            lines.append("  (waiting for the hub's orders to arrive over MQTT)")
        for o in orders:
            full = pickup_code(o.pickup_no, o.otp_secret, now, o.otp_digits, o.otp_period)
            short = o.pickup_no + full[len(o.pickup_no) :][-6:]
            extra = (
                f"   backup {backup_code(o.pickup_no, o.otp_secret, 6)}#" if o.backup_code else ""
            )
            left = f" ({seconds_left(now, o.otp_period):>2} s)" if seconds else ""
            lines.append(
                f"  {short}#  (all {o.otp_digits}: {full}#)  {o.status:<16} "
                f"slot {o.slot or '-':<4}{left}{extra}"
            )
        return "\n".join(lines)

    def _loop(self) -> None:
        print("\n".join(["", *self.header]), file=self.out, flush=True)
        shown = ""
        while not self.stop.is_set():
            now = time.time()
            try:
                calm = self.table(now, seconds=False)  # what changes: codes, orders
                if calm != shown:
                    print(self.table(now), file=self.out, flush=True)
                    shown = calm
            except Exception as exc:  # the store is busy or gone: say so, keep going
                print(f"(codes not available: {exc})", file=self.out, flush=True)
            self.stop.wait(min(2.0, 30 - now % 30 + 0.05))

    def start(self) -> None:
        self.thread.start()


def run_demo(base: Any, args: Any) -> int:
    """``kiosk run --simulate --with-hub``: broker, hub, simulated kiosk; see the module doc."""
    import tempfile

    from kiosk.cli import simulator
    from kiosk.cli.shell import build_door, install_stop, start_sync_thread

    data_dir = Path(tempfile.mkdtemp(prefix="pickup-kiosk-demo-"))
    stop = threading.Event()
    install_stop(stop)
    window = simulator.has_window() and not args.no_window
    with Shell() as shell:
        shell.on_stop("data directory", lambda: shutil.rmtree(data_dir, ignore_errors=True))
        broker = start_broker(data_dir / "broker", shell)
        site = base.site.id if base else "demo-site"
        hub, d = start_hub(data_dir / "hub", site, broker, shell)
        cfg = simulator.simulated_config(
            base, data_dir, hub.hub_keys[0], broker=broker, window=window
        ).replace("trust", hub_keys=hub.hub_keys, auditor_keys=hub.auditor_keys)
        print(simulator.HELP)
        print(f"Data directory (deleted on exit): {data_dir}")
        print(f"Broker: {broker}")
        daemon = build_door(cfg, shell, keys_from_stdin=True, printer=print, with_display=window)
        start_sync_thread(cfg, stop, shell)
        create_orders(hub, d, site)
        codes = StoreCodes(Path(cfg.store.path), hub.lines)
        shell.on_stop("code printer", codes.stop.set)
        codes.start()
        return int(daemon.run(stop))
