"""The pickup-code engine: pure given the store, with the time passed in.

An entry of W + D digits (W = the site's pickup-number width, D = the
order's ``otp.digits``) is split into a pickup number and a one-time value.
Only the orders holding that pickup number are looked at (an index look-up,
never a scan of every order). The value is checked as RFC 6238 TOTP at the
trusted time, within ``totp_window`` steps either side, and, for orders with
``backup_code``, as HOTP counter 0. Each (order, step) opens the door once.

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
PROTOCOL_DIGITS = (6, 7, 8)


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

    @property
    def order_id(self) -> str | None:
        return self.order.order_id if self.order else None


def match_step(order: OrderRow, value: str, now: float, window: int, backup: bool) -> int | None:
    """The TOTP step (or BACKUP_STEP) at which ``value`` is valid, else None."""
    digits = order.otp_digits
    if len(value) != digits:
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
        digits: tuple[int, ...] = PROTOCOL_DIGITS,
    ) -> None:
        self.store = store
        self.cfg = cfg
        self.throttle = throttle
        self.width = width
        self.digits = digits

    def valid_lengths(self) -> tuple[int, ...]:
        return tuple(self.width + d for d in self.digits)

    def check(self, entry: str, clock: ClockSnapshot) -> Decision:
        """Judge a submitted entry. Reads the store; writes only throttle state.

        The caller commits the accepted step (``mark_used``) together with its
        audit events before it opens the door.
        """
        now = clock.now
        if not entry.isdigit() or not entry.isascii() or len(entry) not in self.valid_lengths():
            return Decision(False, "bad_length")
        pickup_no, value = entry[: self.width], entry[self.width :]
        verdict = self.throttle.check(pickup_no, now)
        if not verdict.allowed:
            return Decision(False, "throttled", wait_s=verdict.wait_s, pickup_no=pickup_no)
        candidates = [
            o for o in self.store.orders_by_pickup_no(pickup_no) if o.otp_digits == len(value)
        ]
        if not candidates:
            self.throttle.failure(pickup_no, now)
            return Decision(False, "unknown_number", pickup_no=pickup_no, counted=True)
        for order in candidates:
            step = match_step(order, value, now, self.cfg.totp_window, self.cfg.backup_codes)
            if step is None:
                continue
            return self._judge(order, step, now, pickup_no)
        self.throttle.failure(pickup_no, now)
        reason = "wrong_code" if clock.trusted else "clock_untrusted"
        return Decision(False, reason, pickup_no=pickup_no, counted=True)

    def _judge(self, order: OrderRow, step: int, now: float, pickup_no: str) -> Decision:
        def refuse(reason: str) -> Decision:
            return Decision(False, reason, order=order, step=step, pickup_no=pickup_no)

        if self.store.step_used(order.order_id, step):
            return refuse("replayed")
        if order.expires_at is not None and now >= order.expires_at:
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
            if since is None or now - since >= self.cfg.reentry_grace_s:
                return refuse("already_collected")
            reentry = True
        self.throttle.success(pickup_no)
        return Decision(True, order=order, step=step, reentry=reentry, pickup_no=pickup_no)

    def mark_used(self, decision: Decision, now: float) -> bool:
        """Record the accepted (order, step); False if another entry took it first."""
        assert decision.ok and decision.order is not None and decision.step is not None
        return self.store.mark_step_used(decision.order.order_id, decision.step, now)
