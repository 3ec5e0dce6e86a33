"""The archive: exactly once, chain verified, early events, breaks, bounds."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from hub.archive import Incoming
from protocol.canonical import dumps
from tests.support.hub import T0, archive, chain, live


def test_in_order_with_duplicates_each_once(tmp_path: Path) -> None:
    a = archive(tmp_path)
    evs = chain("shop-a", 50)
    items = live("shop-a", evs)
    rep = a.ingest(items + items[10:20], T0)
    assert len(rep.verified) == 50 and rep.duplicates == 10 and not rep.rejected
    assert [json.loads(b) for b in a.events("shop-a")] == evs
    assert list(a.events("shop-a")) == [dumps(e) for e in evs]
    assert a.verify("shop-a").ok and a.verify("shop-a").count == 50
    assert a.count("shop-b") == 0


def test_file_is_private_from_the_start(tmp_path: Path) -> None:
    archive(tmp_path)
    for name in os.listdir(tmp_path):
        if name.startswith("hub.db"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_early_events_wait_for_the_gap(tmp_path: Path) -> None:
    a = archive(tmp_path)
    evs = chain("shop-a", 30)
    rep = a.ingest(live("shop-a", evs[:10] + evs[20:]), T0)
    assert len(rep.verified) == 10 and rep.early == 10
    st = a.chain("shop-a")
    assert st.missing() == (11, 20)
    v = a.verify("shop-a")
    assert not v.ok and "seq 11 to 20 missing" in v.message
    # the gap arrives later, from a logs page (decoded events)
    rep = a.ingest([Incoming("shop-a", e, "gap") for e in reversed(evs[10:20])], T0)
    assert len(rep.verified) == 20
    assert a.verify("shop-a").ok and a.verify("shop-a").count == 30
    assert list(a.events("shop-a")) == [dumps(e) for e in evs]


def test_state_survives_reopen(tmp_path: Path) -> None:
    a = archive(tmp_path)
    evs = chain("shop-a", 20)
    a.ingest(live("shop-a", evs[:5] + evs[8:]), T0)
    a.db.close()
    b = archive(tmp_path)
    assert b.chain("shop-a").tail.seq == 5 and b.chain("shop-a").missing() == (6, 8)
    b.ingest(live("shop-a", evs[5:8]), T0)
    assert b.verify("shop-a").ok and b.verify("shop-a").count == 20


def test_break_and_conflict_are_alarms_and_never_overwrite(tmp_path: Path) -> None:
    a = archive(tmp_path)
    evs = chain("shop-a", 10)
    a.ingest(live("shop-a", evs[:5]), T0)
    forged = dict(evs[2], detail={"forged": True})
    rep = a.ingest([Incoming("shop-a", dumps(forged))], T0)
    assert [x.kind for x in rep.alarms] == ["chain_conflict"]
    assert json.loads(list(a.events("shop-a"))[2]) == evs[2]  # verified copy kept
    bad_next = dict(evs[5], detail={"x": 1})  # hash no longer matches
    rep = a.ingest([Incoming("shop-a", dumps(bad_next))], T0)
    assert [x.kind for x in rep.alarms] == ["chain_break"]
    assert not a.verify("shop-a").ok and "seq 6" in a.verify("shop-a").message
    # the kiosk's own copy links: accepted, evidence kept
    rep = a.ingest(live("shop-a", evs[5:]), T0)
    assert len(rep.verified) == 5 and a.verify("shop-a").ok
    assert {e["kind"] for e in a.evidence("shop-a")} == {"chain_conflict", "chain_break"}


def test_forged_early_copy_does_not_crowd_out_the_real_one(tmp_path: Path) -> None:
    a = archive(tmp_path)
    evs = chain("shop-a", 5)
    fake = chain("shop-a", 1, start=4, prev="1" * 64)[0]
    a.ingest([*live("shop-a", evs[:2]), Incoming("shop-a", dumps(fake))], T0)
    rep = a.ingest(live("shop-a", evs[3:]) + live("shop-a", evs[2:3]), T0)
    assert a.verify("shop-a").ok and a.verify("shop-a").count == 5
    assert any(x.kind == "chain_conflict" for x in rep.alarms)  # the fake, as evidence


def test_bad_messages_rejected_alone_other_site_untouched(tmp_path: Path) -> None:
    a = archive(tmp_path)
    evs = chain("shop-a", 3)
    b_evs = chain("shop-b", 2)
    items = [
        Incoming("shop-a", b"not json"),
        Incoming("shop-a", b'{"seq": 1}'),
        Incoming("shop-a", dumps(b_evs[0])),  # shop-b's event on shop-a's topic
        Incoming("nowhere", dumps(evs[0])),
        Incoming("shop-a", b"\xff\xfe"),
        Incoming("shop-a", b"x" * 70000),
        *live("shop-a", evs),
        *live("shop-b", b_evs),
    ]
    rep = a.ingest(items, T0)
    assert len(rep.verified) == 5
    assert rep.rejected == {
        "malformed": 1,
        "bad_event": 1,
        "wrong_site": 1,
        "unknown_site": 1,
        "not_utf8": 1,
        "too_large": 1,
    }
    assert a.verify("shop-a").count == 3 and a.verify("shop-b").count == 2
    assert a.rejections("shop-a")["wrong_site"] == 1
    assert a.unknown_site == 1


def test_bounds_on_held_events_and_bytes(tmp_path: Path) -> None:
    a = archive(tmp_path, early_events_per_site=10, rejections_per_site=3, site_bytes=10**5)
    evs = chain("shop-a", 40)
    rep = a.ingest(live("shop-a", evs[1:]), T0)
    assert rep.early == 10 and rep.rejected["early_overflow"] == 29
    a.ingest([Incoming("shop-a", b"junk")] * 10, T0)
    assert len(a.evidence("shop-a")) == 3 and a.rejections("shop-a")["malformed"] == 10
    big = chain("shop-a", 400, detail={"pad": "x" * 400})
    rep = a.ingest(live("shop-a", big), T0)
    assert rep.rejected["site_full"] > 0 and a.chain("shop-a").bytes <= 10**5
    assert any(x.kind == "site_full" for x in rep.alarms)


def test_status_last_seq_is_a_gap_at_the_end(tmp_path: Path) -> None:
    a = archive(tmp_path)
    a.ingest(live("shop-a", chain("shop-a", 4)), T0)
    a.set_status("shop-a", {"online": True, "last_seq": 7, "door": "weird"}, T0)
    assert a.chain("shop-a").missing() == (5, 7)
    assert "seq 5 to 7 missing" in a.verify("shop-a").message
    status = a.status("shop-a")
    assert status is not None and status[0] == {"online": True, "last_seq": 7}


def test_two_processes_opening_a_new_archive_at_once_both_succeed(tmp_path: Path) -> None:
    """`pickup-hub serve` starting while `pickup-hub token add` runs: each step once."""
    import threading

    from hub.db import MIGRATIONS, Database

    errors: list[BaseException] = []
    dbs: list[Database] = []

    def open_it() -> None:
        try:
            dbs.append(Database(tmp_path / "race.db"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    version = dbs[0].conn.execute("PRAGMA user_version").fetchone()[0]
    assert version == len(MIGRATIONS)
    for d in dbs:
        d.close()
