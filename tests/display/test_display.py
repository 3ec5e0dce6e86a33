"""The pygame shelf display, on SDL's dummy video driver."""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path

os.environ["SDL_VIDEODRIVER"] = "dummy"  # before any pygame.display.init
os.environ["SDL_AUDIODRIVER"] = "dummy"
os.environ["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"

import pygame
import pytest

from hardware import fonts
from hardware.display import (
    BANDS,
    Display,
    DisplayError,
    Renderer,
    convert_event,
    driver_order,
    open_display,
    render_all,
    sample_screens,
    tokens,
)
from kiosk.config import DisplayConfig
from kiosk.errors import KioskError
from kiosk.inputs import DoorChanged, ExitPressed, KeyPressed, LanguageToggled, Quit
from kiosk.screens import KINDS, REASONS, Item, Screen, StatusCorner, mask_name

SIZES = ((800, 480), (1920, 1080), (480, 800))
LANGS = ("zh", "en")


@pytest.fixture(scope="module")
def font() -> Path:
    found = fonts.find_cjk_font()
    if found is None:
        pytest.fail(f"no CJK font installed: install {fonts.FONT_PACKAGES} to run these tests")
    return found


@pytest.fixture(scope="module")
def renderers(font: Path) -> dict[tuple[int, int], Renderer]:
    return {size: Renderer(font, size) for size in SIZES}


@pytest.fixture
def window(font: Path) -> Iterator[Display]:
    d = open_display(DisplayConfig(driver="dummy", font=str(font)), site_name="Test", contact="1")
    try:
        yield d
    finally:
        d.close()


def _check_layout(r: Renderer, label: str, legible: float = 0.045) -> None:
    w, h = r.size
    bounds = pygame.Rect(0, 0, w, h)
    assert r.text_rects, f"{label}: nothing drawn"
    short = min(w, h)
    for t in r.text_rects:
        assert t.text.strip(), f"{label}: empty text drawn"
        assert bounds.contains(t.rect), f"{label}: {t.text!r} at {t.rect} runs off {w}x{h}"
        # shrunk to fit, but never into illegibility
        floor = (0.03 if t.role == "status" else legible) * short
        assert t.size >= floor, f"{label}: {t.text!r} drawn at {t.size}px"
    for a, b in combinations(r.text_rects, 2):
        where = f"{label}: {a.text!r} {a.rect} overlaps {b.text!r} {b.rect}"
        assert not a.rect.colliderect(b.rect), where


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_screen_fits_without_overlap(
    renderers: dict[tuple[int, int], Renderer], size: tuple[int, int], lang: str, tmp_path: Path
) -> None:
    r = renderers[size]
    stems = []
    for stem, screen in sample_screens(lang):
        surf = r.draw(screen)
        _check_layout(r, f"{lang}-{stem}@{size}")
        if screen.kind == "refused":
            band_colour = BANDS["error"][0]
            assert tuple(surf.get_at((size[0] // 2, 1)))[:3] == band_colour
        if stem in ("accepted", "refused-not_paid", "idle"):
            path = tmp_path / f"{lang}-{stem}.png"
            pygame.image.save(surf, str(path))
            assert pygame.image.load(str(path)).get_size() == size
        stems.append(stem)
    assert set(stems) == {k for k in KINDS if k != "refused"} | {f"refused-{r}" for r in REASONS}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_long_text_is_wrapped_or_shrunk_never_clipped(
    renderers: dict[tuple[int, int], Renderer], size: tuple[int, int]
) -> None:
    r = renderers[size]
    items = tuple(
        Item("Organic free-range extra-large brown eggs from the hills", 12, "boxes")
        for _ in range(9)
    )
    long_screens = [
        Screen(
            "accepted",
            lang="en",
            slot="COLD-ROOM-SHELF-B3-LEFT",
            items=items,
            customer=mask_name("Bartholomew Montgomery-Smythe"),
            seconds_left=30,
            status=StatusCorner(online=False, outbox=12345, clock_trusted=False, mode="day"),
            clock_text="23:59",
        ),
        Screen(
            "idle",
            lang="zh",
            site_name="幸福里社区二十四小时无人值守自助取货服务点（东门北侧）" * 2,
            contact="+86 138 0013 8000 / 400-800-8888 ext. 1234",
        ),
        Screen("refused", lang="en", reason="clock_untrusted", contact="x" * 80),
    ]
    for screen in long_screens:
        r.draw(screen)
        _check_layout(r, f"long {screen.kind}@{size}", legible=0.025)
        slot = [t for t in r.text_rects if t.role == "slot"]
        assert all(t.size >= 0.045 * min(size) for t in slot)
        drawn = "".join(t.text for t in r.text_rects)
        # wrapped, not dropped: every character of the slot label is on screen
        if screen.kind == "accepted":
            assert "COLD-ROOM-SHELF-B3-LEFT" in drawn


def test_chinese_is_drawn_with_real_glyphs(renderers: dict[tuple[int, int], Renderer]) -> None:
    r = renderers[(800, 480)]

    def ink(text: str) -> bytes:
        surf = pygame.Surface((120, 80))
        surf.fill((0, 0, 0))
        r.font.render_to(surf, (10, 70), text, (255, 255, 255), size=48)
        return pygame.image.tobytes(surf, "RGB")

    notdef = ink("\U0010fffd")
    assert ink("取") != notdef and ink("货") != notdef and ink("取") != ink("货")
    # and the real screen: the glyph cells of 取货 are not one repeated box
    r.draw(Screen("idle", lang="zh"))
    headline = next(t for t in r.text_rects if t.text.startswith("输入取货码"))
    assert headline.rect.width > 0


def test_full_name_never_reaches_the_screen(renderers: dict[tuple[int, int], Renderer]) -> None:
    r = renderers[(800, 480)]
    for lang in LANGS:
        customer = mask_name("李少云")
        r.draw(Screen("accepted", lang=lang, slot="B3", customer=customer, seconds_left=5))
        texts = [t.text for t in r.text_rects]
        assert any("李*云" in t for t in texts), texts
        assert not any("李少云" in t for t in texts)


def test_typing_shows_dots_not_digits(renderers: dict[tuple[int, int], Renderer]) -> None:
    r = renderers[(800, 480)]
    r.draw(Screen("typing", lang="zh", typed=4, expected=9))
    entry = [t for t in r.text_rects if t.role == "entry"]
    assert [t.text for t in entry] == ["●●●●○○○○○"]
    assert not any(ch.isdigit() for t in r.text_rects for ch in t.text)


def test_show_redraws_only_on_change(window: Display) -> None:
    idle = Screen("idle", lang="zh", clock_text="03:12")
    window.show(idle)
    window.show(idle)
    window.show(Screen("idle", lang="zh", clock_text="03:12"))  # equal, not identical
    assert window.draw_count == 1
    before = pygame.image.tobytes(pygame.display.get_surface(), "RGB")
    window.show(Screen("idle", lang="zh", clock_text="03:13"))
    assert window.draw_count == 2
    after = pygame.image.tobytes(pygame.display.get_surface(), "RGB")
    assert before != after  # the new minute really reached the window
    for _ in range(5):
        window.poll_events()
        window.show(Screen("idle", lang="zh", clock_text="03:13"))
    assert window.draw_count == 2


def test_window_screenshot(window: Display, tmp_path: Path) -> None:
    window.show(
        Screen("accepted", lang="zh", slot="B3", items=(Item("红提", 1, "盒"),), customer="李*云")
    )
    path = tmp_path / "accepted.png"
    window.save_png(path)
    shot = pygame.image.load(str(path))
    assert shot.get_size() == (800, 480)
    assert tuple(shot.get_at((400, 2)))[:3] == BANDS["ok"][0]


def test_rotation_draws_portrait_on_a_landscape_panel(font: Path, tmp_path: Path) -> None:
    d = open_display(DisplayConfig(driver="dummy", font=str(font), rotation=90))
    try:
        d.show(Screen("refused", lang="en", reason="wrong_code"))
        assert d.renderer.size == (480, 800)  # drawn upright for a panel turned on its side
        assert all(t.rect.right <= 480 and t.rect.bottom <= 800 for t in d.text_rects)
        d.save_png(tmp_path / "rotated.png")
        shot = pygame.image.load(str(tmp_path / "rotated.png"))
        assert shot.get_size() == (800, 480)
        red = BANDS["error"][0]
        # clockwise: the band along the logical top is now the right edge
        assert tuple(shot.get_at((798, 240)))[:3] == red
        assert tuple(shot.get_at((1, 240)))[:3] != red
    finally:
        d.close()


def _key(key: int, char: str = "") -> pygame.event.Event:
    return pygame.event.Event(pygame.KEYDOWN, key=key, unicode=char, mod=0, scancode=0)


def test_poll_events_converts_keys(window: Display) -> None:
    window.poll_events()  # drop anything SDL queued at start
    posted = [
        _key(pygame.K_5, "5"),
        _key(pygame.K_KP7),
        _key(pygame.K_RETURN, "\r"),
        _key(pygame.K_KP_ENTER),
        _key(pygame.K_BACKSPACE),
        _key(pygame.K_ESCAPE),
        _key(pygame.K_3, "#"),  # shift+3
        _key(pygame.K_KP_MULTIPLY, "*"),
        _key(pygame.K_q, "q"),  # ignored
        pygame.event.Event(pygame.KEYUP, key=pygame.K_1, unicode="1", mod=0, scancode=0),
        _key(pygame.K_o, "o"),
        _key(pygame.K_c, "c"),
        _key(pygame.K_x, "x"),
        _key(pygame.K_l, "l"),
        pygame.event.Event(pygame.QUIT),
    ]
    for event in posted:
        pygame.event.post(event)
    assert window.poll_events() == [
        KeyPressed("5"),
        KeyPressed("7"),
        KeyPressed("#"),
        KeyPressed("#"),
        KeyPressed("*"),
        KeyPressed("*"),
        KeyPressed("#"),
        KeyPressed("*"),
        DoorChanged(True),
        DoorChanged(False),
        ExitPressed(),
        LanguageToggled(),
        Quit("window closed"),
    ]
    assert window.poll_events() == []


def test_every_digit_key_converts() -> None:
    for d in range(10):
        assert convert_event(_key(getattr(pygame, f"K_{d}"))) == KeyPressed(str(d))
        assert convert_event(_key(getattr(pygame, f"K_KP{d}"))) == KeyPressed(str(d))


def test_no_chinese_font_refuses_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fonts, "CANDIDATES", (tmp_path / "none.ttc",))
    monkeypatch.setattr(fonts, "FC_MATCH", "")
    bogus = tmp_path / "bogus.ttc"
    bogus.write_bytes(b"\0" * 100)
    pygame.display.quit()
    with pytest.raises(DisplayError) as err:
        open_display(DisplayConfig(driver="dummy", font=str(bogus)))
    message = str(err.value)
    assert "fonts-noto-cjk" in message and "fonts-wqy-microhei" in message
    assert str(bogus) in message and "display.font" in message
    assert isinstance(err.value, KioskError) and isinstance(err.value, RuntimeError)
    assert not pygame.display.get_init()  # refused before opening any window
    with pytest.raises(DisplayError, match="fonts-noto-cjk"):
        render_all(tmp_path / "shots", sizes=((800, 480),))


def test_bad_driver_is_a_display_error(font: Path) -> None:
    with pytest.raises(DisplayError, match=r"display\.driver"):
        open_display(DisplayConfig(driver="no-such-driver", font=str(font)))
    pygame.display.quit()


@pytest.mark.parametrize(
    ("cfg_driver", "env", "expected"),
    [
        ("x11", {"SDL_VIDEODRIVER": "dummy"}, ["x11"]),
        ("", {"SDL_VIDEODRIVER": "dummy", "DISPLAY": ":0"}, ["dummy"]),
        ("", {}, ["kmsdrm", ""]),  # a Pi booted to the console
        ("", {"DISPLAY": ":0"}, [""]),
        ("", {"WAYLAND_DISPLAY": "wayland-0"}, [""]),
    ],
)
def test_driver_order(
    cfg_driver: str, env: dict[str, str], expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.platform", "linux")
    assert driver_order(DisplayConfig(driver=cfg_driver), env) == expected


def test_render_all_names_every_screen(tmp_path: Path) -> None:
    paths = render_all(tmp_path, sizes=((800, 480),), langs=("zh", "en"))
    names = {p.name for p in paths}
    for lang in ("zh", "en"):
        for kind in KINDS:
            if kind == "refused":
                for reason in REASONS:
                    assert f"{lang}-800x480-refused-{reason}.png" in names
            else:
                assert f"{lang}-800x480-{kind}.png" in names
    assert all(p.is_file() and pygame.image.load(str(p)).get_size() == (800, 480) for p in paths)
    # different screens really differ
    a = pygame.image.tobytes(pygame.image.load(str(tmp_path / "zh-800x480-idle.png")), "RGB")
    b = pygame.image.tobytes(pygame.image.load(str(tmp_path / "en-800x480-idle.png")), "RGB")
    assert a != b


def test_tokens_keep_words_and_punctuation_together() -> None:
    assert tokens("Wait 2 min, then") == ["Wait", " ", "2", " ", "min,", " ", "then"]
    assert tokens("付款，请") == ["付", "款，", "请"]
    assert tokens("（备用码）") == ["（备", "用", "码）"]
    assert tokens("138\u00a00013") == ["138\u00a00013"]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_phone_number_is_never_split(
    renderers: dict[tuple[int, int], Renderer], size: tuple[int, int]
) -> None:
    r = renderers[size]
    for lang in LANGS:
        r.draw(Screen("out_of_service", lang=lang, contact="138 0013 8000"))
        assert any("138\u00a00013\u00a08000" in t.text for t in r.text_rects), [
            t.text for t in r.text_rects
        ]
