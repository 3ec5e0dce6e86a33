"""Retention that cannot destroy (issue 11 item 2), and making room on a full card."""

from __future__ import annotations

from pathlib import Path

import pyotp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kiosk.clock import FakeClock, TrustedClock
from kiosk.retention import Retention, RetentionPolicy
from kiosk.trail import verify_store, verify_trail
from protocol.orders import ACTIVE_STATUSES
from tests.support.world import World

DAY = 86400.0


def rig(tmp_path: Path, **policy: float) -> tuple[World, Retention]:
    w = World(tmp_path / "k.db")
    ret = Retention(w.store, w.audit, RetentionPolicy(**policy), boot="test-boot")
    return w, ret


def ack_all_but_last(w: World) -> int:
    last = w.store.last_seq()
    w.store.mark_events_acked(list(range(1, last)), w.clock.wall())
    return last


def two_passes(w: World, ret: Retention, advance: float) -> object:
    """The first pass after start only takes the mark; the next one acts."""
    ret.run(w.snap())
    w.clock.advance(advance)
    return ret.run(w.snap())


def test_a_pass_forgets_old_orders_and_acked_events_and_says_so(tmp_path: Path) -> None:
    w, ret = rig(tmp_path, min_rows=0, max_fraction=1.0)
    w.add("OLD", "001", status="collected")
    w.add("NEW", "002", expires_in=365 * DAY)
    w.add("EXPIRED", "003")
    w.add("PAID", "004", status="paid", expires_in=365 * DAY)
    for _ in range(3):
        w.audit.record("boot", w.snap())
    last = ack_all_but_last(w)
    ret.run(w.snap())
    w.clock.advance(100 * DAY)
    result = ret.run(w.snap())
    assert result.outcome == "purged", result
    assert result.counts["orders"] == 2
    assert w.store.get_order("OLD") is None and w.store.get_order("EXPIRED") is None
    assert w.store.get_order("NEW") is not None  # still waiting on its shelf
    assert w.store.get_order("PAID") is not None
    kept = [e.seq for e in w.store.iter_events(0)]
    assert kept[0] == last  # the unacknowledged event is never purged
    ev = w.events("retention")[-1]
    assert ev["detail"]["anchor"] == {"seq": last - 1, "hash": w.store.chain_anchor().hash}
    assert ev["detail"]["counts"]["events"] == last - 1
    assert verify_store(w.store) == len(kept)
    report = verify_trail(w.store)
    assert report.lines()[0].startswith(f"trail starts after seq {last - 1}: seqs 1 to {last - 1}")
    assert "after the broker acknowledged them" in report.lines()[0]


def test_nothing_goes_while_the_clock_is_untrusted(tmp_path: Path) -> None:
    w, ret = rig(tmp_path, min_rows=0, max_fraction=1.0)
    w.add("OLD", "001", status="collected")
    w.tclock = TrustedClock(w.clock, synced=False)
    ret.run(w.snap())
    w.clock.advance(100 * DAY)
    result = ret.run(w.snap())
    assert (result.outcome, result.reason) == ("skipped", "untrusted")
    assert w.store.get_order("OLD") is not None


def test_the_first_pass_after_a_boot_only_takes_the_mark(tmp_path: Path) -> None:
    w, ret = rig(tmp_path, min_rows=0, max_fraction=1.0)
    w.add("OLD", "001", status="collected")
    w.clock.advance(100 * DAY)
    assert ret.run(w.snap()).reason == "first_pass"
    assert w.store.get_order("OLD") is not None
    other_boot = Retention(w.store, w.audit, ret.policy, boot="another-boot")
    w.clock.advance(3600)
    assert other_boot.run(w.snap()).reason == "first_pass"
    w.clock.advance(3600)
    assert other_boot.run(w.snap()).outcome == "purged"


def test_a_jump_of_the_judged_time_pauses_retention_for_a_day(tmp_path: Path) -> None:
    w, ret = rig(tmp_path, min_rows=0, max_fraction=1.0)
    w.add("OLD", "001", status="collected")
    ret.run(w.snap())
    w.clock.step_wall(100 * DAY)  # the wall clock (still "trusted") jumps ahead
    w.clock.advance(3600)
    assert ret.run(w.snap()).reason == "clock_jump"
    w.clock.advance(3600)
    assert ret.run(w.snap()).reason == "clock_jump"  # still within the quiet day
    assert w.store.get_order("OLD") is not None
    w.clock.advance(DAY)
    assert ret.run(w.snap()).outcome == "purged"


def test_a_pass_deleting_too_much_at_once_is_refused_with_an_alarm(tmp_path: Path) -> None:
    w, ret = rig(tmp_path, min_rows=2, max_fraction=0.25)
    for i in range(4):
        w.add(f"C-{i}", f"{i:03d}", status="collected")
    for i in range(4, 8):
        w.add(f"R-{i}", f"{i:03d}", expires_in=365 * DAY)
    result = two_passes(w, ret, 40 * DAY)
    assert (result.outcome, result.reason) == ("refused", "orders")  # type: ignore[attr-defined]
    assert w.store.count_orders() == 8
    refused = w.events("retention_refused")
    assert len(refused) == 1
    assert refused[0]["detail"]["table"] == "orders"
    assert refused[0]["detail"]["would_delete"]["orders"] == 4
    assert ret.refused == "orders"  # the agent shows the alarm while this holds
    w.clock.advance(3600)
    ret.run(w.snap())
    assert len(w.events("retention_refused")) == 1  # one event a day, not one a pass
    w.clock.advance(DAY)
    ret.run(w.snap())
    assert len(w.events("retention_refused")) == 2


def test_command_ids_outlive_any_command_they_could_accept(tmp_path: Path) -> None:
    w, ret = rig(tmp_path, min_rows=0, max_fraction=1.0)
    now = w.clock.wall()
    w.store.record_command("old", "unlock", received_at=now, expires_at=now + 600, state="done")
    w.store.record_command(
        "future", "unlock", received_at=now, expires_at=now + 30 * DAY, state="refused"
    )
    w.store.record_command("waiting", "unlock", received_at=now, expires_at=now, state="pending")
    ret.run(w.snap())
    w.clock.advance(7 * DAY)  # exactly the memory: still remembered
    ret.run(w.snap())
    assert w.store.get_command("old") is not None
    w.clock.advance(601)
    ret.run(w.snap())
    assert w.store.get_command("old") is None
    assert w.store.get_command("future") is not None  # its expiry is what counts
    assert w.store.get_command("waiting") is not None  # never one the door may run


def test_make_room_frees_only_what_may_be_lost(tmp_path: Path) -> None:
    w, ret = rig(tmp_path)
    w.add("ACTIVE", "001", expires_in=365 * DAY)
    for i in range(300):
        w.audit.record("door_opened", w.snap(), detail={"i": i})
        w.store.append_log(w.clock.wall(), "INFO", "t", f"line {i}")
    acked = w.store.last_seq() - 50
    w.store.mark_events_acked(list(range(1, acked + 1)), w.clock.wall())
    w.store.mark_logs_acked(list(range(1, 101)))
    counts = ret.make_room(w.snap(), target=1 << 60)  # a card that can never be roomy enough
    assert counts == {"logs": 100, "events": acked}
    assert w.store.logs_outbox_size() == 200  # not-uploaded records stay
    assert w.store.outbox_size() == 50 + 1  # unacked events stay (and the retention event)
    assert w.store.get_order("ACTIVE") is not None
    report = verify_trail(w.store)
    assert report.ok and "freed to make room on a full card" in report.lines()[0]
    assert w.events("retention")[-1]["detail"]["reason"] == "disk_full"


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("advance"), st.floats(0, 40 * DAY)),
            st.tuples(st.just("step"), st.floats(-400 * DAY, 400 * DAY)),
            st.tuples(st.just("sync"), st.booleans()),
            # far enough from the wall never to confirm it (kiosk.clock's rule)
            st.tuples(st.just("signed"), st.floats(600, 3 * DAY)),
            st.tuples(st.just("pass"), st.just(0.0)),
        ),
        max_size=40,
    )
)
@example(
    [
        ("sync", False),
        ("pass", 0.0),
        ("step", 300 * DAY),
        ("advance", 3600.0),
        ("pass", 0.0),
        ("signed", 2 * DAY),
        ("advance", 2 * DAY),
        ("pass", 0.0),
    ]
)
def test_no_clock_trick_deletes_an_active_order_or_an_unacked_event(
    tmp_path_factory: object, ops: list[tuple[str, float]]
) -> None:
    """The adversary moves the wall clock while it is untrusted and feeds
    signed times; NTP (``sync True``) only ever reports the true time."""
    tmp = tmp_path_factory.mktemp("ret")  # type: ignore[attr-defined]
    clock = FakeClock()
    w = World(tmp / "k.db", clock=clock)
    w.tclock = TrustedClock(clock, synced=True)
    ret = Retention(w.store, w.audit, RetentionPolicy(min_rows=0, max_fraction=1.0), boot="b")
    start_wall, start_mono = clock.wall(), clock.monotonic()
    for i in range(6):
        w.add(f"A-{i}", f"{i:03d}", expires_in=(i + 1) * 10 * DAY)
    w.audit.record("boot", w.snap())
    synced = True
    for op, x in ops:
        truth = start_wall + clock.monotonic() - start_mono
        if op == "advance":
            clock.advance(x)
        elif op == "step" and not synced:
            clock.step_wall(x)
        elif op == "sync":
            if x:
                clock.step_wall(truth - clock.wall())  # NTP tells the truth
            synced = bool(x)
            w.tclock.set_synced(synced)
        elif op == "signed":
            w.tclock.observe_signed(clock.wall() + x)
        elif op == "pass":
            ret.run(w.snap())
        truth = start_wall + clock.monotonic() - start_mono
        for i in range(6):
            expires = start_wall + (i + 1) * 10 * DAY
            if w.store.get_order(f"A-{i}") is None:
                # only an order long past its expiry in true time may have gone
                assert truth > expires + DAY, (i, truth - expires)
        # nothing was acknowledged, so no event may have gone
        assert w.store.first_unacked_seq() == 1
        assert w.store.outbox_size() == w.store.count_events()
    assert all(o.status in ACTIVE_STATUSES for o in w.store.list_orders())


def test_a_purged_order_is_not_brought_back_by_its_older_document(tmp_path: Path) -> None:
    """A collected order forgotten by retention keeps a tombstone: its captured
    ``ready`` version, replayed by anyone who may publish, is ignored (and the
    code stays refused); the tombstone itself goes after its own memory."""
    w, ret = rig(tmp_path, min_rows=0, max_fraction=1.0)
    ready = w.add("OLD", "001")
    w.intake.accept(w.doc("OLD", "001", version=2, status="collected"), w.snap(), source="t")
    ret.run(w.snap())
    w.clock.advance(100 * DAY)
    assert ret.run(w.snap()).counts["orders"] == 1
    assert w.intake.accept(ready, w.snap(), source="replay").outcome == "ignored"
    assert w.store.get_order("OLD") is None
    code = "001" + pyotp.TOTP(ready["otp"]["secret"]).at(w.clock.wall())
    assert w.engine.check(code, w.snap()).reason == "unknown_number"
    w.clock.advance(ret.policy.tombstone_memory_s + DAY)
    ret.run(w.snap())
    assert w.store.forgotten_version("order", "OLD") is None
