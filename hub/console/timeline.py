"""Tonight: a site's archived events as lines a person reads, and the raw event.

:class:`Timeline` reads the archive (the ``events`` table, through the
``events_ts`` and ``events_order`` indexes) and the kiosk's online history
(``presence``, written by the dispatcher when a retained status flips), and
turns each row into a :class:`Line`: the local time, a sentence in the
page's language (``01:12 李*云 collected order 042 (slot B3)``), a tone,
and the event's seq for the link to its raw form. Names are masked as on
the kiosk's screen. Nothing here shows an OTP secret or typed digits (the
events never hold them).

Every event in ``events`` was chain-verified when it arrived (docs/hub.md,
"Exactly once"); :meth:`Timeline.event` checks it again for the raw page.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.db import Database
from kiosk.screens import mask_name  # the console masks names as the kiosk's screen does
from protocol.canonical import decode_json_object
from protocol.events import ALARM_TYPES, ZERO_HASH, event_hash
from protocol.times import format_time, parse_time

log = logging.getLogger(__name__)

GROUPS: dict[str, frozenset[str]] = {
    "people": frozenset(
        {
            "code_accepted",
            "code_rejected",
            "throttled",
            "door_unlocked",
            "order_collected",
            "staff_entry",
            "exit_pressed",
        }
    ),
    "refused": frozenset({"code_rejected", "throttled"}),
    "alarms": ALARM_TYPES,
    "door": frozenset(
        {
            "door_unlocked",
            "door_relocked",
            "door_opened",
            "door_closed",
            "door_held_open",
            "door_forced",
            "exit_pressed",
        }
    ),
    "commands": frozenset({"command", "clock_set"}),
    "orders": frozenset({"order_updated", "order_collected", "order_cancelled", "order_forgotten"}),
}
ALARM_TONE = ALARM_TYPES | {"throttled"}
MAX_PAGE = 500


@dataclass(frozen=True)
class Line:
    at: float
    seq: int | None  # None: the kiosk's online state (seen by the hub, not a chain event)
    type: str
    order_id: str | None
    text: str
    tone: str  # ok, info, warn, alarm
    local: str  # HH:MM in the site's time zone
    day: str  # YYYY-MM-DD local
    hash: str = ""


@dataclass(frozen=True)
class Range:
    start: float
    end: float


def night_range(now: float, tz: str) -> Range:
    """Tonight's default window: from 18:00 local of the evening that began the
    current night (yesterday's when it is before 18:00) until now."""
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(now, zone)
    start = local.replace(hour=18, minute=0, second=0, microsecond=0)
    if local < start:
        start -= timedelta(days=1)
    return Range(start.timestamp(), now + 1)


def local_bounds(day_from: str, day_to: str, tz: str) -> Range:
    """Local dates (YYYY-MM-DD, inclusive) to a time range; ValueError for bad dates."""
    zone = ZoneInfo(tz)
    a = datetime.strptime(day_from, "%Y-%m-%d").replace(tzinfo=zone)
    b = datetime.strptime(day_to, "%Y-%m-%d").replace(tzinfo=zone) + timedelta(days=1)
    if b <= a:
        raise ValueError("the end date is before the start date")
    if not (2020 <= a.year <= 2099 and 2020 <= b.year <= 2100):
        raise ValueError("dates are from 2020 to 2099")
    return Range(a.timestamp(), b.timestamp())


class Timeline:
    """A site's night as lines; see the module doc. Runs on the archive thread."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record_presence(self, site: str, online: bool, now: float) -> None:
        with self.db.atomic() as c:
            last = c.execute(
                "SELECT online FROM presence WHERE site = ? ORDER BY id DESC LIMIT 1", (site,)
            ).fetchone()
            if last is None or bool(last[0]) != online:
                c.execute(
                    "INSERT INTO presence(site, at, online) VALUES (?, ?, ?)",
                    (site, now, int(online)),
                )

    def offline_since(self, site: str) -> float | None:
        row = self.db.one(
            "SELECT at, online FROM presence WHERE site = ? ORDER BY id DESC LIMIT 1", (site,)
        )
        return float(row["at"]) if row and not row["online"] else None

    def last_change(self, site: str) -> float | None:
        row = self.db.one(
            "SELECT at FROM presence WHERE site = ? ORDER BY id DESC LIMIT 1", (site,)
        )
        return float(row["at"]) if row else None

    def rows(
        self,
        site: str,
        rng: Range,
        *,
        group: str | None = None,
        order_id: str | None = None,
        limit: int | None = MAX_PAGE,
        before: tuple[str, int] | None = None,
    ) -> Iterator[sqlite3.Row]:
        """Archived events of the range, newest first (``limit`` None: all, in chunks)."""
        sql = (
            "SELECT seq, ts, type, order_id, body, hash FROM events WHERE site = ? "
            "AND ts >= ? AND ts < ?"
        )
        params: list[Any] = [site, format_time(rng.start), format_time(rng.end)]
        if group and group in GROUPS:
            types = sorted(GROUPS[group])
            sql += f" AND type IN ({','.join('?' * len(types))})"
            params += types
        if order_id:
            sql += " AND order_id = ?"
            params.append(order_id)
        cursor = before
        left = limit
        while left is None or left > 0:
            chunk = 1000 if left is None else min(1000, left)
            extra, extra_params = "", []
            if cursor is not None:
                extra = " AND (ts < ? OR (ts = ? AND seq < ?))"
                extra_params = [cursor[0], cursor[0], cursor[1]]
            rows = self.db.query(
                sql + extra + " ORDER BY ts DESC, seq DESC LIMIT ?",
                (*params, *extra_params, chunk),
            )
            yield from rows
            if len(rows) < chunk:
                return
            cursor = (str(rows[-1]["ts"]), int(rows[-1]["seq"]))
            if left is not None:
                left -= len(rows)

    def presence(self, site: str, rng: Range) -> list[sqlite3.Row]:
        return self.db.query(
            "SELECT at, online FROM presence WHERE site = ? AND at >= ? AND at < ? "
            "ORDER BY at DESC LIMIT ?",
            (site, rng.start, rng.end, MAX_PAGE),
        )

    def orders(self, site: str, order_ids: set[str]) -> dict[str, dict[str, Any]]:
        """pickup number, slot and masked name of the orders the lines name."""
        out: dict[str, dict[str, Any]] = {}
        ids = sorted(order_ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            rows = self.db.query(
                "SELECT order_id, pickup_no, slot, doc FROM orders WHERE site = ? "  # noqa: S608 - placeholders only
                f"AND order_id IN ({','.join('?' * len(part))})",
                (site, *part),
            )
            for r in rows:
                doc = json.loads(r["doc"])
                customer = doc.get("customer") or {}
                out[r["order_id"]] = {
                    "pickup_no": r["pickup_no"],
                    "slot": r["slot"] or "",
                    "name": mask_name(str(customer.get("name") or "")),
                }
        return out

    def event(self, site: str, seq: int) -> dict[str, Any] | None:
        """One archived event, its bytes, and the chain checked again around it."""
        row = self.db.one(
            "SELECT seq, body, hash, received_at, source FROM events WHERE site = ? AND seq = ?",
            (site, seq),
        )
        if row is None:
            return None
        body = bytes(row["body"])
        ev = decode_json_object(body)
        own = event_hash({k: v for k, v in ev.items() if k != "hash"}) == ev.get("hash")
        if seq == 1:
            prev_hash: str | None = ZERO_HASH
        else:
            prev = self.db.one(
                "SELECT hash FROM events WHERE site = ? AND seq = ?", (site, seq - 1)
            )
            prev_hash = str(prev["hash"]) if prev else None
        links = prev_hash is not None and ev.get("prev_hash") == prev_hash
        return {
            "event": ev,
            "body": body.decode("utf-8"),
            "pretty": json.dumps(ev, ensure_ascii=False, indent=2),
            "hash_ok": own,
            "links": links,
            "prev_known": prev_hash is not None,
            "verified": own and links,
            "received_at": format_time(float(row["received_at"])),
            "source": row["source"],
        }


def _detail(body: bytes) -> dict[str, Any]:
    try:
        d = decode_json_object(body).get("detail")
    except Exception:  # stored bytes were verified; this only guards the page
        return {}
    return d if isinstance(d, dict) else {}


def describe(
    row: Any,
    orders: Mapping[str, Mapping[str, Any]],
    t: Any,
    tz: str,
) -> Line:
    """One archived event as a sentence in the language of ``t`` (a Words).

    Every field of an event is the sender's choice (a keyless publisher can
    archive any chain of events), including the slugs that pick a sentence
    (``reason: "other"``, ``by: "other"``, ``type: "other"``): a sentence is
    always given every field it could name, and a sentence that still cannot
    be made falls back to the event's type, so one odd event never breaks a
    page (tests/console/test_hostile.py).
    """
    try:
        return _describe(row, orders, t, tz)
    except LookupError:  # hub.web.i18n.MessageError: a sentence lacks a field
        log.warning("no sentence for a %r event; shown by its type", str(row["type"])[:40])
        kind = str(row["type"])
        return _line(row, kind, t("tl.type.other", type=kind[:40], no=""), "info", tz)


def _line(row: Any, kind: str, text: str, tone: str, tz: str) -> Line:
    at = parse_time(str(row["ts"]))
    local = datetime.fromtimestamp(at, ZoneInfo(tz))
    return Line(
        at=at,
        seq=int(row["seq"]),
        type=kind,
        order_id=row["order_id"],
        text=text,
        tone=tone,
        local=local.strftime("%H:%M"),
        day=local.strftime("%Y-%m-%d"),
        hash=str(row["hash"]),
    )


def _describe(
    row: Any,
    orders: Mapping[str, Mapping[str, Any]],
    t: Any,
    tz: str,
) -> Line:
    kind = str(row["type"])
    oid = row["order_id"]
    d = _detail(bytes(row["body"]))
    o = orders.get(oid or "", {})
    no = o.get("pickup_no") or (str(d.get("pickup_no")) if d.get("pickup_no") else "")
    ref = no or (oid or "")
    name = o.get("name") or t("tl.someone")
    slot = o.get("slot") or "—"
    key = f"tl.type.{kind}"
    tone = "alarm" if kind in ALARM_TONE else "info"
    if kind == "order_collected":
        text, tone = t("tl.collected", name=name, no=ref, slot=slot), "ok"
    elif kind == "code_accepted":
        text = t("tl.accepted_backup" if d.get("kind") == "backup" else "tl.accepted", no=ref)
        tone = "ok"
    elif kind == "code_rejected":
        reason = str(d.get("reason", ""))
        rkey = f"tl.refused.{reason}"
        text = t(rkey if t.has(rkey) else "tl.refused.other", no=ref, reason=reason[:40])
        tone = "warn"
    elif kind == "throttled":
        text = t("tl.throttled", wait=d.get("wait_s", "?"))
    elif kind == "door_unlocked":
        by = str(d.get("by", ""))
        if by == "command":
            text = t(
                "tl.unlocked_command",
                account=str(d.get("account") or "?")[:64],
                reason=str(d.get("reason") or "")[:200],
            )
        elif by == "code":
            text = t("tl.unlocked_code", no=ref)
        else:
            bkey = f"tl.unlocked_by.{by}"
            text = t(bkey if t.has(bkey) else "tl.unlocked_by.other", by=by[:20])
    elif kind == "door_held_open":
        text = t("tl.held_open", s=d.get("held_s", "?"))
    elif kind == "staff_entry":
        akey = f"tl.staff_action.{d.get('action')}"
        action = t(akey) if t.has(akey) else str(d.get("action", ""))[:20]
        text = t(
            "tl.staff",
            name=mask_name(str(d.get("name", ""))[:64]),
            role=str(d.get("role", ""))[:16],
            action=action,
        )
    elif kind == "command":
        state = "ok" if d.get("ok") else "refused"
        text = t(
            f"tl.command_{state}",
            cmd=str(d.get("cmd") or "?")[:16],
            account=str(d.get("account") or d.get("key_id") or "?")[:64],
            refusal=str(d.get("refusal") or "")[:40],
        )
    elif kind == "order_updated":
        skey = f"status.{d.get('status')}"
        status = t(skey) if t.has(skey) else str(d.get("status", ""))[:20]
        text = t("tl.order_updated", no=ref, status=status)
    elif kind == "mode_changed":
        text = t("tl.mode_day" if d.get("mode") == "day" else "tl.mode_night")
    else:
        text = t(key if t.has(key) else "tl.type.other", no=ref, type=kind[:40])
    return _line(row, kind, text, tone, tz)


def presence_line(at: float, online: bool, t: Any, tz: str) -> Line:
    local = datetime.fromtimestamp(at, ZoneInfo(tz))
    return Line(
        at=at,
        seq=None,
        type="online" if online else "offline",
        order_id=None,
        text=t("tl.back_online" if online else "tl.went_offline"),
        tone="ok" if online else "warn",
        local=local.strftime("%H:%M"),
        day=local.strftime("%Y-%m-%d"),
    )
