"""The console's words in Chinese and English: one catalogue per language.

``hub/web/locale/{zh,en}.toml`` hold every sentence the console and the
customer page show, by dotted key (``tonight.collected``); both files have
the same keys (tests/console/test_i18n.py). A page's language is the
``ph_lang`` cookie when set (the switch in the page header), else the best
of the browser's ``Accept-Language``, else Chinese.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from importlib import resources
from typing import Any

from hub.errors import HubError

LANGS = ("zh", "en")
DEFAULT = "zh"
COOKIE = "ph_lang"


class MessageError(HubError, LookupError):
    """A catalogue lacks a key, or a message lacks a field."""


def _flatten(prefix: str, table: Mapping[str, Any], out: dict[str, str]) -> None:
    for key, value in table.items():
        full = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            _flatten(full, value, out)
        else:
            out[full] = str(value)


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    text = resources.files("hub.web").joinpath(f"locale/{lang}.toml").read_text("utf-8")
    out: dict[str, str] = {}
    _flatten("", tomllib.loads(text), out)
    return out


class Words:
    """One language's messages, for templates (``t("key", n=3)``) and code."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else DEFAULT
        self._entries = catalogue(self.lang)

    def has(self, key: str) -> bool:
        return key in self._entries

    def __call__(self, key: str, **fields: object) -> str:
        try:
            template = self._entries[key]
        except KeyError:
            raise MessageError(f"{self.lang}.toml has no message {key!r}") from None
        try:
            return template.format_map(fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise MessageError(f"{self.lang}.toml message {key!r} needs field {exc}") from None

    def get(self, key: str, default: str, **fields: object) -> str:
        return self(key, **fields) if key in self._entries else default


def from_accept_language(header: str) -> str:
    """The best of ``LANGS`` for an Accept-Language header (Chinese when none fits)."""
    best, best_q = DEFAULT, -1.0
    for part in header.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGS and q > best_q:
            best, best_q = primary, q
    return best


def choose(cookie: str | None, accept: str | None) -> str:
    if cookie in LANGS:
        return str(cookie)
    return from_accept_language(accept or "")
