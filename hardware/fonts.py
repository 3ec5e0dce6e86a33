"""Find a font that really draws Chinese.

A font is accepted only if FreeType finds real glyphs for the probe
characters; a file name or ``fc-match``'s answer alone proves nothing
(fc-match happily returns DejaVu on a system without CJK fonts, and that
would draw tofu boxes at the door).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame.freetype  # after the switch above: the import prints the prompt

log = logging.getLogger(__name__)

# Characters every screen uses: if a font has these, it has the rest of the
# common Chinese set, and Latin letters and digits.
PROBE = "取货码门"
LATIN_PROBE = "Ab#*"

# Debian / Raspberry Pi OS locations, best first. Tests replace this tuple.
CANDIDATES: tuple[Path, ...] = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Medium.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/arphic/uming.ttc"),
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
)

# The fontconfig query tool; "" disables it (tests).
FC_MATCH = "fc-match"

# The Debian packages that provide the fonts above, for error messages.
FONT_PACKAGES = "fonts-noto-cjk or fonts-wqy-microhei (or fonts-wqy-zenhei)"


def _init() -> None:
    if not pygame.freetype.get_init():
        pygame.freetype.init()


def face_index(path: Path) -> int:
    """Which face of a collection to use: the Simplified Chinese one if named, else 0.

    Noto Sans CJK collections start with the Japanese face, whose glyph
    shapes differ from what Chinese readers expect for some characters.
    """
    _init()
    for index in range(16):
        try:
            font = pygame.freetype.Font(str(path), 16, font_index=index)
        except (OSError, pygame.error):
            break
        name = str(font.name)
        if " SC" in name or name.endswith("SC"):
            return index
    return 0


def has_cjk_glyphs(path: Path, index: int = 0) -> bool:
    """True if ``path`` loads and has real glyphs for Chinese and Latin probes."""
    _init()
    try:
        font = pygame.freetype.Font(str(path), 24, font_index=index)
        metrics = font.get_metrics(PROBE + LATIN_PROBE)
    except (OSError, pygame.error, ValueError):
        return False
    return bool(metrics) and all(m is not None for m in metrics)


def _fc_match() -> list[Path]:
    if not FC_MATCH:
        return []
    exe = shutil.which(FC_MATCH)
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "-f", "%{file}", ":lang=zh-cn"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("fc-match failed: %s", exc)
        return []
    return [Path(out.stdout.strip())] if out.returncode == 0 and out.stdout.strip() else []


def candidates(explicit: str = "") -> Iterable[Path]:
    """Where to look, in order: the configured file, the usual paths, fontconfig."""
    if explicit:
        yield Path(explicit)
    yield from CANDIDATES
    yield from _fc_match()


def find_cjk_font(explicit: str = "") -> Path | None:
    """The first font file that really has Chinese glyphs, or None.

    ``explicit`` (``display.font`` in the config) is tried first; if it is
    missing or lacks Chinese glyphs a warning is logged and the search goes on.
    Never raises for a bad file.
    """
    seen: set[Path] = set()
    for path in candidates(explicit):
        if path in seen:
            continue
        seen.add(path)
        if path.is_file() and has_cjk_glyphs(path):
            return path
        if explicit and path == Path(explicit):
            log.warning(
                "display.font = %r is not a readable font with Chinese glyphs; searching further",
                explicit,
            )
    return None
