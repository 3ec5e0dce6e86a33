"""What a hostile broker or fake kiosk can send kioskctl: property tests at each parser.

Every boundary where kioskctl reads broker input (command results, logs
pages, live events, retained orders and statuses, the kiosk's orders
answer) and its own state file is fed random and mutated input mixed with
valid input. The promise (docs/threat-model.md, "kioskctl"): the valid
ones are all taken as they are, each bad one is refused alone, nothing
raises, and what reaches the terminal holds no control characters.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.ctl.chain import ChainWatch
from hub.ctl.commands import ResultReader
from hub.ctl.holders import parse_orders_answer, parse_retained
from hub.ctl.mqtt import Message
from hub.ctl.state import CommandLog, Sent
from hub.ctl.unlock import event_outcome
from hub.ctl.watch import LogsSession, parse_statuses
from hub.ctl.words import MAX_LINE, Describer, Times
from protocol import topics
from protocol.events import EVENT_TYPES
from protocol.keys import generate_private_key, sign_document
from protocol.orders import STATUSES
from protocol.otp import new_secret
from tests.support.ctl import make_chain

SITE = "shop-1"
CMD_ID = "unlock-1778642529-9f0c2a4d1e7b"
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_value = st.recursive(
    leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(text, kids, max_size=4),
    max_leaves=15,
)
json_object = st.dictionaries(text, json_value, max_size=6)
NASTY = [
    b"",
    b"not json",
    b"\xff\xfe\x00",
    b'{"ok": NaN}',
    b'{"ok": 1e999}',
    b'{"n": ' + b"9" * 5000 + b"}",
    b'{"x": "\\ud800"}',
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 200 + b"1" + b"}" * 200,
    b"[1, 2]",
    b'"a string"',
    b"x" * (3 * 1024 * 1024),
]


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """Truncations and byte flips of a valid payload."""
    return st.one_of(
        st.integers(0, len(valid)).map(lambda n: valid[:n]),
        st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)).map(
            lambda t: valid[: t[0]] + bytes([t[1]]) + valid[t[0] + 1 :]
        ),
    )


def payloads(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from(NASTY),
        st.binary(max_size=200),
        json_value.map(lambda v: json.dumps(v).encode()),
        json_object.map(lambda v: json.dumps({**v, "cmd_id": CMD_ID}).encode()),
        mutated(valid),
    )


def printable_line(line: str) -> bool:
    return not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in line)


# -- command results ------------------------------------------------------------------

VALID_RESULT = {"cmd_id": CMD_ID, "ok": True, "result": {"cmd": "unlock", "state": "done"}}
VALID_BYTES = json.dumps(VALID_RESULT).encode()


@FAST
@given(
    bad=st.lists(payloads(VALID_BYTES), max_size=8),
    where=st.integers(0, 8),
    retain=st.lists(st.booleans(), max_size=8),
)
def test_results_only_the_real_one_is_taken(
    bad: list[bytes], where: int, retain: list[bool]
) -> None:
    reader = ResultReader(SITE, CMD_ID)
    msgs = [Message(reader.topic, p, i < len(retain) and retain[i]) for i, p in enumerate(bad)]
    msgs.insert(min(where, len(msgs)), Message(reader.topic, VALID_BYTES, False))
    msgs.append(Message(topics.cmd_result(SITE, "other"), VALID_BYTES, False))  # wrong topic
    taken = []
    for msg in msgs:
        doc = reader.read(msg)
        if doc is not None:
            assert doc["cmd_id"] == CMD_ID and isinstance(doc["ok"], bool)
            assert not msg.retain and msg.topic == reader.topic
            taken.append(doc)
    assert VALID_RESULT in taken


# -- events in words ------------------------------------------------------------------


@FAST
@given(
    kind=st.sampled_from(sorted(EVENT_TYPES)) | text,
    detail=json_object | json_value,
    extra=json_object,
)
def test_any_event_becomes_one_safe_line(kind: str, detail: Any, extra: dict[str, Any]) -> None:
    ev = {**extra, "type": kind, "detail": detail}
    for d in (Describer(), Describer(times=Times(utc=True), key_names={"0" * 16: "\x1bname"})):
        line = d.event(ev)
        assert isinstance(line, str) and printable_line(line) and len(line) <= MAX_LINE
        assert printable_line(d.log(ev))


@FAST
@given(ev=json_object, cmd_id=st.sampled_from([CMD_ID, "other"]))
def test_event_outcomes_never_misattribute(ev: dict[str, Any], cmd_id: str) -> None:
    ev = {**ev, "detail": ev.get("detail", {"cmd_id": cmd_id, "by": "command"})}
    found = event_outcome(ev, CMD_ID, Times())
    if found is not None:
        assert ev["detail"]["cmd_id"] == CMD_ID
        assert found[0] in ("done", "accepted", "refused", "failed", "cancelled")


# -- the chain and the logs answer -------------------------------------------------------

CHAIN = make_chain(SITE, [("door_opened", None, {}), ("door_closed", None, {})] * 3)


@FAST
@given(garbage=st.lists(json_object | json_value, max_size=6), where=st.lists(st.integers(0, 6)))
def test_chain_watch_takes_every_real_event_among_garbage(
    garbage: list[Any], where: list[int]
) -> None:
    watch = ChainWatch(SITE, 0)
    stream: list[Any] = list(CHAIN)
    for item, at in zip(garbage, where, strict=False):
        stream.insert(at, item)
    shown = [ev for ev in stream if isinstance(ev, dict) and watch.feed(ev)]
    assert shown == CHAIN
    assert bool(watch.problems) == any(isinstance(x, dict) and x not in CHAIN for x in stream)


@FAST
@given(field=st.sampled_from(["seq", "prev_hash", "detail", "type", "ts"]), value=json_value)
def test_chain_watch_flags_a_changed_event(field: str, value: Any) -> None:
    changed = [dict(e) for e in CHAIN]
    if changed[2].get(field) == value:
        return
    changed[2][field] = value
    watch = ChainWatch(SITE, 0)
    for ev in changed:
        watch.feed(ev)
    assert watch.problems


@FAST
@given(pages=st.lists(json_object, max_size=5), events=st.lists(json_value, max_size=5))
def test_logs_pages_of_any_shape_are_survived(
    pages: list[dict[str, Any]], events: list[Any]
) -> None:
    session = LogsSession(SITE, 0, show=False)
    session.take_page({"events": CHAIN[:3], "logs": [{"seq": 1, "message": "\x1b[31m"}]})
    for page in pages:
        session.take_page({**page, "events": events, "logs": events})
    session.take_page({"events": CHAIN[3:]})
    assert session.events == CHAIN


# -- retained documents -----------------------------------------------------------------------

HUB = generate_private_key()


def order(oid: str, no: str) -> bytes:
    doc = {
        "v": 1,
        "site": SITE,
        "order_id": oid,
        "version": 1,
        "issued_at": "2026-05-12T21:04:05Z",
        "status": "ready",
        "pickup_no": no,
        "otp": {"secret": new_secret()},
    }
    return json.dumps(sign_document(doc, HUB)).encode()


GOOD_ORDERS = {f"HM-{i}": order(f"HM-{i}", f"{i:03d}") for i in range(3)}


@FAST
@given(
    bad=st.lists(
        st.tuples(
            st.sampled_from(["X-1", "HM-0", "bad id", "", "a/b", "HM-9"]),
            payloads(GOOD_ORDERS["HM-1"]),
        ),
        max_size=6,
    ),
    other_site=st.booleans(),
)
def test_retained_orders_each_judged_alone(bad: list[tuple[str, bytes]], other_site: bool) -> None:
    found = {
        topics.order(SITE, oid): Message(topics.order(SITE, oid), p, True)
        for oid, p in GOOD_ORDERS.items()
    }
    hostile: dict[str, Message] = {}
    for oid, payload in bad:
        site = "other" if other_site else SITE
        topic = f"pickup/v1/{site}/orders/{oid}"
        if topic not in found:
            hostile[topic] = Message(topic, payload, True)
    retained = parse_retained(SITE, {**found, **hostile}, 3)
    for oid, raw in GOOD_ORDERS.items():
        assert retained.docs[oid] == json.loads(raw)
    assert set(retained.docs) - set(GOOD_ORDERS) <= {t.rsplit("/", 1)[1] for t in hostile}
    for why in retained.invalid.values():
        assert printable_line(why)


@FAST
@given(bad=st.lists(st.tuples(text, payloads(b'{"online": true}')), max_size=6))
def test_retained_statuses_never_break_status(bad: list[tuple[str, bytes]]) -> None:
    found = {f"pickup/v1/{s}/status": Message(f"pickup/v1/{s}/status", p, True) for s, p in bad}
    found[topics.status(SITE)] = Message(topics.status(SITE), b'{"online": true}', True)
    rows = parse_statuses(found)
    assert rows[SITE] == {"online": True}
    assert all(isinstance(v, dict) and topics.valid_site(k) for k, v in rows.items())


@FAST
@given(
    result=json_object
    | st.fixed_dictionaries({"result": st.fixed_dictionaries({"orders": json_object})})
)
def test_orders_answer_only_says_what_it_can(result: dict[str, Any]) -> None:
    try:
        said = parse_orders_answer(result, ["HM-1", "HM-2"])
    except Exception as exc:  # only the one documented refusal
        assert type(exc).__name__ == "NoWord"
        return
    assert set(said) <= {"HM-1", "HM-2"}
    for entry in said.values():
        assert entry is None or entry["status"] in STATUSES


# -- kioskctl's own state file ------------------------------------------------------------------


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


@FAST
@given(
    content=st.binary(max_size=300)
    | json_value.map(lambda v: json.dumps({"v": 1, "commands": [v, v]}).encode())
)
def test_a_damaged_state_file_is_survived(content: bytes, state_dir: Path) -> None:
    log = CommandLog(state_dir)
    (state_dir / "commands.json").write_bytes(content)
    assert all(isinstance(e, Sent) for e in log._read())
    good = Sent(CMD_ID, SITE, "unlock", 1.0e9 * 1.8, 1.0e9 * 1.8 + 60, "x")
    assert log.add(good, good.issued_at)
    assert log.get(CMD_ID) == good
