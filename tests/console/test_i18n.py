"""Both catalogues have the same keys and the same fields in each message;
language from the cookie, else Accept-Language, else Chinese."""

from __future__ import annotations

import re
import string

from hub.web import i18n


def test_same_keys_and_fields() -> None:
    zh, en = i18n.catalogue("zh"), i18n.catalogue("en")
    assert set(zh) == set(en)

    def fields(s: str) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(s) if f}

    for key in zh:
        assert fields(zh[key]) == fields(en[key]), key


def test_every_key_the_templates_use_exists() -> None:
    from importlib import resources

    keys = set(i18n.catalogue("en"))
    folder = resources.files("hub.web").joinpath("templates")
    for item in folder.iterdir():
        text = item.read_text("utf-8")
        for key in re.findall(r"""(?<![\w.])t\(["']([a-z_.]+)["'][,)]""", text):
            assert key in keys, (item.name, key)


def test_language_choice() -> None:
    assert i18n.choose(None, "en-US,en;q=0.9") == "en"
    assert i18n.choose(None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert i18n.choose(None, "fr-FR, en;q=0.5") == "en"
    assert i18n.choose(None, "fr-FR") == "zh"
    assert i18n.choose(None, "") == "zh"
    assert i18n.choose("en", "zh-CN") == "en"
    assert i18n.choose("xx", "en") == "en"
    assert i18n.choose(None, "en;q=abc, zh;q=0.1") == "zh"
