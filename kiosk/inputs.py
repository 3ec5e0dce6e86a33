"""What the outside world tells the door: small immutable input events.

Hardware callbacks (gpiozero threads, the terminal reader, the pygame
window) convert what they saw into one of these and put it on the door
daemon's queue; only the daemon's loop acts on them (docs/design.md).
"""

from __future__ import annotations

from dataclasses import dataclass

KEYS = frozenset("0123456789*#")


@dataclass(frozen=True)
class KeyPressed:
    key: str  # one of KEYS


@dataclass(frozen=True)
class DoorChanged:
    open: bool


@dataclass(frozen=True)
class ExitPressed:
    pass


@dataclass(frozen=True)
class LanguageToggled:
    """The customer asked for the other language (window key or keypad)."""


@dataclass(frozen=True)
class Quit:
    """Stop the daemon (signal handler, end of scripted input, window closed)."""

    reason: str = ""


InputEvent = KeyPressed | DoorChanged | ExitPressed | LanguageToggled | Quit
