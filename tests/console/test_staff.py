"""The console's Staff page through the ASGI app: list, add (the code shown once),
revoke, staff accounts refused, CSRF, and a message by each bad field."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import segno

from protocol.canonical import decode_json_object
from protocol.keys import Keyring, Role
from protocol.otp import otpauth_uri
from protocol.staff import validate_staff
from tests.support.console import Env, make_env

PAGE = "/console/sites/shop-a/staff"
GOOD = {
    "name": "林师傅",
    "role": "courier",
    "valid_from": "2026-05-01",
    "valid_until": "2026-12-31",
    "hours": "Mon-Sat 05:00-07:00",
}
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = make_env(tmp_path)
    e.add_account("amy", "owner")
    e.add_account("bob", "owner")
    e.add_account("sam", "staff")
    return e


def rows(env: Env) -> list[Any]:
    return env.ctx.archive.db.query("SELECT * FROM staff ORDER BY created_at, rowid")


def stored_doc(env: Env, staff_id: str) -> dict[str, Any]:
    row = env.ctx.archive.db.one("SELECT doc FROM staff WHERE staff_id = ?", (staff_id,))
    assert row is not None
    return dict(json.loads(row["doc"]))


def audit(env: Env) -> list[tuple[str, str, str | None]]:
    return [
        (r["account"], r["action"], r["target"])
        for r in reversed(env.console.accounts.audit_log())
        if r["action"].startswith("staff_")
    ]


def add(env: Env, **changes: str) -> Any:
    return env.post(PAGE, {**GOOD, **changes})


def test_add_shows_the_code_once_and_the_list_never_the_secret(env: Env) -> None:
    env.login("amy")
    page = env.client.get(PAGE)
    assert page.status_code == 200 and 'id="staff-form"' in page.text
    r = add(env)
    assert r.status_code == 303
    once = r.headers["location"]
    assert once.startswith(PAGE + "/new/")
    (row,) = rows(env)
    doc = stored_doc(env, row["staff_id"])
    # the document is the protocol's, signed by the hub key, as kioskctl makes it
    staff = validate_staff(doc, site="shop-a", width=3, staff_id=row["staff_id"])
    keys = env.ctx.extra["keys"]
    assert Keyring(hub_keys=[keys.hub_public]).verify(doc, {Role.HUB}).role is Role.HUB
    assert (staff.staff_no, staff.name, staff.role) == ("0001", "林师傅", "courier")
    assert staff.schedule[0].days == (1, 2, 3, 4, 5, 6)
    assert (staff.schedule[0].start, staff.schedule[0].end) == ("05:00", "07:00")
    # local dates of the site: from its first midnight to the end of the last day
    assert staff.valid_from == datetime(2026, 5, 1, tzinfo=SHANGHAI).timestamp()
    assert staff.valid_until == datetime(2027, 1, 1, tzinfo=SHANGHAI).timestamp()

    shown = env.client.get(once)
    assert shown.status_code == 200
    grouped = " ".join(staff.secret[i : i + 4] for i in range(0, len(staff.secret), 4))
    assert grouped in shown.text and 'id="once-warning"' in shown.text
    uri = otpauth_uri(staff.secret, label="林师傅 (shop-a)", issuer="shop-a", digits=8)
    svg = segno.make(uri, error="m").svg_inline(scale=5, border=2, dark="#000", light="#fff")
    assert svg in shown.text  # the QR code is the person's otpauth:// entry

    again = env.client.get(once)  # a reload: gone, and said so
    assert again.status_code == 410 and 'id="once-gone"' in again.text
    assert grouped not in again.text and staff.secret not in again.text
    listed = env.client.get(PAGE).text
    assert staff.secret not in listed and grouped not in listed
    assert "林师傅" in listed and "0001" in listed and 'data-state="active"' in listed
    assert "2026-05-01" in listed and "2026-12-31" in listed and "05:00–07:00" in listed
    assert audit(env) == [("amy", "staff_added", row["staff_id"])]


def test_published_like_orders_then_revoked_and_the_secret_forgotten(env: Env) -> None:
    env.login("amy")
    add(env)
    book = env.ctx.staff
    ((site, sid, version, topic, payload),) = book.unpublished()
    assert (site, version, topic) == ("shop-a", 1, f"pickup/v1/shop-a/staff/{sid}")
    first = decode_json_object(payload)
    assert first == stored_doc(env, sid)
    assert "还没有" in env.client.get(PAGE).text  # not sent yet (no broker here)
    book.published(site, sid, version)
    assert book.unpublished() == []
    assert 'data-state="active"' in env.client.get(PAGE).text

    r = env.post(f"{PAGE}/{sid}/revoke")
    assert r.status_code == 303
    ((_, _, version, _, payload),) = book.unpublished()
    second = decode_json_object(payload)
    revoked = validate_staff(second, site="shop-a", width=3, staff_id=sid)
    assert version == 2 and revoked.revoked and revoked.version == 2
    # it keeps the secret: the kiosk still knows the code and says "revoked"
    assert revoked.secret == first["otp"]["secret"]
    keys = env.ctx.extra["keys"]
    assert Keyring(hub_keys=[keys.hub_public]).verify(second, {Role.HUB}).role is Role.HUB
    book.published("shop-a", sid, 2)
    assert "otp" not in stored_doc(env, sid)  # the hub no longer holds the secret
    assert first["otp"]["secret"] not in json.dumps([dict(r) for r in rows(env)])
    page = env.client.get(PAGE).text
    assert 'data-state="revoked"' in page and f"/{sid}/revoke" not in page

    twice = env.post(f"{PAGE}/{sid}/revoke")
    assert twice.status_code == 409 and 'id="err-revoke"' in twice.text
    assert book.unpublished() == []
    assert audit(env) == [("amy", "staff_added", sid), ("amy", "staff_revoked", sid)]
    assert env.post(f"{PAGE}/S-9999-none/revoke").status_code == 404
    assert env.post("/console/sites/nowhere/staff", GOOD).status_code == 404

    # a broker that lost the hub's session gets the live codes again, never an
    # unsigned copy of a revoked one whose secret the hub already dropped
    add(env, name="Wang")
    ((_, live, _, _, _),) = book.unpublished()
    book.published("shop-a", live, 1)
    assert book.republish_all() == 1
    ((_, again, _, _, payload),) = book.unpublished()
    assert again == live and "sig" in decode_json_object(payload)


def test_numbers_are_unique_among_live_codes_and_come_back_late(tmp_path: Path) -> None:
    env = make_env(tmp_path, sites=("shop-a",), site_extra="pickup_no_width = 1")
    env.add_account("amy")
    env.login("amy")
    book, now = env.ctx.staff, env.clock()
    made = [book.add("shop-a", name=f"p{i}", role="staff", now=now, by="t") for i in range(99)]
    assert [c.staff_no for c in made] == [f"{i:02d}" for i in range(1, 100)]
    r = add(env)  # 99 two-digit numbers, all held: a message, nothing stored
    assert r.status_code == 409 and 'id="err-name"' in r.text
    assert len(rows(env)) == 99
    book.revoke("shop-a", made[41].staff_id, now)
    assert book.add("shop-a", name="x", role="staff", now=now, by="t").staff_no == "42"


def test_staff_accounts_see_but_cannot_change(env: Env) -> None:
    env.login("amy")
    once = add(env).headers["location"]
    (row,) = rows(env)
    env.login("sam")
    page = env.client.get(PAGE)
    assert page.status_code == 200 and "林师傅" in page.text
    assert 'id="staff-form"' not in page.text and "/revoke" not in page.text
    assert 'id="staff-note"' in page.text
    assert add(env, name="Wang").status_code == 403
    assert env.post(f"{PAGE}/{row['staff_id']}/revoke").status_code == 403
    assert env.client.get(once).status_code == 403
    assert len(rows(env)) == 1 and not rows(env)[0]["revoked"]
    assert [a for _, a, _ in audit(env)] == ["staff_added"]
    assert "/staff" in env.client.get("/console/").text  # the site card links here


def test_the_code_is_shown_only_to_the_account_that_made_it(env: Env) -> None:
    env.login("amy")
    once = add(env).headers["location"]
    env.login("bob")
    assert env.client.get(once).status_code == 410  # another owner: not shown
    env.login("amy")
    assert env.client.get(once).status_code == 200  # still hers, once
    assert env.client.get(once).status_code == 410


def test_csrf_and_other_sites_refuse_and_store_nothing(env: Env) -> None:
    env.login("amy")
    assert env.client.post(PAGE, data=GOOD).status_code == 403
    assert env.client.post(PAGE, data={**GOOD, "csrf": "forged"}).status_code == 403
    token = env.csrf()
    r = env.client.post(
        PAGE, data={**GOOD, "csrf": token}, headers={"Origin": "https://evil.example"}
    )
    assert r.status_code == 403
    env.login("bob")  # a token of another (ended) session
    assert env.client.post(PAGE, data={**GOOD, "csrf": token}).status_code == 403
    assert rows(env) == [] and audit(env) == []
    add(env)
    (row,) = rows(env)
    revoke = f"{PAGE}/{row['staff_id']}/revoke"
    assert env.client.post(revoke, data={"csrf": token}).status_code == 403
    assert not rows(env)[0]["revoked"]


BAD = [
    ({"name": ""}, "name", "Give the person's name."),
    ({"name": "   "}, "name", "Give the person's name."),
    ({"name": "a" * 65}, "name", "At most 64 characters"),
    ({"name": "Lin\x00"}, "name", "At most 64 characters"),
    ({"name": "Lin\x1b[2J"}, "name", "At most 64 characters"),
    ({"role": "boss"}, "role", "Choose staff or courier."),
    ({"valid_from": "2026-13-01"}, "valid_from", "Give a date as YYYY-MM-DD"),
    ({"valid_from": "tomorrow"}, "valid_from", "Give a date as YYYY-MM-DD"),
    ({"valid_from": "1999-01-01"}, "valid_from", "Give a date as YYYY-MM-DD"),
    ({"valid_until": "2026-02-30"}, "valid_until", "Give a date as YYYY-MM-DD"),
    ({"valid_until": "2026-04-30"}, "valid_until", "cannot be before the first"),
    ({"valid_from": "", "valid_until": "2026-05-01"}, "valid_until", "already over"),
    ({"hours": "weekdays early"}, "hours", "Cannot read these hours: weekdays early"),
    ({"hours": "Mon-Sat 05:00-07:00\nMon 25:00-26:00"}, "hours", "Mon 25:00-26:00"),
    ({"hours": "Fun 05:00-07:00"}, "hours", "Cannot read these hours"),
    ({"hours": "\n".join(["Mon 05:00-06:00"] * 15)}, "hours", "At most 14 windows"),
]


@pytest.mark.parametrize(("changes", "field", "message"), BAD)
def test_each_bad_field_gets_its_message_and_nothing_is_stored(
    env: Env, changes: dict[str, str], field: str, message: str
) -> None:
    env.login("amy")
    env.client.cookies.set("ph_lang", "en")
    r = add(env, **changes)
    assert r.status_code == 422
    m = re.search(rf'id="err-{field}" role="alert">([^<]*)<', r.text)
    assert m and message in m.group(1).replace("&#39;", "'"), r.text[-2000:]
    assert rows(env) == [] and audit(env) == [] and env.ctx.staff.unpublished() == []
    # what was typed stays in the form (escaped), to be corrected
    if changes.get("name", "").strip():
        assert 'value="' in r.text and "\x00" not in r.text


def test_good_variants_are_taken(env: Env) -> None:
    env.login("amy")
    for changes in (
        {"valid_from": "", "valid_until": "", "hours": ""},  # no limits: any day, any hour
        {"role": "staff", "hours": "Sat-Mon 22:00-02:00; Wed 12:00-13:00"},
        {"valid_from": "2026-05-29", "valid_until": "2026-05-29"},  # one day: today there
    ):
        assert add(env, **changes).status_code == 303, changes
    docs = [stored_doc(env, r["staff_id"]) for r in rows(env)]
    assert "valid_from" not in docs[0] and "schedule" not in docs[0]
    assert [w["days"] for w in docs[1]["schedule"]] == [[6, 7, 1], [3]]
    env.client.cookies.set("ph_lang", "en")
    page = env.client.get(PAGE).text
    assert "Sat–Mon 22:00–02:00; Wed 12:00–13:00" in page and "any hour" in page
    assert [n for _, n, _ in audit(env)] == ["staff_added"] * 3


def test_the_code_and_its_log_line_are_one_transaction(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.login("amy")

    def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("the console log cannot be written")

    monkeypatch.setattr(env.console.accounts, "audit", broken)
    with pytest.raises(RuntimeError):
        add(env)
    assert rows(env) == [] and env.ctx.staff.unpublished() == []
    assert env.console.once == {}  # nothing to show either
    monkeypatch.undo()
    add(env)
    (row,) = rows(env)
    log = env.client.get("/console/audit").text
    assert 'data-action="staff_added"' in log and row["staff_id"] in log and "林师傅" in log
