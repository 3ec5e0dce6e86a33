"""``pickup-hub`` as a user runs it: keys, tokens, events, verify, import, doctor."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest

from hub import cli
from protocol.canonical import dumps
from tests.support.broker import Broker
from tests.support.hub import T0, archive, chain, hub_cli, live, load, write_config


def run(cfg: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main([*args, "--config", str(cfg)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_keygen_private_files_and_trust_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    code, out, err = run(cfg, "keygen", capsys=capsys)
    assert code == 1 and "already exists; pass --force" in err  # write_config made keys
    code, out, _ = run(cfg, "keygen", "--force", capsys=capsys)
    assert code == 0
    c = load(cfg)
    for p in (c.keys.hub_key, c.keys.auditor_key):
        assert stat.S_IMODE(Path(p).stat().st_mode) == 0o600
    lines = [x for x in out.splitlines() if "_keys = [" in x]
    assert [x.split(" ")[0] for x in lines] == ["hub_keys", "auditor_keys"]
    assert "owner" not in out.lower().replace("owner's", "")


def test_token_add_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    code, out, err = run(cfg, "token", "add", "shop-backend", capsys=capsys)
    token = out.strip()
    assert code == 0 and token.startswith("ph_") and len(token) > 40 and "shown only now" in err
    code, out, _ = run(cfg, "token", "list", "--json", capsys=capsys)
    assert json.loads(out)[0]["name"] == "shop-backend" and token not in out
    db = (tmp_path / "hub.db").read_bytes()
    assert token.encode() not in db  # stored hashed
    assert run(cfg, "token", "add", "shop-backend", capsys=capsys)[0] == 1
    assert run(cfg, "token", "revoke", "shop-backend", capsys=capsys)[0] == 0
    assert run(cfg, "token", "revoke", "shop-backend", capsys=capsys)[0] == 1
    assert run(cfg, "token", "add", "bad name!", capsys=capsys)[0] == 1


def test_events_and_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    a = archive(tmp_path)
    evs = chain("shop-a", 5)
    a.ingest(live("shop-a", evs[:2] + evs[3:]), T0)
    code, _, err = run(cfg, "verify", "shop-a", capsys=capsys)
    # docs/hub.md quotes this line
    assert code == 1 and err == "pickup-hub: shop-a: gap: seq 3 missing (verified 1..2)\n"
    a.ingest(live("shop-a", evs[2:3]), T0)
    assert run(cfg, "verify", "shop-a", capsys=capsys)[:2] == (0, "5\n")
    out = hub_cli("events", "shop-a", "--json", "--since", "2", config=cfg)
    assert out.returncode == 0
    assert [json.loads(x)["seq"] for x in out.stdout.splitlines()] == [3, 4, 5]
    code, out, _ = run(cfg, "events", "shop-a", capsys=capsys)
    assert code == 0 and "door_opened" in out and len(out.splitlines()) == 5
    code, _, err = run(cfg, "verify", "nowhere", capsys=capsys)
    assert code == 2 and "no [[site]] with id = 'nowhere'" in err
    code, out, _ = run(cfg, "sites", capsys=capsys)
    assert "events 1..5 verified" in out


def test_orders_import_all_or_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    bad = tmp_path / "orders.csv"
    bad.write_text(
        "site,order_id,status,slot,customer_name,phone_tail,items\n"
        "shop-a,A-1,ready,B3,李少云,1234,红提:1:盒;牛奶:2:瓶\n"
        "shop-a,A-2,shipped,B4,Wang,5678,Apples:6\n"
        "shop-x,A-3,ready,,Chen,,\n"
        "shop-a,A-4,ready,B5,Liu,123456,\n"
        "shop-a,A-1,paid,,,,\n",
        encoding="utf-8",
    )
    code, _, err = run(cfg, "orders", "import", str(bad), capsys=capsys)
    assert code == 1
    assert "line 3 (status)" in err and "line 4 (site)" in err and "line 5 (customer)" in err
    assert "line 6 (order_id)" in err and "nothing was stored" in err
    assert json.loads(run(cfg, "orders", "list", "--json", capsys=capsys)[1]) == []
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps(
            [
                {
                    "site": "shop-a",
                    "order_id": "J-1",
                    "status": "ready",
                    "slot": "A1",
                    "items": [{"name": "米", "qty": 1}],
                },
                {"site": "shop-b", "order_id": "J-2", "status": "paid"},
            ]
        ),
        encoding="utf-8",
    )
    code, out, _ = run(cfg, "orders", "import", str(good), capsys=capsys)
    assert code == 0 and "shop-a/J-1  pickup no 001" in out and "/c/" in out
    listed = json.loads(run(cfg, "orders", "list", "--json", capsys=capsys)[1])
    assert {o["order_id"] for o in listed} == {"J-1", "J-2"}
    assert "secret" not in json.dumps(listed)
    code, _, err = run(cfg, "orders", "import", str(tmp_path / "missing.csv"), capsys=capsys)
    assert code == 1 and "cannot read" in err


def test_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "hub.toml"
    cfg.write_text('[hub]\nlisen = "x"\n')
    code, _, err = run(cfg, "sites", capsys=capsys)
    assert code == 2 and err.count("\n") == 1 and "did you mean" in err
    out = hub_cli("config", "check", config=cfg)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    good = write_config(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = run(good, "adduser", "amy", "--role", "owner", capsys=capsys)
    assert code == 1 and "password is 8 to 1024" in err  # no password on stdin: nothing made
    code, _, err = run(good, "sites", capsys=capsys)  # no archive yet
    assert code == 1 and "no archive here" in err
    # an archive in a directory that does not exist (once: "cannot create the archive: None")
    text = good.read_text().replace(str(tmp_path / "hub.db"), str(tmp_path / "no" / "hub.db"))
    good.write_text(text)
    code, _, err = run(good, "token", "add", "x", capsys=capsys)
    assert code == 1 and err.count("\n") == 1
    assert f"directory {tmp_path / 'no'} does not exist" in err
    with pytest.raises(SystemExit) as exc:
        cli.main(["nosuch"])
    assert exc.value.code == 2
    out = hub_cli("orders", "list", "--status", "shipped", config=good)  # a bad argument: 2
    assert out.returncode == 2 and "invalid choice: 'shipped'" in out.stderr


def test_backup_and_config_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    a = archive(tmp_path)
    a.ingest(live("shop-a", chain("shop-a", 3)), T0)
    code, out, _ = run(cfg, "backup", str(tmp_path / "copy.db"), capsys=capsys)
    assert code == 0
    copy_cfg = tmp_path / "copy.toml"
    copy_cfg.write_text(
        cfg.read_text().replace(str(tmp_path / "hub.db"), str(tmp_path / "copy.db"))
    )
    assert run(copy_cfg, "verify", "shop-a", capsys=capsys)[:2] == (0, "3\n")
    assert run(cfg, "backup", str(tmp_path / "copy.db"), capsys=capsys)[0] == 1  # never overwrites
    code, _, err = run(cfg, "backup", str(tmp_path / "no" / "copy.db"), capsys=capsys)
    assert (code, err) == (
        1,
        f"pickup-hub: cannot create {tmp_path}/no/copy.db: No such file or directory\n",
    )
    code, out, _ = run(cfg, "config", "show", capsys=capsys)
    assert code == 0 and json.loads(out)["site"][0]["id"] == "shop-a"


def test_doctor(tmp_path: Path, capsys: pytest.CaptureFixture[str], broker: Broker) -> None:
    cfg = write_config(
        tmp_path, mqtt_url=broker.url, extra='[alerts]\nurls = ["json://127.0.0.1:9/x"]\n'
    )
    code, out, _ = run(cfg, "doctor", capsys=capsys)
    assert code == 0, out
    assert out.count("ok  ") == 4
    broker.stop()
    Path(load(cfg).keys.auditor_key).chmod(0o644)
    code, out, _ = run(cfg, "doctor", "--json", capsys=capsys)
    checks = {c["check"]: c for c in json.loads(out)}
    assert code == 1
    assert not checks["broker"]["ok"] and "start the broker" in checks["broker"]["fix"]
    assert not checks["key file mode"]["ok"] and checks["key file mode"]["fix"].startswith(
        "chmod 600"
    )


def test_kiosk_and_file_strings_cannot_drive_the_terminal(tmp_path: Path) -> None:
    """An event type or order id with escape sequences (a hostile kiosk: the
    chain only proves the bytes are the kiosk's), or a CSV header holding
    them, once reached the owner's terminal as they were."""
    cfg = write_config(tmp_path)
    a = archive(tmp_path)
    evil = "\x1b]0;owned\x07\x1b[2J\u202e"
    ev = chain("shop-a", 1, type_=evil, order_id="\x1b[31mA-1")[0]
    assert a.ingest(live("shop-a", [ev]), T0).verified
    out = hub_cli("events", "shop-a", config=cfg)
    assert out.returncode == 0
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout and "\u202e" not in out.stdout
    assert "\\u001b]0;owned\\u0007\\u001b[2J\\u202e" in out.stdout and "A-1" in out.stdout
    raw = hub_cli("events", "shop-a", "--json", config=cfg)  # --json: the kiosk's bytes, as JSON
    assert raw.stdout.encode() == dumps(ev) + b"\n"
    bad = tmp_path / "orders.csv"
    bad.write_text("order_id,status,\x1b[2Jevil\nA-2,ready,x\n", encoding="utf-8")
    out = hub_cli("orders", "import", str(bad), config=cfg)
    assert out.returncode == 1 and "\\u001b[2Jevil" in out.stderr and "\x1b" not in out.stderr
