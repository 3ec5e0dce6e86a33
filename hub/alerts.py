"""Alerts: what the owner must hear about, once per occurrence, in her language.

Two kinds of alert (docs/hub.md, "Alerts"):

- **occurrences**, raised by an event: ``door_forced``, ``door_held_open``
  (cleared when the door closes), ``store_unwritable`` (cleared by
  ``store_recovered``), ``clock_conflict``, ``store_rollback``,
  ``chain_break``, ``kiosk_alarm`` (other alarm events) and ``site_full``
  (cleared by an acknowledgement). While one is open, more of the same
  kind at the same site join it (``count``) instead of alerting again.
- **conditions**, judged every tick with hold-down timers: ``site_offline``
  (offline longer than the site's ``offline_alert_s``), ``clock_untrusted``,
  ``gap_unfilled`` (a gap older than ``alerts.gap_alert_s``) and
  ``code_guessing`` (``alerts.refused_burst`` refused codes within
  ``alerts.refused_window_s``). A condition alerts after it has held for its
  delay and clears after it has been gone for ``alerts.hold_down_s``: a
  flapping link gives one alert and one all-clear.

Each raise and each all-clear is delivered once through Apprise to every URL
in ``[alerts] urls`` (unless muted for that site and kind); delivery is
retried with backoff and never blocks the archive. The engine is pure
logic over the archive file with the time passed in (docs/design.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sqlite3
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.archive import ChainAlarm
from hub.chain import ChainState
from hub.config import Config
from hub.db import Database
from hub.errors import RequestError
from protocol.events import ALARM_TYPES
from protocol.times import format_time

log = logging.getLogger(__name__)

OCCURRENCES = (
    "door_forced",
    "door_held_open",
    "store_unwritable",
    "clock_conflict",
    "store_rollback",
    "chain_break",
    "kiosk_alarm",
    "site_full",
)
CONDITIONS = ("site_offline", "clock_untrusted", "gap_unfilled", "code_guessing")
KINDS = OCCURRENCES + CONDITIONS
#: an event that clears an open occurrence alert of these kinds
CLEARED_BY = {
    "door_closed": ("door_forced", "door_held_open"),
    "store_recovered": ("store_unwritable",),
}
#: refused-code reasons that count as a guess (docs/protocol.md, "What the customer types")
GUESS_REASONS = frozenset({"unknown_number", "wrong_code", "clock_untrusted"})
MAX_MUTE_S = 30 * 86400
DELIVERY_ATTEMPTS = 8
SEND_TIMEOUT_S = 30  # one notification, all of its URLs (a bot may never finish answering)
#: notifications (raises and all-clears) of one site and kind in FLOOD_WINDOW_S;
#: beyond, they are recorded as delivered and summed up in one message later (a
#: bouncing door contact or a hostile kiosk must not flood the owner's group chat)
FLOOD_BURST = 6
FLOOD_WINDOW_S = 3600.0
_HELD_NOTE = {
    "zh": "另有 {n} 条同类提醒在一小时内过多，未逐条发送；最新一条：",
    "en": "{n} more alerts of this kind came within the hour and were not sent one by one; "
    "the latest:",
}


def _in_daemon_thread(fn: Callable[..., bool], *args: str) -> asyncio.Future[bool]:
    """``fn(*args)`` on a daemon thread of its own: unlike the default
    executor's threads, one that never returns does not hold up the exit."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[bool] = loop.create_future()

    def settle(value: bool | None, exc: BaseException | None) -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(bool(value))

    def work() -> None:
        try:
            value = fn(*args)
        except Exception as exc:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(settle, None, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, value, None)

    threading.Thread(target=work, name="alert-send", daemon=True).start()
    return fut


def _consume(fut: asyncio.Future[bool]) -> None:
    """Read an overrun send's outcome, so that its exception is not reported as lost."""
    if not fut.cancelled():
        fut.exception()


MESSAGES: dict[str, dict[str, tuple[str, str]]] = {
    # kind: language: (title when raised, all-clear title)
    "door_forced": {
        "zh": ("门被强行打开", "门已关闭（强行打开）"),
        "en": ("Door forced open", "Door closed again (after being forced)"),
    },
    "door_held_open": {
        "zh": ("门长时间未关", "门已关闭"),
        "en": ("Door held open", "Door closed again"),
    },
    "store_unwritable": {
        "zh": ("自提柜无法写入数据库，停止服务", "自提柜数据库已恢复"),
        "en": ("Kiosk cannot write its store: out of service", "Kiosk store writable again"),
    },
    "clock_conflict": {
        "zh": ("自提柜时钟冲突", "时钟冲突已确认"),
        "en": ("Kiosk clock conflict", "Clock conflict acknowledged"),
    },
    "store_rollback": {
        "zh": ("自提柜数据库被回滚", "数据库回滚已确认"),
        "en": ("Kiosk store was rolled back", "Store rollback acknowledged"),
    },
    "chain_break": {
        "zh": ("审计链断裂：有事件被修改或删除", "审计链断裂已确认"),
        "en": ("Audit chain broken: an event was changed or removed", "Chain break acknowledged"),
    },
    "kiosk_alarm": {
        "zh": ("自提柜报警", "自提柜报警已确认"),
        "en": ("Kiosk alarm", "Kiosk alarm acknowledged"),
    },
    "site_full": {
        "zh": ("站点存档已满，新事件未存", "站点存档已满已确认"),
        "en": ("Site archive full: new events refused", "Site archive full acknowledged"),
    },
    "site_offline": {
        "zh": ("自提柜离线", "自提柜已恢复在线"),
        "en": ("Kiosk offline", "Kiosk back online"),
    },
    "clock_untrusted": {
        "zh": ("自提柜时钟不可信", "自提柜时钟已恢复"),
        "en": ("Kiosk clock not trusted", "Kiosk clock trusted again"),
    },
    "gap_unfilled": {
        "zh": ("事件缺失未补齐", "缺失事件已补齐"),
        "en": ("Missing events not recovered", "Missing events recovered"),
    },
    "code_guessing": {
        "zh": ("大量错误取货码（可能有人在猜）", "错误取货码已减少"),
        "en": ("Many wrong pickup codes (possible guessing)", "Wrong codes back to normal"),
    },
}


@dataclass(frozen=True)
class Alert:
    id: int
    site: str
    kind: str
    state: str
    raised_at: float
    cleared_at: float | None
    acked_at: float | None
    acked_by: str | None
    detail: dict[str, Any]
    delivered: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "site": self.site,
            "kind": self.kind,
            "state": self.state,
            "raised_at": format_time(self.raised_at),
            "cleared_at": None if self.cleared_at is None else format_time(self.cleared_at),
            "acked_at": None if self.acked_at is None else format_time(self.acked_at),
            "acked_by": self.acked_by,
            "detail": self.detail,
        }


def _alert(row: sqlite3.Row) -> Alert:
    return Alert(
        id=row["id"],
        site=row["site"],
        kind=row["kind"],
        state=row["state"],
        raised_at=row["raised_at"],
        cleared_at=row["cleared_at"],
        acked_at=row["acked_at"],
        acked_by=row["acked_by"],
        detail=json.loads(row["detail"]),
        delivered=row["delivered"],
    )


class AlertBook:
    """Alerts and mutes in the archive file."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def open_alert(self, site: str, kind: str) -> Alert | None:
        row = self.db.one(
            "SELECT * FROM alerts WHERE site = ? AND kind = ? AND state = 'active' "
            "ORDER BY id DESC LIMIT 1",
            (site, kind),
        )
        return _alert(row) if row else None

    def raise_(self, site: str, kind: str, key: str, detail: Mapping[str, Any], now: float) -> bool:
        """Open an alert, or join the open one of that site and kind; True if new."""
        with self.db.atomic() as c:
            row = c.execute(
                "SELECT id, detail FROM alerts WHERE site = ? AND kind = ? AND state = 'active'",
                (site, kind),
            ).fetchone()
            if row is not None:
                merged = json.loads(row[1])
                recent = list(merged.get("recent", []))
                if key not in recent and merged.get("last_key") != key:
                    merged["count"] = int(merged.get("count", 1)) + 1
                    merged["last_key"] = key
                    merged["recent"] = [*recent, key][-20:]
                    c.execute(
                        "UPDATE alerts SET detail = ? WHERE id = ?", (json.dumps(merged), row[0])
                    )
                return False
            body = {**detail, "count": 1, "last_key": key, "recent": [key]}
            cur = c.execute(
                "INSERT OR IGNORE INTO alerts(site, kind, key, state, raised_at, detail) "
                "VALUES (?, ?, ?, 'active', ?, ?)",
                (site, kind, key, now, json.dumps(body, ensure_ascii=False)),
            )
            return cur.rowcount > 0

    def clear(self, site: str, kind: str, now: float) -> bool:
        with self.db.atomic() as c:
            cur = c.execute(
                "UPDATE alerts SET state = 'cleared', cleared_at = ? "
                "WHERE site = ? AND kind = ? AND state = 'active'",
                (now, site, kind),
            )
            return cur.rowcount > 0

    def ack(self, alert_id: int, by: str, now: float) -> Alert:
        """Acknowledge; an occurrence with no clearing event is cleared by it."""
        with self.db.atomic() as c:
            row = c.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is None:
                raise RequestError(f"no alert {alert_id}", "id", 404)
            c.execute(
                "UPDATE alerts SET acked_at = COALESCE(acked_at, ?), "
                "acked_by = COALESCE(acked_by, ?) WHERE id = ?",
                (now, by, alert_id),
            )
            if row["state"] == "active" and row["kind"] in OCCURRENCES:
                # A person saw it: no all-clear message for what they closed themselves.
                c.execute(
                    "UPDATE alerts SET state = 'cleared', cleared_at = ?, "
                    "delivered = delivered || 'c' WHERE id = ?",
                    (now, alert_id),
                )
            row = c.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return _alert(row)

    def search(
        self, *, site: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[Alert]:
        sql, params = "SELECT * FROM alerts WHERE 1=1", []
        if site is not None:
            sql += " AND site = ?"
            params.append(site)
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = self.db.query(sql, (*params, limit))
        return [_alert(r) for r in rows]

    def undelivered(self) -> list[Alert]:
        rows = self.db.query(
            "SELECT * FROM alerts WHERE (instr(delivered, 'r') = 0) "
            "OR (state = 'cleared' AND instr(delivered, 'c') = 0) ORDER BY id LIMIT 100"
        )
        return [_alert(r) for r in rows]

    def mark(self, alert_id: int, flag: str) -> None:
        with self.db.atomic() as c:
            c.execute("UPDATE alerts SET delivered = delivered || ? WHERE id = ?", (flag, alert_id))

    def mute(self, site: str, kind: str, seconds: float, now: float) -> dict[str, Any]:
        if kind not in (*KINDS, "*"):
            raise RequestError("kind must be one of " + ", ".join((*KINDS, "*")), "kind", 422)
        if not 0 < seconds <= MAX_MUTE_S:
            raise RequestError(
                f"minutes must be above 0 and at most {MAX_MUTE_S // 60}", "minutes", 422
            )
        with self.db.atomic() as c:
            c.execute(
                "INSERT INTO mutes(site, kind, until) VALUES (?, ?, ?) "
                "ON CONFLICT(site, kind) DO UPDATE SET until = excluded.until",
                (site, kind, now + seconds),
            )
        return {"site": site, "kind": kind, "until": format_time(now + seconds)}

    def unmute(self, site: str, kind: str) -> bool:
        with self.db.atomic() as c:
            return (
                c.execute("DELETE FROM mutes WHERE site = ? AND kind = ?", (site, kind)).rowcount
                > 0
            )

    def mutes(self, now: float) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT * FROM mutes WHERE until > ? ORDER BY site, kind", (now,))
        return [
            {"site": r["site"], "kind": r["kind"], "until": format_time(r["until"])} for r in rows
        ]

    def muted(self, site: str, kind: str, now: float) -> bool:
        row = self.db.one(
            "SELECT 1 FROM mutes WHERE site = ? AND kind IN (?, '*') AND until > ?",
            (site, kind, now),
        )
        return row is not None


@dataclass
class _Condition:
    on_since: float | None = None
    off_since: float | None = None
    raised: bool = False


@dataclass
class Observed:
    """What the engine is told about one site at a tick."""

    online: bool | None  # None: no status seen yet
    clock: str | None
    chain: ChainState


class AlertEngine:
    """Turns events, chain alarms and site state into alerts (no I/O but the book)."""

    def __init__(self, book: AlertBook, cfg: Config, started: float) -> None:
        self.book = book
        self.cfg = cfg
        self.started = started
        self._conditions: dict[tuple[str, str], _Condition] = defaultdict(_Condition)
        self._refused: dict[str, deque[float]] = defaultdict(deque)
        self.changed: set[str] = set()  # sites whose conditions raised or cleared
        for site in cfg.site_ids:
            for kind in CONDITIONS:
                if book.open_alert(site, kind) is not None:
                    self._conditions[site, kind].raised = True

    def on_events(self, site: str, events: Iterable[Mapping[str, Any]], now: float) -> None:
        for ev in events:
            kind = str(ev.get("type"))
            seq = ev.get("seq")
            detail = {"seq": seq, "ts": ev.get("ts"), "order_id": ev.get("order_id")}
            if kind in CLEARED_BY:
                for cleared in CLEARED_BY[kind]:
                    self.book.clear(site, cleared, now)
            if kind in (
                "door_forced",
                "door_held_open",
                "store_unwritable",
                "clock_conflict",
                "store_rollback",
            ):
                self.book.raise_(site, kind, f"seq:{seq}", detail, now)
            elif kind in ALARM_TYPES:
                self.book.raise_(site, "kiosk_alarm", f"seq:{seq}", {**detail, "type": kind}, now)
            elif kind in ("code_rejected", "throttled"):
                d = ev.get("detail") if isinstance(ev.get("detail"), dict) else {}
                assert isinstance(d, dict)
                if kind == "throttled" or d.get("reason") in GUESS_REASONS:
                    # Counted at arrival time: a night's rejections fetched in a
                    # gap fill at once is a burst worth telling too.
                    self._refused[site].append(now)

    def on_chain(self, alarms: Iterable[ChainAlarm], now: float) -> None:
        """One raise per site and kind per batch: a flood of bad copies costs
        one write, not one per message."""
        first: dict[tuple[str, str], ChainAlarm] = {}
        count: dict[tuple[str, str], int] = defaultdict(int)
        for a in alarms:
            key = (a.site, "site_full" if a.kind == "site_full" else "chain_break")
            first.setdefault(key, a)
            count[key] += 1
        for (site, kind), a in first.items():
            detail = {"seq": a.seq, "message": a.message, "in_batch": count[site, kind]}
            self.book.raise_(site, kind, f"{a.kind}:{a.seq}", detail, now)

    def _condition(
        self, site: str, kind: str, on: bool, delay: float, now: float, detail: dict[str, Any]
    ) -> None:
        c = self._conditions[site, kind]
        hold = self.cfg.alerts.hold_down_s
        if on:
            c.off_since = None
            if c.on_since is None:
                c.on_since = now
            if not c.raised and now - c.on_since >= delay:
                c.raised = True
                self.changed.add(site)
                self.book.raise_(
                    site,
                    kind,
                    f"since:{c.on_since:.0f}",
                    {**detail, "since": format_time(c.on_since)},
                    now,
                )
        else:
            c.on_since = None
            if c.raised:
                if c.off_since is None:
                    c.off_since = now
                if now - c.off_since >= hold:
                    c.raised = False
                    self.changed.add(site)
                    c.off_since = None
                    self.book.clear(site, kind, now)

    def tick(self, observed: Mapping[str, Observed], now: float) -> None:
        a = self.cfg.alerts
        for section in self.cfg.sites:
            site = section.id
            obs = observed.get(site)
            if obs is None:
                continue
            offline = obs.online is not True  # no status yet counts, from the hub's start
            self._condition(site, "site_offline", offline, section.offline_alert_s, now, {})
            self._condition(
                site, "clock_untrusted", obs.clock == "untrusted", a.hold_down_s, now, {}
            )
            gap = obs.chain.missing()
            gap_old = (
                gap is not None
                and obs.chain.gap_since is not None
                and now - obs.chain.gap_since >= a.gap_alert_s
            )
            detail = {} if gap is None else {"first": gap[0], "last": gap[1]}
            self._condition(site, "gap_unfilled", gap_old, 0, now, detail)
            window = self._refused[site]
            while window and window[0] < now - a.refused_window_s:
                window.popleft()
            self._condition(
                site,
                "code_guessing",
                len(window) >= a.refused_burst,
                0,
                now,
                {"refused": len(window)},
            )


def describe(alert: Alert, language: str, shop: str, *, cleared: bool) -> tuple[str, str]:
    """(title, body) of a notification in the site's language."""
    titles = (
        MESSAGES.get(alert.kind, MESSAGES["kiosk_alarm"]).get(language)
        or MESSAGES[alert.kind]["en"]
    )
    title = titles[1] if cleared else titles[0]
    when = format_time(alert.cleared_at if cleared and alert.cleared_at else alert.raised_at)
    extras = {
        k: v for k, v in alert.detail.items() if k not in ("last_key", "recent") and v is not None
    }
    lines = [f"{shop}: {title}", f"{'时间' if language == 'zh' else 'time'}: {when}"]
    if extras:
        lines.append(json.dumps(extras, ensure_ascii=False, sort_keys=True))
    return f"[{shop}] {title}", "\n".join(lines)


@dataclass
class Deliverer:
    """Sends raises and all-clears through Apprise; retries with backoff."""

    cfg: Config
    book: AlertBook
    call: Callable[..., Any]  # the archive runner's call
    rng: random.Random = field(default_factory=random.Random)
    _attempts: dict[tuple[int, str], int] = field(default_factory=dict)
    _not_before: dict[tuple[int, str], float] = field(default_factory=dict)
    _inflight: list[asyncio.Future[bool]] = field(default_factory=list)
    _sent: dict[tuple[str, str], deque[float]] = field(default_factory=lambda: defaultdict(deque))
    #: (site, kind) -> [count held back, the latest alert, its flag]
    _held: dict[tuple[str, str], list[Any]] = field(default_factory=dict)

    @staticmethod
    def _send_one(url: str, title: str, body: str) -> bool:
        import apprise

        # async_mode off: Apprise sends on this (daemon) thread, not on its
        # own pool, whose threads the interpreter waits for at exit.
        ap = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
        ap.add(url)
        return bool(ap.notify(title=title, body=body))

    def stuck(self) -> bool:
        """Whether a send that overran its time is still running."""
        return any(not f.done() for f in self._inflight)

    async def _bounded_send(self, alert_id: int, title: str, body: str) -> bool | None:
        """Send to every URL at once, each on a daemon thread of its own,
        given at most SEND_TIMEOUT_S; True when every URL took it.

        A bot can keep an HTTP answer going for ever (one byte just before
        each read timeout) and a thread cannot be stopped: a send that
        overran is left to finish alone and counted as failed, and nothing
        new is sent while one still runs (stuck threads stay at one per
        URL). None: a send of an earlier round still runs.
        """
        self._inflight = [f for f in self._inflight if not f.done()]
        if self._inflight:
            return None
        futs = [_in_daemon_thread(self._send_one, u, title, body) for u in self.cfg.alerts.urls]
        for f in futs:
            f.add_done_callback(_consume)
        self._inflight = futs  # also when this wait is cancelled (the hub stops)
        done, pending = await asyncio.wait(futs, timeout=SEND_TIMEOUT_S)
        ok = not pending
        if pending:
            log.error(
                "notification for alert %d: %d of %d URL(s) took more than %d s; counted as failed",
                alert_id,
                len(pending),
                len(futs),
                SEND_TIMEOUT_S,
            )
        for f in done:
            exc = f.exception()
            if exc is not None:  # a notification plugin's defect must not stop the hub
                log.error("notification for alert %d failed: %s", alert_id, type(exc).__name__)
                ok = False
            elif not f.result():
                ok = False
        return ok

    async def run_once(self, now: float) -> int:
        """Deliver what is due; return how many messages went out."""
        sent = 0
        for alert in await self.call(self.book.undelivered):
            flag = "r" if "r" not in alert.delivered else "c"
            key = (alert.id, flag)
            if self._not_before.get(key, 0.0) > now:
                continue
            site = self.cfg.site(alert.site)
            muted = await self.call(self.book.muted, alert.site, alert.kind, now)
            if not self.cfg.alerts.urls or muted:
                await self.call(self.book.mark, alert.id, flag)
                continue
            kind = (alert.site, alert.kind)
            if self._full(kind, now):
                held = self._held.setdefault(kind, [0, alert, flag])
                held[0], held[1], held[2] = held[0] + 1, alert, flag
                await self.call(self.book.mark, alert.id, flag)
                continue
            title, body = self._words(alert, flag)
            ok = await self._bounded_send(alert.id, title, body)
            if ok is None:
                return sent  # the last send still hangs: try again at the next round
            if ok:
                await self.call(self.book.mark, alert.id, flag)
                self._sent[kind].append(now)
                sent += 1
                continue
            n = self._attempts.get(key, 0) + 1
            self._attempts[key] = n
            if n >= DELIVERY_ATTEMPTS:
                log.error(
                    "alert %d (%s) could not be delivered after %d tries", alert.id, alert.kind, n
                )
                await self.call(self.book.mark, alert.id, flag)
            else:
                self._not_before[key] = now + self.rng.uniform(0, min(600.0, 5.0 * 2**n))
        for kind, (count, alert, flag) in list(self._held.items()):
            if self._full(kind, now):
                continue
            site = self.cfg.site(alert.site)
            note = _HELD_NOTE.get(site.language if site else "en", _HELD_NOTE["en"])
            title, body = self._words(alert, flag)
            ok = await self._bounded_send(alert.id, title, note.format(n=count) + "\n" + body)
            if ok is None:
                return sent
            if ok:
                self._sent[kind].append(now)
                del self._held[kind]
                sent += 1
        return sent

    def _full(self, kind: tuple[str, str], now: float) -> bool:
        window = self._sent[kind]
        while window and window[0] <= now - FLOOD_WINDOW_S:
            window.popleft()
        return len(window) >= FLOOD_BURST

    def _words(self, alert: Alert, flag: str) -> tuple[str, str]:
        site = self.cfg.site(alert.site)
        return describe(
            alert,
            site.language if site else "en",
            (site.name or site.id) if site else alert.site,
            cleared=flag == "c",
        )
