"""The JSON API through a real ASGI client: orders, tokens, errors, alerts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from hub.web import create_app
from protocol.keys import Keyring, Role, public_key_text
from protocol.orders import validate_order
from tests.support.hub import FakeClock, context

ORDER = {
    "order_id": "HM-1",
    "status": "ready",
    "slot": "B3",
    "customer": {"name": "李少云", "phone_tail": "1234"},
    "items": [{"name": "红提", "qty": 1, "unit": "盒"}],
}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[TestClient, Any, dict[str, str]]]:
    clock = FakeClock()
    ctx = context(tmp_path, clock=clock)
    token = ctx.tokens.add("shop-backend", clock())
    with TestClient(create_app(ctx)) as client:
        yield client, ctx, {"Authorization": f"Bearer {token}"}
    ctx.runner.close()


def test_create_signs_allocates_and_links(env: tuple[TestClient, Any, dict[str, str]]) -> None:
    client, ctx, auth = env
    r = client.post("/api/v1/sites/shop-a/orders", json=ORDER, headers=auth)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["order_id"] == "HM-1" and body["status"] == "ready" and body["pickup_no"] == "001"
    assert body["customer_url"].startswith("http://127.0.0.1:8080/c/")
    assert len(body["customer_url"].rsplit("/", 1)[1]) >= 22  # >= 128 bits
    assert "otp" not in json.dumps(body) and "secret" not in json.dumps(body)
    doc = ctx.orders.secret_doc("shop-a", "HM-1")
    order = validate_order(doc, site="shop-a", width=3, order_id="HM-1")
    assert len(order.otp.secret) >= 32  # 160 bits of base32
    keys = ctx.extra["keys"]
    ring = Keyring(hub_keys=[public_key_text(keys.hub.public_key())])
    assert ring.verify(doc, [Role.HUB]).role is Role.HUB
    # the customer link answers, without the code
    link = client.get("/c/" + body["customer_url"].rsplit("/", 1)[1])
    assert link.status_code == 200 and link.json()["pickup_no"] == "001"
    assert client.get("/c/" + "A" * 32).status_code == 404


def test_pickup_numbers_unique_and_reused(env: tuple[TestClient, Any, dict[str, str]]) -> None:
    client, ctx, auth = env
    ctx.cfg = ctx.cfg  # width 3
    nos = []
    for i in range(5):
        r = client.post(
            "/api/v1/sites/shop-a/orders", json={**ORDER, "order_id": f"O-{i}"}, headers=auth
        )
        nos.append(r.json()["pickup_no"])
    assert len(set(nos)) == 5
    # an explicit clash is refused, naming the field
    r = client.post(
        "/api/v1/sites/shop-a/orders",
        json={**ORDER, "order_id": "X", "pickup_no": nos[0]},
        headers=auth,
    )
    assert r.status_code == 409 and r.json()["field"] == "pickup_no"
    # once collected, its number is free again
    assert client.post("/api/v1/sites/shop-a/orders/O-0/cancel", headers=auth).status_code == 200
    r = client.post(
        "/api/v1/sites/shop-a/orders",
        json={**ORDER, "order_id": "X", "pickup_no": nos[0]},
        headers=auth,
    )
    assert r.status_code == 201


def test_allocation_exhausted_then_reuses(tmp_path: Path) -> None:
    from tests.support.hub import write_config

    cfg = write_config(tmp_path, ("tiny",), site_extra="pickup_no_width = 1")
    ctx = context(tmp_path, cfg)
    now = ctx.clock()
    for i in range(9):
        ctx.orders.create("tiny", {**ORDER, "order_id": f"T{i}"}, now)
    with pytest.raises(Exception) as err:
        ctx.orders.create("tiny", {**ORDER, "order_id": "T9"}, now)
    assert getattr(err.value, "field", None) == "pickup_no"
    ctx.orders.learn("tiny", [{"type": "order_collected", "order_id": "T4"}], now)
    assert ctx.orders.create("tiny", {**ORDER, "order_id": "T9"}, now).body["pickup_no"] == "5"


def test_idempotency_key(env: tuple[TestClient, Any, dict[str, str]]) -> None:
    client, _ctx, auth = env
    h = {**auth, "Idempotency-Key": "req-1"}
    a = client.post("/api/v1/sites/shop-a/orders", json=ORDER, headers=h)
    b = client.post("/api/v1/sites/shop-a/orders", json=ORDER, headers=h)
    assert a.status_code == b.status_code == 201 and a.json() == b.json()
    c = client.post("/api/v1/sites/shop-a/orders", json={**ORDER, "slot": "C1"}, headers=h)
    assert c.status_code == 422 and c.json()["field"] == "Idempotency-Key"
    d = client.post("/api/v1/sites/shop-a/orders", json=ORDER, headers=auth)
    assert d.status_code == 409 and d.json()["field"] == "order_id"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({**ORDER, "colour": "red"}, 422, "colour"),
        ({**ORDER, "order_id": "bad id"}, 422, "order_id"),
        ({k: v for k, v in ORDER.items() if k != "status"}, 422, "status"),
        ({**ORDER, "status": "collected"}, 422, "status"),
        ({**ORDER, "slot": "x" * 17}, 422, "slot"),
        ({**ORDER, "customer": {"name": "n", "phone_tail": "12345"}}, 422, "customer"),
        ({**ORDER, "items": [{"name": "a", "qty": -1}]}, 422, "items"),
        ({**ORDER, "items": "many"}, 422, "items"),
        ({**ORDER, "pickup_no": "1"}, 422, "pickup_no"),
        ({**ORDER, "expires_at": "9999-01-01T00:00:00Z"}, 422, "expires_at"),
        ({**ORDER, "backup_code": "yes"}, 422, "backup_code"),
    ],
)
def test_bad_fields_named_nothing_stored(
    env: tuple[TestClient, Any, dict[str, str]], body: dict[str, Any], status: int, field: str
) -> None:
    client, _ctx, auth = env
    r = client.post("/api/v1/sites/shop-a/orders", json=body, headers=auth)
    assert r.status_code == status and r.json()["field"] == field, r.text
    assert r.json()["error"]
    assert client.get("/api/v1/sites/shop-a/orders", headers=auth).json() == {"orders": []}


def test_malformed_oversized_and_unauthorized(env: tuple[TestClient, Any, dict[str, str]]) -> None:
    client, ctx, auth = env
    url = "/api/v1/sites/shop-a/orders"
    r = client.post(url, content=b"{not json", headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["field"] == "body"
    r = client.post(url, content=b"[1,2]", headers=auth)
    assert r.status_code == 400 and r.json()["field"] == "body"
    big = json.dumps({**ORDER, "pad": "x" * 70000}).encode()
    r = client.post(url, content=big, headers=auth)
    assert r.status_code == 413 and r.json()["field"] == "body"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(100):
            yield b" " * 1000

    r = client.post(url, content=chunks(), headers=auth)
    assert r.status_code == 413
    r = client.post(url, json=ORDER, headers={"Authorization": "Bearer ph_wrong"})
    assert r.status_code == 401 and r.json()["field"] == "Authorization"
    assert client.post(url, json=ORDER).status_code == 401
    r = client.post(url, content=b"a=b", headers={**auth, "Content-Type": "text/plain"})
    assert r.status_code == 415
    assert client.post("/api/v1/sites/nowhere/orders", json=ORDER, headers=auth).status_code == 404
    # a revoked token stops working
    ctx.tokens.revoke("shop-backend", ctx.clock())
    assert client.get(url, headers=auth).status_code == 401
    assert client.get("/api/v1/nothing-here").json()["error"] == "no such resource"


def test_patch_cancel_forget_list(env: tuple[TestClient, Any, dict[str, str]]) -> None:
    client, ctx, auth = env
    base = "/api/v1/sites/shop-a/orders"
    client.post(base, json={**ORDER, "status": "paid", "slot": None}, headers=auth)
    client.post(base, json={**ORDER, "order_id": "HM-2"}, headers=auth)
    r = client.patch(f"{base}/HM-1", json={"status": "ready", "slot": "A2"}, headers=auth)
    assert r.status_code == 200 and r.json()["slot"] == "A2" and r.json()["version"] == 2
    doc = ctx.orders.secret_doc("shop-a", "HM-1")
    assert doc["version"] == 2 and doc["slot"] == "A2"
    r = client.patch(f"{base}/HM-1", json={"pickup_no": "999"}, headers=auth)
    assert r.status_code == 422 and r.json()["field"] == "pickup_no"
    r = client.patch(f"{base}/HM-1", json={"status": "lost"}, headers=auth)
    assert r.status_code == 422 and r.json()["field"] == "status"
    assert client.patch(f"{base}/NOPE", json={"slot": "A"}, headers=auth).status_code == 404
    assert client.post(f"{base}/HM-2/cancel", headers=auth).json()["status"] == "cancelled"
    r = client.patch(f"{base}/HM-2", json={"status": "ready"}, headers=auth)
    assert r.status_code == 409 and r.json()["field"] == "status"
    listed = client.get(base, params={"status": "cancelled"}, headers=auth).json()["orders"]
    assert [o["order_id"] for o in listed] == ["HM-2"]
    assert [
        o["order_id"]
        for o in client.get(base, params={"status": "active"}, headers=auth).json()["orders"]
    ] == ["HM-1"]
    assert client.get(base, params={"status": "bogus"}, headers=auth).status_code == 400
    assert client.get(f"{base}/HM-1", headers=auth).json()["pickup_no"] == "001"
    # forget: gone from the API, an empty retained payload is queued
    assert client.delete(f"{base}/HM-1", headers=auth).json()["forgotten"] is True
    assert client.get(f"{base}/HM-1", headers=auth).status_code == 404
    pending = {(s, o): p for s, o, _v, _t, p in ctx.orders.unpublished()}
    assert pending[("shop-a", "HM-1")] == b""
    for s, o, v, _t, _p in ctx.orders.unpublished():
        ctx.orders.published(s, o, v)
    assert ctx.orders.unpublished() == []


def test_collection_learned_from_events(env: tuple[TestClient, Any, dict[str, str]]) -> None:
    client, ctx, auth = env
    client.post("/api/v1/sites/shop-a/orders", json=ORDER, headers=auth)
    ctx.orders.learn(
        "shop-a", [{"type": "order_collected", "order_id": "HM-1", "seq": 9}], ctx.clock()
    )
    got = client.get("/api/v1/sites/shop-a/orders/HM-1", headers=auth).json()
    assert got["status"] == "collected" and got["version"] == 2 and not got["published"]


def test_alerts_ack_and_mute(env: tuple[TestClient, Any, dict[str, str]]) -> None:
    client, ctx, auth = env
    now = ctx.clock()
    ctx.alerts.raise_("shop-a", "door_forced", "seq:3", {"seq": 3}, now)
    alerts = client.get("/api/v1/alerts", params={"state": "active"}, headers=auth).json()["alerts"]
    assert [a["kind"] for a in alerts] == ["door_forced"]
    r = client.post(f"/api/v1/alerts/{alerts[0]['id']}/ack", headers=auth)
    assert r.status_code == 200 and r.json()["acked_by"] == "token:shop-backend"
    assert r.json()["state"] == "cleared"
    assert client.post("/api/v1/alerts/999/ack", headers=auth).status_code == 404
    r = client.post(
        "/api/v1/mutes",
        json={"site": "shop-a", "kind": "site_offline", "minutes": 30},
        headers=auth,
    )
    assert r.status_code == 201
    assert ctx.alerts.muted("shop-a", "site_offline", now + 60)
    assert not ctx.alerts.muted("shop-a", "site_offline", now + 3600)
    r = client.post(
        "/api/v1/mutes", json={"site": "shop-a", "kind": "nope", "minutes": 3}, headers=auth
    )
    assert r.status_code == 422 and r.json()["field"] == "kind"
    assert client.delete("/api/v1/mutes/shop-a/site_offline", headers=auth).status_code == 200


def test_sites_and_events_views(env: tuple[TestClient, Any, dict[str, str]]) -> None:
    from tests.support.hub import chain, live

    client, ctx, auth = env
    ctx.archive.ingest(live("shop-a", chain("shop-a", 3)), ctx.clock())
    sites = client.get("/api/v1/sites", headers=auth).json()["sites"]
    assert [s["site"] for s in sites] == ["shop-a", "shop-b"]
    assert sites[0]["chain"]["last_verified_seq"] == 3 and sites[0]["archived"] == 3
    evs = client.get("/api/v1/sites/shop-a/events", params={"since": 1}, headers=auth).json()[
        "events"
    ]
    assert [e["seq"] for e in evs] == [2, 3]
    assert client.get("/api/v1/health").json() == {"ok": True}


def test_a_body_that_never_ends_is_cut_off(
    env: tuple[TestClient, Any, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body sent a byte now and then held a connection and a task for ever."""
    import asyncio

    import httpx2 as httpx

    from hub.web import common

    monkeypatch.setattr(common, "BODY_TIMEOUT_S", 0.2)
    _client, ctx, auth = env

    async def trickle() -> Any:
        yield b'{"order_id": "SLOW-1", '
        await asyncio.sleep(5)  # longer than the (shortened) limit; never reached
        yield b'"status": "ready"}'

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
            return await c.post(
                "/api/v1/sites/shop-a/orders",
                content=trickle(),
                headers={**auth, "Content-Type": "application/json"},
            )

    r = asyncio.run(asyncio.wait_for(post(), timeout=4))
    assert r.status_code == 408 and r.json()["field"] == "body"
    assert _client.get("/api/v1/sites/shop-a/orders/SLOW-1", headers=auth).status_code == 404


def test_concurrent_creates_and_where_the_token_may_be(
    env: tuple[TestClient, Any, dict[str, str]],
) -> None:
    """Racing creates of one order (or one idempotency key with other bodies)
    store one; a token anywhere but the Authorization header counts for nothing."""
    import threading

    client, _ctx, auth = env
    token = auth["Authorization"].split()[1]
    url = "/api/v1/sites/shop-a/orders"
    assert client.get(f"{url}?access_token={token}").status_code == 401
    assert client.get(url, headers={"X-Token": token}).status_code == 401
    codes: list[int] = []

    def create(body: dict[str, Any], key: str | None = None) -> None:
        headers = {**auth, **({"Idempotency-Key": key} if key else {})}
        codes.append(client.post(url, json=body, headers=headers).status_code)

    def race(bodies: list[tuple[dict[str, Any], str | None]]) -> list[int]:
        codes.clear()
        threads = [threading.Thread(target=create, args=b) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sorted(codes)

    same = {"order_id": "RACE-1", "status": "ready"}
    assert race([(same, None)] * 12) == [201] + [409] * 11
    keyed = [({"order_id": f"RACE-K{i}", "status": "ready"}, "one-key") for i in range(12)]
    assert race(keyed) == [201] + [422] * 11
    rows = client.get(url, headers=auth).json()["orders"]
    assert sorted(o["order_id"] for o in rows if o["order_id"].startswith("RACE")) in (
        ["RACE-1", f"RACE-K{i}"] for i in range(12)
    )
    assert len({o["pickup_no"] for o in rows}) == len(rows)
