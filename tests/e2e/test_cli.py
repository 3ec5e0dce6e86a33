"""The command line as scripts use it (docs/protocol.md, "Command line")."""

import json
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.procs import events, kiosk, signed_orders, write_config

pytestmark = pytest.mark.slow


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Ed25519PrivateKey]:
    hub = Ed25519PrivateKey.generate()
    return write_config(tmp_path, hub), hub


def test_config_check_exit_codes(setup: tuple[Path, Ed25519PrivateKey], tmp_path: Path) -> None:
    cfg, _ = setup
    assert kiosk("config", "check", config=cfg).returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[lock]\nrelese_s = 5\n")
    out = kiosk("config", "check", config=bad)
    assert out.returncode != 0
    assert str(bad) in out.stderr and "lock.relese_s" in out.stderr and "release_s" in out.stderr
    assert "Traceback" not in out.stderr


def test_import_list_show_cancel_and_events(
    setup: tuple[Path, Ed25519PrivateKey], tmp_path: Path
) -> None:
    cfg, hub = setup
    docs = signed_orders(hub, 3)
    lines = tmp_path / "orders.jsonl"
    lines.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in docs))
    out = kiosk("orders", "import", str(lines), config=cfg)
    assert out.returncode == 0 and "3 stored" in out.stdout
    # an array, and stdin, work too; re-import is ignored as a duplicate version
    out = kiosk("orders", "import", "-", config=cfg, stdin=json.dumps(docs))
    assert out.returncode == 0 and "3 ignored" in out.stdout
    listed = json.loads(kiosk("orders", "list", "--json", config=cfg).stdout)
    assert [o["order_id"] for o in listed] == ["E-0", "E-1", "E-2"]
    text = kiosk("orders", "list", "--json", config=cfg).stdout
    for d in docs:
        assert d["otp"]["secret"] not in text
    assert kiosk("orders", "cancel", "E-1", config=cfg).returncode == 0
    shown = json.loads(kiosk("orders", "show", "E-1", config=cfg).stdout)
    assert shown["status"] == "cancelled"
    assert kiosk("orders", "show", "NOPE", config=cfg).returncode == 1
    evs = events(cfg)
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    assert evs[-1]["type"] == "order_cancelled"
    # --json prints exactly what is published: the stored bodies
    db = sqlite3.connect(cfg.parent / "kiosk.db")
    bodies = [r[0] for r in db.execute("SELECT body FROM events ORDER BY seq")]
    assert kiosk("events", "--json", config=cfg).stdout.splitlines() == bodies
    since = kiosk("events", "--json", "--since", "3", config=cfg).stdout.splitlines()
    assert [json.loads(x)["seq"] for x in since] == list(range(4, len(bodies) + 1))


def test_rejected_import_exits_nonzero_and_records_why(
    setup: tuple[Path, Ed25519PrivateKey], tmp_path: Path
) -> None:
    cfg, hub = setup
    doc = signed_orders(hub, 1)[0]
    doc["slot"] = "Z9"  # tampered after signing
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(doc))
    out = kiosk("orders", "import", str(f), config=cfg)
    assert out.returncode == 1 and "signature" in out.stderr
    assert json.loads(kiosk("orders", "list", "--json", config=cfg).stdout) == []
    rejected = [e for e in events(cfg) if e["type"] == "message_rejected"]
    assert rejected and doc["otp"]["secret"] not in json.dumps(rejected)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    out = kiosk("orders", "import", str(garbage), config=cfg)
    assert out.returncode == 1 and "not JSON" in out.stderr and "Traceback" not in out.stderr


def test_verify_log_names_the_first_bad_seq(
    setup: tuple[Path, Ed25519PrivateKey], tmp_path: Path
) -> None:
    cfg, hub = setup
    f = tmp_path / "o.json"
    f.write_text(json.dumps(signed_orders(hub, 4)))
    kiosk("orders", "import", str(f), config=cfg)
    assert kiosk("verify-log", config=cfg).returncode == 0
    db = sqlite3.connect(cfg.parent / "kiosk.db")
    db.execute("DELETE FROM events WHERE seq = 3")
    db.commit()
    out = kiosk("verify-log", config=cfg)
    assert out.returncode != 0 and "seq 3" in out.stderr


def test_security_json(setup: tuple[Path, Ed25519PrivateKey]) -> None:
    cfg, _ = setup
    out = kiosk("security", "--orders", "500", "--json", config=cfg)
    report = json.loads(out.stdout)
    assert 0 < report["p_night"] <= 1e-4
    more = json.loads(kiosk("security", "--orders", "1", "--json", config=cfg).stdout)
    assert more["p_night"] < report["p_night"]


def test_bad_arguments_are_usage_errors(setup: tuple[Path, Ed25519PrivateKey]) -> None:
    cfg, _ = setup
    out = kiosk("events", "--since", "abc", config=cfg)
    assert out.returncode == 2 and "'abc' is not a whole number >= 0" in out.stderr
    out = kiosk("security", "--orders", "-1", config=cfg)
    assert out.returncode == 2 and "'-1' is not a whole number >= 0" in out.stderr
    out = kiosk("screenshots", str(cfg / "shots"), config=cfg)  # under a file
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("kiosk: cannot write screenshots to ")
    out = kiosk("frobnicate", config=cfg)
    assert out.returncode == 2


def test_config_flag_works_after_the_subcommand(setup: tuple[Path, Ed25519PrivateKey]) -> None:
    cfg, _ = setup
    out = kiosk("config", "check", "--config", str(cfg))
    assert out.returncode == 0 and "ok" in out.stdout


def test_relock_works_with_a_broken_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[hardware]\nboard = "sim"\nrelay_pin = 5\nnonsense = 1\n')
    out = kiosk("relock", config=bad)
    assert out.returncode == 0 and "relay pin 5" in out.stderr


def test_backup_is_a_consistent_private_copy(
    setup: tuple[Path, Ed25519PrivateKey], tmp_path: Path
) -> None:
    cfg, hub = setup
    f = tmp_path / "o.json"
    f.write_text(json.dumps(signed_orders(hub, 2)))
    kiosk("orders", "import", str(f), config=cfg)
    dest = tmp_path / "backup.db"
    out = kiosk("backup", str(dest), config=cfg)
    assert out.returncode == 0, out.stderr
    assert dest.stat().st_mode & 0o777 == 0o600
    copy = sqlite3.connect(dest)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("SELECT count(*) FROM orders").fetchone()[0] == 2
    assert kiosk("backup", str(dest), config=cfg).returncode == 1  # never overwrites


def test_screenshots_renders_every_screen_in_both_languages(
    setup: tuple[Path, Ed25519PrivateKey], tmp_path: Path
) -> None:
    cfg, _ = setup
    out = kiosk("screenshots", str(tmp_path / "shots"), config=cfg)
    assert out.returncode == 0, out.stderr
    names = {p.name for p in (tmp_path / "shots").glob("*.png")}
    for lang in ("zh", "en"):
        assert f"{lang}-800x480-idle.png" in names
        assert f"{lang}-800x480-refused-not_paid.png" in names
    assert all((tmp_path / "shots" / n).stat().st_size > 1000 for n in names)


def test_orders_code_prints_the_short_and_the_full_code(tmp_path: Path) -> None:
    import re
    import time

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from protocol.otp import hotp

    hub = Ed25519PrivateKey.generate()
    cfg = write_config(tmp_path, hub)
    doc = signed_orders(hub, 1, digits=8)[0]
    (tmp_path / "o.json").write_text(json.dumps(doc))
    assert kiosk("orders", "import", str(tmp_path / "o.json"), config=cfg).returncode == 0
    out = kiosk("orders", "code", doc["order_id"], config=cfg)
    assert out.returncode == 0, out.stderr
    m = re.match(r"(\d{9})#  \(or all 8: (\d{11})#; valid \d+ s more\)", out.stdout)
    assert m, out.stdout
    step = int(time.time() // 30)
    fulls = {doc["pickup_no"] + hotp(doc["otp"]["secret"], s, 8) for s in (step - 1, step)}
    assert m.group(2) in fulls and m.group(1) == m.group(2)[:3] + m.group(2)[-6:]
