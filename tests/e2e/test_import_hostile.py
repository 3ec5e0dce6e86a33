"""`kiosk orders import` against hostile files (issue 11 items 3 and 4): each
document judged alone, one clear line for each bad one, never a traceback,
whatever the file is."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.procs import events, kiosk, signed_orders, write_config

pytestmark = pytest.mark.slow


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Ed25519PrivateKey]:
    hub = Ed25519PrivateKey.generate()
    return write_config(tmp_path, hub), hub


def no_traceback(out: Any) -> None:
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, out.stderr[-3000:]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe not utf-8", "is not UTF-8 text"),
        (b"\x00\x01\x02binary", "is a binary file"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nest deeper"),
    ],
    ids=["invalid-utf8", "binary", "deep"],
)
def test_files_that_are_not_documents(
    setup: tuple[Path, Ed25519PrivateKey], tmp_path: Path, content: bytes, message: str
) -> None:
    cfg, _ = setup
    f = tmp_path / "hostile"
    f.write_bytes(content)
    out = kiosk("orders", "import", str(f), config=cfg)
    no_traceback(out)
    assert out.returncode == 1 and message in out.stderr


def test_a_folder_a_missing_file_and_an_endless_one(
    setup: tuple[Path, Ed25519PrivateKey], tmp_path: Path
) -> None:
    cfg, _ = setup
    for target, message in (
        (str(tmp_path), "is a folder"),
        (str(tmp_path / "nope.json"), "No such file"),
        ("/dev/zero", "is larger than 64 MiB"),
    ):
        out = kiosk("orders", "import", target, config=cfg, timeout=120)
        no_traceback(out)
        assert out.returncode == 1 and message in out.stderr, out.stderr


def test_values_the_door_never_imagined_are_rejected_alone(
    setup: tuple[Path, Ed25519PrivateKey], tmp_path: Path
) -> None:
    cfg, hub = setup
    good = signed_orders(hub, 2)
    big = json.dumps(good[0]).replace('"qty": 1', '"qty": ' + "9" * 5000)
    lines = [
        json.dumps(good[0]),
        big,
        '{"v": 1, "order_id": "S-1", "name": "\\ud800"}',
        '{"v": 1.0, "order_id": "V-1"}',
        json.dumps(good[1]),
        "[" * 100,
    ]
    f = tmp_path / "mixed.jsonl"
    f.write_text("\n".join(lines))
    out = kiosk("orders", "import", str(f), config=cfg)
    no_traceback(out)
    assert out.returncode == 1
    assert out.stdout.strip() == "2 stored, 0 ignored, 4 rejected", out.stdout
    listed = json.loads(kiosk("orders", "list", "--json", config=cfg).stdout)
    assert {o["order_id"] for o in listed} == {good[0]["order_id"], good[1]["order_id"]}
    assert "bad_number" in json.dumps(events(cfg)) and "bad_text" in json.dumps(events(cfg))


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=st.lists(st.sampled_from(["valid", "mutated", "random", "json"]), min_size=1, max_size=12),
    seed=st.integers(0, 2**32),
)
def test_random_and_mutated_documents_mixed_with_valid_ones(
    tmp_path_factory: pytest.TempPathFactory, plan: list[str], seed: int
) -> None:
    tmp = tmp_path_factory.mktemp("imp")
    hub = Ed25519PrivateKey.generate()
    cfg = write_config(tmp, hub)
    rng = random.Random(seed)
    docs = signed_orders(hub, len(plan))
    lines, valid, bad = [], set(), 0
    for what, doc in zip(plan, docs, strict=True):
        if what == "valid":
            lines.append(json.dumps(doc, ensure_ascii=False))
            valid.add(doc["order_id"])
            continue
        bad += 1
        if what == "mutated":
            key = rng.choice(sorted(doc))
            bent = {**doc, key: rng.choice([None, -1, 10**30, "", [], {"x": 1}, "\u0007"])}
            lines.append(json.dumps(bent))
        elif what == "random":
            lines.append("".join(rng.choice('{}[]":,0123456789abc\\u') for _ in range(40)))
        else:
            lines.append(json.dumps(rng.choice([[], 1, "s", None, {"v": 1}])))
    f = tmp / "orders.jsonl"
    f.write_text("\n".join(lines))
    out = kiosk("orders", "import", str(f), config=cfg)
    no_traceback(out)
    assert out.returncode == (1 if bad else 0)
    assert f"{len(valid)} stored" in out.stdout and f"{bad} rejected" in out.stdout
    listed = json.loads(kiosk("orders", "list", "--json", config=cfg).stdout)
    assert {o["order_id"] for o in listed} == valid
    # each bad one is named on its own line
    assert len([x for x in out.stderr.splitlines() if ": rejected: " in x]) == bad
