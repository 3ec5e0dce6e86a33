"""The computed bounds against a simulated attacker and a simulated vandal on the real engine."""

import random
from pathlib import Path

import pytest

from kiosk.config import Config
from kiosk.security import bound, explain
from protocol.otp import hotp
from tests.support.attacks import add_orders, attack_one_night, vandalize, world


def test_default_policy_meets_the_design_target() -> None:
    r = bound(Config(), 500)
    assert r.p_night <= 1e-4
    assert r.guesses_per_night == r.keypad_attempts  # the keypad bucket is what binds
    # a vandal who walks away keeps an 8-digit customer out at most 5 minutes
    assert r.vandal_lockout_s <= 300
    assert r.vandal_entries_per_hour >= 12
    text = explain(r, Config())
    assert "p_night = 9.42e-05" in text and "5 min with an 8-digit code" in text


def test_small_sites_are_bound_by_the_per_number_backoff() -> None:
    r = bound(Config(), 1)
    assert r.guesses_per_night == r.attempts_per_number < r.keypad_attempts


@pytest.mark.slow
def test_simulated_attacker_stays_within_the_bound(tmp_path: Path) -> None:
    # Six- and eight-digit codes make success too rare to observe, so the
    # attacker plays against two- and four-digit ones on the same engine and
    # throttle; the bound's formula is the same with D = 2 and 4.
    rng = random.Random(20261201)
    short, full, orders, nights = 2, 4, 20, 120
    report = bound(Config(), orders, digits=short, full_digits=full)
    results = [attack_one_night(tmp_path, n, short, full, orders, rng) for n in range(nights)]
    failed = [(s, f) for ok, s, f in results if not ok]
    # the attacker never got more guesses than the bound allows in either tier,
    # and nearly all of them (the last tokens arrive as the night ends)
    assert failed
    assert report.guesses_per_night - 1 <= max(s for s, _ in failed) <= report.guesses_per_night
    assert report.full_code_attempts - 1 <= max(f for _, f in failed) <= report.full_code_attempts
    rate = sum(ok for ok, _, _ in results) / nights
    sigma = (report.p_night * (1 - report.p_night) / nights) ** 0.5
    assert rate <= report.p_night + 4 * sigma
    assert rate >= report.p_night / 3  # the bound is not vacuous


def test_a_vandal_who_walks_away_keeps_an_8_digit_customer_out_at_most_5_minutes(
    tmp_path: Path,
) -> None:
    w = world(tmp_path, "vandal", 0, 6, 8)
    (order,) = add_orders(w, ["042"], 8)
    vandalize(w)
    report = bound(w.cfg, 1)

    def short_code() -> str:
        return "042" + hotp(order.otp_secret, int(w.clock.wall() // 30), 6)

    def full_code() -> str:
        return "042" + hotp(order.otp_secret, int(w.clock.wall() // 30), 8)

    # right after the vandal: the customer's usual 6 digits are refused, with
    # advice to type all 8 in a few minutes rather than to wait an hour
    first = w.engine.check(short_code(), w.snap())
    assert first.reason == "full_code_needed" and 0 < first.wait_s <= report.vandal_lockout_s
    waited = 0.0
    while not w.engine.check(full_code(), w.snap()).ok:
        w.clock.advance(10)
        waited += 10
    assert waited <= report.vandal_lockout_s
    # and the customer was told what to do, not to wait an hour
    assert w.engine.check(short_code(), w.snap()).reason == "full_code_needed"


def test_a_vandal_who_stays_must_keep_typing_all_night(tmp_path: Path) -> None:
    w = world(tmp_path, "stay", 0, 6, 8)
    (order,) = add_orders(w, ["042"], 8)
    typed = vandalize(w)
    night = w.cfg.throttle.night_hours * 3600
    start = w.clock.wall()
    # The vandal types one full garbage entry whenever a token has refilled; a
    # customer trying every minute never gets in, but only at that price.
    while w.clock.wall() - start < night:
        w.clock.advance(60)
        if w.throttle.full_tier_open(w.snap().now):
            assert w.engine.check("999" + "1" * 8, w.snap()).counted
            typed += 1
        full = "042" + hotp(order.otp_secret, int(w.clock.wall() // 30), 8)
        assert not w.engine.check(full, w.snap()).ok
    report = bound(w.cfg, 1)
    assert typed >= report.vandal_entries_per_hour * w.cfg.throttle.night_hours
