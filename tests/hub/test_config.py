"""hub.toml: every key validated, errors name the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub import config
from hub.errors import ConfigError


def write(tmp: Path, text: str) -> Path:
    p = tmp / "hub.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_example_is_valid_and_has_every_key() -> None:
    cfg = config.load(Path(config.__file__).with_name("example.toml"))
    assert cfg.site_ids == ("wuhan-caidian-01",)
    shown = config.describe(cfg)
    for table in (
        "hub",
        "keys",
        "mqtt",
        "alerts",
        "gaps",
        "limits",
        "homeassistant",
        "api",
        "console",
    ):
        section = getattr(cfg, table)
        assert set(shown[table]) == set(section.__dataclass_fields__)
    text = Path(config.__file__).with_name("example.toml").read_text("utf-8")
    for table, keys in shown.items():
        if table in ("source", "site"):
            continue
        for key in keys:
            assert f"\n{key} = " in text, (table, key)


def test_defaults_and_contract_keys(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, '[[site]]\nid = "shop-01"\n'))
    assert cfg.hub.listen == "127.0.0.1:8080"
    assert cfg.hub.archive == "/var/lib/pickup-hub/hub.db"
    assert cfg.keys.hub_key == "/etc/pickup-hub/hub.key"
    assert cfg.mqtt.url == "mqtt://127.0.0.1:1883"
    assert cfg.hub.base_url == "http://127.0.0.1:8080"
    assert cfg.sites[0].pickup_no_width == 3 and cfg.sites[0].language == "zh"


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ('[hub]\nlisen = "1.2.3.4:80"', 'unknown key hub.lisen (did you mean "listen"?)'),
        ("[hubb]\n", 'unknown section [hubb] (did you mean "hub"?)'),
        ('[hub]\nlisten = "nowhere"', "hub.listen = 'nowhere' is not valid: expected HOST:PORT"),
        ('[hub]\npublic_url = "ftp://x"', "hub.public_url"),
        ('[mqtt]\nurl = "http://x"', "expected mqtt://host[:port]"),
        ('[mqtt]\nurl = "mqtt://127.0.0.1:70000"', "the port from 1 to 65535"),
        ("[limits]\nsite_bytes = 1" + "0" * 400, "limits.site_bytes = 1000"),
        ("[mqtt]\npassword = 5", "mqtt.password = (hidden) is not valid"),
        ("[[site]]\nname = 'x'", "site[0].id is missing"),
        ('[[site]]\nid = "Bad Site"', "site[0].id = 'Bad Site' is not valid"),
        ('[[site]]\nid = "a"\n[[site]]\nid = "a"', "listed twice"),
        ('[[site]]\nid = "a"\nlanguage = "fr"', "expected one of 'zh', 'en'"),
        ('[[site]]\nid = "a"\npickup_no_width = 9', "site[0].pickup_no_width = 9"),
        ("[site]\nid = 'a'", "sites are written [[site]]"),
        ('[alerts]\nurls = ["nope"]', "alerts.urls = (hidden)"),
        ("[api]\nmax_body_bytes = true", "expected a whole number"),
        ('[homeassistant]\ndiscovery_prefix = "a/#"', "homeassistant.discovery_prefix"),
        ("[limits]\nsite_bytes = 5", "limits.site_bytes = 5"),
        ("not toml =", "not valid TOML"),
    ],
)
def test_bad_values_named(tmp_path: Path, text: str, expect: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert expect in str(err.value) and str(path) in str(err.value)


def test_secrets_never_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\npassword = "s3cret"\n[alerts]\nurls = ["wecom://BOTKEY123"]\n')
    shown = str(config.describe(config.load(path)))
    assert "s3cret" not in shown and "BOTKEY123" not in shown
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, '[alerts]\nurls = ["SECRET-no-scheme"]\n'))
    assert "SECRET" not in str(err.value) and "alerts.urls" in str(err.value)


def test_where_the_file_comes_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    assert config.resolve_path(None) == Path("/etc/pickup-hub/hub.toml")
    monkeypatch.setenv(config.ENV_VAR, str(tmp_path / "x.toml"))
    assert config.resolve_path(None) == tmp_path / "x.toml"
    assert config.resolve_path(tmp_path / "y.toml") == tmp_path / "y.toml"
    with pytest.raises(ConfigError) as err:
        config.load(None)
    assert "no such config file" in str(err.value) and "PICKUP_HUB_CONFIG" in str(err.value)
