"""What kioskctl prints for people: events and times in words, text made safe.

Everything shown here comes from the broker, so from anyone who can
publish there: every field is type-checked before use, every string goes
through :func:`clean` (no terminal escape sequences, no bidi overrides, no
line breaks, bounded length), and no input makes these functions raise.

Times: the kiosk's time zone is not on the wire, so times are shown in this
computer's local zone (said once, :meth:`Times.zone_note`) or in UTC.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from protocol.times import MAX_TIME, parse_time

MAX_FIELD = 200  # characters of one string from the broker
MAX_LINE = 600  # characters of one printed line

# code_rejected reasons in words (the slugs of docs/protocol.md "Keypad").
REASON_WORDS = {
    "bad_length": "wrong number of digits",
    "unknown_number": "no order has this pickup number",
    "wrong_code": "the one-time value was wrong",
    "replayed": "the code was already used",
    "not_paid": "the order is not paid yet",
    "not_ready": "the order is not on the shelf yet",
    "cancelled": "the order was cancelled",
    "already_collected": "the order was already collected",
    "expired": "the order has expired",
    "throttled": "too many wrong tries (throttled)",
    "clock_untrusted": "the value matched nothing and the kiosk's clock is not trusted",
    "out_of_service": "the kiosk cannot check codes (out of service)",
}
CMD_WORDS = {
    "unlock": "remote unlock",
    "cancel": "cancel",
    "time": "clock setting",
    "logs": "logs request",
    "sync": "status request",
    "orders": "orders question",
}
#: refusals that mean the command was taken but could not be carried out
FAILURES = frozenset({"door_timeout", "door_failed"})

_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean(value: Any, limit: int = MAX_FIELD) -> str:
    """Text from the broker made safe to print on one terminal line.

    Control characters (ESC, CR, LF, BEL, C1, DEL), lone surrogates and
    bidi overrides become ``\\uXXXX``; longer text ends in ``...``.
    """
    text = value if isinstance(value, str) else str(value)
    out = []
    for ch in text[: limit + 1]:
        if ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cs"):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    safe = "".join(out)
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


def quoted(value: Any) -> str:
    """``"text"`` for a reason or a name (cleaned once, not escaped twice)."""
    return f'"{clean(value)}"'


def slug_words(slug: Any) -> str:
    return clean(slug, 64).replace("_", " ")


def _str(detail: Mapping[str, Any], key: str) -> str | None:
    value = detail.get(key)
    return clean(value) if isinstance(value, str) and value else None


def _num(detail: Mapping[str, Any], key: str) -> float | None:
    value = detail.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if abs(value) < 1e15 else None


def _whole(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


# -- times --------------------------------------------------------------------


def to_unix(ts: Any) -> float | None:
    """An RFC 3339 time (or Unix seconds) from the broker; None if not usable."""
    if isinstance(ts, bool):
        return None
    if isinstance(ts, (int, float)):
        return float(ts) if 0 <= ts < MAX_TIME else None
    try:
        return parse_time(ts)
    except ValueError:
        return None


@dataclass(frozen=True)
class Times:
    """How times are shown: this computer's local zone, or UTC."""

    utc: bool = False

    def dt(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, UTC) if self.utc else datetime.fromtimestamp(t)

    def stamp(self, ts: Any) -> str:
        """``2026-05-13 01:12:09``; ``-`` if absent, ``?`` if not a time."""
        t = to_unix(ts)
        if t is None:
            return "-" if ts in (None, "") else "?"
        return self.dt(t).strftime("%Y-%m-%d %H:%M:%S")

    def clock(self, t: float, ref: float | None = None, *, seconds: bool = True) -> str:
        """``01:12:40``, with the date when it is not ``ref``'s day (default today)."""
        if not 0 <= t < MAX_TIME:
            return "?"
        when = self.dt(t)
        day = self.dt(ref if ref is not None and 0 <= ref < MAX_TIME else time.time()).date()
        fmt = "%H:%M:%S" if seconds else "%H:%M"
        return when.strftime(fmt if when.date() == day else f"%Y-%m-%d {fmt}")

    def zone(self) -> str:
        if self.utc:
            return "UTC"
        offset = datetime.now().astimezone().strftime("%z")
        return f"UTC{offset[:3]}:{offset[3:]}" if len(offset) == 5 else "local"

    def zone_note(self) -> str:
        if self.utc:
            return "times are UTC"
        return (
            f"times are this computer's local time ({self.zone()}); kioskctl does not "
            f"know the kiosk's time zone (--utc for UTC)"
        )


# -- events in words ------------------------------------------------------------


@dataclass
class Describer:
    """Events to sentences; remembers commands so a later unlock can name them."""

    times: Times = field(default_factory=Times)
    key_names: Mapping[str, str] = field(default_factory=dict)
    commands: OrderedDict[str, tuple[str | None, str | None]] = field(default_factory=OrderedDict)
    ref: float | None = None  # the time of the event being described

    def key(self, kid: Any) -> str | None:
        if not isinstance(kid, str) or not kid:
            return None
        name = self.key_names.get(kid)
        return f"key {quoted(name)}" if name else f"key {clean(kid, 64)}"

    def _extras(self, reason: str | None, key: str | None, account: str | None = None) -> str:
        parts = []
        if reason:
            parts.append(f"reason {quoted(reason)}")
        if account:
            parts.append(f"account {quoted(account)}")
        if key:
            parts.append(key)
        return f" ({', '.join(parts)})" if parts else ""

    def remember(self, cmd_id: str, reason: str | None, key: str | None) -> None:
        self.commands[cmd_id] = (reason, key)
        while len(self.commands) > 1000:
            self.commands.popitem(last=False)

    def event(self, ev: Mapping[str, Any]) -> str:
        """One event as a line: time, seq, sentence (and the clock's trust)."""
        self.ref = to_unix(ev.get("ts"))
        try:
            text = self.sentence(ev)
        except Exception:  # a hostile event must never stop the listing
            text = f"{slug_words(ev.get('type'))} (unreadable detail)"
        seq = ev.get("seq")
        seq_text = f"#{seq}" if isinstance(seq, int) and not isinstance(seq, bool) else "#?"
        line = f"{self.times.stamp(ev.get('ts'))}  {seq_text:<7} {text}"
        if ev.get("clock") not in (None, "synced") and ev.get("type") != "clock_untrusted":
            line += " [the kiosk's clock was not trusted]"
        return clean(line, MAX_LINE)

    def log(self, rec: Mapping[str, Any]) -> str:
        line = (
            f"{self.times.stamp(rec.get('ts'))}  log     {clean(rec.get('level'), 16)} "
            f"{clean(rec.get('logger'), 64)}: {clean(rec.get('message'), 400)}"
        )
        return clean(line, MAX_LINE)

    def sentence(self, ev: Mapping[str, Any]) -> str:
        raw = ev.get("detail")
        detail: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        kind = ev.get("type")
        raw_order = ev.get("order_id")
        order = clean(raw_order, 64) if isinstance(raw_order, str) and raw_order else None
        method = getattr(self, f"ev_{kind}", None) if isinstance(kind, str) else None
        if method is not None:
            return str(method(detail, order))
        of = f" for order {order}" if order else ""
        return f"{slug_words(kind)}{of}{_generic(detail)}"

    # One method per event type (docs/protocol.md, "Events"), given the
    # event's detail and its order id (cleaned) or None.

    def ev_boot(self, d: Mapping[str, Any], _of: str | None) -> str:
        parts = [f"version {v}" for v in [_str(d, "version")] if v]
        parts += [f"{b} board" for b in [_str(d, "board")] if b]
        if d.get("clock") == "untrusted":
            parts.append("clock not trusted")
        return "door daemon started" + (f" ({', '.join(parts)})" if parts else "")

    def ev_shutdown(self, _d: Mapping[str, Any], _of: str | None) -> str:
        return "door daemon stopped"

    def ev_code_accepted(self, d: Mapping[str, Any], order: str | None) -> str:
        what = "backup code" if d.get("kind") == "backup" else "code"
        again = " again (re-entry within the grace time)" if d.get("reentry") is True else ""
        return f"{what} accepted{_of(order)}{again}"

    def ev_code_rejected(self, d: Mapping[str, Any], order: str | None) -> str:
        reason = d.get("reason")
        words = REASON_WORDS.get(reason) if isinstance(reason, str) else None
        return f"code refused{_of(order)}: {words or slug_words(reason or 'no reason given')}"

    def ev_throttled(self, d: Mapping[str, Any], order: str | None) -> str:
        wait = _num(d, "wait_s")
        after = f"; next try in {_whole(wait)} s" if wait is not None else ""
        return f"keypad throttled{_of(order)}: too many wrong codes{after}"

    def ev_door_unlocked(self, d: Mapping[str, Any], order: str | None) -> str:
        by = d.get("by")
        if by == "command":
            cmd_id = _str(d, "cmd_id")
            reason, key = self.commands.get(cmd_id or "", (None, None))
            return f"door unlocked by remote command {cmd_id or '?'}" + self._extras(reason, key)
        if by == "exit":
            return "door unlocked from inside (exit button)"
        if by == "free_entry":
            return "door unlocked (free entry)"
        if by == "code":
            return f"door unlocked{_of(order) or ' for a code'}"
        return f"door unlocked{_of(order)}" + (f" (by {slug_words(by)})" if by else "")

    def ev_door_relocked(self, _d: Mapping[str, Any], _of: str | None) -> str:
        return "door locked again"

    def ev_door_opened(self, _d: Mapping[str, Any], order: str | None) -> str:
        return f"door opened (customer of order {order})" if order else "door opened"

    def ev_door_closed(self, _d: Mapping[str, Any], _of: str | None) -> str:
        return "door closed"

    def ev_door_held_open(self, d: Mapping[str, Any], _of: str | None) -> str:
        held = _num(d, "held_s")
        limit = f" longer than {_whole(held)} s" if held is not None else " too long"
        return f"ALARM: door held open{limit}"

    def ev_door_forced(self, d: Mapping[str, Any], _of: str | None) -> str:
        if d.get("at_start") is True:
            return "ALARM: the door was open when the door daemon started"
        return "ALARM: door forced open (opened while locked)"

    def ev_exit_pressed(self, _d: Mapping[str, Any], _of: str | None) -> str:
        return "exit button pressed"

    def ev_order_updated(self, d: Mapping[str, Any], order: str | None) -> str:
        status = _str(d, "status")
        parts = [f"pickup number {p}" for p in [_str(d, "pickup_no")] if p]
        parts += [f"slot {s}" for s in [_str(d, "slot")] if s]
        version = _num(d, "version")
        if version is not None:
            parts.append(f"version {_whole(version)}")
        head = f"{_order(order)} received" + (f": {slug_words(status)}" if status else "")
        return head + (f" ({', '.join(parts)})" if parts else "")

    def ev_order_forgotten(self, _d: Mapping[str, Any], order: str | None) -> str:
        return f"{_order(order)} forgotten (the hub cleared it)"

    def ev_order_collected(self, _d: Mapping[str, Any], order: str | None) -> str:
        return f"{_order(order)} collected"

    def ev_order_cancelled(self, d: Mapping[str, Any], order: str | None) -> str:
        was = _str(d, "was")
        return f"{_order(order)} cancelled at the kiosk" + (
            f" (was {slug_words(was)})" if was else ""
        )

    def ev_message_rejected(self, d: Mapping[str, Any], order: str | None) -> str:
        topic = _str(d, "topic") or ""
        parts = topic.split("/", 3)
        short = parts[3] if len(parts) == 4 and parts[:2] == ["pickup", "v1"] else topic
        where = f" on {short}" if short else ""
        why = _str(d, "message") or slug_words(d.get("reason") or "no reason given")
        return f"bad message ignored{where}{_of(order)}: {why}"

    def ev_rejections_summarized(self, d: Mapping[str, Any], _of: str | None) -> str:
        total = _num(d, "total")
        seconds = _num(d, "seconds")
        counts = d.get("counts")
        parts = []
        if isinstance(counts, list):
            for c in counts[:8]:
                n = _num(c, "count") if isinstance(c, dict) else None
                if n is not None:
                    parts.append(f"{slug_words(c.get('reason') or '?')} {_whole(n)}")
            if len(counts) > 8:
                parts.append("...")
        many = _whole(total) if total is not None else "some"
        within = f" in {_whole(seconds)} s" if seconds is not None else ""
        return f"{many} bad messages ignored{within}" + (f" ({', '.join(parts)})" if parts else "")

    def ev_command(self, d: Mapping[str, Any], _of: str | None) -> str:
        cmd = d.get("cmd")
        if isinstance(cmd, str) and cmd:
            what = CMD_WORDS.get(cmd, f"command {clean(cmd, 64)}")
        else:
            what = "an unreadable command"
        cmd_id = _str(d, "cmd_id")
        reason, key, account = _str(d, "reason"), self.key(d.get("key_id")), _str(d, "account")
        if cmd_id:
            self.remember(cmd_id, reason, key)
        name = f"{what} {cmd_id}" if cmd_id else what
        extras = self._extras(reason, key, account)
        if d.get("ok") is True:
            return f"{name} accepted{extras}"
        refusal = d.get("refusal") if isinstance(d.get("refusal"), str) else None
        error = _str(d, "error") or ""
        if refusal and error.startswith(f"{refusal}: "):
            error = error[len(refusal) + 2 :]
        verb = "failed" if refusal in FAILURES else "refused"
        because = error or slug_words(refusal or "no reason given")
        return f"{name} {verb}: {because}{extras}"

    def _clock_times(self, d: Mapping[str, Any]) -> str:
        wall, floor = _num(d, "wall"), _num(d, "floor")
        parts = []
        if wall is not None:
            parts.append(f"wall {self.times.clock(wall, self.ref, seconds=False)}")
        if floor is not None:
            parts.append(
                f"lower bound {self.times.clock(floor, self.ref, seconds=False)}"
                if floor >= 1_577_836_800
                else "no lower bound yet"
            )
        return f" ({', '.join(parts)})" if parts else ""

    def ev_clock_untrusted(self, d: Mapping[str, Any], _of: str | None) -> str:
        return "the kiosk's clock is not trusted" + self._clock_times(d)

    def ev_clock_trusted(self, d: Mapping[str, Any], _of: str | None) -> str:
        return "the kiosk's clock is trusted again" + self._clock_times(d)

    def ev_clock_conflict(self, d: Mapping[str, Any], _of: str | None) -> str:
        source = _str(d, "source") or "document"
        ahead = _num(d, "ahead_s")
        by = f" is {_whole(ahead)} s ahead of" if ahead is not None else " is ahead of"
        return f"ALARM: a signed {source} time{by} what the kiosk can account for; not adopted"

    def ev_clock_set(self, d: Mapping[str, Any], _of: str | None) -> str:
        floor = to_unix(d.get("floor"))
        to = f" to {self.times.clock(floor, self.ref)}" if floor is not None else ""
        return f"the kiosk's clock floor was set{to} by a remote command" + _generic(
            {k: v for k, v in d.items() if k != "floor"}
        )

    def ev_mode_changed(self, d: Mapping[str, Any], _of: str | None) -> str:
        mode = _str(d, "mode")
        return f"now in {mode} mode" if mode else "mode changed"

    def ev_store_unwritable(self, d: Mapping[str, Any], _of: str | None) -> str:
        error = _str(d, "error")
        return (
            "ALARM: the kiosk cannot write its database"
            + (f": {error}" if error else "")
            + (" (codes are refused until it can)")
        )

    def ev_store_recovered(self, d: Mapping[str, Any], _of: str | None) -> str:
        kept = _num(d, "kept")
        meanwhile = f" ({_whole(kept)} events kept in memory meanwhile)" if kept is not None else ""
        return f"the kiosk's database is writable again{meanwhile}"


def _of(order: str | None) -> str:
    return f" for order {order}" if order else ""


def _order(order: str | None) -> str:
    return f"order {order}" if order else "an order"


def _generic(detail: Mapping[str, Any]) -> str:
    """Unknown details as ``(key value, ...)``, short and safe."""
    parts = []
    for key, value in list(detail.items())[:6]:
        if isinstance(value, (dict, list)):
            shown = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        else:
            shown = str(value)
        parts.append(f"{slug_words(key)} {clean(shown, 60)}")
    return f" ({', '.join(parts)})" if parts else ""
