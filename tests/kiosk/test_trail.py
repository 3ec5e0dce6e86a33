"""A disk that lies (issue 11 item 9): the store behind what it published is
noticed, no published seq is reused for other contents, and verify-log tells
an explained gap from a break."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kiosk.errors import ChainError
from kiosk.store import Store
from kiosk.storehealth import store_health
from kiosk.trail import (
    MAX_UNSEALED_JUMP,
    Claim,
    check_published,
    read_claim,
    seal,
    tail_claim,
    verify_store,
    verify_trail,
)
from protocol.events import verify_chain
from tests.support.world import SITE, World


def published(w: World, n: int) -> dict[str, object]:
    """Record ``n`` events, acknowledge them all, return the status claim."""
    for i in range(n):
        w.audit.record("door_opened", w.snap(), detail={"i": i})
    w.store.mark_events_acked(list(range(1, w.store.last_seq() + 1)), w.clock.wall())
    return tail_claim(w.store, SITE)


def claim_of(w: World, doc: dict[str, object]) -> Claim:
    got = read_claim({**doc, "site": SITE}, SITE, w.store.status_key())
    assert got is not None
    return got


def test_a_consistent_store_is_left_alone(tmp_path: Path) -> None:
    w = World(tmp_path / "k.db")
    doc = published(w, 5)
    claim = claim_of(w, doc)
    assert claim.sealed
    assert check_published(w.store, SITE, claim, w.snap()).what == "consistent"
    w.audit.record("door_closed", w.snap())  # newer than the claim: fine too
    assert check_published(w.store, SITE, claim, w.snap()).what == "consistent"


def test_an_older_backup_continues_after_the_published_seq(tmp_path: Path) -> None:
    w = World(tmp_path / "k.db")
    published(w, 6)
    w.store.checkpoint()
    shutil.copy(tmp_path / "k.db", tmp_path / "old.db")  # an older copy (checkpointed)
    doc = published(w, 4)  # seq 7..10 published after the copy was taken
    hub = [e.as_dict() for e in w.store.iter_events()]  # what the hub archived
    w.store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(tmp_path / "k.db") + suffix).unlink(missing_ok=True)
    shutil.copy(tmp_path / "old.db", tmp_path / "k.db")  # the card now holds the old copy
    w.store = w.audit.store = Store(tmp_path / "k.db")
    w.audit.record("boot", w.snap())  # the door starts: seq 7 again, other contents
    w.audit.record("clock_trusted", w.snap())
    out = check_published(w.store, SITE, claim_of(w, doc), w.snap())
    assert out.what == "rollback"
    assert out.detail["rechained"] == 2 and out.detail["verified"] is True
    evs = [e.as_dict() for e in w.store.iter_events()]
    assert [e["seq"] for e in evs] == [1, 2, 3, 4, 5, 6, 11, 12, 13, 14]
    gap = evs[6]
    assert gap["type"] == "seq_gap" and gap["prev_hash"] == hub[-1]["hash"]
    assert gap["detail"] == {"from": 7, "to": 10, "reason": "store_rollback"}
    assert [e["type"] for e in evs[7:]] == ["boot", "clock_trusted", "store_rollback"]
    assert evs[7]["detail"]["rechained_from"] == 7
    # A hub that holds 1..10 verifies the chain straight on, and no event_id
    # it already holds comes with other contents.
    assert verify_chain(hub + evs[6:]) == 14
    held = {e["event_id"]: e for e in hub}
    assert all(held.get(e["event_id"], e) == e for e in evs)
    report = verify_trail(w.store)
    assert report.ok and [(g.first, g.last) for g in report.gaps] == [(7, 10)]
    assert report.rollbacks and report.rollbacks[0]["published_seq"] == 10
    assert any(line.startswith("gap: seqs 7 to 10") for line in report.lines())
    assert verify_store(w.store) == 10
    names = {h.name: h for h in store_health(w.store)}
    assert names["store trail"].ok and names["store trail"].warning
    assert not names["store rollback"].ok or names["store rollback"].warning


def test_a_different_hash_for_a_held_seq_rechains_what_was_not_acknowledged(
    tmp_path: Path,
) -> None:
    w = World(tmp_path / "k.db")
    published(w, 3)
    w.audit.record("door_opened", w.snap(), detail={"i": "published, then lost"})
    doc = tail_claim(w.store, SITE)  # claims seq 4 as published
    # The store loses seq 4 and records another seq 4 (still unacknowledged).
    w.store._x("DELETE FROM events WHERE seq = 4")
    w.audit.record("door_closed", w.snap())
    out = check_published(w.store, SITE, claim_of(w, doc), w.snap())
    assert out.what == "rollback"
    evs = [e.as_dict() for e in w.store.iter_events()]
    assert [(e["seq"], e["type"]) for e in evs[3:]] == [
        (5, "seq_gap"),
        (6, "door_closed"),
        (7, "store_rollback"),
    ]
    assert evs[3]["detail"] == {"from": 4, "to": 4, "reason": "store_rollback"}
    assert verify_trail(w.store).ok


def test_claims_not_sealed_by_this_store(tmp_path: Path) -> None:
    w = World(tmp_path / "k.db")
    published(w, 3)
    forged = {"site": SITE, "last_seq": 3 + MAX_UNSEALED_JUMP + 1, "last_hash": "a" * 64}
    c = read_claim(forged, SITE, w.store.status_key())
    assert c is not None and not c.sealed
    assert check_published(w.store, SITE, c, w.snap()).what == "ignored"
    assert w.store.last_seq() == 3
    # A claim at or below the store's seq that is not sealed changes nothing either.
    low = read_claim({"site": SITE, "last_seq": 2, "last_hash": "b" * 64}, SITE, b"other")
    assert low is not None and check_published(w.store, SITE, low, w.snap()).what == "unknown"
    # A modest unsealed jump (a store created anew after a card swap) is followed.
    fresh = read_claim({"site": SITE, "last_seq": 50, "last_hash": "c" * 64}, SITE, b"other")
    assert fresh is not None
    out = check_published(w.store, SITE, fresh, w.snap())
    assert out.what == "rollback" and out.detail["verified"] is False
    assert w.store.last_seq() == 52
    assert read_claim({"site": "other", "last_seq": 1}, SITE, b"k") is None
    assert read_claim({"site": SITE, "last_seq": True}, SITE, b"k") is None
    assert seal(b"k", SITE, 1, "a" * 64) != seal(b"k", SITE, 2, "a" * 64)


def test_a_changed_event_is_still_a_break(tmp_path: Path) -> None:
    w = World(tmp_path / "k.db")
    published(w, 3)
    body = json.loads(w.store.events_since(1, 1)[0].body)
    body["type"] = "seq_gap"  # pretending to be a gap does not help a forger
    body["detail"] = {"from": 2, "to": 1, "reason": "store_rollback"}
    w.store._x("UPDATE events SET body = ? WHERE seq = 2", (json.dumps(body),))
    with pytest.raises(ChainError) as err:
        verify_store(w.store)
    assert err.value.seq == 2
    names = {h.name: h for h in store_health(w.store)}
    assert not names["store trail"].ok and "seq 2" in names["store trail"].detail
