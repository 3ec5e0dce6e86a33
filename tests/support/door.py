"""The door daemon on gpiozero's mock pins, driven with an injected clock."""

from __future__ import annotations

from pathlib import Path

import pyotp

from hardware.board import SimBoard
from kiosk.clock import FakeClock
from kiosk.daemon import DoorDaemon
from kiosk.screens import Screen
from tests.support.world import World


class Rig:
    def __init__(self, tmp: Path, clock: FakeClock | None = None, **cfg_changes: object) -> None:
        self.w = World(tmp / "k.db", clock=clock or FakeClock())
        cfg = self.w.cfg.replace("hardware", board="sim").replace("display", enabled=False)
        for section, changes in cfg_changes.items():
            cfg = cfg.replace(section, **changes)  # type: ignore[arg-type]
        self.cfg = cfg
        self.board = SimBoard(cfg.hardware, cfg.lock, clock=self.w.clock, threads=False)
        self.screens: list[Screen] = []
        self.d = DoorDaemon(
            cfg,
            self.w.store,
            self.board,
            self.w.clock,
            screen_sinks=[self.screens.append],
            synced=lambda: True,
        )
        self.d.start()

    def type(self, keys: str) -> None:
        for k in keys:
            self.board.press(k, advance=self.w.clock.advance)
            self.d.drain()

    def advance(self, s: float) -> None:
        self.w.clock.advance(s)
        self.board.lock.poll()
        self.d.tick()

    def code(self, doc: dict) -> str:
        otp = pyotp.TOTP(doc["otp"]["secret"])
        return doc["pickup_no"] + otp.at(self.w.clock.wall())

    def types(self) -> list[str]:
        return [e["type"] for e in self.w.events()]
