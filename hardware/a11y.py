"""Measuring the drawn screens for people: contrast and letter size, from pixels.

Nothing here trusts the palette: the colours are read back from the rendered
surface. For each text the renderer drew (:attr:`Renderer.text_rects`), the
background is the commonest colour on a thin ring just outside its rectangle
and the foreground the colour inside it that stands out most from that
background (antialiasing blends the edges, but the middle of every stroke
is the text colour itself). The contrast ratio is WCAG 2's.

The main line's letter height is measured the same way: the rows that hold
ink (more than half-way from the background to the text colour) of its first
glyph, for a Latin capital its cap height; for Chinese, whose characters fill
the em square, of the whole line.

``python -m hardware.a11y`` prints the figures of every screen in both
languages at 800x480 (docs/wiring.md quotes them).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame

from hardware.display import Renderer, TextRect, sample_screens

Color = tuple[int, int, int]

#: WCAG 2 AA: 4.5:1 for normal text, 3:1 for large (24 px, or 18.7 px bold).
AA_NORMAL = 4.5
AA_LARGE = 3.0
LARGE_PX = 24
LARGE_BOLD_PX = 19
#: The 7-inch Raspberry Pi display: 800x480 on 154.08 x 85.92 mm of glass
#: (its pixels are not square: 5.19 px/mm across, 5.59 px/mm down).
PANEL_MM = (154.08, 85.92)
PANEL_PX = (800, 480)
#: What "readable from 2 m" means here: letters of at least 16 minutes of
#: arc at 2 m (ISO 9241-303's minimum character height), 2000 mm x
#: tan(16') = 9.3 mm; on the panel's 5.59 px/mm that is 52 px.
READ_DISTANCE_MM = 2000
MIN_ARCMIN = 16
MIN_CAP_MM = 9.3


def px_per_mm_down() -> float:
    return PANEL_PX[1] / PANEL_MM[1]


def min_cap_px() -> int:
    """The smallest cap height (in panel pixels) that meets :data:`MIN_CAP_MM`."""
    return int(MIN_CAP_MM * px_per_mm_down() + 0.999)


def _channel(c: int) -> float:
    s = c / 255
    return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4


def luminance(colour: Color) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""
    r, g, b = (_channel(c) for c in colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: Color, b: Color) -> float:
    """WCAG 2 contrast ratio, 1 to 21."""
    la, lb = luminance(a), luminance(b)
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


class Pixels:
    """The RGB bytes of a surface, read once (``get_at`` per pixel is slow)."""

    def __init__(self, surface: pygame.Surface) -> None:
        self.w, self.h = surface.get_size()
        self.raw = pygame.image.tobytes(surface, "RGB")

    def row(self, y: int, left: int, right: int) -> list[Color]:
        seg = self.raw[(y * self.w + left) * 3 : (y * self.w + right) * 3]
        return list(zip(seg[0::3], seg[1::3], seg[2::3], strict=True))

    def box(self, rect: pygame.Rect) -> list[list[Color]]:
        r = rect.clip(pygame.Rect(0, 0, self.w, self.h))
        return [self.row(y, r.left, r.right) for y in range(r.top, r.bottom)]

    def ring(self, rect: pygame.Rect, width: int = 2) -> list[Color]:
        """Pixels on a band ``width`` wide just outside ``rect``."""
        bounds = pygame.Rect(0, 0, self.w, self.h)
        outer = rect.inflate(2 * width, 2 * width).clip(bounds)
        inner = rect.clip(bounds)
        out: list[Color] = []
        for y in range(outer.top, outer.bottom):
            if inner.top <= y < inner.bottom:
                out += self.row(y, outer.left, inner.left) + self.row(y, inner.right, outer.right)
            else:
                out += self.row(y, outer.left, outer.right)
        return out


@dataclass(frozen=True)
class TextContrast:
    text: str
    role: str
    size: int
    fg: Color
    bg: Color
    ratio: float
    large: bool

    @property
    def required(self) -> float:
        return AA_LARGE if self.large else AA_NORMAL

    @property
    def passes(self) -> bool:
        return self.ratio >= self.required


def measure(px: Pixels, tr: TextRect, *, min_count: int = 4) -> TextContrast:
    """Foreground, background and contrast of one drawn text, from the pixels."""
    inside = Counter(c for row in px.box(tr.rect) for c in row)
    ring = px.ring(tr.rect)
    bg = Counter(ring).most_common(1)[0][0] if ring else inside.most_common(1)[0][0]
    candidates = [c for c, n in inside.items() if n >= min_count] or list(inside)
    fg = max(candidates, key=lambda c: contrast(c, bg))
    bold = tr.role == "slot"
    large = tr.size >= (LARGE_BOLD_PX if bold else LARGE_PX)
    return TextContrast(tr.text, tr.role, tr.size, fg, bg, contrast(fg, bg), large)


def _inked(px: Pixels, rect: pygame.Rect, fg: Color, bg: Color) -> list[list[bool]]:
    """Rows x columns of "more than half-way from the background to the text colour"."""
    lf, lb = luminance(fg), luminance(bg)
    mid = (lf + lb) / 2
    lum: dict[Color, float] = {}
    grid: list[list[bool]] = []
    for row in px.box(rect):
        out = []
        for c in row:
            v = lum.get(c)
            if v is None:
                v = lum[c] = luminance(c)
            out.append(v > mid if lf > lb else v < mid)
        grid.append(out)
    return grid


def _wide(ch: str) -> bool:
    return ord(ch) >= 0x2E80


def measurable(text: str) -> bool:
    """A line whose letter height we can read: it starts with a Latin capital
    or a digit (cap height), or with a Chinese character (the em square)."""
    first = text[:1]
    return bool(first) and (
        (first.isascii() and (first.isupper() or first.isdigit())) or _wide(first)
    )


def letter_height(px: Pixels, tr: TextRect) -> int:
    """The drawn height in pixels of the line's letters (see the module doc);
    0 for a line that is not :func:`measurable`."""
    if not measurable(tr.text):
        return 0
    m = measure(px, tr)
    grid = _inked(px, tr.rect, m.fg, m.bg)
    if not grid:
        return 0
    cols = range(len(grid[0]))
    if not _wide(tr.text[0]):
        inked_cols = [x for x in cols if any(row[x] for row in grid)]
        if not inked_cols:
            return 0
        first = inked_cols[0]
        end = first
        while end + 1 < len(grid[0]) and any(row[end + 1] for row in grid):
            end += 1
        rows = [y for y, row in enumerate(grid) if any(row[first : end + 1])]
    else:
        rows = [y for y, row in enumerate(grid) if any(row)]
    return rows[-1] - rows[0] + 1 if rows else 0


#: The screen's main line: the headline in the band, or the big line on idle.
def main_role(kind: str) -> str:
    return "headline" if kind == "idle" else "band"


@dataclass(frozen=True)
class ScreenReport:
    name: str
    texts: tuple[TextContrast, ...]
    main_text: str
    main_height: int

    @property
    def lowest(self) -> TextContrast:
        return min(self.texts, key=lambda t: t.ratio / t.required)


def check_all(renderer: Renderer, langs: tuple[str, ...] = ("zh", "en")) -> list[ScreenReport]:
    """Draw every sample screen and measure each text on it."""
    out: list[ScreenReport] = []
    for lang in langs:
        for stem, screen in sample_screens(lang):
            px = Pixels(renderer.draw(screen))
            rects = list(renderer.text_rects)
            texts = tuple(measure(px, tr) for tr in rects)
            main = [tr for tr in rects if tr.role == main_role(screen.kind) and measurable(tr.text)]
            height = min((letter_height(px, tr) for tr in main), default=0)
            out.append(ScreenReport(f"{lang}-{stem}", texts, main[0].text if main else "", height))
    return out


def main() -> int:
    from hardware.fonts import find_cjk_font

    font = find_cjk_font("")
    if font is None:
        print("no CJK font: sudo apt install fonts-wqy-microhei", file=sys.stderr)
        return 1
    reports = check_all(Renderer(font, PANEL_PX))
    worst = min((t for r in reports for t in r.texts), key=lambda t: t.ratio)
    smallest = min(reports, key=lambda r: r.main_height)
    ok = all(t.passes for r in reports for t in r.texts)
    need = min_cap_px()
    print(f"{len(reports)} screens at 800x480, {sum(len(r.texts) for r in reports)} texts")
    print(
        f"lowest contrast {worst.ratio:.2f}:1 ({worst.role} {worst.text!r}, "
        f"{worst.fg} on {worst.bg}); WCAG AA {'met' if ok else 'NOT met'}"
    )
    print(
        f"smallest main line {smallest.main_height} px = "
        f"{smallest.main_height / px_per_mm_down():.1f} mm ({smallest.name}: "
        f"{smallest.main_text!r}); aim >= {need} px = {MIN_CAP_MM} mm"
    )
    return 0 if ok and smallest.main_height >= need else 1


if __name__ == "__main__":
    sys.exit(main())
