"""The CJK font search: a font counts only if it really has Chinese glyphs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

os.environ["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"

import pygame
import pygame.freetype

from hardware import fonts

LATIN_ONLY = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
NOTDEF = "\U0010fffd"  # a private-use code point no font here maps


@pytest.fixture(scope="module")
def cjk_font() -> Path:
    found = fonts.find_cjk_font()
    if found is None:
        pytest.fail(f"no CJK font installed: install {fonts.FONT_PACKAGES} to run these tests")
    return found


def _glyph(font_path: Path, text: str) -> bytes:
    pygame.freetype.init()
    font = pygame.freetype.Font(str(font_path), 64, font_index=fonts.face_index(font_path))
    surf = pygame.Surface((200, 100))
    surf.fill((0, 0, 0))
    font.render_to(surf, (10, 10), text, (255, 255, 255))
    return pygame.image.tobytes(surf, "RGB")


def test_found_font_has_real_chinese_glyphs(cjk_font: Path) -> None:
    assert fonts.has_cjk_glyphs(cjk_font)
    qu, huo, notdef = _glyph(cjk_font, "取"), _glyph(cjk_font, "货"), _glyph(cjk_font, NOTDEF)
    blank = _glyph(cjk_font, " ")
    # Tofu would draw every missing character as the same box.
    assert notdef not in (qu, huo)
    assert qu != huo
    assert blank not in (qu, huo)


@pytest.mark.skipif(not LATIN_ONLY.is_file(), reason="DejaVu Sans not installed")
def test_a_latin_only_font_is_rejected_and_would_draw_tofu() -> None:
    assert not fonts.has_cjk_glyphs(LATIN_ONLY)
    # control for the glyph comparison above: without CJK glyphs, 取 and 货 look alike
    assert _glyph(LATIN_ONLY, "取") == _glyph(LATIN_ONLY, "货")


def test_garbage_and_missing_files_are_rejected(tmp_path: Path) -> None:
    fake = tmp_path / "wqy-microhei.ttc"
    fake.write_bytes(b"not a font at all" * 50)
    assert not fonts.has_cjk_glyphs(fake)
    assert not fonts.has_cjk_glyphs(tmp_path / "missing.ttc")


def test_explicit_font_is_preferred(cjk_font: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fonts, "CANDIDATES", ())
    monkeypatch.setattr(fonts, "FC_MATCH", "")
    assert fonts.find_cjk_font(str(cjk_font)) == cjk_font


def test_bad_explicit_font_falls_back_to_the_search(
    cjk_font: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fonts, "CANDIDATES", (tmp_path / "nope.ttc", cjk_font))
    monkeypatch.setattr(fonts, "FC_MATCH", "")
    assert fonts.find_cjk_font(str(tmp_path / "typo.ttc")) == cjk_font


def _fake_fc_match(tmp_path: Path, answer: Path) -> str:
    script = tmp_path / "fc-match"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{answer}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_fc_match_answer_is_used_when_it_has_glyphs(
    cjk_font: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fonts, "CANDIDATES", ())
    monkeypatch.setattr(fonts, "FC_MATCH", _fake_fc_match(tmp_path, cjk_font))
    assert fonts.find_cjk_font() == cjk_font


@pytest.mark.skipif(not LATIN_ONLY.is_file(), reason="DejaVu Sans not installed")
def test_fc_match_answer_without_chinese_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fc-match returns its best guess (often DejaVu) even with no CJK font installed
    monkeypatch.setattr(fonts, "CANDIDATES", ())
    monkeypatch.setattr(fonts, "FC_MATCH", _fake_fc_match(tmp_path, LATIN_ONLY))
    assert fonts.find_cjk_font() is None
