"""Pick-to-light: the accepted order's slot lights until the door closes, on the
real door daemon with the simulated board and a fake strip."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.devices import HardwareError
from hardware.slotlight import DARK, MemoryStrip, SlotLight, open_slot_light, parse_colour
from kiosk import config as config_mod
from kiosk.cli.shell import Shell, build_door
from kiosk.config import Config
from tests.support.door import Rig

SLOTS = (("A1", (0,)), ("B3", (17, 18)), ("C2", (5,)))
GREEN = parse_colour("#00FF40")


class FakeStrip:
    """Adafruit's PixelBuf API as neopixel_spi has it with auto_write=False:
    writes go to a buffer, ``show`` sends one frame (recorded here)."""

    def __init__(self, n: int, *, fail: bool = False) -> None:
        self.buf: list[tuple[int, int, int]] = [DARK] * n
        self.frames: list[list[tuple[int, int, int]]] = []
        self.fail = fail
        self.deinited = False

    def __len__(self) -> int:
        return len(self.buf)

    def __setitem__(self, index: int, colour: tuple[int, int, int]) -> None:
        if not 0 <= index < len(self.buf):
            raise IndexError(index)
        self.buf[index] = colour

    def fill(self, colour: tuple[int, int, int]) -> None:
        self.buf = [colour] * len(self.buf)

    def show(self) -> None:
        if self.fail:
            raise OSError(5, "Input/output error")  # what a dead SPI line gives
        self.frames.append(list(self.buf))

    def deinit(self) -> None:
        self.deinited = True

    def lit(self) -> list[int]:
        last = self.frames[-1] if self.frames else self.buf
        return [i for i, c in enumerate(last) if c != DARK]


def light_rig(tmp_path: Path, strip: Any, **kw: Any) -> tuple[Rig, SlotLight]:
    cfg = dataclasses.replace(Config(), slots=SLOTS)
    light = open_slot_light(cfg, strip=strip)
    assert light is not None
    return Rig(tmp_path, slot_light=light, slots=SLOTS, **kw), light


def test_accepted_slot_lights_until_the_door_closes(tmp_path: Path) -> None:
    strip = FakeStrip(20)
    rig, light = light_rig(tmp_path, strip)
    try:
        assert strip.frames == []  # dark until a code is accepted
        doc = rig.w.add()  # slot B3
        rig.type(rig.code(doc) + "#")
        assert rig.board.relay_active()
        assert strip.lit() == [17, 18]
        assert strip.frames[-1][17] == GREEN and strip.frames[-1][18] == GREEN
        rig.door(True)
        rig.advance(10)
        assert strip.lit() == [17, 18], "lit while the customer is inside"
        rig.door(False)
        assert rig.types()[-1] == "order_collected"
        assert strip.lit() == [] and light.lit == ()
    finally:
        rig.close()


def test_slot_goes_dark_when_the_unlock_ends_with_nobody_going_in(tmp_path: Path) -> None:
    strip = FakeStrip(20)
    rig, _light = light_rig(tmp_path, strip)
    try:
        doc = rig.w.add("O-1", "042", slot="c2")  # case does not matter
        rig.type(rig.code(doc) + "#")
        assert strip.lit() == [5]
        rig.advance(rig.cfg.lock.release_s - 0.5)
        assert strip.lit() == [5]
        rig.advance(0.5)
        assert rig.types()[-1] == "door_relocked" and not rig.board.relay_active()
        assert strip.lit() == []
    finally:
        rig.close()


def test_next_customer_lights_only_their_slot(tmp_path: Path) -> None:
    strip = FakeStrip(20)
    rig, _light = light_rig(tmp_path, strip)
    try:
        first = rig.w.add("O-1", "042", slot="A1")
        second = rig.w.add("O-2", "043", slot="B3")
        rig.type(rig.code(first) + "#")
        assert strip.lit() == [0]
        rig.door(True)
        rig.door(False)
        rig.type(rig.code(second) + "#")
        assert strip.lit() == [17, 18]
    finally:
        rig.close()


def test_unknown_slot_lights_nothing_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    strip = FakeStrip(20)
    rig, _light = light_rig(tmp_path, strip)
    caplog.set_level(logging.WARNING, logger="hardware.slotlight")
    try:
        doc = rig.w.add("O-1", "042", slot="Z9")
        for _ in range(2):
            rig.type(rig.code(doc) + "#")
            assert rig.board.relay_active(), "the door opens whatever the light does"
            assert strip.lit() == []
            rig.door(True)
            rig.door(False)
            rig.advance(31)  # next TOTP step; re-entry within the grace
        notes = [r.getMessage() for r in caplog.records if "Z9" in r.getMessage()]
        assert len(notes) == 1 and "not in [slots]" in notes[0]
    finally:
        rig.close()


def test_order_without_a_slot_lights_nothing(tmp_path: Path) -> None:
    strip = FakeStrip(20)
    rig, _light = light_rig(tmp_path, strip)
    try:
        doc = rig.w.add(slot=None)
        rig.type(rig.code(doc) + "#")
        assert rig.board.relay_active() and strip.frames == []
    finally:
        rig.close()


def test_a_failing_strip_never_stops_the_door(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    strip = FakeStrip(20, fail=True)
    rig, _light = light_rig(tmp_path, strip)
    try:
        doc = rig.w.add()
        rig.type(rig.code(doc) + "#")
        assert rig.board.relay_active()
        assert rig.types()[-2:] == ["code_accepted", "door_unlocked"]
        assert rig.screens[-1].kind == "accepted" and rig.screens[-1].slot == "B3"
        assert any("the slot light failed" in r.getMessage() for r in caplog.records)
        rig.door(True)
        rig.door(False)
        assert rig.types()[-1] == "order_collected"
    finally:
        rig.close()


def test_map_beyond_the_strip_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HardwareError, match="strip has 10 LEDs"):
        SlotLight(FakeStrip(10), {"b3": (17,)}, colour=GREEN)


def test_off_when_not_configured() -> None:
    assert open_slot_light(Config()) is None
    cfg = dataclasses.replace(Config(), slots=SLOTS).replace("slot_light", enabled=False)
    assert open_slot_light(cfg) is None


def test_close_leaves_the_strip_dark_and_released() -> None:
    strip = FakeStrip(20)
    light = SlotLight(strip, {"b3": (17, 18)}, colour=GREEN)
    light.light("B3")
    light.close()
    assert strip.lit() == [] and strip.deinited


def test_simulated_board_shows_the_light_in_the_terminal(tmp_path: Path) -> None:
    cfg = (
        dataclasses.replace(Config(), slots=SLOTS)
        .replace("hardware", board="sim", keypad="none")
        .replace("store", path=str(tmp_path / "k.db"))
        .replace("voice", enabled=False)
    )
    lines: list[str] = []
    with Shell() as shell:
        daemon = build_door(
            cfg, shell, keys_from_stdin=False, printer=lines.append, with_display=False
        )
        light = daemon.slot_light
        assert isinstance(light, SlotLight) and isinstance(light.strip, MemoryStrip)
        assert len(light.strip) == 19  # just enough for the map
        light.light("B3")
        assert light.strip.lit() == [17, 18]
        light.off()
        assert daemon.voice is None
    assert "  [slot B3 lit: LED 17, 18]" in lines
    assert "  [slot light off]" in lines
    assert light.strip.closed


# ----- the [slots] boundary: whatever a config holds, each bad entry fails alone ----

BAD_VALUES = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=1000),
    st.text(max_size=5),
    st.floats(allow_nan=True),
    st.booleans(),
    st.just([]),
    st.lists(st.integers(min_value=0, max_value=999), min_size=65, max_size=70),
    st.lists(st.one_of(st.text(max_size=2), st.booleans(), st.none()), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(
    good=st.lists(st.integers(min_value=1, max_value=3), max_size=8),
    bad=st.lists(BAD_VALUES, max_size=6),
    order=st.randoms(use_true_random=False),
)
def test_slot_map_entries_are_judged_one_by_one(
    good: list[int], bad: list[Any], order: Any
) -> None:
    table: dict[str, Any] = {}
    expected: dict[str, tuple[int, ...]] = {}
    next_led = 0
    for i, width in enumerate(good):
        leds = tuple(range(next_led, next_led + width))
        next_led += width
        name = f"S{i}"
        table[name] = list(leds) if width > 1 or i % 2 else leds[0]
        expected[name] = leds
    for i, value in enumerate(bad):
        table[f"BAD{i}"] = value
    items = list(table.items())
    order.shuffle(items)
    problems: list[str] = []
    cfg = config_mod.from_mapping({"slots": dict(items)}, "kiosk.toml", problems)
    assert dict(cfg.slots) == expected
    assert len(problems) == len(bad)
    for i in range(len(bad)):
        assert sum(f"BAD{i} " in p or f"BAD{i}'" in p for p in problems) == 1, problems
    if not bad:
        light = open_slot_light(cfg, strip=FakeStrip(cfg.strip_length()))
        if expected:
            assert light is not None
            for name, leds in expected.items():
                light.light(name.lower())
                assert light.lit == leds


def test_missing_driver_leaves_the_door_without_a_light(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from kiosk.cli.shell import _voice_and_light
    from kiosk.clock import SystemClock

    cfg = (
        dataclasses.replace(Config(), slots=SLOTS)
        .replace("hardware", board="gpio")
        .replace("voice", enabled=False)
    )
    with pytest.raises(HardwareError, match=r"pickup-kiosk\[slotlight\]"):
        open_slot_light(cfg)
    with Shell() as shell:
        voice, light = _voice_and_light(cfg, shell, SystemClock())
    assert voice is None and light is None
    assert any("the door runs without it" in r.getMessage() for r in caplog.records)


def test_doctor_says_when_spi_is_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hardware import health as hw_health

    cfg = dataclasses.replace(Config(), slots=SLOTS)
    monkeypatch.setattr(hw_health, "SPIDEV", tmp_path / "spidev0.0")
    off = hw_health.check_slot_light(cfg)[0]
    assert off.warning and "SPI is off" in off.detail and "do_spi 0" in off.fix
    (tmp_path / "spidev0.0").touch()
    on = hw_health.check_slot_light(cfg)[0]
    assert on.ok and not on.warning and "3 slots on 19 LEDs" in on.detail
    assert "no [slots]" in hw_health.check_slot_light(Config())[0].detail


def test_simulator_lights_the_demo_orders_slots(tmp_path: Path) -> None:
    from kiosk.cli.simulator import simulated_config
    from kiosk.sample import DEMO

    cfg = simulated_config(None, tmp_path, "k" * 43, broker=None, window=False)
    demo_slots = {slot for _, _, slot, _, _ in DEMO if slot}
    assert demo_slots <= {name for name, _ in cfg.slots}
    mine = dataclasses.replace(Config(), slots=(("Z1", (3,)),))
    assert simulated_config(mine, tmp_path, "k" * 43, broker=None, window=False).slots == (
        ("Z1", (3,)),
    )
