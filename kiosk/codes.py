"""The pickup-code engine: pure given the store, with the time passed in.

An entry is the pickup number (W digits, the site's width) followed by a
one-time value. Only the orders holding that pickup number are looked at
(an index look-up, never a scan of every order). The value is checked as
RFC 6238 TOTP at the trusted time, within ``totp_window`` steps either
side, and, for orders with ``backup_code``, as HOTP counter 0. Each
(order, step) opens the door once.

Two forms of the value are accepted (HOTP truncation is ``mod 10^digits``,
so the short form is the tail of the full one):

- the order's full value (``otp.digits``, 6 to 8 digits), and
- for 7- and 8-digit orders, its last 6 digits: what customers type
  normally (10 key presses with a 3-digit pickup number and ``#``).

Full 8-digit entries have a throttle tier of their own (kiosk.throttle):
once short entries are throttled, a customer with an 8-digit order is asked
for all 8 digits (``full_code_needed``) instead of being made to wait.

Every outcome has its own reason (``kiosk.screens.REASONS``) so the display
can tell the customer what to do next; none carries the typed digits.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from kiosk.clock import ClockSnapshot
from kiosk.config import CodesConfig
from kiosk.store import OrderRow, Store
from kiosk.throttle import Throttle
from protocol.otp import hotp

BACKUP_STEP = -1
SHORT_DIGITS = 6
FULL_DIGITS = 8


@dataclass(frozen=True)
class Decision:
    ok: bool
    reason: str = ""  # empty when ok; else one of kiosk.screens.REASONS
    order: OrderRow | None = None
    step: int | None = None  # the matched TOTP step, or BACKUP_STEP
    reentry: bool = False
    wait_s: float = 0.0  # for throttled
    pickup_no: str | None = None
    counted: bool = False  # whether it counted as a failure for the throttle
    full: bool = False  # the entry gave all 8 digits (the full tier)

    @property
    def order_id(self) -> str | None:
        return self.order.order_id if self.order else None


def accepts(order: OrderRow, value_len: int, short: int = SHORT_DIGITS) -> bool:
    """Whether an order can be matched by a value of this length."""
    return value_len == order.otp_digits or (value_len == short and order.otp_digits > short)


def match_step(order: OrderRow, value: str, now: float, window: int, backup: bool) -> int | None:
    """The TOTP step (or BACKUP_STEP) at which ``value`` is valid, else None.

    ``value`` is the order's full value or (for longer codes) its tail.
    """
    digits = len(value)
    if digits > order.otp_digits or digits == 0:
        return None
    current = int(now // order.otp_period)
    # Current step first, so the common case costs one HMAC.
    for step in sorted(
        range(current - window, current + window + 1), key=lambda s: abs(s - current)
    ):
        if step >= 0 and hmac.compare_digest(hotp(order.otp_secret, step, digits), value):
            return step
    if (
        backup
        and order.backup_code
        and hmac.compare_digest(hotp(order.otp_secret, 0, digits), value)
    ):
        return BACKUP_STEP
    return None


class CodeEngine:
    def __init__(
        self,
        store: Store,
        cfg: CodesConfig,
        throttle: Throttle,
        *,
        width: int,
        short: int = SHORT_DIGITS,
        full: int = FULL_DIGITS,
    ) -> None:
        self.store = store
        self.cfg = cfg
        self.throttle = throttle
        self.width = width
        self.short = short
        self.full = full

    def valid_lengths(self) -> tuple[int, ...]:
        """Entry lengths (pickup number + value) the keypad may submit."""
        return tuple(self.width + d for d in range(self.short, self.full + 1))

    def check(self, entry: str, clock: ClockSnapshot) -> Decision:
        """Judge a submitted entry. Reads the store; writes only throttle failures.

        The caller commits an accepted entry (:meth:`commit`) together with
        its audit events, in one transaction, before it opens the door.
        """
        now = clock.now
        if not entry.isdigit() or not entry.isascii() or len(entry) not in self.valid_lengths():
            return Decision(False, "bad_length")
        pickup_no, value = entry[: self.width], entry[self.width :]
        full = len(value) == self.full
        verdict = self.throttle.check(pickup_no, now, full=full)
        if not verdict.allowed:
            if not full:
                wait = self._full_code_wait(pickup_no, now)
                if wait is not None and wait < verdict.wait_s:
                    return Decision(False, "full_code_needed", wait_s=wait, pickup_no=pickup_no)
            return Decision(False, "throttled", wait_s=verdict.wait_s, pickup_no=pickup_no)
        candidates = [
            o
            for o in self.store.orders_by_pickup_no(pickup_no)
            if accepts(o, len(value), self.short)
        ]
        if not candidates:
            self.throttle.failure(pickup_no, now, full=full)
            return Decision(False, "unknown_number", pickup_no=pickup_no, counted=True, full=full)
        for order in candidates:
            step = match_step(order, value, now, self.cfg.totp_window, self.cfg.backup_codes)
            if step is None:
                continue
            return self._judge(order, step, clock, pickup_no, full)
        self.throttle.failure(pickup_no, now, full=full)
        reason = "wrong_code" if clock.trusted else "clock_untrusted"
        return Decision(False, reason, pickup_no=pickup_no, counted=True, full=full)

    def _full_code_wait(self, pickup_no: str, now: float) -> float | None:
        """A throttled short entry: how soon all 8 digits would be checked instead
        (0: now), or None when no order of this number has a full-length code."""
        if not any(o.otp_digits == self.full for o in self.store.orders_by_pickup_no(pickup_no)):
            return None
        verdict = self.throttle.check(pickup_no, now, full=True)
        return 0.0 if verdict.allowed else verdict.wait_s

    def _judge(
        self, order: OrderRow, step: int, clock: ClockSnapshot, pickup_no: str, full: bool
    ) -> Decision:
        def refuse(reason: str) -> Decision:
            return Decision(False, reason, order=order, step=step, pickup_no=pickup_no, full=full)

        now = clock.now
        if self.store.step_used(order.order_id, step):
            return refuse("backup_used" if step == BACKUP_STEP else "replayed")
        if order.expires_at is not None and clock.expiry_now >= order.expires_at:
            return refuse("expired")
        if order.status == "pending_payment":
            return refuse("not_paid")
        if order.status == "paid":
            return refuse("not_ready")
        if order.status == "cancelled":
            return refuse("cancelled")
        reentry = False
        if order.status == "collected":
            since = order.collected_at
            # A collection stamped later than now (the clock ran ahead and was put
            # back) is no re-entry: the grace would otherwise last the jump's length.
            if since is None or not 0.0 <= now - since < self.cfg.reentry_grace_s:
                return refuse("already_collected")
            reentry = True
        return Decision(
            True, order=order, step=step, reentry=reentry, pickup_no=pickup_no, full=full
        )

    def commit(self, decision: Decision, now: float) -> bool:
        """Record the accepted (order, step) and clear its number's failures,
        inside the caller's transaction; False if another entry took the step first."""
        assert decision.ok and decision.order is not None and decision.step is not None
        if not self.store.mark_step_used(decision.order.order_id, decision.step, now):
            return False
        if decision.pickup_no is not None:
            self.throttle.success(decision.pickup_no)
        return True
