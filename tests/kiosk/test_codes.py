from pathlib import Path

import pyotp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.codes import match_step
from kiosk.store import OrderRow
from protocol.times import MAX_TIME
from tests.support.world import World

RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # "12345678901234567890"
RFC6238_SHA1 = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.fixture
def w(tmp_path: Path) -> World:
    return World(tmp_path / "k.db")


def code(doc: dict, t: float) -> str:
    otp = doc["otp"]
    return doc["pickup_no"] + pyotp.TOTP(
        otp["secret"], digits=otp["digits"], interval=otp["period"]
    ).at(t)


@pytest.mark.parametrize(("t", "value"), RFC6238_SHA1)
def test_rfc6238_sha1_vectors_through_the_engine(tmp_path: Path, t: int, value: str) -> None:
    from kiosk.clock import ClockSnapshot

    # The vectors' times (1970 to 2603) lie outside the times documents may
    # carry, so the engine is handed the instant directly.
    at = ClockSnapshot(now=t, wall=t, floor=t, trusted=True)
    w = World(tmp_path / "k.db")
    w.cfg = w.cfg.replace("codes", totp_window=0)
    w.engine.cfg = w.cfg.codes
    w.add(secret=RFC_SECRET, digits=8, expires_in=10**10)
    order = w.store.get_order("O-1")
    assert order is not None
    assert match_step(order, value, t, 0, backup=False) == t // 30
    if t >= MAX_TIME:
        return  # past any order's expiry: the matching above is what is tested
    d = w.engine.check("042" + value, at)
    assert d.ok and d.order_id == "O-1" and d.step == t // 30
    wrong = "042" + value[:-1] + str((int(value[-1]) + 1) % 10)
    assert w.engine.check(wrong, at).reason == "wrong_code"


def test_window_edges(w: World) -> None:
    doc = w.add()
    t = w.clock.wall()
    step = int(t // 30)
    for offset, ok in ((-2, False), (-1, True), (0, True), (1, True), (2, False)):
        c = code(doc, (step + offset) * 30 + 1)
        d = w.engine.check(c, w.snap())
        assert d.ok is ok, (offset, d)
    w.engine.cfg = w.cfg.replace("codes", totp_window=0).codes
    assert not w.engine.check(code(doc, (step - 1) * 30), w.snap()).ok


def test_replay_in_the_same_step_is_refused_even_after_restart(w: World) -> None:
    doc = w.add()
    c = code(doc, w.clock.wall())
    d = w.engine.check(c, w.snap())
    assert d.ok and w.engine.commit(d, w.clock.wall())
    w2 = World(w.path, clock=w.clock)  # a restart: same file, new objects
    again = w2.engine.check(c, w2.snap())
    assert not again.ok and again.reason == "replayed"


def test_backup_code_works_without_the_clock_and_once(w: World) -> None:
    doc = w.add(backup_code=True)
    backup = "042" + pyotp.HOTP(doc["otp"]["secret"]).at(0)
    w.clock.step_wall(-10 * 86400)  # clock way off
    w.tclock.set_synced(False)
    d = w.engine.check(backup, w.snap())
    assert d.ok and d.step == -1
    w.engine.commit(d, w.clock.wall())
    # its own advice: a backup code never changes
    assert w.engine.check(backup, w.snap()).reason == "backup_used"


def test_backup_code_refused_when_order_has_none(w: World) -> None:
    doc = w.add(backup_code=False)
    backup = "042" + pyotp.HOTP(doc["otp"]["secret"]).at(0)
    assert w.engine.check(backup, w.snap()).reason == "wrong_code"


@pytest.mark.parametrize(
    ("status", "reason"),
    [("pending_payment", "not_paid"), ("paid", "not_ready"), ("cancelled", "cancelled")],
)
def test_each_status_has_its_reason(w: World, status: str, reason: str) -> None:
    doc = w.add(status=status)
    d = w.engine.check(code(doc, w.clock.wall()), w.snap())
    assert not d.ok and d.reason == reason and d.order_id == "O-1"


def test_reentry_grace_then_already_collected(w: World) -> None:
    doc = w.add()
    row = w.store.get_order("O-1")
    w.store.put_order(
        OrderRow(
            **{
                **row.__dict__,
                "status": "collected",
                "collected_at": w.clock.wall(),
                "collected_locally": True,
            }
        )
    )
    w.clock.advance(300)
    d = w.engine.check(code(doc, w.clock.wall()), w.snap())
    assert d.ok and d.reentry
    w.clock.advance(301)
    assert w.engine.check(code(doc, w.clock.wall()), w.snap()).reason == "already_collected"


def test_expired_order(w: World) -> None:
    doc = w.add(expires_in=60)
    w.clock.advance(61)
    assert w.engine.check(code(doc, w.clock.wall()), w.snap()).reason == "expired"


def test_unknown_number_and_bad_length(w: World) -> None:
    doc = w.add()
    c = code(doc, w.clock.wall())
    assert w.engine.check("999" + c[3:], w.snap()).reason == "unknown_number"
    assert w.engine.check(c[:-1], w.snap()).reason == "bad_length"
    assert w.engine.check("", w.snap()).reason == "bad_length"


def test_untrusted_clock_explains_a_wrong_code(w: World) -> None:
    w.add()
    w.tclock.set_synced(False)
    assert w.engine.check("042000000", w.snap()).reason in ("clock_untrusted",)


def test_looks_up_only_orders_with_that_number(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(50):
        w.add(f"O-{i}", f"{i:03d}")
    seen: list[str] = []
    real = w.store.orders_by_pickup_no
    monkeypatch.setattr(w.store, "list_orders", lambda *a: pytest.fail("scanned all orders"))

    def spy(no: str) -> list[OrderRow]:
        seen.append(no)
        return real(no)

    monkeypatch.setattr(w.store, "orders_by_pickup_no", spy)
    w.engine.check("017123456", w.snap())
    assert seen == ["017"]


def test_throttle_per_number_lets_the_third_try_in_then_waits(w: World) -> None:
    doc = w.add()
    for _ in range(2):
        assert w.engine.check("042000000", w.snap()).reason == "wrong_code"
    assert w.engine.check(code(doc, w.clock.wall()), w.snap()).ok  # third try
    for _ in range(3):
        w.engine.check("042000000", w.snap())
    d = w.engine.check(code(doc, w.clock.wall()), w.snap())
    assert d.reason == "throttled" and d.wait_s == pytest.approx(60)
    w.clock.advance(60)
    assert w.engine.check(code(doc, w.clock.wall()), w.snap()).ok


def test_keypad_throttle_survives_restart(w: World) -> None:
    w.add()
    for i in range(10):
        w.engine.check(f"{100 + i:03d}000000", w.snap())
    w2 = World(w.path, clock=w.clock)
    d = w2.engine.check("042000000", w2.snap())
    assert d.reason == "throttled"
    w.clock.advance(3600)
    assert w2.engine.check("042000000", w2.snap()).reason == "wrong_code"


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entry=st.text(alphabet="0123456789*#abc \u0661", max_size=20))
def test_no_entry_crashes_the_engine(w: World, entry: str) -> None:
    d = w.engine.check(entry, w.snap())
    assert d.ok is False
    assert d.reason in ("bad_length", "unknown_number", "wrong_code", "throttled")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(a=st.integers(0, 999), b=st.integers(0, 999), offset=st.integers(-40, 40))
def test_no_code_for_one_order_opens_another(tmp_path: Path, a: int, b: int, offset: int) -> None:
    if a == b:
        return
    import tempfile

    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        w = World(Path(d) / "k.db")
        w.cfg = w.cfg.replace("throttle", keypad_burst=100)
        w.throttle.cfg = w.cfg.throttle
        doc_a = w.add("A", f"{a:03d}")
        w.add("B", f"{b:03d}")
        c = code(doc_a, w.clock.wall() + offset)
        d_b = w.engine.check(f"{b:03d}" + c[3:], w.snap())
        assert d_b.order_id != "A"
        d_a = w.engine.check(c, w.snap())
        assert d_a.order_id in (None, "A")
