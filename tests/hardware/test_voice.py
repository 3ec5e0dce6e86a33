"""The voice: every screen's prompt file exists and is short, and the real door
daemon starts the right one on each screen change (SDL's dummy audio driver,
injected clock, simulated board)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pygame
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardware.devices import BUZZER_PATTERNS
from hardware.display import sample_screens
from hardware.voice import Voice, in_quiet_hours
from kiosk import prompts
from kiosk.config import VoiceConfig
from kiosk.i18n import LANGS
from kiosk.prompts import CHARS, MAX_CHAR_S, MAX_PROMPT_S, clips, path_for, prompt_key
from kiosk.screens import KINDS, REASONS, Screen
from tests.support.door import Rig

assert os.environ.get("SDL_AUDIODRIVER") == "dummy"


def durations(paths: list[Path]) -> dict[Path, float]:
    """Each file's length in seconds, as sox's soxi measures it."""
    out = subprocess.run(
        ["soxi", "-D", *map(str, paths)], check=True, capture_output=True, text=True
    ).stdout.split()
    assert len(out) == len(paths)
    return dict(zip(paths, map(float, out), strict=True))


def every_screen(lang: str) -> list[Screen]:
    """The screenshot set (every kind and reason) and the variants with their own prompt."""
    shots = [s for _, s in sample_screens(lang)]
    return [
        *shots,
        Screen("accepted", lang=lang, slot="—"),
        Screen("day_open", lang=lang, day_mode="unlocked"),
        Screen("refused", lang=lang, reason="no_such_reason"),
    ]


# ----- the files --------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_every_screen_kind_and_reason_has_its_audio_file(prompt_dir: Path, lang: str) -> None:
    screens = every_screen(lang)
    assert {s.kind for s in screens} == set(KINDS)
    assert {s.reason for s in screens if s.kind == "refused"} >= set(REASONS)
    for screen in screens:
        parts = clips(screen)
        assert parts and parts[0][0] == lang, screen
        for clip in parts:
            path = path_for(prompt_dir, *clip)
            assert path.stat().st_size > 1000, f"{path} is missing or empty"
    assert prompts.missing(prompt_dir) == []
    # each refusal has a prompt of its own, not a shared generic one
    reasons = {clips(Screen("refused", lang=lang, reason=r))[0] for r in REASONS}
    assert len(reasons) == len(REASONS)


def test_prompts_are_short(prompt_dir: Path) -> None:
    files = sorted(prompt_dir.glob("*/*.wav"))
    assert len(files) == len(LANGS) * len(prompts.prompt_names())
    length = durations(files)
    chars = {p: s for p, s in length.items() if p.stem.startswith("char-")}
    words = {p: s for p, s in length.items() if p not in chars}
    assert max(words.values()) <= MAX_PROMPT_S, max(words.items(), key=lambda kv: kv[1])
    assert max(chars.values()) <= MAX_CHAR_S, max(chars.items(), key=lambda kv: kv[1])
    # not vacuously short: every prompt holds speech, not silence
    assert min(words.values()) >= 0.8 and min(chars.values()) >= 0.15
    # the idle screen's prompt with the other language's offer stays short too
    for lang in LANGS:
        idle = [path_for(prompt_dir, *c) for c in clips(Screen("idle", lang=lang))]
        assert sum(length[p] for p in idle) <= MAX_PROMPT_S + 2.5


def test_prompts_are_loud_enough(prompt_dir: Path) -> None:
    # sox levels every prompt to -1 dBFS peak: Chinese and English equally loud
    for name in ("idle", "reason-not_paid", "door_open"):
        for lang in LANGS:
            stat = subprocess.run(
                ["sox", str(path_for(prompt_dir, lang, name)), "-n", "stat"],
                check=True,
                capture_output=True,
                text=True,
            ).stderr
            peak = float(
                next(ln for ln in stat.splitlines() if "Maximum amplitude" in ln).split()[-1]
            )
            assert 0.8 <= peak <= 1.0, (lang, name, peak)


def test_rebuild_keeps_good_files_and_remakes_broken_ones(prompt_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "voice"
    shutil.copytree(prompt_dir, copy)
    again = prompts.build(copy)
    assert again.written == 0 and again.kept == len(LANGS) * len(prompts.prompt_names())
    broken = path_for(copy, "en", "reason-wrong_code")
    broken.write_bytes(b"")
    (copy / "zh" / "idle.wav").unlink()
    fixed = prompts.build(copy)
    assert fixed.written == 2
    assert broken.stat().st_size > 1000 and (copy / "zh" / "idle.wav").is_file()


def test_build_without_espeak_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng on it
    with pytest.raises(prompts.VoiceBuildError, match="apt install espeak-ng"):
        prompts.build(tmp_path / "v")


def test_prompt_texts_come_from_both_catalogs() -> None:
    zh, en = prompts.prompt_texts("zh"), prompts.prompt_texts("en")
    assert zh.keys() == en.keys() == set(prompts.prompt_names())
    for name in zh:
        if not name.startswith("char-"):
            assert zh[name] != en[name] and zh[name].strip() and en[name].strip(), name
            # words to say: no key symbols, no braces the voice would read out
            assert not set("#*{}") & set(zh[name] + en[name]), name
    assert set(CHARS) == {n.removeprefix("char-") for n in zh if n.startswith("char-")}


# ----- what counts as a new prompt --------------------------------------------------


def test_countdowns_and_typed_digits_are_not_new_prompts() -> None:
    base = Screen("accepted", slot="B3", seconds_left=5)
    assert prompt_key(base) == prompt_key(Screen("accepted", slot="B3", seconds_left=4))
    assert prompt_key(Screen("typing", typed=1)) == prompt_key(Screen("typing", typed=5))
    assert prompt_key(Screen("close_door", seconds_left=61)) == prompt_key(
        Screen("close_door", seconds_left=75)
    )
    assert prompt_key(base) != prompt_key(Screen("accepted", slot="B3", lang="en"))
    assert prompt_key(Screen("refused", reason="wrong_code")) != prompt_key(
        Screen("refused", reason="not_paid")
    )


def test_slot_is_spelled_from_letter_clips() -> None:
    assert clips(Screen("accepted", lang="en", slot="b-12")) == [
        ("en", "accepted"),
        ("en", "char-B"),
        ("en", "char-1"),
        ("en", "char-2"),
    ]
    assert clips(Screen("accepted", slot="冷藏")) == [("zh", "accepted_no_slot")]
    assert clips(Screen("idle", lang="en")) == [("en", "idle"), ("zh", "toggle")]


@pytest.mark.parametrize(
    ("start", "end", "minute", "quiet"),
    [
        ("00:00", "00:00", 0, False),
        ("22:00", "06:00", 23 * 60, True),
        ("22:00", "06:00", 3 * 60, True),
        ("22:00", "06:00", 6 * 60, False),
        ("22:00", "06:00", 12 * 60, False),
        ("01:00", "05:00", 60, True),
        ("01:00", "05:00", 5 * 60, False),
        ("20:00", "24:00", 23 * 60 + 59, True),
    ],
)
def test_quiet_hours(start: str, end: str, minute: int, quiet: bool) -> None:
    cfg = VoiceConfig(quiet_start=start, quiet_end=end)
    assert in_quiet_hours(cfg, minute) is quiet


# ----- the real daemon ----------------------------------------------------------------


@pytest.fixture
def voice_rig(prompt_dir: Path, tmp_path: Path) -> Iterator[tuple[Rig, Voice]]:
    from kiosk.clock import FakeClock

    clock = FakeClock()
    voice = Voice(VoiceConfig(dir=str(prompt_dir)), clock=clock)
    rig = Rig(tmp_path, voice=voice)
    voice.clock = rig.w.clock  # the rig's clock drives quiet hours too
    del clock
    try:
        yield rig, voice
    finally:
        rig.close()
        voice.close()


def test_the_right_prompt_starts_on_each_screen_change(
    voice_rig: tuple[Rig, Voice],
) -> None:
    rig, voice = voice_rig
    assert voice.started == [("zh/idle", "en/toggle")]  # the first screen
    assert voice.busy
    doc = rig.w.add()
    code = rig.code(doc)
    rig.type(code[:1])
    assert voice.started[-1] == ("zh/typing",)
    rig.type(code[1:])
    assert len(voice.started) == 2, "more digits are no new prompt"
    rig.type("#")
    assert voice.started[-1] == ("zh/accepted", "zh/char-B", "zh/char-3")
    n = len(voice.started)
    for _ in range(3):  # the unlock countdown ticks: the screen changes, the prompt goes on
        rig.advance(1)
    assert [s.kind for s in rig.screens[-3:]] == ["accepted"] * 3
    assert len({s.seconds_left for s in rig.screens[-4:]}) >= 3
    assert len(voice.started) == n
    rig.door(True)
    assert voice.started[-1] == ("zh/door_open",)
    rig.door(False)
    assert voice.started[-1] == ("zh/idle", "en/toggle")


def test_refusals_speak_their_reason_and_the_next_key_cuts_them_short(
    voice_rig: tuple[Rig, Voice],
) -> None:
    rig, voice = voice_rig
    rig.w.add(status="paid")
    rig.type("042123456#")  # the right pickup number, a wrong code
    assert rig.screens[-1].reason == "wrong_code"
    assert voice.started[-1] == ("zh/reason-wrong_code",) and voice.busy
    rig.advance(1)
    assert voice.started[-1] == ("zh/reason-wrong_code",)
    rig.type("0")
    assert voice.started[-1] == ("zh/typing",) and voice.busy
    rig.type("4")  # the next key interrupts, and one more digit starts nothing new
    assert not voice.busy and voice.started[-1] == ("zh/typing",)


def test_language_toggle_speaks_the_other_language(voice_rig: tuple[Rig, Voice]) -> None:
    rig, voice = voice_rig
    rig.type("*")  # on an empty entry: the other language
    assert rig.screens[-1].lang == "en"
    assert voice.started[-1] == ("en/idle", "zh/toggle")
    rig.type("1")
    assert voice.started[-1] == ("en/typing",)


def test_quiet_hours_silence_the_voice_not_the_door(prompt_dir: Path, tmp_path: Path) -> None:
    # FakeClock's wall time is 20:26 UTC
    cfg = VoiceConfig(dir=str(prompt_dir), quiet_start="20:00", quiet_end="07:00")
    rig = Rig(tmp_path, site={"timezone": "UTC"})
    from zoneinfo import ZoneInfo

    voice = Voice(cfg, clock=rig.w.clock, tz=ZoneInfo("UTC"))
    rig.d.voice = voice
    try:
        doc = rig.w.add()
        rig.type(rig.code(doc) + "#")
        assert rig.board.relay_active()
        assert voice.started == [] and not voice.busy
        loud = Voice(
            VoiceConfig(
                dir=str(prompt_dir), quiet_start="20:00", quiet_end="07:00", quiet_volume=0.2
            ),
            clock=rig.w.clock,
            tz=ZoneInfo("UTC"),
        )
        assert loud.volume_now() == 0.2
        loud.say(Screen("idle"))
        assert loud.started == [("zh/idle", "en/toggle")]
    finally:
        rig.close()
        voice.close()


def test_missing_and_corrupt_files_are_logged_once_and_stop_nothing(
    prompt_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "voice"
    shutil.copytree(prompt_dir, broken)
    (broken / "zh" / "typing.wav").unlink()
    (broken / "zh" / "reason-wrong_code.wav").write_bytes(b"RIFF\x00\x00not a wave at all")
    rig = Rig(tmp_path)
    voice = Voice(VoiceConfig(dir=str(broken)), clock=rig.w.clock)
    rig.d.voice = voice
    caplog.set_level(logging.WARNING, logger="hardware.voice")
    try:
        rig.w.add()
        for _ in range(2):
            rig.type("042123456#")  # typing (missing file), then wrong_code (corrupt file)
            assert rig.screens[-1].reason == "wrong_code"
            rig.advance(7)
        warnings = [r.getMessage() for r in caplog.records]
        assert sum("typing.wav" in m for m in warnings) == 1, warnings
        assert sum("reason-wrong_code.wav" in m for m in warnings) == 1, warnings
        assert ("zh/typing",) not in voice.started
        doc = rig.w.add("O-2", "043")
        rig.type(rig.code(doc) + "#")  # the door still opens, the good prompts still play
        assert rig.board.relay_active()
        assert voice.started[-1] == ("zh/accepted", "zh/char-B", "zh/char-3")
    finally:
        rig.close()
        voice.close()


def test_missing_prompt_folder_is_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from kiosk.clock import FakeClock

    voice = Voice(VoiceConfig(dir=str(tmp_path / "never-built")), clock=FakeClock())
    try:
        for screen in every_screen("zh"):
            voice.say(screen)
        assert voice.started == []
        lines = [r.getMessage() for r in caplog.records if r.name == "hardware.voice"]
        assert len(lines) == 1 and "kiosk voice build" in lines[0]
    finally:
        voice.close()


def test_no_audio_device_is_logged_once_and_the_door_works(
    prompt_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pygame.mixer.quit()
    monkeypatch.setenv("SDL_AUDIODRIVER", "no_such_driver")
    rig = Rig(tmp_path)
    voice = Voice(VoiceConfig(dir=str(prompt_dir)), clock=rig.w.clock)
    rig.d.voice = voice
    try:
        doc = rig.w.add()
        rig.type(rig.code(doc) + "#")
        assert rig.board.relay_active()
        assert voice.started == []
        errors = [
            r for r in caplog.records if r.name == "hardware.voice" and r.levelno >= logging.ERROR
        ]
        assert len(errors) == 1 and "no audio output" in errors[0].getMessage()
        # tried again a minute later, when the speaker may be plugged in
        monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
        rig.advance(61)  # the door relocked: back to idle, and now it is heard
        assert rig.screens[-1].kind == "idle"
        assert voice.started == [("zh/idle", "en/toggle")] and voice.busy
    finally:
        rig.close()
        voice.close()


# A prompt file is an input too: a card that lost sectors, a half-copied folder.
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    how=st.sampled_from(["random", "truncate", "flip"]),
    data=st.binary(max_size=400),
    cut=st.integers(min_value=0, max_value=20000),
    flips=st.lists(st.integers(min_value=0, max_value=20000), min_size=1, max_size=8),
)
def test_broken_prompt_files_never_raise_and_never_hurt_the_others(
    prompt_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    how: str,
    data: bytes,
    cut: int,
    flips: list[int],
) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    for lang in LANGS:
        (root / lang).mkdir()
        for name in ("idle", "toggle", "typing"):
            shutil.copy(path_for(prompt_dir, lang, name), path_for(root, lang, name))
    good = path_for(prompt_dir, "zh", "typing").read_bytes()
    if how == "random":
        bad = data
    elif how == "truncate":
        bad = good[: cut % len(good)]
    else:
        raw = bytearray(good)
        for i in flips:
            raw[i % len(raw)] ^= 0xFF
        bad = bytes(raw)
    path_for(root, "zh", "typing").write_bytes(bad)
    from kiosk.clock import FakeClock

    voice = Voice(VoiceConfig(dir=str(root)), clock=FakeClock())
    try:
        voice.say(Screen("typing"))  # whatever the bytes: no exception
        voice.stop()
        voice.say(Screen("idle", lang="en"))
        assert voice.started[-1] == ("en/idle", "zh/toggle") and voice.busy
    finally:
        voice.close()


# ----- the beeps -----------------------------------------------------------------------


def test_buzzer_patterns_are_distinguishable() -> None:
    """key, accepted, refused and alarm differ in what an ear tells apart: the
    number of beeps, or a beep length at least twice as long."""
    assert set(BUZZER_PATTERNS) == {"key", "accepted", "refused", "alarm"}
    for name, (on_s, off_s, n) in BUZZER_PATTERNS.items():
        assert on_s >= 0.02, f"{name}: a beep under 20 ms is a click, not a beep"
        if n is None or n > 1:
            assert off_s >= 0.05, f"{name}: gaps under 50 ms blur the beeps into one"
    names = sorted(BUZZER_PATTERNS)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            on_a, _, n_a = BUZZER_PATTERNS[a]
            on_b, _, n_b = BUZZER_PATTERNS[b]
            count_differs = n_a != n_b
            length_differs = max(on_a, on_b) / min(on_a, on_b) >= 2
            assert count_differs or length_differs, (a, b)
    # the alarm never ends by itself; the others end within a second
    assert BUZZER_PATTERNS["alarm"][2] is None
    for name in ("key", "accepted", "refused"):
        on_s, off_s, n = BUZZER_PATTERNS[name]
        assert n is not None and (on_s + off_s) * n <= 1.0


def test_doctor_says_when_the_prompts_are_missing(prompt_dir: Path, tmp_path: Path) -> None:
    from hardware.health import check_voice
    from kiosk.config import Config

    good = check_voice(Config().replace("voice", dir=str(prompt_dir)))[0]
    assert (
        good.ok
        and not good.warning
        and f"{2 * len(prompts.prompt_names())} prompt files" in good.detail
    )
    none = check_voice(Config().replace("voice", dir=str(tmp_path / "none")))[0]
    assert none.warning and "silent" in none.detail and "kiosk voice build" in none.fix
    partial = tmp_path / "partial"
    shutil.copytree(prompt_dir, partial)
    (partial / "en" / "idle.wav").unlink()
    some = check_voice(Config().replace("voice", dir=str(partial)))[0]
    assert (
        some.warning
        and f"1 of {2 * len(prompts.prompt_names())}" in some.detail
        and "en/idle.wav" in some.detail
    )
    off = check_voice(Config().replace("voice", enabled=False))[0]
    assert off.ok and "off" in off.detail
