"""Status and log record documents (docs/protocol.md, "Status", "Log records")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from protocol.times import format_time

DOOR = ("closed", "open")
LOCK = ("locked", "unlocked")
MODE = ("night", "day")
CLOCK = ("synced", "untrusted")


def log_record(
    site: str, seq: int, ts: float, level: str, logger: str, message: str
) -> dict[str, Any]:
    return {
        "v": 1,
        "site": site,
        "seq": seq,
        "ts": format_time(ts),
        "level": level,
        "logger": logger,
        "message": message,
    }


def offline(site: str, version: str, reason: str, ts: float | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"online": False, "site": site, "version": version, "reason": reason}
    if ts is not None:
        doc["ts"] = format_time(ts)
    return doc


def parse_status(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A received status, with only known keys of the right type (others dropped)."""
    out: dict[str, Any] = {}
    if isinstance(doc.get("online"), bool):
        out["online"] = doc["online"]
    for key, allowed in (("door", DOOR), ("lock", LOCK), ("mode", MODE), ("clock", CLOCK)):
        if doc.get(key) in allowed:
            out[key] = doc[key]
    for key in ("orders_ready", "outbox", "last_seq"):
        value = doc.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**53:
            out[key] = value
    for key in ("ts", "version", "site", "reason"):
        value = doc.get(key)
        if isinstance(value, str) and len(value) <= 100:
            out[key] = value
    alarms = doc.get("alarms")
    if isinstance(alarms, list):
        out["alarms"] = [a for a in alarms[:20] if isinstance(a, str) and len(a) <= 64]
    return out
