"""The staff document (docs/protocol.md, "Staff and courier codes"): validation.

A code for a person, not an order: the owner coming in early, a courier
restocking, a cleaner. Published retained on ``staff/{staff_id}``, signed
by a ``hub`` or ``owner`` key; an empty retained payload forgets it, and
``"revoked": true`` (a newer version) stops it at once.

At the keypad a staff code never collides with a pickup code: it is the
staff number (one digit longer than the site's pickup numbers) followed by
all 8 digits of the one-time value, so it is one digit longer than the
longest pickup entry. One more digit after it asks for an action:
``STAFF_ACTIONS``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from protocol.canonical import check_value
from protocol.errors import ValidationError
from protocol.orders import int_field, text_field, time_field, validate_secret
from protocol.times import format_time, parse_time, plausible
from protocol.topics import ID_RE, valid_site

ROLES = ("staff", "courier")
STAFF_DIGITS = 8
MAX_SCHEDULE = 14
_HHMM = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])\Z")
#: the digit after a staff code, before #: what it asks the door to do
STAFF_ACTIONS = {"1": "open", "7": "day_on", "0": "day_off"}
#: the action -> its digit (what the owner's tools tell the person)
ACTION_KEYS = {v: k for k, v in STAFF_ACTIONS.items()}
DAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
_HOURS = re.compile(
    r"^(?P<d1>[a-z]{3})(?:-(?P<d2>[a-z]{3}))?\s+(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})\Z"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")


def fail(reason: str, message: str) -> ValidationError:
    return ValidationError(reason, message)


@dataclass(frozen=True)
class Window:
    """Weekly hours: ISO weekdays (1 = Monday) and a local time span."""

    days: tuple[int, ...]
    start: str  # "HH:MM"
    end: str  # "HH:MM", may be "24:00"; a span past midnight ends the next day


@dataclass(frozen=True)
class Staff:
    staff_id: str
    version: int
    issued_at: float
    staff_no: str
    name: str
    role: str
    valid_from: float | None
    valid_until: float | None
    schedule: tuple[Window, ...]
    revoked: bool
    secret: str
    digits: int
    period: int
    public: dict[str, Any]


def _hhmm(value: Any, name: str) -> str:
    """``until`` may be 24:00 (the end of the day); ``from`` may not: a window
    "from 24:00" would be the next day's, written on the wrong day."""
    latest = "24:00" if name == "until" else "23:59"
    if (
        not isinstance(value, str)
        or not _HHMM.match(value)
        or (value.startswith("24") and value != "24:00")
        or value > latest
    ):
        raise fail("bad_schedule", f"{name} must be a time of day as HH:MM (00:00 to {latest})")
    return value


def _schedule(value: Any) -> tuple[Window, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_SCHEDULE:
        raise fail("bad_schedule", f"schedule must be a list of at most {MAX_SCHEDULE} windows")
    out = []
    for w in value:
        if not isinstance(w, dict):
            raise fail("bad_schedule", "each schedule window is an object: days, from, until")
        days = w.get("days")
        if (
            not isinstance(days, list)
            or not 1 <= len(days) <= 7
            or any(isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= 7 for d in days)
        ):
            raise fail("bad_schedule", "days must list ISO weekdays, 1 (Monday) to 7 (Sunday)")
        out.append(
            Window(
                tuple(sorted(set(days))),
                _hhmm(w.get("from"), "from"),
                _hhmm(w.get("until"), "until"),
            )
        )
    return tuple(out)


def validate_staff(doc: Any, *, site: str, width: int, staff_id: str | None = None) -> Staff:
    """Check a staff document's shape and values (not its signature).

    ``width`` is the site's pickup-number width: staff numbers are one digit
    longer. Raises ValidationError; the message never contains the secret.
    """
    if not isinstance(doc, dict):
        raise fail("malformed", "a staff document must be a JSON object")
    check_value(doc)
    v = doc.get("v")
    if isinstance(v, bool) or not isinstance(v, int) or v != 1:
        raise fail("bad_v", "v must be the integer 1")
    if not valid_site(doc.get("site")) or doc.get("site") != site:
        raise fail("wrong_site", f"site must be {site!r}")
    sid = doc.get("staff_id")
    if not isinstance(sid, str) or not ID_RE.match(sid):
        raise fail("bad_staff_id", "staff_id must match [A-Za-z0-9_.-]{1,64}")
    if staff_id is not None and sid != staff_id:
        raise fail("staff_id_mismatch", "staff_id differs from the topic's")
    version = int_field(doc.get("version"), "version", "bad_version", 1, 2**53)
    issued = time_field(doc.get("issued_at"), "issued_at", "bad_issued_at")
    assert issued is not None
    no = doc.get("staff_no")
    if not isinstance(no, str) or len(no) != width + 1 or not (no.isascii() and no.isdigit()):
        raise fail("bad_staff_no", f"staff_no must be a string of exactly {width + 1} digits")
    name = text_field(doc.get("name"), "name", "bad_name", max_len=64) or ""
    role = doc.get("role")
    if role not in ROLES:
        raise fail("bad_role", "role must be one of " + ", ".join(ROLES))
    valid_from = time_field(doc.get("valid_from"), "valid_from", "bad_valid_from", optional=True)
    valid_until = time_field(
        doc.get("valid_until"), "valid_until", "bad_valid_until", optional=True
    )
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise fail("bad_valid_until", "valid_until must be after valid_from")
    schedule = _schedule(doc.get("schedule"))
    revoked = doc.get("revoked", False)
    if not isinstance(revoked, bool):
        raise fail("bad_revoked", "revoked must be true or false")
    otp = doc.get("otp")
    if not isinstance(otp, dict):
        raise fail("bad_otp", "otp must be an object with secret, digits and period")
    secret = validate_secret(otp.get("secret"))
    digits = int_field(
        otp.get("digits", STAFF_DIGITS), "otp.digits", "bad_otp_digits", STAFF_DIGITS, STAFF_DIGITS
    )
    period = int_field(otp.get("period", 30), "otp.period", "bad_otp_period", 15, 300)
    return Staff(
        staff_id=sid,
        version=version,
        issued_at=issued,
        staff_no=no,
        name=name,
        role=str(role),
        valid_from=valid_from,
        valid_until=valid_until,
        schedule=schedule,
        revoked=revoked,
        secret=secret,
        digits=digits,
        period=period,
        public={k: v for k, v in doc.items() if k not in ("sig", "otp")},
    )


def in_schedule(schedule: tuple[Window, ...], weekday: int, hhmm: str) -> bool:
    """Whether a local ISO weekday and "HH:MM" fall inside one of the windows
    (an empty schedule means any time). A window whose end is not after its
    start runs past midnight into the next day."""
    if not schedule:
        return True
    prev = 7 if weekday == 1 else weekday - 1
    for w in schedule:
        end = "24:00" if w.end == "24:00" else w.end
        if w.start < end:
            if weekday in w.days and w.start <= hhmm < end:
                return True
        elif (weekday in w.days and hhmm >= w.start) or (prev in w.days and hhmm < end):
            return True  # a window past midnight
    return False


# ----- what the owner's tools (kioskctl, the hub's console) share -------------------


def parse_hours(text: str) -> dict[str, Any]:
    """``Mon-Sat 05:00-07:00`` (or ``Sun 09:00-12:00``, ``Sat-Mon 22:00-02:00``)
    to a schedule window; raises ValidationError (``bad_schedule``)."""
    m = _HOURS.match(text.strip().lower())
    if not m or m["d1"] not in DAYS or (m["d2"] and m["d2"] not in DAYS):
        raise fail("bad_schedule", "expected days and a time span like 'Mon-Sat 05:00-07:00'")
    first, last = DAYS[m["d1"]], DAYS[m["d2"] or m["d1"]]
    days = (
        list(range(first, last + 1)) if first <= last else [*range(first, 8), *range(1, last + 1)]
    )
    return {"days": days, "from": _hhmm(m["start"], "from"), "until": _hhmm(m["end"], "until")}


def parse_schedule(texts: Sequence[str]) -> list[dict[str, Any]]:
    """Several :func:`parse_hours` windows (blank ones skipped), at most MAX_SCHEDULE."""
    windows = [parse_hours(t) for t in texts if t.strip()]
    if len(windows) > MAX_SCHEDULE:
        raise fail("bad_schedule", f"at most {MAX_SCHEDULE} windows of weekly hours")
    return windows


def parse_when(text: str, tz: tzinfo = UTC) -> float:
    """An RFC 3339 time, or a date ``YYYY-MM-DD`` (its midnight in ``tz``);
    raises ValidationError (``bad_time``). ``tz`` is passed in: no zone files
    are read here."""
    value = text.strip()
    try:
        if not _DATE.match(value):
            return parse_time(value)
        t = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=tz).timestamp()
    except ValueError as exc:
        raise fail("bad_time", f"expected a date YYYY-MM-DD or an RFC 3339 time ({exc})") from None
    if not plausible(t):
        raise fail("bad_time", "outside the plausible range 2020-01-01 to 2100-01-01")
    return t


def staff_document(
    *,
    site: str,
    staff_id: str,
    staff_no: str,
    name: str,
    role: str,
    secret: str,
    issued_at: float,
    version: int = 1,
    valid_from: float | None = None,
    valid_until: float | None = None,
    schedule: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The unsigned staff document (check it with :func:`validate_staff`, then sign)."""
    doc: dict[str, Any] = {
        "v": 1,
        "site": site,
        "staff_id": staff_id,
        "version": version,
        "issued_at": format_time(issued_at),
        "staff_no": staff_no,
        "name": name,
        "role": role,
        "otp": {"secret": secret, "digits": STAFF_DIGITS, "period": 30},
    }
    if valid_from is not None:
        doc["valid_from"] = format_time(valid_from)
    if valid_until is not None:
        doc["valid_until"] = format_time(valid_until)
    if schedule:
        doc["schedule"] = [dict(w) for w in schedule]
    return doc


def revocation(doc: dict[str, Any], issued_at: float) -> dict[str, Any]:
    """The next version of a staff document, ``"revoked": true`` (unsigned).

    It keeps the secret, so the kiosk still recognises the code and refuses
    it as ``staff_revoked`` (not as a wrong code), naming the person.
    """
    new = {k: v for k, v in doc.items() if k != "sig"}
    new.update(version=int(doc["version"]) + 1, issued_at=format_time(issued_at), revoked=True)
    return new
