"""Staff and courier codes on the kiosk: intake of staff documents, and the check.

A staff document (:mod:`protocol.staff`) arrives retained on ``staff/{id}``,
signed by a ``hub`` or ``owner`` key; it is judged alone like an order
document (its own savepoint; any defect is that document's rejection) and
stored with its secret. At the keypad a staff code is the staff number
(one digit longer than pickup numbers) and all 8 digits of its one-time
value, so it is one digit longer than any pickup entry and never collides;
one more digit asks for an action (open, day mode on, day mode off). It is
checked offline like a pickup code: TOTP at the trusted time, one use per
step, the full-code throttle tier, its validity window and weekly hours in
the site's local time, and revocation.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from kiosk.clock import ClockSnapshot
from kiosk.errors import StoreError, ValidationError
from kiosk.orders import Intake, IntakeResult, internal_error
from kiosk.store import StaffRow, Store, staff_key
from kiosk.throttle import Throttle
from protocol.keys import DOCUMENT_ROLES
from protocol.otp import hotp
from protocol.staff import STAFF_ACTIONS, STAFF_DIGITS, Window, in_schedule, validate_staff

log = logging.getLogger(__name__)


def to_row(doc: Any, *, site: str, width: int, staff_id: str | None = None) -> StaffRow:
    s = validate_staff(doc, site=site, width=width, staff_id=staff_id)
    return StaffRow(
        staff_id=s.staff_id,
        version=s.version,
        staff_no=s.staff_no,
        name=s.name,
        role=s.role,
        valid_from=s.valid_from,
        valid_until=s.valid_until,
        schedule=[asdict(w) for w in s.schedule],
        revoked=s.revoked,
        otp_secret=s.secret,
        otp_digits=s.digits,
        otp_period=s.period,
        doc=s.public,
        updated_at=0.0,
    )


class StaffIntake:
    """Takes staff documents into the store (the sync agent and the CLI)."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self.store = intake.store

    def accept(
        self,
        doc: Any,
        clock: ClockSnapshot,
        *,
        source: str,
        staff_id: str | None = None,
        topic: str | None = None,
    ) -> IntakeResult:
        """Validate, verify and store one staff document. Raises StoreError only."""
        err: ValidationError
        try:
            with self.store.atomic():
                return self._store(self._check(doc, staff_id), clock)
        except StoreError:
            raise
        except ValidationError as exc:
            err = exc
        except Exception as exc:  # a defect met by this document: it alone is refused
            log.exception("judging a staff document failed")
            err = internal_error(exc)
        return self.intake.reject(clock, err, source=source, topic=topic)

    def _check(self, doc: Any, staff_id: str | None) -> StaffRow:
        if isinstance(doc, ValidationError):
            raise doc
        row = to_row(doc, site=self.intake.site, width=self.intake.width, staff_id=staff_id)
        if "sig" in doc or not self.intake.allow_unsigned:
            self.intake.keyring.verify(doc, DOCUMENT_ROLES)
        return row

    def _store(self, row: StaffRow, clock: ClockSnapshot) -> IntakeResult:
        held = self.store.get_staff(row.staff_id)
        if held is not None and row.version <= held.version:
            return IntakeResult(
                "ignored", None, "stale_version", f"version {row.version} is not newer"
            )
        buried = None if held is not None else self.store.forgotten_version("staff", row.staff_id)
        if buried is not None and row.version <= buried:
            # An empty retained payload needs no key: without this, forgetting a
            # revoked code and replaying its older version would undo the revocation.
            return IntakeResult(
                "ignored", None, "stale_version", f"version {row.version} was forgotten"
            )
        self.store.put_staff(StaffRow(**{**row.__dict__, "updated_at": clock.now}))
        self.intake.audit.record(
            "staff_updated",
            clock,
            detail={
                "staff_id": row.staff_id,
                "version": row.version,
                "role": row.role,
                "name": row.name,
                "revoked": row.revoked,
            },
        )
        return IntakeResult("stored", None)

    def forget(self, staff_id: str, clock: ClockSnapshot) -> IntakeResult:
        with self.store.atomic():
            if not self.store.delete_staff(staff_id, clock.now):
                return IntakeResult("ignored", None, "unknown", "no such staff code")
            self.intake.audit.record("staff_forgotten", clock, detail={"staff_id": staff_id})
        return IntakeResult("forgotten", None)


@dataclass(frozen=True)
class StaffDecision:
    ok: bool
    reason: str = ""
    staff: StaffRow | None = None
    step: int | None = None
    action: str = "open"  # open | day_on | day_off
    wait_s: float = 0.0


class StaffCheck:
    """Judges a staff entry (pure given the store; the time passed in)."""

    def __init__(
        self,
        store: Store,
        throttle: Throttle,
        *,
        width: int,
        window: int,
        local: Callable[[float], datetime],
    ) -> None:
        self.store = store
        self.throttle = throttle
        self.no_len = width + 1
        self.window = window
        self.local = local

    def lengths(self) -> tuple[int, int]:
        """Entry lengths: the staff code, and the staff code with an action digit."""
        n = self.no_len + STAFF_DIGITS
        return n, n + 1

    def check(self, entry: str, clock: ClockSnapshot) -> StaffDecision:
        now = clock.now
        staff_no = entry[: self.no_len]
        value = entry[self.no_len : self.no_len + STAFF_DIGITS]
        extra = entry[self.no_len + STAFF_DIGITS :]
        action = STAFF_ACTIONS.get(extra or "1")
        if action is None:
            return StaffDecision(False, "bad_length")
        verdict = self.throttle.check(staff_no, now, full=True)
        if not verdict.allowed:
            return StaffDecision(False, "throttled", wait_s=verdict.wait_s)
        for staff in self.store.staff_by_no(staff_no):
            step = self._match(staff, value, now)
            if step is not None:
                return self._judge(staff, step, action, clock)
        self.throttle.failure(staff_no, now, full=True)
        return StaffDecision(False, "wrong_code" if clock.trusted else "clock_untrusted")

    def _match(self, staff: StaffRow, value: str, now: float) -> int | None:
        current = int(now // staff.otp_period)
        for step in sorted(
            range(current - self.window, current + self.window + 1),
            key=lambda s: abs(s - current),
        ):
            if step >= 0 and hmac.compare_digest(hotp(staff.otp_secret, step, STAFF_DIGITS), value):
                return step
        return None

    def _judge(
        self, staff: StaffRow, step: int, action: str, clock: ClockSnapshot
    ) -> StaffDecision:
        def refuse(reason: str) -> StaffDecision:
            return StaffDecision(False, reason, staff=staff, step=step, action=action)

        if staff.revoked:  # said first: more use to the person than "already used"
            return refuse("staff_revoked")
        at = clock.expiry_now
        if (staff.valid_from is not None and at < staff.valid_from) or (
            staff.valid_until is not None and at >= staff.valid_until
        ):
            return refuse("staff_outside_window")
        local = self.local(clock.now)
        windows = tuple(Window(tuple(w["days"]), w["start"], w["end"]) for w in staff.schedule)
        if not in_schedule(windows, local.isoweekday(), local.strftime("%H:%M")):
            return refuse("staff_outside_hours")
        if self.store.step_used(staff_key(staff.staff_id), step):
            return refuse("replayed")
        return StaffDecision(True, staff=staff, step=step, action=action)

    def commit(self, decision: StaffDecision, now: float) -> bool:
        """Record the used step inside the caller's transaction; False if taken."""
        assert decision.ok and decision.staff is not None and decision.step is not None
        return self.store.mark_step_used(staff_key(decision.staff.staff_id), decision.step, now)
