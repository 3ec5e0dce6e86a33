"""Property tests at the hub's two boundaries: the event ingest and the API bodies.

Random and mutated inputs mixed with valid ones: every valid one passes,
each bad one fails alone with a reason, nothing crashes.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from hub.archive import Incoming
from hub.web import create_app
from protocol.canonical import dumps
from tests.support.hub import FakeClock, archive, chain, context

SITE = "shop-a"
KEYS = [
    "v",
    "site",
    "seq",
    "event_id",
    "ts",
    "clock",
    "type",
    "order_id",
    "detail",
    "prev_hash",
    "hash",
]
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@st.composite
def mutated(draw: st.DrawFn, valid: list[dict[str, Any]]) -> bytes:
    kind = draw(
        st.sampled_from(
            ["bytes", "json", "mutate", "drop", "other_site", "dup_key", "respaced", "escaped"]
        )
    )
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(st.dictionaries(st.text(max_size=8), ODD, max_size=6))).encode()
    ev = dict(draw(st.sampled_from(valid)))
    if kind == "dup_key":  # the same event, a key named twice: read two ways by two parsers
        key = draw(st.sampled_from(KEYS))
        extra = dumps({key: draw(st.one_of(ODD, st.just(ev[key])))})
        return extra[:-1] + b"," + dumps(ev)[1:]
    if kind == "respaced":  # the same event (the same hash), other bytes
        return json.dumps(ev, separators=(", ", ": "), ensure_ascii=False).encode()
    if kind == "escaped":
        return (
            json.dumps(ev, separators=(",", ":"), ensure_ascii=True)
            .replace("t", "\\u0074", 1)
            .encode()
        )
    if kind == "other_site":
        return dumps({**chain("shop-b", 1)[0], "seq": ev["seq"]})
    key = draw(st.sampled_from(KEYS))
    if kind == "drop":
        del ev[key]
    else:
        value = draw(ODD.filter(lambda v, k=key, e=ev: v != e.get(k)))
        ev[key] = value
    return dumps(ev)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.integers(min_value=1, max_value=40))
def test_ingest_every_valid_archived_each_bad_rejected_alone(data: st.DataObject, n: int) -> None:
    valid = chain(SITE, n)
    bad = data.draw(st.lists(mutated(valid), max_size=40))
    items = [Incoming(SITE, dumps(e)) for e in valid] + [Incoming(SITE, b) for b in bad]
    order = data.draw(st.permutations(range(len(items))))
    with tempfile.TemporaryDirectory() as tmp:
        a = archive(Path(tmp))
        verified = rejected = duplicates = 0
        i = 0
        while i < len(order):
            size = data.draw(st.integers(min_value=1, max_value=15))
            rep = a.ingest([items[j] for j in order[i : i + size]], 0.0)
            verified += len(rep.verified)
            rejected += sum(rep.rejected.values())
            duplicates += rep.duplicates
            i += size
        assert verified == n
        assert rejected + duplicates == len(bad)  # each bad one, and only those
        assert list(a.events(SITE)) == [dumps(e) for e in valid]
        assert a.verify(SITE).ok and a.count("shop-b") == 0
        a.db.close()


ORDER = {"order_id": "P-1", "status": "ready", "slot": "B3", "items": [], "customer": None}
BODY_VALUES = st.one_of(
    ODD,
    st.text(max_size=70),
    st.lists(st.dictionaries(st.sampled_from(["name", "qty", "unit"]), ODD), max_size=3),
)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bool, Any]:
    """(known good?, body): valid orders, or valid ones with one field changed."""
    n = draw(st.integers(min_value=0, max_value=10**6))
    good = {**ORDER, "order_id": f"P-{n}", "slot": draw(st.sampled_from([None, "A1", "长的货架"]))}
    kind = draw(st.sampled_from(["good", "field", "extra", "raw"]))
    if kind == "good":
        return True, good
    if kind == "raw":
        return False, draw(st.one_of(ODD, st.lists(ODD, max_size=3)))
    if kind == "extra":
        return False, {
            **good,
            draw(
                st.text(min_size=1, max_size=8).filter(
                    lambda k: k not in good and k not in ("pickup_no", "expires_at", "backup_code")
                )
            ): 1,
        }
    key = draw(st.sampled_from(list(good)))
    return None, {**good, key: draw(BODY_VALUES)}  # may or may not still be valid


def test_api_bodies_never_crash_and_store_nothing_partial() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ctx = context(Path(tmp), clock=FakeClock())
        token = ctx.tokens.add("prop", ctx.clock())
        auth = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(ctx)) as client:

            @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
            @given(bodies())
            def check(case: tuple[bool | None, Any]) -> None:
                good, body = case
                before = len(ctx.orders.search(SITE, ctx.clock(), limit=100000))
                r = client.post(
                    f"/api/v1/sites/{SITE}/orders",
                    content=json.dumps(body),
                    headers={**auth, "Content-Type": "application/json"},
                )
                after = len(ctx.orders.search(SITE, ctx.clock(), limit=100000))
                assert r.status_code in (201, 400, 409, 413, 422), r.text
                if r.status_code == 201:
                    assert good is not False and after == before + 1
                    assert {"order_id", "pickup_no", "status", "customer_url"} <= set(r.json())
                else:
                    assert good is not True or r.status_code == 409  # 409: order_id reused
                    assert after == before  # nothing partial
                    assert isinstance(r.json()["error"], str) and "field" in r.json()

            check()
        ctx.runner.close()
