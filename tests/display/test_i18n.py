"""Message catalogs and the plain-text rendering: pure, no pygame."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.i18n import (
    LANGS,
    Catalog,
    MessageError,
    format_duration,
    messages,
    render_text,
    required_keys,
    screen_text,
)
from kiosk.screens import KINDS, REASONS, Item, Screen, StatusCorner, mask_name

ROOT = Path(__file__).resolve().parents[2]


def test_catalogs_have_the_same_keys() -> None:
    zh, en = messages("zh").keys(), messages("en").keys()
    assert zh - en == set(), f"only in zh.toml: {sorted(zh - en)}"
    assert en - zh == set(), f"only in en.toml: {sorted(en - zh)}"


@pytest.mark.parametrize("lang", LANGS)
def test_every_kind_and_reason_has_its_texts(lang: str) -> None:
    cat = messages(lang)
    missing = required_keys() - cat.keys()
    assert not missing, f"{lang}.toml lacks {sorted(missing)}"
    for reason in REASONS:
        assert cat.has(f"reason.{reason}.title") and cat.has(f"reason.{reason}.next")
    # and not vacuously: the required set names every kind and reason
    joined = " ".join(sorted(required_keys()))
    for kind in KINDS:
        assert f"{kind}." in joined
    for reason in REASONS:
        assert f"reason.{reason}." in joined


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("reason", REASONS)
def test_every_refusal_says_what_to_do_next(lang: str, reason: str) -> None:
    screen = Screen(
        "refused", lang=lang, reason=reason, expected=9, seconds_left=90, collected_at="01:23"
    )
    st_ = screen_text(screen, contact="138 0000 0000")
    assert st_.tone == "error" and st_.band
    nexts = [line.text for line in st_.lines if line.role == "next"]
    assert len(nexts) == 1 and nexts[0] and nexts[0] != st_.band
    assert "{" not in " ".join(st_.all_text())


def test_refusal_titles_are_distinct_per_reason() -> None:
    for lang in LANGS:
        titles = {screen_text(Screen("refused", lang=lang, reason=r)).band for r in REASONS}
        assert len(titles) == len(REASONS)


@pytest.mark.parametrize(
    ("lang", "reason", "title", "nxt"),
    [
        ("zh", "not_paid", "此订单尚未付款", "请在订单页面完成付款"),
        ("en", "not_paid", "This order is not paid yet", "Open your order page and finish payment"),
        ("zh", "throttled", "输错次数太多", "请等 90 秒再试"),
        ("en", "throttled", "Too many wrong tries", "Wait 3 min, then try again"),
    ],
)
def test_key_wording(lang: str, reason: str, title: str, nxt: str) -> None:
    seconds = 90 if lang == "zh" else 150
    st_ = screen_text(Screen("refused", lang=lang, reason=reason, seconds_left=seconds))
    assert st_.band == title
    assert st_.lines[0].text == nxt


def test_fields_reach_the_wording() -> None:
    collected = screen_text(
        Screen("refused", lang="zh", reason="already_collected", collected_at="01:23")
    )
    assert "01:23" in collected.band
    bad_length = screen_text(Screen("refused", lang="en", reason="bad_length", expected=9))
    assert "has 9 digits" in bad_length.lines[0].text
    oos = screen_text(Screen("out_of_service", lang="en"), contact="555 1234")
    assert "555\u00a01234" in oos.lines[0].text  # never wrapped inside the number
    assert any("exit button" in line.text for line in oos.lines)
    no_contact = screen_text(Screen("refused", lang="zh", reason="clock_untrusted"))
    assert "备用码" in no_contact.lines[0].text and "{" not in no_contact.lines[0].text


def test_idle_and_close_door_wording() -> None:
    idle = [line.text for line in screen_text(Screen("idle", lang="zh")).lines]
    assert "输入取货码，按 # 确认" in idle and "按 * 切换 English" in idle
    # "* clears" belongs where it works: while typing (the idle headline needs the room)
    typing = [line.text for line in screen_text(Screen("typing", lang="zh")).lines]
    assert any("* 清除" in t for t in typing)
    idle_en = [line.text for line in screen_text(Screen("idle", lang="en")).lines]
    assert "Type your pickup code, then #" in idle_en and "Press * for 中文" in idle_en
    assert screen_text(Screen("close_door", lang="zh")).band == "请关门"
    accepted = screen_text(Screen("accepted", lang="en", slot="B3"))
    assert accepted.band == "Unlocked: pull to open"


def test_catalog_errors_are_specific() -> None:
    cat = Catalog("zh", {"a": "x {n}"})
    with pytest.raises(MessageError, match="'b'"):
        cat.text("b")
    with pytest.raises(MessageError, match="needs field"):
        cat.text("a")
    assert cat.text("a", n="{evil}") == "x {evil}"  # values are never templates
    with pytest.raises(MessageError, match="fr"):
        messages("fr")
    with pytest.raises(MessageError, match="unknown screen kind"):
        screen_text(Screen("disco"))
    with pytest.raises(LookupError):
        messages("xx")


def test_unknown_language_falls_back_to_chinese() -> None:
    assert screen_text(Screen("close_door", lang="fr")).band == "请关门"


def test_durations() -> None:
    cat = messages("en")
    assert format_duration(cat, 5) == "5 s"
    assert format_duration(cat, 119) == "119 s"
    assert format_duration(cat, 121) == "3 min"
    assert format_duration(cat, -4) == "0 s"


@given(typed=st.integers(0, 12), expected=st.integers(0, 12), lang=st.sampled_from(LANGS))
def test_render_text_shows_typing_as_dots_never_digits(
    typed: int, expected: int, lang: str
) -> None:
    out = render_text(Screen("typing", lang=lang, typed=typed, expected=expected))
    assert not re.search(r"\d", out), out
    assert out.count("●") == typed
    assert out.count("○") == max(0, expected - typed)


@given(
    name=st.text(alphabet="李少云王伟芳欧阳", min_size=2, max_size=6),
    lang=st.sampled_from(LANGS),
)
def test_render_text_shows_only_the_masked_name(name: str, lang: str) -> None:
    screen = Screen(
        "accepted",
        lang=lang,
        slot="B3",
        items=(Item("红提", 1, "盒"),),
        customer=mask_name(name),
        seconds_left=5,
    )
    out = render_text(screen)
    assert mask_name(name) in out
    assert name not in out


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("kind", KINDS)
def test_render_text_every_kind(kind: str, lang: str) -> None:
    screen = Screen(
        kind,
        lang=lang,
        reason="not_paid",
        slot="B3",
        items=(Item("红提", 1, "盒"), Item("牛奶", 2, "瓶")),
        status=StatusCorner(online=False, outbox=3, clock_trusted=False),
    )
    out = render_text(screen)
    first = out.splitlines()[0]
    assert first.startswith("[") and "3" in first  # the owner's corner: 3 events waiting
    assert len(out.splitlines()) >= 2
    if kind == "accepted":
        assert ">> B3 <<" in out and "红提 1 盒" in out and "牛奶 2 瓶" in out


def test_many_items_are_summarised() -> None:
    items = tuple(Item(f"货{i}", 1) for i in range(7))
    out = render_text(Screen("accepted", lang="zh", slot="A1", items=items))
    assert "货3" in out and "货4" not in out and "还有 3 件" in out


def test_i18n_does_not_import_pygame() -> None:
    code = "import sys, kiosk.i18n; sys.exit('pygame' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False)
    assert result.returncode == 0


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("kind", ["door_open", "exit_open", "forced", "close_door", "accepted"])
def test_the_docs_show_each_door_state_screen(lang: str, kind: str) -> None:
    from pathlib import Path

    shot = Path(__file__).resolve().parents[2] / "docs" / "screens" / f"{lang}-800x480-{kind}.png"
    assert shot.stat().st_size > 1000  # regenerate with: kiosk screenshots DIR, then copy
