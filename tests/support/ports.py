"""The real door daemon on mock pins with an injected clock, plus its optional ports.

Like ``tests/kiosk/test_daemon.py``'s ``Rig``, with the voice and the slot
light given before the daemon starts (so the first screen reaches them).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pyotp

from hardware.board import SimBoard
from kiosk.daemon import DoorDaemon
from kiosk.screens import Screen
from tests.support.world import World


class PortsRig:
    def __init__(
        self,
        tmp: Path,
        *,
        voice: Any = None,
        slot_light: Any = None,
        slots: tuple[tuple[str, tuple[int, ...]], ...] = (),
        **cfg_changes: dict[str, Any],
    ) -> None:
        self.w = World(tmp / "k.db")
        c = self.w.cfg.replace("hardware", board="sim").replace("display", enabled=False)
        for section, changes in cfg_changes.items():
            c = c.replace(section, **changes)
        self.cfg = dataclasses.replace(c, slots=slots)
        self.board = SimBoard(c.hardware, c.lock, clock=self.w.clock, threads=False)
        self.screens: list[Screen] = []
        self.d = DoorDaemon(
            c,
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
