"""The throttle policy's computed bound on random guessing (DESIGN.md rule 6).

An attacker who does not know a code types guesses. We assume the worst:
they know which pickup numbers are active, so every guess aims at a real
order. A guess then succeeds with probability at most k / 10^D, where D is
the fewest digits an order may have (6) and k the values accepted at once:
2 * totp_window + 1 TOTP steps, plus the backup code when enabled.

The number of guesses G in one night is bounded by both throttles:
the keypad bucket allows ``burst + night / refill`` failures, and the
per-number backoff allows ``A`` attempts per number (computed by playing the
policy greedily), so ``N * A`` over N active orders. With G = min of the two:

    p_night = 1 - (1 - k / 10^D) ** G
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from kiosk.config import Config, ThrottleConfig


def attempts_per_number(cfg: ThrottleConfig, night_s: float) -> int:
    """Attempts a patient attacker gets on one pickup number in one night."""
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
    p_night: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bound(cfg: Config, orders: int, *, digits: int = 6) -> SecurityReport:
    night_s = cfg.throttle.night_hours * 3600
    k = 2 * cfg.codes.totp_window + 1 + (1 if cfg.codes.backup_codes else 0)
    p_guess = min(1.0, k / 10**digits)
    per_number = attempts_per_number(cfg.throttle, night_s)
    keypad = keypad_attempts(cfg.throttle, night_s)
    guesses = min(keypad, max(0, orders) * per_number)
    p_night = -math.expm1(guesses * math.log1p(-p_guess)) if p_guess < 1 else float(guesses > 0)
    return SecurityReport(
        orders=orders,
        digits=digits,
        accepted_values=k,
        p_guess=p_guess,
        night_hours=cfg.throttle.night_hours,
        keypad_attempts=keypad,
        attempts_per_number=per_number,
        guesses_per_night=guesses,
        p_night=p_night,
    )


def explain(report: SecurityReport, cfg: Config) -> str:
    t = cfg.throttle
    return "\n".join(
        [
            f"Policy ({cfg.source}):",
            f"  per pickup number: {t.number_free_failures} free failures, then waits from "
            f"{t.number_base_s:g} s doubling to {t.number_max_s:g} s",
            f"  whole keypad: {t.keypad_burst} failures at once, then one more every "
            f"{t.keypad_refill_s:g} s",
            f"  codes: {report.accepted_values} values accepted at once "
            f"(TOTP window ±{cfg.codes.totp_window}"
            f"{', plus backup code' if cfg.codes.backup_codes else ''}), at least "
            f"{report.digits} digits",
            f"In one {report.night_hours:g}-hour night with {report.orders} active orders:",
            f"  at most {report.guesses_per_night} guesses (keypad limit {report.keypad_attempts}, "
            f"{report.attempts_per_number} per number)",
            f"  each succeeds with probability at most {report.p_guess:.1e}",
            f"  p_night = {report.p_night:.2e}  (chance that random guessing opens the door)",
        ]
    )
