"""The throttle policy's computed bounds (docs/design.md, rule 6).

**Guessing.** An attacker who does not know a code types guesses. We assume
the worst: they know which pickup numbers are active, so every guess aims at
a real order. A guess then succeeds with probability at most k / 10^D, where
D is the number of digits typed and k the values accepted at once:
2 * totp_window + 1 TOTP steps, plus the backup code when enabled.

Guesses come in two tiers (kiosk.throttle). Short guesses (D = 6) are
bounded by both the keypad bucket (``burst + night / refill``) and the
per-number backoff (``A`` attempts per number, computed by playing the
policy greedily, so ``N * A`` over N active orders): G_short is the smaller.
Full guesses (D = 8) are bounded by their own bucket: G_full =
``full_code_burst + night / full_code_refill_s``. Then

    p_night = 1 - (1 - k / 10^6) ** G_short * (1 - k / 10^8) ** G_full

Staff and courier codes are typed in full (a staff number and all 8
digits) and share the full tier's bucket, each guess at one accepting
at most 2 * totp_window + 1 <= k values: the bound holds with them, and
``staff`` only records how many were counted.

**Availability.** A vandal who types garbage until both buckets are empty
and walks away keeps a customer with an 8-digit code out for at most
``full_code_refill_s`` (one full token refills; the short tier's refusal
asks for all 8 digits instead of a wait), and one with a shorter code for at
most ``keypad_refill_s``. A vandal who stays must type a full-length entry
at least every ``full_code_refill_s`` all night to keep the door shut.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from kiosk.config import Config, ThrottleConfig


def attempts_per_number(cfg: ThrottleConfig, night_s: float) -> int:
    """Short attempts a patient attacker gets on one pickup number in one night."""
    t, failures, attempts = 0.0, 0, 0
    while t <= night_s:
        attempts += 1
        failures += 1
        extra = failures - cfg.number_free_failures
        delay = (
            0.0 if extra < 0 else min(cfg.number_max_s, cfg.number_base_s * 2.0 ** min(extra, 30))
        )
        t += delay
        if attempts > 10_000_000:  # pragma: no cover - only with absurd configs
            break
    return attempts


def keypad_attempts(cfg: ThrottleConfig, night_s: float) -> int:
    return int(cfg.keypad_burst + night_s // cfg.keypad_refill_s)


def full_code_attempts(cfg: ThrottleConfig, night_s: float) -> int:
    return int(cfg.full_code_burst + night_s // cfg.full_code_refill_s)


def _p_any(p: float, n: int) -> float:
    """1 - (1 - p)^n, accurately for tiny p."""
    if n <= 0:
        return 0.0
    return -math.expm1(n * math.log1p(-p)) if p < 1 else 1.0


@dataclass(frozen=True)
class SecurityReport:
    orders: int
    digits: int
    accepted_values: int
    p_guess: float
    night_hours: float
    keypad_attempts: int
    attempts_per_number: int
    guesses_per_night: int
    full_digits: int
    p_guess_full: float
    full_code_attempts: int
    p_night_short: float
    p_night_full: float
    p_night: float
    vandal_lockout_s: float
    vandal_lockout_short_s: float
    vandal_entries_per_hour: float
    staff: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bound(
    cfg: Config, orders: int, *, digits: int = 6, full_digits: int = 8, staff: int = 0
) -> SecurityReport:
    t = cfg.throttle
    night_s = t.night_hours * 3600
    k = 2 * cfg.codes.totp_window + 1 + (1 if cfg.codes.backup_codes else 0)
    p_guess = min(1.0, k / 10**digits)
    p_full = min(1.0, k / 10**full_digits)
    per_number = attempts_per_number(t, night_s)
    keypad = keypad_attempts(t, night_s)
    guesses = min(keypad, max(0, orders) * per_number)
    full = full_code_attempts(t, night_s) if orders + staff > 0 else 0
    p_short_night = _p_any(p_guess, guesses)
    p_full_night = _p_any(p_full, full)
    p_night = 1.0 - (1.0 - p_short_night) * (1.0 - p_full_night)
    return SecurityReport(
        orders=orders,
        digits=digits,
        accepted_values=k,
        p_guess=p_guess,
        night_hours=t.night_hours,
        keypad_attempts=keypad,
        attempts_per_number=per_number,
        guesses_per_night=guesses,
        full_digits=full_digits,
        p_guess_full=p_full,
        full_code_attempts=full,
        p_night_short=p_short_night,
        p_night_full=p_full_night,
        p_night=p_night,
        vandal_lockout_s=t.full_code_refill_s,
        vandal_lockout_short_s=t.keypad_refill_s,
        vandal_entries_per_hour=3600.0 / t.full_code_refill_s,
        staff=staff,
    )


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def explain(report: SecurityReport, cfg: Config) -> str:
    t = cfg.throttle
    return "\n".join(
        [
            f"Policy ({cfg.source}):",
            f"  per pickup number: {t.number_free_failures} free failures, then waits from "
            f"{t.number_base_s:g} s doubling to {t.number_max_s:g} s",
            f"  whole keypad: {t.keypad_burst} failures at once, then one more every "
            f"{t.keypad_refill_s:g} s",
            f"  full {report.full_digits}-digit codes: {t.full_code_burst} at once, then one more "
            f"every {t.full_code_refill_s:g} s",
            f"  codes: {report.accepted_values} values accepted at once "
            f"(TOTP window ±{cfg.codes.totp_window}"
            f"{', plus backup code' if cfg.codes.backup_codes else ''})",
            f"Guessing, in one {report.night_hours:g}-hour night with {report.orders} active "
            f"orders and {report.staff} staff codes:",
            f"  at most {report.guesses_per_night} short guesses ({report.digits} digits; keypad "
            f"limit {report.keypad_attempts}, {report.attempts_per_number} per number), each "
            f"succeeding with probability at most {report.p_guess:.1e}",
            f"  at most {report.full_code_attempts} full guesses ({report.full_digits} digits, "
            f"staff codes included), each at most {report.p_guess_full:.1e}",
            f"  p_night = {report.p_night:.2e}  (chance that random guessing opens the door)",
            "A vandal who empties the limits and walks away keeps customers out for at most:",
            f"  {_duration(report.vandal_lockout_s)} with an {report.full_digits}-digit code "
            "(the kiosk asks for all digits)",
            f"  {_duration(report.vandal_lockout_short_s)} with a shorter code",
            f"To keep the door shut a vandal must type {report.vandal_entries_per_hour:g} full "
            "codes an hour, all night.",
        ]
    )
