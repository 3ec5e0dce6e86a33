"""Words for the screens: message catalogs and the text of every screen.

All human wording lives in ``kiosk/locale/{lang}.toml``; nothing here or in
``hardware.display`` spells out a sentence. :func:`screen_text` turns a
:class:`~kiosk.screens.Screen` into ordered, role-tagged lines (what to say
and how prominent it is); the pygame display lays those lines out and
:func:`render_text` prints them for the terminal simulator and logs.

Pure Python, no pygame (this is the core package).

Privacy: a Screen carries only the already-masked customer name and the
*count* of typed digits, and nothing here adds more; the typing line is drawn
as dots, never as numbers.
"""

from __future__ import annotations

import functools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from kiosk.errors import KioskError
from kiosk.screens import KINDS, REASONS, Item, Screen

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"
MAX_ITEMS = 4  # more than this becomes "and N more": the slot must stay huge
NBSP = "\u00a0"
ITEM_NAME_MAX = 16  # a longer product name is cut with "…": the slot must stay huge
FILLED_DOT = "●"
EMPTY_DOT = "○"

# Roles, most to least prominent. The display maps each to a size and colour.
ROLES = ("slot", "headline", "entry", "big", "next", "label", "body", "hint", "small")
TONES = ("neutral", "ok", "warn", "error")
_HEADLINE_KINDS = ("idle", "typing", "checking", "refused")


class MessageError(KioskError, LookupError):
    """A catalog is missing, malformed, lacks a key or a field for a key."""


class Catalog:
    """One language's messages, flattened to dotted keys (``reason.not_paid.next``)."""

    def __init__(self, lang: str, entries: Mapping[str, str]) -> None:
        self.lang = lang
        self._entries = dict(entries)

    def keys(self) -> frozenset[str]:
        return frozenset(self._entries)

    def has(self, key: str) -> bool:
        return key in self._entries

    def text(self, key: str, **fields: object) -> str:
        """The message for ``key`` with ``{fields}`` filled in.

        Raises MessageError for an unknown key or a missing field. Field
        values are inserted as they are, never parsed as templates.
        """
        try:
            template = self._entries[key]
        except KeyError:
            raise MessageError(f"{self.lang}.toml has no message {key!r}") from None
        try:
            return template.format_map(fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise MessageError(
                f"{self.lang}.toml message {key!r} needs field {exc} (given: {sorted(fields)})"
            ) from None


def _flatten(prefix: str, table: Mapping[str, Any], out: dict[str, str], src: str) -> None:
    for key, value in table.items():
        full = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            _flatten(full, value, out, src)
        elif isinstance(value, str):
            out[full] = value
        else:
            raise MessageError(f"{src}: {full} must be a string, not {type(value).__name__}")


@functools.cache
def messages(lang: str) -> Catalog:
    """The catalog for ``lang`` ("zh" or "en"); loaded once, then cached.

    Raises MessageError for an unknown language or an unreadable catalog.
    """
    if lang not in LANGS:
        raise MessageError(f"no messages for language {lang!r}; languages are: {', '.join(LANGS)}")
    src = f"kiosk/locale/{lang}.toml"
    try:
        raw = resources.files("kiosk").joinpath("locale", f"{lang}.toml").read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MessageError(f"{src}: cannot load the message catalog: {exc}") from None
    entries: dict[str, str] = {}
    _flatten("", data, entries, src)
    return Catalog(lang, entries)


def other_lang(lang: str) -> str:
    """The language the * key toggles to."""
    return "en" if lang == "zh" else "zh"


@dataclass(frozen=True)
class Line:
    role: str  # one of ROLES
    text: str


@dataclass(frozen=True)
class ScreenText:
    """The words of one screen, in reading order, with how to show them.

    ``band`` is the headline in the coloured band at the top ("" for none);
    ``tone`` colours it; ``status`` is the owner's small corner.
    """

    kind: str
    lang: str
    tone: str
    band: str
    lines: tuple[Line, ...]
    status: str

    def all_text(self) -> list[str]:
        out = [self.band] if self.band else []
        out += [line.text for line in self.lines]
        if self.status:
            out.append(self.status)
        return out


def format_qty(qty: float) -> str:
    """1.0 -> "1", 0.5 -> "0.5", 2.25 -> "2.25"."""
    if math.isfinite(qty) and qty == int(qty):
        return str(int(qty))
    return f"{qty:g}"


def format_duration(cat: Catalog, seconds: int) -> str:
    """Seconds up to two minutes, whole minutes (rounded up) beyond."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return cat.text("common.seconds", n=seconds)
    return cat.text("common.minutes", n=math.ceil(seconds / 60))


def _short(name: str) -> str:
    name = " ".join(name.split())
    return name if len(name) <= ITEM_NAME_MAX else name[: ITEM_NAME_MAX - 1] + "…"


def items_text(cat: Catalog, items: tuple[Item, ...]) -> str:
    shown = [
        " ".join(
            cat.text("common.item", name=_short(i.name), qty=format_qty(i.qty), unit=i.unit).split()
        )
        for i in items[:MAX_ITEMS]
    ]
    if len(items) > MAX_ITEMS:
        shown.append(cat.text("common.more_items", n=len(items) - MAX_ITEMS))
    return cat.text("common.item_sep").join(shown)


def entry_dots(typed: int, expected: int) -> str:
    """The typing line: one filled dot per typed digit, hollow ones for the rest."""
    typed = max(0, typed)
    total = max(typed, expected)
    return FILLED_DOT * typed + EMPTY_DOT * (total - typed)


def status_text(cat: Catalog, screen: Screen) -> str:
    st = screen.status
    parts = [cat.text("status.online" if st.online else "status.offline")]
    if st.outbox > 0:
        parts.append(cat.text("status.outbox", n=st.outbox))
    if not st.clock_trusted:
        parts.append(cat.text("status.clock_untrusted"))
    if st.mode == "day":
        parts.append(cat.text("status.day"))
    if screen.clock_text:
        parts.append(screen.clock_text)
    return " · ".join(parts)


def _with_contact(cat: Catalog, key: str, contact: str) -> str:
    """``key`` with the owner's contact, or its ``_plain`` twin when there is none."""
    if contact:
        return cat.text(key, contact=contact)
    return cat.text(key + "_plain")


def _refusal(cat: Catalog, screen: Screen, contact: str) -> tuple[str, list[Line]]:
    reason = screen.reason
    base = f"reason.{reason}"
    if not cat.has(f"{base}.title"):
        # An unknown reason is a bug elsewhere; still tell the customer something useful.
        lines = [Line("small", cat.text("common.help_contact", contact=contact))] if contact else []
        return cat.text("refused.headline"), lines
    if reason == "already_collected" and not screen.collected_at:
        title = cat.text(f"{base}.title_plain")
    else:
        title = cat.text(f"{base}.title", collected_at=screen.collected_at)
    if reason in ("clock_untrusted", "out_of_service", "backup_used"):
        nxt = _with_contact(cat, f"{base}.next", contact)
    elif reason == "bad_length":
        nxt = (
            cat.text(f"{base}.next", expected=screen.expected)
            if screen.expected > 0
            else cat.text(f"{base}.next_plain")
        )
    elif reason == "throttled":
        nxt = cat.text(f"{base}.next", wait=format_duration(cat, screen.seconds_left))
    elif reason == "full_code_needed" and screen.seconds_left > 0:
        nxt = cat.text(f"{base}.next_wait", wait=format_duration(cat, screen.seconds_left))
    else:
        nxt = cat.text(f"{base}.next")
    lines = [Line("next", nxt)]
    if reason == "out_of_service":
        lines.append(Line("body", cat.text("out_of_service.exit")))
    elif contact and reason not in ("clock_untrusted", "backup_used"):
        lines.append(Line("small", cat.text("common.help_contact", contact=contact)))
    return title, lines


def screen_text(screen: Screen, *, site_name: str = "", contact: str = "") -> ScreenText:
    """The words of ``screen`` in its language (unknown languages fall back to zh).

    ``site_name`` and ``contact`` are defaults for screens that leave theirs
    empty. Raises MessageError for an unknown screen kind.
    """
    lang = screen.lang if screen.lang in LANGS else DEFAULT_LANG
    cat = messages(lang)
    site = screen.site_name or site_name
    # A phone number is one unit: the display never wraps inside it.
    contact = (screen.contact or contact).strip().replace(" ", NBSP)
    kind = screen.kind
    tone = "neutral"
    band = ""
    lines: list[Line] = []
    if kind == "idle":
        band = cat.text("idle.welcome", site_name=site) if site else ""
        lines = [
            Line("headline", cat.text("idle.headline")),
            Line("body", cat.text("idle.where")),
            Line("hint", cat.text("lang.toggle")),
        ]
        if contact:
            lines.append(Line("small", cat.text("common.contact", contact=contact)))
    elif kind == "typing":
        band = cat.text("typing.headline")
        lines = [
            Line("entry", entry_dots(screen.typed, screen.expected)),
            Line("hint", cat.text("typing.hint")),
        ]
    elif kind == "checking":
        band = cat.text("checking.headline")
        lines = [Line("body", cat.text("checking.hint"))]
    elif kind == "accepted":
        tone = "ok"
        band = cat.text("accepted.band_reentry" if screen.reentry else "accepted.band")
        if screen.slot:
            lines = [Line("label", cat.text("accepted.label")), Line("slot", screen.slot)]
        else:
            lines = [Line("next", cat.text("accepted.no_slot"))]
        if screen.items:
            lines.append(Line("body", items_text(cat, screen.items)))
        if screen.customer:
            lines.append(Line("body", cat.text("accepted.customer", customer=screen.customer)))
        if screen.seconds_left > 0:
            left = format_duration(cat, screen.seconds_left)
            lines.append(Line("hint", cat.text("accepted.countdown", seconds=left)))
    elif kind == "refused":
        tone = "error"
        band, lines = _refusal(cat, screen, contact)
    elif kind == "door_released":
        tone = "ok"
        band = cat.text("door_released.band")
        lines = [
            Line("big", cat.text("door_released.body")),
            Line("hint", cat.text("door_released.hint")),
        ]
        if screen.seconds_left > 0:
            left = format_duration(cat, screen.seconds_left)
            lines.append(Line("hint", cat.text("door_released.countdown", seconds=left)))
    elif kind == "door_open":
        tone = "ok"
        band = cat.text("door_open.band")
        lines = [Line("big", cat.text("door_open.body"))]
        if screen.slot and screen.slot != "—":
            lines.append(Line("next", cat.text("door_open.slot", slot=screen.slot)))
    elif kind == "staff_open":
        tone = "ok"
        band = cat.text("staff_open.band")
        welcome = (
            cat.text("staff_open.customer", customer=screen.customer)
            if screen.customer
            else cat.text("staff_open.body")
        )
        lines = [Line("big", welcome), Line("hint", cat.text("staff_open.hint"))]
    elif kind == "exit_open":
        band = cat.text("exit_open.band")
        lines = [Line("big", cat.text("exit_open.body"))]
    elif kind == "forced":
        tone = "error"
        band = cat.text("forced.band")
        lines = [Line("big", cat.text("forced.hint")), Line("body", cat.text("forced.body"))]
    elif kind == "close_door":
        tone = "warn"
        band = cat.text("close_door.band")
        open_for = format_duration(cat, screen.seconds_left)
        lines = [
            Line("big", cat.text("close_door.body", duration=open_for)),
            Line("hint", cat.text("close_door.hint")),
        ]
    elif kind == "out_of_service":
        tone = "error"
        band = cat.text("out_of_service.band")
        lines = [
            Line("next", _with_contact(cat, "out_of_service.next", contact)),
            Line("body", cat.text("out_of_service.exit")),
        ]
    elif kind == "day_open":
        band = cat.text("day_open.band")
        key = "day_open.free_entry" if screen.day_mode == "free_entry" else "day_open.unlocked"
        lines = [Line("big", cat.text(key)), Line("hint", cat.text("lang.toggle"))]
        if contact:
            lines.append(Line("small", cat.text("common.contact", contact=contact)))
    else:
        raise MessageError(f"unknown screen kind {kind!r}; kinds are: {', '.join(KINDS)}")
    return ScreenText(kind, lang, tone, band, tuple(lines), status_text(cat, screen))


def render_text(screen: Screen, *, site_name: str = "", contact: str = "") -> str:
    """A compact plain-text rendering of ``screen`` for the terminal and logs.

    Shows the masked name only (as the Screen holds it) and typed digits
    only as dots.
    """
    st = screen_text(screen, site_name=site_name, contact=contact)
    out = [f"[{st.status}]"]
    if st.band:
        out.append(f"== {st.band} ==")
    for line in st.lines:
        if line.role == "slot":
            out.append(f">> {line.text} <<")
        elif line.role == "entry":
            out.append(" ".join(line.text))
        else:
            out.append(line.text)
    return "\n".join(out)


def required_keys() -> frozenset[str]:
    """Keys every catalog must have: one set per screen kind and per refusal reason."""
    keys = {
        "lang.toggle",
        "status.online",
        "status.offline",
        "status.outbox",
        "status.clock_untrusted",
        "common.contact",
        "common.help_contact",
    }
    for kind in KINDS:
        # The screen's main line: a band headline, or the body headline where a kind has no band.
        keys.add(f"{kind}.headline" if kind in _HEADLINE_KINDS else f"{kind}.band")
    for reason in REASONS:
        keys.add(f"reason.{reason}.title")
        keys.add(f"reason.{reason}.next")
    return frozenset(keys)
