"""Failed-entry throttling, persisted in the store so it survives restarts.

Limits (RFC 4226 section 7.3, NIST SP 800-63B), in two tiers by how much of
the code was typed:

- **short entries** (the usual: pickup number + the last 6 digits of the
  code): ``number_free_failures`` failures in a row per pickup number are
  free (a customer who mistypes twice still gets in at the third try), then
  each further attempt waits ``number_base_s`` doubling up to
  ``number_max_s``; and for the keypad as a whole a token bucket of
  ``keypad_burst`` failures refilled by one every ``keypad_refill_s``.
- **full entries** (pickup number + all 8 digits): a bucket of its own,
  ``full_code_burst`` refilled every ``full_code_refill_s``, and no
  per-number wait. A full guess is 100 times less likely to succeed, so this
  tier can refill every few minutes at the same guessing bound.

When the short tier is spent (a vandal typed garbage, or someone guessed at
one pickup number), a customer whose order has an 8-digit code is asked for
all 8 digits instead of being told to wait an hour. ``kiosk security``
computes both the guessing bound and how long a vandal can keep customers
out (docs/protocol.md, "Throttling").

Time is the trusted clock's ``now``, passed in. It can move back: a wall
clock that ran ahead (a bad NTP answer, an RTC glitch) and was corrected, or
the owner lowering a floor that was too far ahead. A row written at a time
the clock no longer believes is rebased to now (:meth:`Throttle.rebase`, which
the door runs every minute, and on reading it): its wait counts again from
now, never for the length of the jump, and its bucket refills from now.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiosk.config import ThrottleConfig
from kiosk.store import Store, ThrottleRow

KEYPAD = "keypad"
FULL = "keypad_full"
NUMBER_DECAY_S = 86400.0


def _number_key(pickup_no: str) -> str:
    return f"no:{pickup_no}"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    wait_s: float
    scope: str = ""  # "keypad", "full" or "number" when not allowed


class Throttle:
    def __init__(self, store: Store, cfg: ThrottleConfig) -> None:
        self.store = store
        self.cfg = cfg

    def _row(self, key: str, now: float) -> ThrottleRow | None:
        """The row, rebased to ``now`` (and saved so) if it was written later than now."""
        row = self.store.get_throttle(key)
        if row is None or row.updated <= now:
            return row
        wait = max(0.0, row.until - row.updated)  # the wait it was given, from now
        rebased = ThrottleRow(
            row.key, row.failures, row.tokens, now + wait if row.until else 0.0, now
        )
        self.store.put_throttle(rebased)
        return rebased

    def rebase(self, now: float) -> int:
        """Rebase every row written later than ``now``; how many were."""
        return self.store.rebase_throttle(now)

    def _bucket(self, key: str, now: float) -> float:
        burst, refill = self._params(key)
        row = self._row(key, now)
        if row is None:
            return float(burst)
        elapsed = max(0.0, now - row.updated)
        return min(float(burst), row.tokens + elapsed / refill)

    def _params(self, key: str) -> tuple[int, float]:
        if key == FULL:
            return self.cfg.full_code_burst, self.cfg.full_code_refill_s
        return self.cfg.keypad_burst, self.cfg.keypad_refill_s

    def check(self, pickup_no: str, now: float, *, full: bool = False) -> Verdict:
        """May an entry for this pickup number (of this tier) be checked now?"""
        key = FULL if full else KEYPAD
        tokens = self._bucket(key, now)
        if tokens < 1.0:
            return Verdict(False, (1.0 - tokens) * self._params(key)[1], "full" if full else KEYPAD)
        if full:
            return Verdict(True, 0.0)
        row = self._row(_number_key(pickup_no), now)
        if row is not None and now < row.until:
            return Verdict(False, row.until - now, "number")
        return Verdict(True, 0.0)

    def full_tier_open(self, now: float) -> bool:
        """Whether a full (8-digit) entry could be checked now."""
        return self._bucket(FULL, now) >= 1.0

    def number_delay(self, failures: int) -> float:
        """Wait imposed after ``failures`` consecutive failures on one number."""
        extra = failures - self.cfg.number_free_failures
        if extra < 0:
            return 0.0
        return float(min(self.cfg.number_max_s, self.cfg.number_base_s * (2.0 ** min(extra, 30))))

    def failure(self, pickup_no: str | None, now: float, *, full: bool = False) -> None:
        """Count a failed entry (one transaction)."""
        key = FULL if full else KEYPAD
        with self.store.atomic():
            tokens = self._bucket(key, now)
            self.store.put_throttle(ThrottleRow(key, 0, max(0.0, tokens - 1.0), 0.0, now))
            if pickup_no is None or full:
                return
            nkey = _number_key(pickup_no)
            row = self._row(nkey, now)
            failures = 1
            # The count only decays after a quiet day, longer than any night, so
            # waiting never buys an attacker a fresh set of free tries within the
            # night that kiosk.security bounds.
            if row is not None and now - row.updated < NUMBER_DECAY_S:
                failures = row.failures + 1
            self.store.put_throttle(
                ThrottleRow(nkey, failures, 0.0, now + self.number_delay(failures), now)
            )

    def success(self, pickup_no: str) -> None:
        """A right code clears its number's count (inside the caller's transaction)."""
        self.store.clear_throttle(_number_key(pickup_no))
