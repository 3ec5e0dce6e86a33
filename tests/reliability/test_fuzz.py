"""docs/design.md, rule 4 (never trust input) under hypothesis: keypad sequences and
door/exit events into the real DoorDaemon, and config files. MQTT payloads
are fuzzed by tests/sync/test_orders.py::test_fuzzed_payloads_store_nothing."""

from __future__ import annotations

import json
import sqlite3
import string
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pyotp
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kiosk import config as config_mod
from kiosk.audit import verify_store
from kiosk.errors import ConfigError
from kiosk.inputs import ExitPressed, KeyPressed
from tests.support.door import Rig

# ----- keypad and door ------------------------------------------------------------

ACTIONS = st.lists(
    st.one_of(
        st.sampled_from(list("0123456789*#")),
        st.sampled_from(["CODE", "BACKUP", "OPEN", "CLOSE", "EXIT", "WAIT", "LONGWAIT"]),
    ),
    max_size=80,
)


class Spy:
    """Checks, at each energization from off, that a door_unlocked is committed for it
    (read through a second connection, which sees committed rows only)."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.db = rig.w.path
        self.energizations = 0
        real = rig.board.lock.energize

        def energize(seconds: float) -> None:
            if not rig.board.lock.energized:
                self.energizations += 1
                con = sqlite3.connect(self.db)
                n = con.execute(
                    "SELECT count(*) FROM events WHERE type = 'door_unlocked'"
                ).fetchone()[0]
                con.close()
                assert n >= self.energizations, "relay energized before its door_unlocked"
            real(seconds)

        rig.board.lock.energize = energize  # type: ignore[method-assign]


@settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(actions=ACTIONS)
@example(actions=["CODE", "OPEN", "WAIT", "CLOSE", "EXIT", "LONGWAIT", "BACKUP", "CODE", "#"])
def test_keypad_and_door_sequences(actions: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(Path(tmp))
        try:
            _play(rig, actions)
        finally:
            rig.board.close()
            rig.w.store.close()


def _play(rig: Rig, actions: list[str]) -> None:
    doc = rig.w.add("F-1", "042", backup_code=True)
    spy = Spy(rig)
    typed_wrong: list[str] = []
    entry = ""
    for a in actions:
        keys = a
        if a == "CODE":
            keys = rig.code(doc) + "#"
        elif a == "BACKUP":
            keys = doc["pickup_no"] + pyotp.HOTP(doc["otp"]["secret"]).at(0) + "#"
        if a in ("OPEN", "CLOSE"):
            rig.board.set_door(a == "OPEN")
            rig.d.drain()
        elif a == "EXIT":
            rig.d.post(ExitPressed())
            rig.d.drain()
        elif a in ("WAIT", "LONGWAIT"):
            rig.advance(1.0 if a == "WAIT" else 65.0)
        else:
            for k in keys:
                rig.d.post(KeyPressed(k))
                rig.d.drain()
                if k == "#":
                    if entry and len(entry) >= 6:
                        typed_wrong.append(entry)
                    entry = ""
                elif k == "*":
                    entry = ""
                else:
                    entry += k
        # The relay is never on longer than a pulse plus the hardware cap.
        rig.board.lock.poll()
    rig.advance(rig.cfg.lock.release_s + 1)
    assert not rig.board.relay_active() or rig.d.machine.holding is True
    evs = rig.w.events()
    assert verify_store(rig.w.store) == len(evs)
    unlocked = [e for e in evs if e["type"] == "door_unlocked"]
    assert spy.energizations <= len(unlocked)
    assert {e["detail"]["by"] for e in unlocked} <= {"code", "exit"}
    # Typed digits never reach the trail (hashes left out: hex could hold any digits).
    plain = json.dumps(
        [{k: v for k, v in e.items() if k not in ("hash", "prev_hash")} for e in evs]
    )
    good = {rig.code(doc)[3:], doc["pickup_no"] + pyotp.HOTP(doc["otp"]["secret"]).at(0)}
    for wrong in typed_wrong:
        value = wrong[3:]
        if len(value) >= 6 and value not in good and wrong not in good:
            assert value not in plain


# ----- config files ------------------------------------------------------------------

EXAMPLE = (Path(config_mod.__file__).parent / "example.toml").read_text("utf-8")
FIELDS = {
    name: [f.name for f in __import__("dataclasses").fields(cls)]
    for name, cls in config_mod._SECTIONS.items()
}
TOML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _load_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kiosk.toml"
        path.write_text(text, "utf-8", errors="surrogatepass")
        try:
            config_mod.load(path)
        except ConfigError as err:
            assert str(path) in str(err)  # every message names the file


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=st.text(alphabet=string.printable + "é中[]=\"'", max_size=300))
def test_random_toml_text_only_raises_config_error(text: str) -> None:
    _load_text(text)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=st.data())
def test_mutated_example_only_raises_config_error(data: st.DataObject) -> None:
    lines = EXAMPLE.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["drop", "dup", "garble", "uncomment"]))
        if op == "drop":
            lines.pop(i)
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "uncomment":
            lines[i] = lines[i].lstrip("# ")
        else:
            pos = data.draw(st.integers(0, max(0, len(lines[i]))))
            lines[i] = lines[i][:pos] + data.draw(st.text(max_size=5)) + lines[i][pos:]
        if not lines:
            break
    _load_text("\n".join(lines))


@settings(max_examples=500, deadline=None, derandomize=True)
@given(data=st.data())
def test_random_values_for_real_keys_only_raise_config_error(data: st.DataObject) -> None:
    mapping: dict[str, Any] = {}
    for _ in range(data.draw(st.integers(1, 5))):
        section = data.draw(st.sampled_from(sorted(FIELDS)))
        key = data.draw(st.sampled_from(FIELDS[section]))
        mapping.setdefault(section, {})[key] = data.draw(TOML_VALUES)
    try:
        cfg = config_mod.from_mapping(mapping, "fuzz.toml")
    except ConfigError as err:
        assert str(err).startswith("fuzz.toml")
        return
    assert cfg.source == "fuzz.toml"  # accepted values are within their checks
    config_mod.describe(cfg)


def test_deeply_nested_toml_is_a_config_error() -> None:
    _load_text("a = " + "[" * 5000)


def test_tomllib_itself_raises_recursion_error() -> None:
    """The cause the test above guards against, so the guard is checked against the library."""
    with pytest.raises(RecursionError):
        tomllib.loads("a = " + "[" * 5000)
