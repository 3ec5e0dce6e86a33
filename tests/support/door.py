"""The door daemon on gpiozero's mock pins, driven with an injected clock.

The voice and the slot light, when given, reach the daemon before it starts
(so the first screen reaches them too).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pyotp

from hardware.board import SimBoard
from kiosk.clock import FakeClock
from kiosk.daemon import DoorDaemon
from kiosk.screens import Screen
from tests.support.world import World


class Rig:
    def __init__(
        self,
        tmp: Path,
        clock: FakeClock | None = None,
        *,
        voice: Any = None,
        slot_light: Any = None,
        slots: tuple[tuple[str, tuple[int, ...]], ...] = (),
        **cfg_changes: Any,
    ) -> None:
        self.w = World(tmp / "k.db", clock=clock or FakeClock())
        cfg = self.w.cfg.replace("hardware", board="sim").replace("display", enabled=False)
        for section, changes in cfg_changes.items():
            cfg = cfg.replace(section, **changes)
        self.cfg = dataclasses.replace(cfg, slots=slots) if slots else cfg
        self.board = SimBoard(cfg.hardware, cfg.lock, clock=self.w.clock, threads=False)
        self.screens: list[Screen] = []
        self.d = DoorDaemon(
            self.cfg,
            self.w.store,
            self.board,
            self.w.clock,
            screen_sinks=[self.screens.append],
            synced=lambda: True,
            voice=voice,
            slot_light=slot_light,
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

    def door(self, is_open: bool) -> None:
        self.board.set_door(is_open)
        self.d.drain()

    def code(self, doc: dict[str, Any]) -> str:
        otp = pyotp.TOTP(doc["otp"]["secret"])
        return str(doc["pickup_no"]) + otp.at(self.w.clock.wall())

    def types(self) -> list[str]:
        return [e["type"] for e in self.w.events()]

    def close(self) -> None:
        self.board.close()
