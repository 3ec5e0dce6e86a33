"""Times on the wire: RFC 3339 UTC, only within the plausible range.

Every time in a document is parsed here, and only times from 2020-01-01 to
2100-01-01 are taken: ``9999-12-31T23:59:59Z`` once crashed both daemons
when an event stamped with it was formatted. The range is part of the
contract (docs/protocol.md, "Time").
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

MIN_TIME = 1_577_836_800.0  # 2020-01-01T00:00:00Z
MAX_TIME = 4_102_444_800.0  # 2100-01-01T00:00:00Z

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_time(text: object) -> float:
    """RFC 3339 with a zone to Unix seconds; raises ValueError.

    Refused: anything not of the form ``YYYY-MM-DDTHH:MM:SS[.frac](Z|±hh:mm)``,
    impossible dates, and times outside [2020-01-01, 2100-01-01).
    """
    if not isinstance(text, str) or len(text) > 40 or not _RFC3339.match(text):
        raise ValueError("not an RFC 3339 time like 2026-05-12T21:04:05Z")
    value = text
    if value[-1] in "Zz":
        value = value[:-1] + "+00:00"
    try:
        t = datetime.fromisoformat(value.replace("t", "T")).timestamp()
    except ValueError:
        raise ValueError("not a real date and time") from None
    if not MIN_TIME <= t < MAX_TIME:
        raise ValueError("outside the plausible range 2020-01-01 to 2100-01-01")
    return t


def plausible(t: float) -> bool:
    return MIN_TIME <= t < MAX_TIME


def format_time(t: float) -> str:
    """Unix seconds to ``YYYY-MM-DDTHH:MM:SSZ``; clamps into the plausible range.

    Clamping (rather than raising) keeps the event writer total: the judged
    time is bounded upstream, and no formatting of a time can crash the door.
    """
    t = min(max(t, MIN_TIME), MAX_TIME - 1)
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
