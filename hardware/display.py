"""The shelf display: draws a :class:`~kiosk.screens.Screen` with pygame.

Big, high-contrast type for tired eyes at two metres: a dark background, a
coloured band with the headline (green: come in, red: refused, amber: close
the door), white and yellow text below, the shelf slot as large as the screen
allows, and the owner's status line small in the bottom corner. Every size
is a fraction of the surface, text that does not fit is wrapped and then
shrunk, never clipped, and every text rectangle of the last frame is kept in
:attr:`Renderer.text_rects` so tests can check nothing overflows or overlaps.

:class:`Renderer` draws on an off-screen surface and needs no window (the
screenshots use it); :class:`Display` adds the window: driver choice,
rotation, redraw-only-on-change and keyboard events.

The words come from :mod:`kiosk.i18n`; nothing here spells out a sentence.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # after the switch above: the import prints the prompt
import pygame.freetype

from hardware.fonts import FONT_PACKAGES, face_index, find_cjk_font
from kiosk.config import DisplayConfig
from kiosk.errors import KioskError
from kiosk.i18n import Line, screen_text
from kiosk.inputs import (
    DoorChanged,
    ExitPressed,
    InputEvent,
    KeyPressed,
    LanguageToggled,
    Quit,
)
from kiosk.screens import KINDS, REASONS, Item, Screen, StatusCorner, mask_name

log = logging.getLogger(__name__)

Color = tuple[int, int, int]

BACKGROUND: Color = (12, 16, 22)
WHITE: Color = (255, 255, 255)
YELLOW: Color = (255, 214, 10)
GREY: Color = (190, 198, 208)
DIM: Color = (140, 150, 160)
INK: Color = (12, 12, 12)

# tone -> (band colour, band text colour); all pairs have contrast >= 4.5:1.
BANDS: Mapping[str, tuple[Color, Color]] = {
    "neutral": ((32, 62, 104), WHITE),
    "ok": ((20, 116, 50), WHITE),
    "warn": ((245, 166, 0), INK),
    "error": ((184, 22, 22), WHITE),
}

# The main line (the band's headline; on idle, the line saying what to type) is
# read from two metres: at 0.16 of the 480 px height of a 7-inch 800x480 panel
# its capitals are 55 px, 9.8 mm tall, above the 9.3 mm (16 minutes of arc at
# 2 m) that hardware/a11y.py measures and tests/display/test_accessibility.py
# holds. It is never scaled down with the body, only fitted to the width.
HEADLINE_SIZE = 0.16
# On idle the band holds only the site's name: small, the headline is below.
NAME_BAND_SIZE = 0.075
FIXED_ROLES = frozenset({"headline"})
# Small print never shrinks below 0.05 of the base (24 px on a 480 px panel).
SMALL_PRINT_MIN = 0.05
FLOORED_ROLES = frozenset({"label", "body", "hint", "small"})

# role -> (font size as a fraction of the base length, colour, most lines)
STYLES: Mapping[str, tuple[float, Color, int]] = {
    "slot": (0.36, YELLOW, 1),
    "headline": (HEADLINE_SIZE, WHITE, 2),
    "entry": (0.09, YELLOW, 1),
    "big": (0.105, WHITE, 3),
    "next": (0.092, YELLOW, 3),
    "label": (0.065, GREY, 2),
    "body": (0.07, WHITE, 3),
    "hint": (0.058, GREY, 2),
    "small": (0.048, GREY, 2),
}
STRONG_ROLES = frozenset({"slot"})
BAND_SIZE = HEADLINE_SIZE
MAX_SCALE = 1.5  # body text may grow this much past its style size when there is room
BAND_LINES = 2
STATUS_SIZE = 0.04
MIN_PX = 6  # below this we still draw rather than clip; tests flag it long before


class DisplayError(KioskError, RuntimeError):
    """The display cannot start: no usable video driver, or no Chinese font."""


@dataclass(frozen=True)
class TextRect:
    """Where one piece of text (or the typing dots) landed on the last frame."""

    text: str
    role: str
    size: int
    rect: pygame.Rect


# --- text fitting ------------------------------------------------------------

NBSP = "\u00a0"  # kiosk.i18n joins phone numbers with it so they never break
_CLOSING = set("，。、：；！？）」』》…·,.:;!?)%")
_OPENING = set("（「『《(")


def _is_wide(ch: str) -> bool:
    return ord(ch) >= 0x2E80


def tokens(text: str) -> list[str]:
    """Break points: each CJK character, each Latin word, each space.

    Closing punctuation sticks to what precedes it and opening punctuation to
    what follows, so no line starts with "，" or ends with "（".
    """
    out: list[str] = []
    for ch in text:
        prev = out[-1] if out else ""
        if ch.isspace() and ch != NBSP:
            out.append(" ")
        elif prev and (ch in _CLOSING or prev[-1] in _OPENING) and not prev.isspace():
            out[-1] = prev + ch
        elif _is_wide(ch) or not prev or prev.isspace() or _is_wide(prev[-1]):
            out.append(ch)
        else:
            out[-1] = prev + ch
    return out


class _Fitter:
    """Measures and wraps text with one font; caches widths (frames repeat)."""

    def __init__(self, font: pygame.freetype.Font, style: int) -> None:
        self.font = font
        self.style = style
        self._width = lru_cache(maxsize=4096)(self._measure)

    def _measure(self, text: str, size: int) -> int:
        return int(self.font.get_rect(text, size=size, style=self.style).width)

    def width(self, text: str, size: int) -> int:
        return int(self._width(text, size))

    def wrap(self, text: str, size: int, max_w: int, *, hard: bool = False) -> list[str]:
        lines: list[str] = []
        cur = ""
        pieces: list[str] = []
        for tok in tokens(text):
            # hard: a word wider than the whole line is broken between characters
            # rather than shrinking everything around it to dust.
            too_wide = hard and len(tok) > 1 and self.width(tok, size) > max_w
            pieces.extend(tok if too_wide else [tok])
        for tok in pieces:
            if tok == " ":
                if cur:
                    cur += tok
                continue
            trial = cur + tok
            if not cur or self.width(trial.rstrip(), size) <= max_w:
                cur = trial
            else:
                lines.append(cur.rstrip())
                cur = tok
        if cur.strip():
            lines.append(cur.rstrip())
        return lines

    def balanced(self, text: str, size: int, max_w: int, *, hard: bool = False) -> list[str]:
        """Wrap into as few lines as fit, then even them out (no lone last character)."""
        lines = self.wrap(text, size, max_w, hard=hard)
        if len(lines) < 2:
            return lines
        lo, hi = max_w // 3, max_w
        best = lines
        while hi - lo > 2:
            mid = (lo + hi) // 2
            trial = self.wrap(text, size, mid, hard=hard)
            if len(trial) == len(lines) and all(self.width(t, size) <= mid for t in trial):
                best, hi = trial, mid
            else:
                lo = mid
        return best

    def fit(self, text: str, size: int, max_w: int, max_lines: int) -> tuple[int, list[str]]:
        """The largest size <= ``size`` at which ``text`` wraps into ``max_lines`` lines.

        Breaks only between words (and CJK characters) down to half the size;
        only then breaks inside a word too long for a line.
        """
        want = size
        hard = False
        while True:
            lines = self.balanced(text, size, max_w, hard=hard)
            if (
                len(lines) <= max_lines and all(self.width(t, size) <= max_w for t in lines)
            ) or size <= MIN_PX:
                return size, lines
            if not hard and size <= want // 2:
                hard, size = True, want
                continue
            size = max(MIN_PX, int(size * 0.9))


@dataclass
class _Block:
    line: Line
    size: int
    lines: list[str]
    line_h: int
    height: int


# --- drawing -----------------------------------------------------------------


class Renderer:
    """Draws screens on an off-screen surface of a fixed logical size.

    ``font_path`` must have Chinese glyphs (see :func:`hardware.fonts.find_cjk_font`).
    ``site_name`` and ``contact`` fill in screens that leave theirs empty.
    """

    def __init__(
        self,
        font_path: Path,
        size: tuple[int, int],
        *,
        site_name: str = "",
        contact: str = "",
        font_index: int | None = None,
    ) -> None:
        if not pygame.freetype.get_init():
            pygame.freetype.init()
        index = face_index(font_path) if font_index is None else font_index
        self.font = pygame.freetype.Font(str(font_path), 24, font_index=index)
        self.font.origin = True  # render_to positions the baseline, so lines align
        self.font.antialiased = True
        self.font_path = font_path
        self.site_name = site_name
        self.contact = contact
        self.surface = pygame.Surface(size)
        self.text_rects: list[TextRect] = []
        self._fit = _Fitter(self.font, pygame.freetype.STYLE_DEFAULT)
        # The slot label is drawn emboldened: the one thing to read from across the shop.
        self._fit_strong = _Fitter(self.font, pygame.freetype.STYLE_STRONG)

    @property
    def size(self) -> tuple[int, int]:
        w, h = self.surface.get_size()
        return int(w), int(h)

    def draw(self, screen: Screen) -> pygame.Surface:
        """Draw ``screen`` and return the surface (raises MessageError for an unknown kind)."""
        st = screen_text(screen, site_name=self.site_name, contact=self.contact)
        w, h = self.size
        base = min(h, int(w * 1.3))
        margin = max(6, round(base * 0.03))
        inner_w = w - 2 * margin
        surf = self.surface
        surf.fill(BACKGROUND)
        self.text_rects = []

        # The owner's status line, small, bottom right.
        s_want = max(MIN_PX, round(base * STATUS_SIZE))
        s_size, s_lines = self._fit.fit(st.status, s_want, inner_w, 1)
        s_lh = self._line_h(s_size)
        bottom = h - max(4, margin // 2)
        if st.status:
            self._text(
                s_lines[0],
                "status",
                s_size,
                x=w - margin,
                top=bottom - s_lh,
                colour=DIM,
                align="right",
            )
            bottom -= s_lh

        # The headline band.
        top = 0
        if st.band:
            bg, fg = BANDS.get(st.tone, BANDS["neutral"])
            frac = NAME_BAND_SIZE if st.kind == "idle" else BAND_SIZE
            b_size, b_lines = self._fit.fit(st.band, round(base * frac), inner_w, BAND_LINES)
            b_lh = self._line_h(b_size)
            pad = max(4, round(base * 0.028))
            band_h = pad * 2 + b_lh * len(b_lines)
            pygame.draw.rect(surf, bg, pygame.Rect(0, 0, w, band_h))
            y = pad
            for text in b_lines:
                self._text(text, "band", b_size, x=w // 2, top=y, colour=fg, align="center")
                y += b_lh
            top = band_h

        # The body: blocks stacked and centred, shrunk together until they fit.
        area_top = top + margin
        area_h = bottom - margin - area_top
        gap = max(2, round(base * 0.022))
        # Start large and shrink: a short refusal gets big letters, a busy screen
        # still fits. The big lines shrink first; only a screen that cannot fit
        # even so lets its small print (and the headline) shrink too.
        scale = MAX_SCALE
        floors = True
        while True:
            blocks = [
                self._block(
                    line,
                    base,
                    1.0 if floors and line.role in FIXED_ROLES else scale,
                    inner_w,
                    floors=floors,
                )
                for line in st.lines
            ]
            total = sum(b.height for b in blocks) + gap * max(0, len(blocks) - 1)
            if total <= area_h or scale < 0.1:
                break
            scale *= 0.92
            if floors and scale < 0.25:
                floors, scale = False, MAX_SCALE
        spare = max(0, area_h - total)
        extra = min(spare // (len(blocks) + 1), round(base * 0.04)) if blocks else 0
        used = total + extra * max(0, len(blocks) - 1)
        y = area_top + max(0, (area_h - used) // 2)
        for block in blocks:
            self._draw_block(block, w // 2, y, inner_w)
            y += block.height + gap + extra
        return surf

    def _line_h(self, size: int) -> int:
        # Ascent to descent plus a little leading: descenders of one line never
        # touch the next (the font's own line height is tighter for some faces).
        asc = int(self.font.get_sized_ascender(size))
        desc = int(self.font.get_sized_descender(size))
        return max(int(self.font.get_sized_height(size)), asc - desc + 1 + size // 16)

    def _block(
        self, line: Line, base: float, scale: float, max_w: int, *, floors: bool = True
    ) -> _Block:
        frac, _colour, max_lines = STYLES.get(line.role, STYLES["body"])
        want = max(MIN_PX, round(base * frac * scale))
        if floors and line.role in FLOORED_ROLES:
            # Small print stops shrinking at a size still read at arm's length;
            # the big lines give up the room instead.
            want = max(want, round(base * min(frac, SMALL_PRINT_MIN)))
        if line.role == "entry":
            n = max(1, len(line.text))
            # dots of diameter d with gaps of d/2 must fit the width
            d = max(MIN_PX, min(want, int(max_w / (n * 1.5 - 0.5))))
            return _Block(line, d, [line.text], d, d)
        fitter = self._fit_strong if line.role in STRONG_ROLES else self._fit
        size, lines = fitter.fit(line.text, want, max_w, max_lines)
        if line.role == "slot":
            # Slot labels are letters and digits: no descenders, so no line gap.
            lh = int(self.font.get_sized_ascender(size) * 1.02)
        else:
            lh = self._line_h(size)
        return _Block(line, size, lines, lh, lh * len(lines))

    def _draw_block(self, block: _Block, cx: int, top: int, max_w: int) -> None:
        _frac, colour, _n = STYLES.get(block.line.role, STYLES["body"])
        if block.line.role == "entry":
            self._dots(block.line.text, block.size, cx, top, colour)
            return
        y = top
        for text in block.lines:
            if block.line.role == "slot":
                # Centre the ink of the capitals in the box rather than the font's line.
                r = self.font.get_rect(text, size=block.size, style=pygame.freetype.STYLE_STRONG)
                baseline = y + (block.line_h + int(r.height)) // 2
                self._text(
                    text,
                    "slot",
                    block.size,
                    x=cx,
                    top=y,
                    colour=colour,
                    align="center",
                    baseline=baseline,
                )
            else:
                self._text(
                    text, block.line.role, block.size, x=cx, top=y, colour=colour, align="center"
                )
            y += block.line_h

    def _dots(self, dots: str, d: int, cx: int, top: int, colour: Color) -> None:
        n = len(dots)
        step = d + d // 2
        total = n * d + (n - 1) * (d // 2)
        x = cx - total // 2
        for i, ch in enumerate(dots):
            centre = (x + i * step + d // 2, top + d // 2)
            width = 0 if ch == "●" else max(2, d // 8)
            pygame.draw.circle(self.surface, colour, centre, d // 2, width)
        self.text_rects.append(TextRect(dots, "entry", d, pygame.Rect(x, top, total, d)))

    def _text(
        self,
        text: str,
        role: str,
        size: int,
        *,
        x: int,
        top: int,
        colour: Color,
        align: str,
        baseline: int | None = None,
    ) -> None:
        ft = pygame.freetype
        style = ft.STYLE_STRONG if role in STRONG_ROLES else ft.STYLE_DEFAULT
        r = self.font.get_rect(text, size=size, style=style)
        ink_w = int(r.width)
        if align == "center":
            left = x - ink_w // 2
        elif align == "right":
            left = x - ink_w
        else:
            left = x
        origin_x = left - int(r.x)
        base_y = top + int(self.font.get_sized_ascender(size)) if baseline is None else baseline
        drawn = self.font.render_to(
            self.surface, (origin_x, base_y), text, colour, size=size, style=style
        )
        box = pygame.Rect(left, top, ink_w, self._line_h(size) if baseline is None else 0)
        self.text_rects.append(TextRect(text, role, size, box.union(drawn) if box.h else drawn))


# --- the window ----------------------------------------------------------------


def driver_order(cfg: DisplayConfig, env: Mapping[str, str] | None = None) -> list[str]:
    """SDL video drivers to try, in order ("" means: let SDL choose).

    The configured driver alone if set; dummy when SDL_VIDEODRIVER says so;
    on a Linux console with no X or Wayland, kmsdrm first (a Pi booted to
    console), then SDL's own choice.
    """
    env = os.environ if env is None else env
    if cfg.driver:
        return [cfg.driver]
    forced = env.get("SDL_VIDEODRIVER", "")
    if forced:
        return [forced]
    desktop = env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not desktop:
        return ["kmsdrm", ""]
    return [""]


_KEYS: Mapping[int, str] = {
    **{getattr(pygame, f"K_{d}"): str(d) for d in range(10)},
    **{getattr(pygame, f"K_KP{d}"): str(d) for d in range(10)},
    pygame.K_RETURN: "#",
    pygame.K_KP_ENTER: "#",
    pygame.K_HASH: "#",
    pygame.K_BACKSPACE: "*",
    pygame.K_ESCAPE: "*",
    pygame.K_KP_MULTIPLY: "*",
    pygame.K_ASTERISK: "*",
}


def convert_event(event: pygame.event.Event) -> InputEvent | None:
    """One pygame event as the project's input event, or None to ignore it."""
    if event.type == pygame.QUIT:
        return Quit("window closed")
    if event.type != pygame.KEYDOWN:
        return None
    key = int(getattr(event, "key", 0))
    char = str(getattr(event, "unicode", "") or "")
    if char in ("#", "*"):  # shifted 3 and 8 on a laptop keyboard
        return KeyPressed(char)
    if key in _KEYS:
        return KeyPressed(_KEYS[key])
    if key == pygame.K_o:
        return DoorChanged(True)
    if key == pygame.K_c:
        return DoorChanged(False)
    if key == pygame.K_x:
        return ExitPressed()
    if key == pygame.K_l:
        return LanguageToggled()
    return None


class Display:
    """A window (or the whole screen) showing one Screen at a time.

    Made by :func:`open_display`. Call from one thread only (the door
    daemon's loop): pygame's display is not thread-safe.
    """

    def __init__(self, renderer: Renderer, rotation: int, driver: str) -> None:
        self.english_only = False  # drawn with a Latin-only font: English screens only
        self.renderer = renderer
        self.rotation = rotation
        self.driver = driver
        self.draw_count = 0
        self._last: Screen | None = None
        self._open = True

    @property
    def text_rects(self) -> list[TextRect]:
        """Text drawn on the last frame, in logical (unrotated) coordinates."""
        return self.renderer.text_rects

    @property
    def last_screen(self) -> Screen | None:
        return self._last

    def show(self, screen: Screen) -> None:
        """Draw ``screen`` unless it equals the one on display (idle costs nothing)."""
        if screen == self._last:
            return
        self.renderer.draw(screen)
        self._last = screen
        self.draw_count += 1
        self._present()

    def _present(self) -> None:
        window = pygame.display.get_surface()
        if window is None:
            return
        logical = self.renderer.surface
        if self.rotation:
            logical = pygame.transform.rotate(logical, -self.rotation)  # clockwise
        if logical.get_size() != window.get_size():
            logical = pygame.transform.smoothscale(logical, window.get_size())
        window.blit(logical, (0, 0))
        pygame.display.flip()

    def poll_events(self) -> list[InputEvent]:
        """Input from the window since the last call; never blocks."""
        out: list[InputEvent] = []
        for event in pygame.event.get():
            if event.type in (pygame.WINDOWEXPOSED, pygame.VIDEOEXPOSE):
                self._present()  # re-show the last frame; nothing is redrawn
                continue
            converted = convert_event(event)
            if converted is not None:
                out.append(converted)
        return out

    def save_png(self, path: Path | str) -> None:
        """Write what the window shows (rotated, as on the panel) to a PNG file."""
        window = pygame.display.get_surface()
        pygame.image.save(window if window is not None else self.renderer.surface, str(path))

    def close(self) -> None:
        if self._open:
            self._open = False
            pygame.display.quit()


def _no_font_message(explicit: str) -> str:
    where = ""
    if explicit:
        where = f"display.font = {explicit!r} has no Chinese glyphs or cannot be read; "
    return (
        f"{where}no font with Chinese glyphs found, and the kiosk will not draw empty boxes "
        f"instead of Chinese. Install one: sudo apt install {FONT_PACKAGES}; "
        "or set display.font to a .ttc/.ttf/.otf file that has Chinese characters"
    )


def quiet_sdl_environment() -> None:
    """Give SDL a private runtime folder when the session has none.

    Without one SDL prints "XDG_RUNTIME_DIR is invalid or not set" at every
    start (under systemd without a login session, or in a plain ssh shell).
    """
    current = os.environ.get("XDG_RUNTIME_DIR", "")
    if current and os.path.isdir(current) and os.access(current, os.W_OK):
        return
    import tempfile

    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="pickup-kiosk-sdl-")


def latin_font() -> Path:
    """pygame's own font (always there): the English-only fallback."""
    return Path(pygame.__file__).parent / pygame.freetype.get_default_font()


def open_display(
    cfg: DisplayConfig,
    *,
    site_name: str = "",
    contact: str = "",
    english_without_cjk: bool = False,
) -> Display:
    """Open the shelf display as configured.

    Without a font that has Chinese glyphs it raises DisplayError (the message
    names the packages to install; checked before any window opens), unless
    ``english_without_cjk``: then it draws English only with pygame's own font
    and sets ``Display.english_only`` (the door must still open for codes;
    the daemon records the alarm). Also raises DisplayError when no SDL
    video driver starts. Sets ``SDL_VIDEODRIVER`` to the driver it tries.
    """
    found = find_cjk_font(cfg.font)
    if found is None and not english_without_cjk:
        raise DisplayError(_no_font_message(cfg.font))
    english_only = found is None
    if found is None:
        log.error("%s; drawing English only", _no_font_message(cfg.font))
    font = found if found is not None else latin_font()
    quiet_sdl_environment()
    flags = pygame.FULLSCREEN if cfg.fullscreen else 0
    problems: list[str] = []
    window: pygame.Surface | None = None
    chosen = ""
    original = os.environ.get("SDL_VIDEODRIVER")
    for driver in driver_order(cfg):
        # SDL reads its driver from the environment at display init.
        if driver:
            os.environ["SDL_VIDEODRIVER"] = driver
        elif original is None:
            os.environ.pop("SDL_VIDEODRIVER", None)
        else:
            os.environ["SDL_VIDEODRIVER"] = original
        try:
            pygame.display.init()
            window = pygame.display.set_mode((cfg.width, cfg.height), flags)
            chosen = str(pygame.display.get_driver())
            break
        except pygame.error as exc:
            problems.append(f"{driver or 'default'}: {exc}")
            pygame.display.quit()
    if window is None:
        raise DisplayError(
            "no SDL video driver could open the display ("
            + "; ".join(problems)
            + "); set display.driver (kmsdrm on a Pi console, x11 or wayland on a desktop)"
        )
    pygame.display.set_caption("pickup-kiosk")
    if cfg.fullscreen:
        pygame.mouse.set_visible(False)
    # Only what we act on wakes the loop: keeps the idle CPU near zero.
    pygame.event.set_blocked(None)
    pygame.event.set_allowed(
        [pygame.QUIT, pygame.KEYDOWN, pygame.WINDOWEXPOSED, pygame.VIDEOEXPOSE]
    )
    pw, ph = window.get_size()
    logical = (ph, pw) if cfg.rotation in (90, 270) else (pw, ph)
    renderer = Renderer(font, logical, site_name=site_name, contact=contact)
    log.info("display: %s driver, %dx%d, rotation %d, font %s", chosen, pw, ph, cfg.rotation, font)
    display = Display(renderer, cfg.rotation, chosen)
    display.english_only = english_only
    return display


# --- screenshots -----------------------------------------------------------------

SAMPLE_SITE = "幸福里 24 小时取货点"
SAMPLE_CONTACT = "138 0013 8000"
SAMPLE_ITEMS = (Item("红提", 1, "盒"), Item("牛奶", 2, "瓶"))
SAMPLE_CUSTOMER = "李少云"


def sample_screens(lang: str) -> list[tuple[str, Screen]]:
    """Every kind, and every refusal reason, with realistic data: (file stem, screen)."""
    night = StatusCorner(online=True, outbox=0)
    offline = StatusCorner(online=False, outbox=3)

    def make(kind: str, **kw: object) -> Screen:
        fields: dict[str, object] = {
            "lang": lang,
            "status": night,
            "site_name": SAMPLE_SITE,
            "contact": SAMPLE_CONTACT,
        }
        fields.update(kw)
        return Screen(kind, **fields)  # type: ignore[arg-type]

    by_kind: dict[str, Screen] = {
        "idle": make("idle", clock_text="03:12"),
        "typing": make("typing", typed=4, expected=9),
        "checking": make("checking"),
        "accepted": make(
            "accepted",
            slot="B3",
            items=SAMPLE_ITEMS,
            customer=mask_name(SAMPLE_CUSTOMER),
            seconds_left=5,
        ),
        "door_released": make("door_released", seconds_left=5),
        "door_open": make("door_open", slot="B3"),
        "exit_open": make("exit_open"),
        "forced": make("forced"),
        "staff_open": make("staff_open", customer=mask_name("林师傅")),
        "close_door": make("close_door", seconds_left=75),
        "out_of_service": make("out_of_service", status=offline),
        "day_open": make("day_open", day_mode="free_entry", status=StatusCorner(mode="day")),
    }
    out: list[tuple[str, Screen]] = []
    for kind in KINDS:
        if kind == "refused":
            for reason in REASONS:
                extra: dict[str, object] = {"reason": reason, "expected": 9}
                if reason == "already_collected":
                    extra["collected_at"] = "01:23"
                if reason == "throttled":
                    extra["seconds_left"] = 120
                if reason in ("clock_untrusted",):
                    extra["status"] = StatusCorner(online=False, outbox=1, clock_trusted=False)
                if reason == "out_of_service":
                    extra["status"] = offline
                out.append((f"refused-{reason}", make("refused", **extra)))
        else:
            out.append((kind, by_kind[kind]))
    return out


def render_all(
    out_dir: Path,
    sizes: Sequence[tuple[int, int]] = ((800, 480), (1920, 1080), (480, 800)),
    langs: Iterable[str] = ("zh", "en"),
    *,
    font: str = "",
) -> list[Path]:
    """Render every screen kind and refusal reason to ``{lang}-{w}x{h}-{kind}[-{reason}].png``.

    Needs no window. Raises DisplayError when no Chinese font is found and
    OSError when ``out_dir`` cannot be written.
    """
    font_path = find_cjk_font(font)
    if font_path is None:
        raise DisplayError(_no_font_message(font))
    out_dir.mkdir(parents=True, exist_ok=True)
    index = face_index(font_path)
    written: list[Path] = []
    langs = tuple(langs)
    for w, h in sizes:
        renderer = Renderer(font_path, (w, h), font_index=index)
        for lang in langs:
            for stem, screen in sample_screens(lang):
                renderer.draw(screen)
                path = out_dir / f"{lang}-{w}x{h}-{stem}.png"
                pygame.image.save(renderer.surface, str(path))
                written.append(path)
    return written
