"""Pick-to-light: the LED at the accepted order's shelf slot lights until the door closes.

A WS2812 ("NeoPixel") strip along the shelves, one LED or a few (a segment)
per slot, mapped in the config's ``[slots]`` (``B3 = 17``, ``B3 = [17, 18]``).
The door daemon calls :meth:`SlotLight.light` when a code is accepted for an
order with a slot and :meth:`SlotLight.off` when the door closes behind the
customer or the unlock ends with nobody going in (``kiosk.daemon.SlotLightPort``).

On a Pi the strip is driven by Adafruit's ``neopixel_spi`` (the
``[slotlight]`` extra: adafruit-circuitpython-neopixel-spi on Blinka): the data
line is SPI0's MOSI, GPIO 10, which needs no root (unlike the PWM/DMA mode of
rpi_ws281x) and works the same on a Pi 3, 4 and 5 (rpi_ws281x's PWM mode does
not know the Pi 5). It is imported only when a real strip is opened. The
simulated board uses :class:`MemoryStrip`, which prints what it lights.

What may escape: :func:`open_strip` raises HardwareError when the driver is
missing or SPI cannot be opened; :meth:`SlotLight.light` and
:meth:`SlotLight.off` let a failing strip's error through (the daemon's guard
logs it and the door goes on).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from hardware.devices import HardwareError
from kiosk.config import Config, slot_key

log = logging.getLogger(__name__)

Colour = tuple[int, int, int]
DARK: Colour = (0, 0, 0)


class Strip(Protocol):
    """What the slot light needs of a strip driver: the small part of
    ``neopixel_spi.NeoPixel_SPI`` (Adafruit's PixelBuf API) it uses, with
    ``auto_write=False`` so one :meth:`show` sends all changes at once."""

    def __len__(self) -> int: ...
    def __setitem__(self, index: int, colour: Colour) -> None: ...
    def fill(self, colour: Colour) -> None: ...
    def show(self) -> None: ...
    def deinit(self) -> None: ...


def parse_colour(text: str) -> Colour:
    """``"#00FF40"`` -> (0, 255, 64) (the config has checked the form)."""
    value = int(text.lstrip("#"), 16)
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


class SlotLight:
    """Lights one slot's LEDs at a time; ``slots`` is keyed by :func:`slot_key`."""

    def __init__(
        self, strip: Strip, slots: Mapping[str, tuple[int, ...]], *, colour: Colour
    ) -> None:
        self.strip = strip
        self.slots = dict(slots)
        self.colour = colour
        self.lit: tuple[int, ...] = ()
        self.on_activity: Callable[[str], None] | None = None
        self._unknown: set[str] = set()
        size = len(strip)
        for name, leds in self.slots.items():
            if any(i >= size for i in leds):
                raise HardwareError(
                    f"slot {name!r} uses LED {max(leds)}, but the strip has {size} LEDs"
                )

    def light(self, slot: str) -> None:
        """Light ``slot`` (and only it); an unmapped slot lights nothing."""
        leds = self.slots.get(slot_key(slot))
        if leds is None:
            if self.lit:
                self.off()
            key = slot_key(slot)
            if key not in self._unknown:  # once per slot: it may come back all night
                self._unknown.add(key)
                log.warning("slot light: slot %r is not in [slots]; nothing lit", slot)
            return
        self.strip.fill(DARK)
        for i in leds:
            self.strip[i] = self.colour
        self.strip.show()
        self.lit = leds
        self._say(f"slot {slot} lit: LED {', '.join(str(i) for i in leds)}")

    def off(self) -> None:
        """All dark (the door closed or relocked)."""
        if not self.lit:
            return
        self.lit = ()
        self.strip.fill(DARK)
        self.strip.show()
        self._say("slot light off")

    def close(self) -> None:
        try:
            # A dark frame whatever we think the strip shows: it keeps its last
            # colours after the process is gone.
            self.strip.fill(DARK)
            self.strip.show()
            if self.lit:
                self.lit = ()
                self._say("slot light off")
        finally:
            self.strip.deinit()

    def _say(self, text: str) -> None:
        hook = self.on_activity
        if hook is not None:
            hook(text)


class MemoryStrip:
    """A strip in memory, for the simulated board and tests: ``pixels`` is
    what the LEDs show after the last :meth:`show`; ``shows`` counts frames."""

    def __init__(self, n: int) -> None:
        self._buffer: list[Colour] = [DARK] * n
        self.pixels: list[Colour] = [DARK] * n
        self.shows = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self._buffer)

    def __setitem__(self, index: int, colour: Colour) -> None:
        self._buffer[index] = colour

    def fill(self, colour: Colour) -> None:
        self._buffer = [colour] * len(self._buffer)

    def show(self) -> None:
        self.pixels = list(self._buffer)
        self.shows += 1

    def deinit(self) -> None:
        self.closed = True

    def lit(self) -> list[int]:
        return [i for i, c in enumerate(self.pixels) if c != DARK]


def spi_strip(n: int, *, brightness: float, order: str) -> Strip:
    """A real WS2812 strip on SPI0 MOSI (GPIO 10), through Adafruit's neopixel_spi.

    Raises HardwareError when the library is missing or SPI is off.
    """
    try:
        import board  # type: ignore[import-not-found]  # Adafruit Blinka, on a Pi only
        import neopixel_spi  # type: ignore[import-not-found]
    except (ImportError, NotImplementedError, RuntimeError) as exc:
        raise HardwareError(
            "the LED strip driver is not installed (pip install 'pickup-kiosk[slotlight]', "
            f"which scripts/install.sh does on a Pi): {exc}"
        ) from exc
    try:
        strip: Any = neopixel_spi.NeoPixel_SPI(
            board.SPI(),
            n,
            brightness=brightness,
            auto_write=False,
            pixel_order=order,  # a byte-order string such as "GRB"
        )
    except Exception as exc:
        raise HardwareError(
            f"cannot open the LED strip on SPI0 ({exc}): enable SPI (sudo raspi-config "
            "nonint do_spi 0) and add the kiosk user to the spi group; see docs/wiring.md"
        ) from exc
    return strip  # type: ignore[no-any-return]


def open_slot_light(cfg: Config, *, strip: Strip | None = None) -> SlotLight | None:
    """The slot light as configured, or None when ``[slots]`` is empty or it is off.

    The simulated board gets a :class:`MemoryStrip`; ``strip`` overrides the
    driver (tests). Raises HardwareError when the strip cannot be opened.
    """
    slots = cfg.slot_leds()
    if not slots:
        return None
    n = cfg.strip_length()
    if strip is None:
        if cfg.hardware.board == "sim":
            strip = MemoryStrip(n)
        else:
            strip = spi_strip(n, brightness=cfg.slot_light.brightness, order=cfg.slot_light.order)
    light = SlotLight(strip, slots, colour=parse_colour(cfg.slot_light.colour))
    log.info("slot light: %d slots on %d LEDs", len(slots), n)
    return light
