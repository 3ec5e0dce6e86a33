"""Remote unlock through the ASGI app: reason, confirmation, the browser's
signature (or, where the owner chose it, the hub's key), pending, the kiosk's
answer, one pending unlock at a time, staff refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.dispatch import Dispatcher
from hub.ingest import Msg
from protocol import topics
from protocol.canonical import b64url_encode, canonical_json, dumps
from protocol.commands import MAX_LIFETIME_S, check_args, check_command, check_times
from protocol.keys import Keyring, generate_private_key, private_key_pem, public_key_text
from tests.support.console import Env, make_env


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = make_env(tmp_path)
    e.add_account("amy", "owner")
    e.add_account("sam", "staff")
    return e


def _confirm_doc(html: str) -> dict[str, object]:
    import html as h

    raw = html.split('data-doc="')[1].split('"', maxsplit=1)[0]
    return dict(json.loads(h.unescape(raw)))


def _answer(env: Env, cmd_id: str, body: dict[str, object]) -> None:
    """The kiosk's cmd_result, through the hub's own dispatcher."""
    c = env.ctx
    d = Dispatcher(
        c.cfg,
        c.archive,
        c.orders,
        c.alerts,
        c.extra.get("engine") or _engine(env),
        _gaps(env),
        commands=env.console.commands,
        timeline=env.console.timeline,
    )
    out = d.process(
        [Msg(topics.cmd_result("shop-a", cmd_id), dumps(body), False, 1, 1)], env.clock()
    )
    assert cmd_id in out.commands


def _engine(env: Env):  # type: ignore[no-untyped-def]
    from hub.alerts import AlertEngine

    return AlertEngine(env.ctx.alerts, env.ctx.cfg, env.clock())


def _gaps(env: Env):  # type: ignore[no-untyped-def]
    import random

    from hub.gaps import GapFiller

    return GapFiller(env.ctx.cfg.gaps, env.ctx.extra["keys"].auditor, random.Random(1))


def test_browser_signed_unlock_from_reason_to_done(env: Env) -> None:
    env.login("amy")
    phone = generate_private_key()
    pub = public_key_text(phone.public_key())
    assert (
        env.post("/console/account/keys", {"public_key": pub, "label": "amy's phone"}).status_code
        == 303
    )
    account = env.client.get("/console/account").text
    assert f"owner_keys = [&#34;{pub}&#34;]" in account or f'owner_keys = ["{pub}"]' in account
    # no reason: a message next to the field, nothing prepared
    r = env.post("/console/sites/shop-a/unlock", {"reason": "   "})
    assert r.status_code == 422 and 'id="err-reason"' in r.text
    r = env.post("/console/sites/shop-a/unlock", {"reason": "customer 042 locked out"})
    assert r.status_code == 200 and "sign-button" in r.text
    doc = _confirm_doc(r.text)
    assert doc["args"] == {"reason": "customer 042 locked out", "account": "amy"}
    assert doc["cmd"] == "unlock" and env.published == []
    # a signature over something else is refused; nothing is sent
    bad = b64url_encode(phone.sign(b"something else"))
    r = env.post(f"/console/commands/{doc['cmd_id']}/sign", {"sig": bad})
    assert r.status_code == 422 and env.published == []
    sig = b64url_encode(phone.sign(canonical_json(doc)))
    r = env.post(f"/console/commands/{doc['cmd_id']}/sign", {"sig": sig})
    assert r.status_code == 303 and r.headers["location"] == f"/console/commands/{doc['cmd_id']}"
    topic, payload = env.published[-1]
    assert topic == topics.cmd("shop-a", str(doc["cmd_id"]))
    sent = json.loads(payload)
    # exactly what a kiosk that trusts the phone's key accepts
    cmd = check_command(
        payload, topic_cmd_id=str(doc["cmd_id"]), site="shop-a", keyring=Keyring(owner_keys=[pub])
    )
    check_times(cmd, env.clock())
    assert check_args(cmd) == {"reason": "customer 042 locked out", "account": "amy"}
    assert sent["args"]["account"] == "amy"
    page = env.client.get(f"/console/commands/{doc['cmd_id']}", headers={"Accept-Language": "en"})
    assert 'data-state="pending"' in page.text and "never after" in page.text
    # a second unlock while one is pending: refused, plainly
    r = env.post("/console/sites/shop-a/unlock", {"reason": "again"})
    assert r.status_code == 422 and "pending until" in r.text
    # the kiosk answers: done
    _answer(
        env,
        str(doc["cmd_id"]),
        {"cmd_id": doc["cmd_id"], "ok": True, "result": {"cmd": "unlock", "state": "done"}},
    )
    page = env.client.get(f"/console/commands/{doc['cmd_id']}")
    assert 'data-state="done"' in page.text
    actions = [(a["account"], a["action"]) for a in env.console.accounts.audit_log()]
    assert ("amy", "unlock_sent") in actions and ("amy", "browser_key_added") in actions


def test_refusal_shows_the_kiosks_reason_and_expiry_is_said(env: Env) -> None:
    env.login("amy")
    phone = generate_private_key()
    env.post(
        "/console/account/keys", {"public_key": public_key_text(phone.public_key()), "label": "p"}
    )
    doc = _confirm_doc(env.post("/console/sites/shop-a/unlock", {"reason": "r1"}).text)
    env.post(
        f"/console/commands/{doc['cmd_id']}/sign",
        {"sig": b64url_encode(phone.sign(canonical_json(doc)))},
    )
    _answer(
        env,
        str(doc["cmd_id"]),
        {
            "cmd_id": doc["cmd_id"],
            "ok": False,
            "reason": "bad_signature",
            "error": "bad_signature: the signature matches no trusted key",
        },
    )
    page = env.client.get(
        f"/console/commands/{doc['cmd_id']}", headers={"Accept-Language": "en"}
    ).text
    assert 'data-state="refused"' in page and "trust.owner_keys" in page
    # the next one nobody answers: after its expires_at the page says it cannot open any more
    doc = _confirm_doc(env.post("/console/sites/shop-a/unlock", {"reason": "r2"}).text)
    env.post(
        f"/console/commands/{doc['cmd_id']}/sign",
        {"sig": b64url_encode(phone.sign(canonical_json(doc)))},
    )
    env.clock.advance(MAX_LIFETIME_S)
    page = env.client.get(
        f"/console/commands/{doc['cmd_id']}", headers={"Accept-Language": "en"}
    ).text
    assert 'data-state="expired"' in page and "can no longer open the door" in page
    # a prepared command signed too late is refused
    doc = _confirm_doc(env.post("/console/sites/shop-a/unlock", {"reason": "r3"}).text)
    env.clock.advance(MAX_LIFETIME_S)
    r = env.post(
        f"/console/commands/{doc['cmd_id']}/sign",
        {"sig": b64url_encode(phone.sign(canonical_json(doc)))},
    )
    assert r.status_code == 409


def test_cancel_withdraws_a_pending_unlock(env: Env) -> None:
    env.login("amy")
    phone = generate_private_key()
    env.post(
        "/console/account/keys", {"public_key": public_key_text(phone.public_key()), "label": "p"}
    )
    doc = _confirm_doc(env.post("/console/sites/shop-a/unlock", {"reason": "r"}).text)
    env.post(
        f"/console/commands/{doc['cmd_id']}/sign",
        {"sig": b64url_encode(phone.sign(canonical_json(doc)))},
    )
    r = env.post(f"/console/commands/{doc['cmd_id']}/cancel")
    cancel = _confirm_doc(r.text)
    assert cancel["cmd"] == "cancel" and cancel["args"]["cmd_id"] == doc["cmd_id"]
    env.post(
        f"/console/commands/{cancel['cmd_id']}/sign",
        {"sig": b64url_encode(phone.sign(canonical_json(cancel)))},
    )
    _answer(
        env,
        str(cancel["cmd_id"]),
        {
            "cmd_id": cancel["cmd_id"],
            "ok": True,
            "result": {"cmd": "cancel", "target": doc["cmd_id"], "state": "cancelled"},
        },
    )
    page = env.client.get(f"/console/commands/{doc['cmd_id']}").text
    assert 'data-state="cancelled"' in page


def test_staff_and_other_owners_cannot_send(env: Env) -> None:
    env.add_account("ann", "owner")
    env.login("amy")
    doc = _confirm_doc(env.post("/console/sites/shop-a/unlock", {"reason": "r"}).text)
    env.login("sam")
    assert env.post(f"/console/commands/{doc['cmd_id']}/sign", {"sig": "A" * 86}).status_code == 403
    assert env.post("/console/sites/shop-a/unlock", {"reason": "r"}).status_code == 403
    env.login("ann")
    assert env.post(f"/console/commands/{doc['cmd_id']}/sign", {"sig": "A" * 86}).status_code == 403
    assert env.published == []


def test_without_a_hub_key_the_hub_cannot_sign(env: Env) -> None:
    env.login("amy")
    doc = _confirm_doc(env.post("/console/sites/shop-a/unlock", {"reason": "r"}).text)
    assert "hub-send" not in env.client.get("/console/sites/shop-a/unlock").text
    assert env.post(f"/console/commands/{doc['cmd_id']}/send").status_code == 409
    assert env.published == []


def test_the_hub_key_fallback_signs_when_the_owner_chose_it(tmp_path: Path) -> None:
    key = generate_private_key()
    (tmp_path / "owner.key").write_bytes(private_key_pem(key))
    extra = f'[console]\nhub_holds_owner_key = true\nowner_key = "{tmp_path / "owner.key"}"\n'
    env = make_env(tmp_path, extra=extra)
    env.add_account("amy")
    env.login("amy")
    r = env.post("/console/sites/shop-a/unlock", {"reason": "phone without Ed25519"})
    assert 'id="hub-send"' in r.text
    doc = _confirm_doc(r.text)
    assert env.post(f"/console/commands/{doc['cmd_id']}/send").status_code == 303
    _topic, payload = env.published[-1]
    ring = Keyring(owner_keys=[public_key_text(key.public_key())])
    cmd = check_command(payload, topic_cmd_id=str(doc["cmd_id"]), site="shop-a", keyring=ring)
    assert check_args(cmd)["account"] == "amy"
    assert "hub:" in env.console.commands.view(str(doc["cmd_id"]), env.clock())["signer"]


def test_the_broker_down_sends_nothing_and_says_so(env: Env) -> None:
    async def down(_t: str, _p: bytes) -> bool:
        return False

    env.console.publish = down
    env.login("amy")
    phone = generate_private_key()
    env.post(
        "/console/account/keys", {"public_key": public_key_text(phone.public_key()), "label": "p"}
    )
    doc = _confirm_doc(env.post("/console/sites/shop-a/unlock", {"reason": "r"}).text)
    r = env.post(
        f"/console/commands/{doc['cmd_id']}/sign",
        {"sig": b64url_encode(phone.sign(canonical_json(doc)))},
    )
    assert r.status_code == 503
    assert env.console.commands.view(str(doc["cmd_id"]), env.clock())["state"] == "prepared"


def test_browser_keys_are_checked(env: Env) -> None:
    env.login("amy")
    for bad in ("", "not-a-key", "A" * 42, "A" * 200):
        r = env.post("/console/account/keys", {"public_key": bad, "label": "x"})
        assert r.status_code == 422 and 'id="err-public_key"' in r.text, bad
    assert env.console.keys.active() == []
    pub = public_key_text(generate_private_key().public_key())
    env.post("/console/account/keys", {"public_key": pub, "label": "x"})
    kid = env.console.keys.active()[0]["key_id"]
    assert env.post("/console/account/keys", {"public_key": pub, "label": "x"}).status_code == 422
    assert env.post(f"/console/account/keys/{kid}/revoke").status_code == 303
    assert env.console.keys.active() == []
