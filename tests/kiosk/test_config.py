from pathlib import Path

import pytest

from kiosk import config
from kiosk.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "kiosk" / "example.toml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "kiosk.toml"
    p.write_text(text)
    return p


def test_example_config_is_valid_and_documents_every_key() -> None:
    cfg = config.load(EXAMPLE)
    assert cfg.site.pickup_no_width == 3
    text = EXAMPLE.read_text()
    for section, keys in config.section_help().items():
        assert f"[{section}]" in text or f"# [{section}]" in text
        for key in keys:
            assert f"{key} =" in text, f"example.toml lacks {section}.{key}"


def test_unknown_key_names_file_key_and_suggestion(tmp_path: Path) -> None:
    p = write(tmp_path, '[site]\nid = "shop-1"\npickup_no_widht = 4\n')
    with pytest.raises(ConfigError) as err:
        config.load(p)
    msg = str(err.value)
    assert (
        str(p) in msg and "site.pickup_no_widht" in msg and 'did you mean "pickup_no_width"' in msg
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[site]\nid = "Bad Site"\n', "site.id"),
        ("[site]\npickup_no_width = 9\n", "from 1 to 6"),
        ("[lock]\nrelease_s = 1\n", "lock.release_s"),
        ('[lock]\nrelease_s = "5"\n', "a number"),
        ('[hardware]\nboard = "pi"\n', "'gpio', 'sim'"),
        ("[hardware]\nrelay_pin = 17\ndoor_pin = 17\n", "more than one device"),
        ('[mqtt]\nurl = "http://x"\n', "mqtt.url"),
        ('[trust]\nhub_keys = ["abc"]\n', "trust.hub_keys[0]"),
        ("[trust]\nallow_unsigned = 1\n", "true or false"),
        ('[schedule]\nday_start = "25:00"\n', "HH:MM"),
        ("[nonsense]\n", "unknown section"),
        ("not toml at all [", "not valid TOML"),
        ('[site]\ntimezone = "Mars/Olympus"\n', "IANA"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        config.load(write(tmp_path, text))
    assert needle in str(err.value)
    assert str(tmp_path) in str(err.value)


def test_missing_file_explains_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KIOSK_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="no such config file"):
        config.load(tmp_path / "absent.toml")


def test_env_var_is_used_when_no_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write(tmp_path, '[site]\nid = "from-env"\n')
    monkeypatch.setenv("KIOSK_CONFIG", str(p))
    assert config.load(None).site.id == "from-env"


def test_describe_masks_secrets(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, '[mqtt]\nurl = "mqtt://h:1883"\npassword = "hunter2"\n'))
    shown = config.describe(cfg)
    assert shown["mqtt"]["password"] == "********"
    assert "hunter2" not in repr(shown)


def test_bad_secret_value_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, '[mqtt]\nurl = "mqtt://h"\npassword = 987654321\n'))
    assert "mqtt.password" in str(err.value) and "987654321" not in str(err.value)


def test_relay_fallback_reads_what_it_can_of_a_broken_file(tmp_path: Path) -> None:
    p = write(tmp_path, "[hardware]\nrelay_pin = 5\nrelay_active_high = false\nbogus = 1\n")
    with pytest.raises(ConfigError):
        config.load(p)
    hw = config.relay_fallback(p)
    assert (hw.relay_pin, hw.relay_active_high) == (5, False)
    assert config.relay_fallback(tmp_path / "absent.toml").relay_pin == 17


# ----- [voice], [slot_light], [slots] --------------------------------------------


def test_voice_and_slot_light_defaults() -> None:
    cfg = config.Config()
    assert cfg.voice.enabled and 0 < cfg.voice.volume <= 1
    assert cfg.voice.quiet_start == cfg.voice.quiet_end  # no quiet hours unless a site asks
    assert cfg.slots == () and cfg.slot_leds() == {}  # no slot map: no slot light


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[voice]\nvolume = 2\n", "voice.volume"),
        ('[voice]\nquiet_start = "7pm"\n', "HH:MM"),
        ("[voice]\nenabeld = false\n", 'did you mean "enabled"'),
        ('[slot_light]\ncolour = "green"\n', "#RRGGBB"),
        ('[slot_light]\norder = "XYZ"\n', "'GRB'"),
        ("[slots]\nB3 = -1\n", "slots.B3"),
        ('[slots]\nB3 = "17"\n', "an LED number"),
        ("[slots]\nB3 = []\n", "a list of 1 to 64"),
        ("[slots]\nB3 = [1, true]\n", "slots.B3"),
        ('[slots]\n"" = 1\n', "not a slot name"),
        ('[slots]\n"ABCDEFGHIJKLMNOPQ" = 1\n', "not a slot name"),
        ("[slots]\nB3 = 17\nA1 = [16, 17]\n", "gives LED 17 to both 'B3' and 'A1'"),
        ('[slots]\nB3 = 1\n"b3" = 2\n', "names one slot twice"),
        ("[slot_light]\nleds = 10\n[slots]\nB3 = 10\n", "slot_light.leds = 10"),
        ("[hardware]\nbuzzer_pin = 10\n[slots]\nB3 = 1\n", "SPI0"),
        ("[slot]\nB3 = 1\n", 'did you mean "slots"'),
    ],
)
def test_bad_voice_and_slot_values_are_named(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, text))
    assert needle in str(err.value)
    assert str(tmp_path) in str(err.value)


def test_slot_map_reads_single_leds_and_segments(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, '[slots]\nA1 = 0\nB3 = [17, 18]\n"冷藏 2" = 5\n'))
    assert cfg.slots == (("A1", (0,)), ("B3", (17, 18)), ("冷藏 2", (5,)))
    assert cfg.slot_leds() == {"a1": (0,), "b3": (17, 18), "冷藏 2": (5,)}
    assert cfg.strip_length() == 19
    assert config.describe(cfg)["slots"] == {"A1": [0], "B3": [17, 18], "冷藏 2": [5]}
    # the SPI pins are free only while the slot light is on
    off = config.load(
        write(
            tmp_path,
            "[slot_light]\nenabled = false\n[hardware]\nbuzzer_pin = 10\n[slots]\nB3 = 1\n",
        )
    )
    assert off.slot_leds() == {}


def test_every_slot_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "[slots]\nB3 = 17\nA1 = 17\nC1 = -4\nD1 = 3\n")
    cfg, problems = config.load_all(path)
    assert cfg is not None and len(problems) == 2, problems
    assert any("C1" in p for p in problems) and any("LED 17" in p for p in problems)
    assert ("D1", (3,)) in cfg.slots
