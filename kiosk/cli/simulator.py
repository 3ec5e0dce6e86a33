"""``kiosk run``: the door (and the sync agent when configured) in one process.

With ``--simulate`` it needs nothing: a throwaway data directory, a
throwaway hub key, signed sample orders whose live pickup codes it prints
and refreshes, the simulated board driven from the terminal (and the display
window when there is one). The keys:

    0-9 * #   the keypad          o / c   open / close the door
    x         the exit button     l       switch language
    q         quit
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.audit import Audit
from kiosk.cli.shell import Shell, run_together
from kiosk.clock import SystemClock, TrustedClock
from kiosk.config import Config, MqttConfig
from kiosk.orders import Intake
from kiosk.sample import backup_code, current_code, demo_orders
from kiosk.store import Store
from protocol.keys import Keyring, public_key_text

HELP = """\
Simulated pickup kiosk. Keys: 0-9 * # keypad (Enter = #, Backspace = *),
o/c open/close the door, x exit button, l language, q quit."""


def has_window() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def simulated_config(
    base: Config | None, data_dir: Path, hub_key: str, *, broker: str | None, window: bool
) -> Config:
    cfg = base or Config(source="<simulator>")
    cfg = cfg.replace(
        "site",
        id=cfg.site.id if base else "demo-site",
        name=cfg.site.name or "演示便利店 Demo Shop",
        contact=cfg.site.contact or "138-0000-0000",
    )
    cfg = cfg.replace("store", path=str(data_dir / "kiosk.db"))
    cfg = cfg.replace("trust", hub_keys=(*cfg.trust.hub_keys, hub_key))
    cfg = cfg.replace("hardware", board="sim")
    cfg = cfg.replace("clock", trust_system_clock="always")
    cfg = cfg.replace("display", enabled=window, driver="" if window else "dummy")
    import dataclasses

    if not cfg.slots:
        # The demo orders' shelves on a simulated strip: "[slot B3 lit: LED 4, 5]".
        cfg = dataclasses.replace(cfg, slots=DEMO_SLOTS)
    if broker:
        cfg = dataclasses.replace(cfg, mqtt=MqttConfig(url=broker))
    return cfg


DEMO_SLOTS = (("A1", (0,)), ("B3", (4, 5)), ("C2", (8,)))


class CodePrinter:
    """Prints the sample orders' live codes whenever they change."""

    def __init__(self, docs: list[dict[str, Any]], out: Any = None) -> None:
        self.docs = docs
        self.out = out or sys.stdout
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="codes", daemon=True)

    def table(self, now: float) -> str:
        lines = ["", "Live pickup codes (type one, then #):"]
        for doc in self.docs:
            code, left = current_code(doc, now)
            extra = f"   backup {backup_code(doc)}#" if doc.get("backup_code") else ""
            lines.append(
                f"  {code}#  {doc['status']:<16} slot {doc.get('slot') or '-':<4}"
                f" ({left:>2} s){extra}"
            )
        return "\n".join(lines)

    def _loop(self) -> None:
        clock = SystemClock()
        while not self.stop.is_set():
            now = clock.wall()
            print(self.table(now), file=self.out, flush=True)
            self.stop.wait(30 - now % 30 + 0.05)

    def start(self) -> None:
        self.thread.start()


def run_simulator(base: Config | None, args: argparse.Namespace) -> int:
    """``kiosk run``: with ``--simulate`` a throwaway kiosk, else the configured one."""
    if not args.simulate:
        if base is None:
            raise SystemExit("kiosk run: give --simulate, or a config with --config")
        return run_together(base)
    data_dir = Path(tempfile.mkdtemp(prefix="pickup-kiosk-sim-"))
    key = Ed25519PrivateKey.generate()
    window = has_window() and not args.no_window
    cfg = simulated_config(
        base, data_dir, public_key_text(key.public_key()), broker=args.broker, window=window
    )
    clock = SystemClock()
    store = Store(cfg.store.path)
    snap = TrustedClock(clock, synced=True).snapshot()
    docs = demo_orders(cfg.site.id, key, clock.wall())
    intake = Intake(
        store,
        Audit(store, cfg.site.id),
        Keyring(cfg.trust.hub_keys),
        site=cfg.site.id,
        width=cfg.site.pickup_no_width,
    )
    intake.accept_many([(d, None, None) for d in docs], snap, source="simulator")
    store.close()
    print(HELP)
    print(f"Data directory (deleted on exit): {data_dir}")
    printer = CodePrinter(docs)

    def before(shell: Shell, stop: threading.Event) -> None:
        shell.on_stop("data directory", lambda: shutil.rmtree(data_dir, ignore_errors=True))
        shell.on_stop("code printer", printer.stop.set)
        printer.start()

    return run_together(cfg, printer=print, with_display=window, before=before)
