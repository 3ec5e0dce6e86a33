"""The staff topic attacked from outside (`staff/+`, docs/protocol.md, "Staff and
courier codes"): a real Mosquitto, the real sync agent, stock paho clients.

Random and mutated staff documents mixed with valid ones, each judged alone;
a signed time far ahead that must move no clock; and a keyless publisher who
forgets a revoked code and replays its older version.
"""

from __future__ import annotations

import json
import random
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.clock import FakeClock
from kiosk.store import Store
from protocol.keys import sign_document
from protocol.otp import new_secret
from protocol.times import format_time
from tests.support.broker import Broker
from tests.support.polling import wait_for
from tests.support.sync import (
    HUB,
    OWNER,
    SITE,
    STRANGER,
    T0,
    AgentThread,
    Watcher,
    make_config,
    online_agent,
)
from tests.support.sync import topic as site_topic

pytestmark = pytest.mark.broker

SECRET = new_secret()
_n = {"i": 0}


def staff(staff_id: str, version: int = 1, *, key: Any = OWNER, **kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "v": 1,
        "site": SITE,
        "staff_id": staff_id,
        "version": version,
        "issued_at": format_time(T0 - 60),
        "staff_no": "1" + f"{_n['i'] % 1000:03d}",
        "name": "Lin",
        "role": "courier",
        "schedule": [{"days": [1, 2, 3, 4, 5, 6], "from": "05:00", "until": "07:00"}],
        "otp": {"secret": SECRET, "digits": 8, "period": 30},
        **kw,
    }
    return sign_document(doc, key) if key is not None else doc


def raw(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def events(store: Store, type_: str) -> list[dict[str, Any]]:
    return [e.as_dict() for e in store.events_since(0) if e.type == type_]


def judged(store: Store) -> int:
    """Rejections recorded one by one plus those counted in summaries."""
    return len(events(store, "message_rejected")) + sum(
        int(e["detail"]["total"]) for e in events(store, "rejections_summarized")
    )


HOSTILE: dict[str, Any] = {
    "version": [0, -1, 2**53 + 1, 1.0, True, "2"],
    "schedule": [
        [{"days": [0], "from": "05:00", "until": "07:00"}],
        [{"days": [8], "from": "05:00", "until": "07:00"}],
        [{"days": [1] * 8, "from": "05:00", "until": "07:00"}],
        [{"days": [1], "from": "25:00", "until": "07:00"}],
        [{"days": [1], "from": "5:00", "until": "07:00"}],
        [{"days": [1], "from": "05:00", "until": "24:01"}],
        [{"days": [1], "from": "05:00", "until": "07:00"}] * 15,
        {"days": [1]},
        "Mon-Sat 05:00-07:00",
    ],
    "name": ["", "x" * 65, "a\u0000b", "\u0085", "x" * 10_000, 42, None],
    "issued_at": ["9999-12-31T23:59:59Z", "2019-12-31T23:59:59Z", "2026-02-30T00:00:00Z", 0],
    "valid_until": ["tomorrow", "2101-01-01T00:00:00Z", "2026-06-01", 1780000000],
    "staff_no": ["042", "00420", "٠٠٤٢", "12a4", 1042],
    "role": ["owner", "", ["staff"]],
    "revoked": ["false", 0, None],
    "otp": [{"secret": "AAAA"}, {"secret": SECRET, "digits": 6}, {"secret": SECRET, "period": 1}],
    "site": ["other-site", None],
    "v": [2, 1.0, "1"],
}
KINDS = ["valid", "hub", "mutated", "unsigned", "stranger", "tampered", "random", "surrogate",
         "deep", "bigint", "array", "mismatch", "forget_unknown", "far_ahead"]  # fmt: skip


@pytest.fixture(scope="module")
def running_agent(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with online_agent(tmp_path_factory.mktemp("staff")) as running:
        yield running


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=st.lists(st.sampled_from(KINDS), min_size=1, max_size=15), seed=st.integers(0, 2**32))
def test_staff_documents_random_mutated_and_valid_each_judged_alone(
    running_agent: tuple[Store, Watcher, FakeClock], plan: list[str], seed: int
) -> None:
    """Every valid one stored, every bad one rejected alone with a reason, a signed
    ``issued_at`` far ahead (a staff document is no clock source) moves no floor
    and raises no ``clock_conflict``, and the agent keeps going."""
    store, hub, clock = running_agent
    rng = random.Random(seed)
    valid: list[str] = []
    bad = 0
    before = judged(store)
    for kind in plan:
        _n["i"] += 1
        sid = f"S-{_n['i']}"
        t = site_topic("staff", sid)
        if kind in ("valid", "hub", "far_ahead"):
            valid.append(sid)
            issued = "2099-12-31T23:59:59Z" if kind == "far_ahead" else format_time(T0 - 60)
            payload = raw(staff(sid, key=HUB if kind == "hub" else OWNER, issued_at=issued))
        elif kind == "forget_unknown":
            payload = b""  # forgetting what the kiosk never held costs nothing
        else:
            bad += 1
            if kind == "mutated":
                field = rng.choice(sorted(HOSTILE))
                payload = raw(staff(sid, **{field: rng.choice(HOSTILE[field])}))
            elif kind == "unsigned":
                payload = raw(staff(sid, key=None))
            elif kind == "stranger":
                payload = raw(staff(sid, key=STRANGER))
            elif kind == "tampered":  # changed after signing
                payload = raw(staff(sid)).replace(b'"Lin"', b'"Lim"')
            elif kind == "random":
                payload = rng.randbytes(rng.randint(1, 300))
            elif kind == "surrogate":
                payload = raw(staff(sid)).replace(b'"Lin"', b'"\\udc00"')
            elif kind == "deep":
                payload = b'{"a":' * 40 + b"1" + b"}" * 40
            elif kind == "bigint":
                payload = raw(staff(sid)).replace(b'"version": 1', b'"version": ' + b"9" * 5000)
            elif kind == "array":
                payload = b"[" + raw(staff(sid)) + b"]"
            else:  # mismatch: a valid document on another id's topic
                payload = raw(staff(sid + "-other"))
        hub.client.publish(t, payload, qos=1, retain=rng.random() < 0.3)
    for sid in valid:
        wait_for(partial(store.get_staff, sid), what=sid)
    clock.advance(61)  # the held-back rejections are summarized
    wait_for(lambda: judged(store) - before >= bad, what=f"{bad} rejections")
    assert judged(store) - before == bad
    assert store.doc_floor() == 0.0 and not events(store, "clock_conflict")


def test_a_keyless_forget_and_replay_never_undoes_a_revocation(
    broker: Broker, tmp_path: Path
) -> None:
    """A stock client with publish rights and no key clears the retained revoked
    code and republishes the older version it had kept: still revoked-or-gone,
    never live again; the owner's next version is taken."""
    cfg = make_config(tmp_path, broker.url)
    store = Store(cfg.store.path)
    owner = Watcher(broker.port).start()
    vandal = Watcher(broker.port).start()
    t = site_topic("staff", "S-gone")
    v1 = raw(staff("S-gone"))
    with AgentThread(cfg, FakeClock(wall=T0)):
        wait_for(store.mqtt_online, what="online")
        owner.publish(t, v1, retain=True)
        owner.publish(t, raw(staff("S-gone", 2, revoked=True)), retain=True)
        wait_for(lambda: (s := store.get_staff("S-gone")) and s.revoked, what="revoked")
        vandal.publish(t, b"", retain=True)
        wait_for(lambda: store.get_staff("S-gone") is None, what="forgotten")
        vandal.publish(t, v1, retain=True)
        owner.publish(site_topic("staff", "S-next"), raw(staff("S-next")), retain=True)
        wait_for(lambda: store.get_staff("S-next"), what="a later document")
        assert store.get_staff("S-gone") is None  # v1 was ignored: its version was forgotten
        owner.publish(t, raw(staff("S-gone", 3)), retain=True)
        wait_for(lambda: (s := store.get_staff("S-gone")) and s.version == 3, what="v3")
    owner.stop()
    vandal.stop()
