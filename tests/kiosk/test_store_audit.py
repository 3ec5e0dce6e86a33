import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from kiosk.audit import Audit, verify_store
from kiosk.clock import FakeClock, TrustedClock
from kiosk.errors import ChainError, StoreError
from kiosk.store import MIGRATIONS, Store, ThrottleRow
from protocol.events import verify_chain


def snap():
    return TrustedClock(FakeClock(), synced=True).snapshot()


def test_fresh_store_is_wal_migrated_and_durable(tmp_path: Path) -> None:
    s = Store(tmp_path / "k.db")
    assert s.schema_version() == len(MIGRATIONS)
    assert s.pragma("journal_mode") == "wal"
    assert s.pragma("synchronous") == 2  # FULL
    s.close()
    # reopening applies nothing new and keeps data
    s = Store(tmp_path / "k.db")
    assert s.schema_version() == len(MIGRATIONS)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "k.db").close()
    conn = sqlite3.connect(tmp_path / "k.db")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this program"):
        Store(tmp_path / "k.db")


def test_unopenable_store_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError):
        Store(tmp_path / "file" / "k.db")


def test_events_are_chained_and_verified(tmp_path: Path) -> None:
    s = Store(tmp_path / "k.db")
    a = Audit(s, "site-1")
    for i in range(5):
        a.record("boot", snap(), detail={"i": i})
    evs = [e.as_dict() for e in s.iter_events()]
    assert [e["seq"] for e in evs] == [1, 2, 3, 4, 5]
    assert evs[0]["prev_hash"] == "0" * 64
    assert all(evs[i]["prev_hash"] == evs[i - 1]["hash"] for i in range(1, 5))
    assert evs[2]["event_id"] == "site-1:3"
    assert verify_store(s) == 5


def _chain() -> list[dict]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        s = Store(Path(d) / "k.db")
        a = Audit(s, "site-1")
        for i in range(4):
            a.record("door_opened", snap(), detail={"i": i})
        return [e.as_dict() for e in s.iter_events()]


def test_chain_catches_changed_removed_and_reordered_events() -> None:
    evs = _chain()
    changed = [dict(e) for e in evs]
    changed[1]["detail"] = {"i": 99}
    with pytest.raises(ChainError) as err:
        verify_chain(changed)
    assert err.value.seq == 2
    removed = evs[:1] + evs[2:]
    with pytest.raises(ChainError) as err:
        verify_chain(removed)
    assert err.value.seq == 2
    reordered = [evs[0], evs[2], evs[1], evs[3]]
    with pytest.raises(ChainError) as err:
        verify_chain(reordered)
    assert err.value.seq == 2
    # a forger who recomputes the hash of a changed event still breaks the next link
    from protocol.events import event_hash

    forged = [dict(e) for e in evs]
    forged[1]["detail"] = {"i": 42}
    forged[1]["hash"] = event_hash({k: v for k, v in forged[1].items() if k != "hash"})
    with pytest.raises(ChainError) as err:
        verify_chain(forged)
    assert err.value.seq == 3


def test_tampered_store_row_is_found_by_verify_log(tmp_path: Path) -> None:
    s = Store(tmp_path / "k.db")
    a = Audit(s, "site-1")
    for _ in range(3):
        a.record("boot", snap())
    body = json.loads(s.events_since(1, 1)[0].body)
    body["type"] = "door_closed"
    s._x("UPDATE events SET body = ? WHERE seq = 2", (json.dumps(body),))
    with pytest.raises(ChainError) as err:
        verify_store(s)
    assert err.value.seq == 2


def _writer(path: str, n: int) -> None:
    s = Store(path, busy_timeout_ms=30000)
    a = Audit(s, "site-1")
    for _ in range(n):
        a.record("door_opened", snap())
    s.close()


def test_two_processes_writing_events_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "k.db")
    Store(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, 150)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    s = Store(path)
    seqs = [e.seq for e in s.iter_events()]
    assert seqs == list(range(1, 301))
    assert verify_store(s) == 300


def test_throttle_state_survives_reopen(tmp_path: Path) -> None:
    s = Store(tmp_path / "k.db")
    s.put_throttle(ThrottleRow("no:042", 4, 0.0, 1234.5, 1000.0))
    s.close()
    s = Store(tmp_path / "k.db")
    assert s.get_throttle("no:042") == ThrottleRow("no:042", 4, 0.0, 1234.5, 1000.0)
