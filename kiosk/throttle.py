"""Failed-entry throttling, persisted in the store so it survives restarts.

Two limits, both needed (RFC 4226 section 7.3, NIST SP 800-63B):

- per pickup number: ``number_free_failures`` failures in a row are free (a
  customer who mistypes twice still gets in at the third try), then each
  further attempt waits ``number_base_s`` doubling up to ``number_max_s``;
  a success clears it, and so does a quiet day.
- for the keypad as a whole: a token bucket of ``keypad_burst`` failures,
  refilled by one every ``keypad_refill_s``. It bounds guesses spread over
  many pickup numbers, and so the chance of a random guess getting in
  (``kiosk security``). A vandal can exhaust it and make customers wait;
  the owner sees ``throttled`` events and can unlock remotely.

Time is the trusted clock's ``now`` (never moves back), passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiosk.config import ThrottleConfig
from kiosk.store import Store, ThrottleRow

KEYPAD = "keypad"
NUMBER_DECAY_S = 86400.0


def _number_key(pickup_no: str) -> str:
    return f"no:{pickup_no}"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    wait_s: float
    scope: str = ""  # "keypad" or "number" when not allowed


class Throttle:
    def __init__(self, store: Store, cfg: ThrottleConfig) -> None:
        self.store = store
        self.cfg = cfg

    def _bucket(self, now: float) -> float:
        row = self.store.get_throttle(KEYPAD)
        if row is None:
            return float(self.cfg.keypad_burst)
        elapsed = max(0.0, now - row.updated)
        return min(float(self.cfg.keypad_burst), row.tokens + elapsed / self.cfg.keypad_refill_s)

    def check(self, pickup_no: str, now: float) -> Verdict:
        """May an entry for this pickup number be checked now?"""
        tokens = self._bucket(now)
        if tokens < 1.0:
            return Verdict(False, (1.0 - tokens) * self.cfg.keypad_refill_s, KEYPAD)
        row = self.store.get_throttle(_number_key(pickup_no))
        if row is not None and now < row.until:
            return Verdict(False, row.until - now, "number")
        return Verdict(True, 0.0)

    def number_delay(self, failures: int) -> float:
        """Wait imposed after ``failures`` consecutive failures on one number."""
        extra = failures - self.cfg.number_free_failures
        if extra < 0:
            return 0.0
        return float(min(self.cfg.number_max_s, self.cfg.number_base_s * (2.0 ** min(extra, 30))))

    def failure(self, pickup_no: str | None, now: float) -> None:
        """Count a failed entry (one transaction)."""
        with self.store.atomic():
            tokens = self._bucket(now)
            self.store.put_throttle(ThrottleRow(KEYPAD, 0, max(0.0, tokens - 1.0), 0.0, now))
            if pickup_no is None:
                return
            key = _number_key(pickup_no)
            row = self.store.get_throttle(key)
            failures = 1
            # The count only decays after a quiet day, longer than any night, so
            # waiting never buys an attacker a fresh set of free tries within the
            # night that kiosk.security bounds.
            if row is not None and now - row.updated < NUMBER_DECAY_S:
                failures = row.failures + 1
            self.store.put_throttle(
                ThrottleRow(key, failures, 0.0, now + self.number_delay(failures), now)
            )

    def success(self, pickup_no: str) -> None:
        self.store.clear_throttle(_number_key(pickup_no))
