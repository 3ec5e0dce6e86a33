"""Watching kiosks: ``status``, ``logs`` (with the audit chain check), ``verify-events``.

The chain check is the protocol's (:func:`protocol.events.link`): seq
continuity, ``prev_hash`` equal to the previous event's ``hash``, and each
``hash`` recomputed. Unlike ``verify_chain`` it does not stop at the first fault: it
reports every gap, reorder, duplicate-with-different-contents or changed
event loudly on stderr (naming the seq) and keeps going, because an owner
watching at night needs to see what comes next too. Duplicates with the
same contents are normal (QoS 1 redelivery, resends after a reconnect) and
are dropped silently by ``event_id``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from hub.ctl.commands import NoAnswer, parse_result, send_command, wait_result
from hub.ctl.config import Settings, SubParsers
from hub.ctl.keys import load_private_key
from hub.ctl.mqtt import Connection, CtlError, Message, UsageError
from protocol import topics
from protocol.events import Tail, Verdict, hash_ok, link
from protocol.times import parse_time as parse_rfc3339

EXIT_CHAIN = 3
DEFAULT_LAST = 50

# code_rejected reasons in words (the slugs of kiosk/locale/*.toml [reason.*]).
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
    "clock_untrusted": "the kiosk's clock is not set",
    "out_of_service": "the kiosk cannot check codes (out of service)",
}


def local_time(ts: Any) -> str:
    """An RFC 3339 (or Unix) time as local wall-clock text; '-' if absent or bad."""
    try:
        t = float(ts) if isinstance(ts, (int, float)) else parse_rfc3339(str(ts))
    except (ValueError, TypeError):
        return "-" if ts in (None, "") else str(ts)
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


# -- the chain check ----------------------------------------------------------


class ChainWatch:
    """Feeds events one at a time; collects every problem as one sentence."""

    def __init__(self, site: str | None, since: int | None) -> None:
        self.site = site
        self.first_seq = None if since is None else since + 1
        self.last_seq: int | None = None
        self.last_hash: str | None = None
        self.seen: dict[str, str] = {}  # event_id -> hash
        self.problems: list[str] = []

    def _problem(self, text: str) -> None:
        self.problems.append(text)
        bar = "!" * 72
        where = f" at site {self.site}" if self.site else ""
        print(f"{bar}\n!!! AUDIT CHAIN WARNING{where}: {text}\n{bar}", file=sys.stderr, flush=True)

    def feed(self, ev: Mapping[str, Any]) -> bool:
        """Check one event; return True if it is new (to be shown)."""
        seq = ev.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            self._problem(f"an event without a valid seq (after seq {self.last_seq})")
            return True
        site = ev.get("site")
        if self.site is None and isinstance(site, str):
            self.site = site
        elif site != self.site:
            self._problem(f"seq {seq}: event is for site {site!r}, not {self.site!r}")
        event_id = str(ev.get("event_id") or f"{site}:{seq}")
        stated = str(ev.get("hash"))
        if event_id in self.seen:
            if self.seen[event_id] != stated:
                self._problem(f"seq {seq}: received twice with different contents")
            return False
        self.seen[event_id] = stated
        if not hash_ok(ev):
            self._problem(f"seq {seq}: hash does not match its contents (the event was changed)")
        if self.last_seq is None:
            if self.first_seq is not None and seq > self.first_seq:
                self._problem(
                    f"seq {self.first_seq} to {seq - 1} missing: the first event "
                    f"received is seq {seq} (gap before seq {seq})"
                )
            elif self.first_seq is not None and seq < self.first_seq:
                self._problem(f"seq {seq}: older than asked for (after {self.first_seq - 1})")
            if seq == 1 and ev.get("prev_hash") != Tail().hash:
                self._problem("seq 1: prev_hash is not the zero hash of a chain's start")
        elif seq > self.last_seq:
            verdict = link(Tail(self.last_seq, str(self.last_hash)), ev)
            if verdict.verdict is Verdict.EARLY:
                missing = (
                    f"seq {self.last_seq + 1}"
                    if seq == self.last_seq + 2
                    else f"seq {self.last_seq + 1} to {seq - 1}"
                )
                self._problem(f"{missing} missing (gap before seq {seq})")
            elif verdict.verdict is Verdict.BREAK and ev.get("prev_hash") != self.last_hash:
                self._problem(
                    f"seq {seq}: prev_hash does not match seq {self.last_seq}'s hash "
                    f"(an event was changed or left out)"
                )
        else:
            self._problem(f"seq {seq}: arrived after seq {self.last_seq} (out of order)")
            return True
        self.last_seq = seq
        self.last_hash = stated
        return True


# -- formatting ---------------------------------------------------------------


def describe(ev: Mapping[str, Any]) -> str:
    detail = ev.get("detail") if isinstance(ev.get("detail"), dict) else {}
    assert isinstance(detail, dict)
    reason = detail.get("reason")
    if ev.get("type") == "code_rejected":
        words = REASON_WORDS.get(str(reason), str(reason or "no reason given").replace("_", " "))
        return f"refused: {words}"
    if ev.get("type") == "command":
        parts = [str(detail.get(k)) for k in ("cmd", "cmd_id") if detail.get(k)]
        if detail.get("error"):
            parts.append(f"refused: {detail['error']}")
        elif "ok" in detail:
            parts.append("ok" if detail["ok"] else "refused")
        return " ".join(parts) if parts else _short(detail)
    if reason is not None:
        message = detail.get("message")
        return f"{reason}: {message}" if message else str(reason)
    return _short(detail)


def _short(detail: Mapping[str, Any]) -> str:
    if not detail:
        return ""
    text = json.dumps(detail, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 100 else text[:97] + "..."


def format_event(ev: Mapping[str, Any]) -> str:
    clock = "" if ev.get("clock") in (None, "synced") else f" [clock {ev.get('clock')}]"
    text = (
        f"{local_time(ev.get('ts'))}  #{ev.get('seq')!s:<6} {ev.get('type')!s:<16} "
        f"{ev.get('order_id') or '-':<18} {describe(ev)}"
    )
    return text.rstrip() + clock


def format_log(rec: Mapping[str, Any]) -> str:
    return (
        f"{local_time(rec.get('ts'))}  log    {rec.get('level')!s:<8} "
        f"{rec.get('logger')}: {rec.get('message')}"
    )


def _emit(item: Mapping[str, Any], *, is_event: bool, json_out: bool) -> None:
    if json_out:
        print(json.dumps(item, ensure_ascii=False, separators=(",", ":")), flush=True)
    else:
        print(format_event(item) if is_event else format_log(item), flush=True)


def _ts_key(item: Mapping[str, Any]) -> float:
    try:
        return parse_rfc3339(str(item.get("ts")))
    except ValueError:
        return 0.0


# -- status -------------------------------------------------------------------


def collect_status(conn: Connection, site: str | None) -> dict[str, dict[str, Any]]:
    filt = topics.status(site) if site else topics.status("+")
    found = conn.collect_retained([filt])
    out: dict[str, dict[str, Any]] = {}
    for topic, msg in found.items():
        parsed = topics.parse(topic)
        if parsed is None or parsed.kind != topics.STATUS or not msg.payload:
            continue
        try:
            doc = json.loads(msg.payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            print(f"warning: {topic} is not JSON; skipped", file=sys.stderr)
            continue
        if isinstance(doc, dict):
            out[parsed.site] = doc
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def status_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    head = ["SITE", "ONLINE", "LAST SEEN", "DOOR", "LOCK", "MODE", "READY", "OUTBOX", "CLOCK"]
    table = [head]
    for site in sorted(rows):
        st = rows[site]
        table.append(
            [
                site,
                _cell(st.get("online")),
                local_time(st.get("ts")),
                _cell(st.get("door")),
                _cell(st.get("lock")),
                _cell(st.get("mode")),
                _cell(st.get("orders_ready")),
                _cell(st.get("outbox")),
                _cell(st.get("clock")),
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
    )


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    site = None if args.all else settings.site
    with Connection(settings.broker, timeout=settings.timeout) as conn:
        rows = collect_status(conn, site)
    if args.json:
        print(json.dumps([{"site": s, **rows[s]} for s in sorted(rows)], ensure_ascii=False))
    elif rows:
        print(status_table(rows))
    if not rows:
        if site:
            raise CtlError(
                f"no status from site {site} on the broker (never connected, or a "
                f"different site id?)"
            )
        if not args.json:
            print("no kiosk has published a status on this broker", file=sys.stderr)
    return 0


# -- logs ---------------------------------------------------------------------


class LogsSession:
    """Collects a ``logs`` answer, then (optionally) live events and log records."""

    def __init__(self, site: str, since: int, json_out: bool, last_logs: int | None) -> None:
        self.site = site
        self.chain = ChainWatch(site, since)
        self.json_out = json_out
        self.last_logs = last_logs
        self.log_seen: set[Any] = set()
        self.events: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.live: list[Message] = []

    def take_page(self, page: Mapping[str, Any]) -> None:
        for ev in page.get("events") or []:
            if isinstance(ev, dict) and self.chain.feed(ev):
                self.events.append(ev)
        for rec in page.get("logs") or []:
            if isinstance(rec, dict) and rec.get("seq") not in self.log_seen:
                self.log_seen.add(rec.get("seq"))
                self.logs.append(rec)

    def print_collected(self) -> None:
        logs = self.logs
        if self.last_logs is not None and len(logs) > self.last_logs:
            hidden = len(logs) - self.last_logs
            logs = logs[hidden:]
            print(f"({hidden} older log records not shown; use --since-log SEQ)", file=sys.stderr)
        tagged = heapq.merge(
            ((_ts_key(e), 0, e) for e in self.events),
            ((_ts_key(r), 1, r) for r in logs),
            key=lambda t: t[:2],
        )
        for _, kind, item in tagged:
            _emit(item, is_event=kind == 0, json_out=self.json_out)

    def take_live(self, msg: Message) -> None:
        if msg.topic not in (topics.events(self.site), topics.log(self.site)):
            return
        try:
            item = json.loads(msg.payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            print(f"warning: a message on {msg.topic} is not JSON", file=sys.stderr)
            return
        if not isinstance(item, dict):
            return
        if msg.topic == topics.events(self.site):
            if self.chain.feed(item):
                _emit(item, is_event=True, json_out=self.json_out)
        elif item.get("seq") not in self.log_seen:
            self.log_seen.add(item.get("seq"))
            _emit(item, is_event=False, json_out=self.json_out)


def _collect_pages(conn: Connection, session: LogsSession, cmd_id: str, timeout: float) -> None:
    pages: set[Any] = set()
    last_page: int | None = None
    while True:
        page = wait_result(conn, session.site, cmd_id, timeout, other=session.live.append)
        if page.get("ok") is not True:
            raise CtlError(
                f"{session.site} refused the logs command: {page.get('error') or 'no reason given'}"
            )
        n = page.get("page")
        if n in pages:
            continue
        pages.add(n)
        session.take_page(page)
        if page.get("last", True) is True:  # an answer without pages is one page
            last_page = n if isinstance(n, int) else len(pages)
        if last_page is not None:
            ints = {p for p in pages if isinstance(p, int)}
            start = 0 if 0 in ints else 1
            if not isinstance(n, int) or ints >= set(range(start, last_page + 1)):
                return


def cmd_logs(args: argparse.Namespace, settings: Settings) -> int:
    site = settings.need_site()
    key = load_private_key(settings.need_key())
    if args.last is not None and args.last < 0:
        raise UsageError("--last must be zero or more")
    last = DEFAULT_LAST if args.last is None else args.last
    live = [topics.events(site), topics.log(site)] if args.follow else []
    with Connection(settings.broker, timeout=settings.timeout) as conn:
        since = args.since
        if since is None:
            status = collect_status(conn, site).get(site, {})
            last_seq = status.get("last_seq")
            since = max(0, last_seq - last) if isinstance(last_seq, int) else 0
        session = LogsSession(site, since, args.json, None if args.since_log is not None else last)
        cmd_args = {"since_seq": since, "since_log_seq": args.since_log or 0}
        cmd_id = send_command(conn, site, "logs", cmd_args, key, also_subscribe=live)
        try:
            _collect_pages(conn, session, cmd_id, args.timeout)
        except NoAnswer:
            if not args.follow:
                raise
            print(
                f"warning: {site} did not answer the logs command; following live only",
                file=sys.stderr,
            )
        session.print_collected()
        if args.follow:
            _follow(conn, session, cmd_id, args.duration)
    if session.chain.problems:
        print(
            f"kioskctl: {len(session.chain.problems)} audit chain problem(s) at {site}; "
            f"see the warnings above",
            file=sys.stderr,
        )
        return EXIT_CHAIN
    return 0


def _follow(conn: Connection, session: LogsSession, cmd_id: str, duration: float | None) -> None:
    for early in session.live:
        session.take_live(early)
    session.live.clear()
    end = None if duration is None else time.monotonic() + duration
    try:
        while end is None or time.monotonic() < end:
            msg = conn.get(1.0 if end is None else min(1.0, end - time.monotonic()))
            if msg is None or parse_result(msg, session.site, cmd_id) is not None:
                continue  # late pages of the answer were already taken
            session.take_live(msg)
    except KeyboardInterrupt:
        print(file=sys.stderr)


# -- verify-events ----------------------------------------------------------------


def read_events(path: str) -> Iterable[tuple[int, dict[str, Any]]]:
    try:
        fh = sys.stdin if path == "-" else Path(path).open(encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise CtlError(f"cannot read {path}: {exc.strerror or exc}") from None
    with fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CtlError(f"{path} line {number}: not JSON ({exc.msg})") from None
            if isinstance(item, dict) and "hash" in item:
                yield number, item  # log records in a `logs --json` dump are skipped


def cmd_verify_events(args: argparse.Namespace) -> int:
    chain = ChainWatch(None, args.since)
    count = 0
    seqs: list[int] = []
    for _number, ev in read_events(args.file):
        chain.feed(ev)
        count += 1
        if isinstance(ev.get("seq"), int):
            seqs.append(ev["seq"])
    if chain.problems:
        print(
            f"kioskctl: {len(chain.problems)} audit chain problem(s) in {count} events",
            file=sys.stderr,
        )
        return EXIT_CHAIN
    span = f"seq {min(seqs)} to {max(seqs)}" if seqs else "no events"
    print(f"{len(chain.seen)} events ({span}): chain intact")
    return 0


def add_parsers(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("status", parents=[common], help="the kiosks' retained health")
    p.add_argument("--site")
    p.add_argument("--all", action="store_true", help="every site on the broker")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func="status")

    p = sub.add_parser(
        "logs",
        parents=[common],
        help="fetch a kiosk's events and log records (checks the hash chain)",
        description="Exit 0 fine, 1 refused, 2 no answer, 3 chain problem.",
    )
    p.add_argument("--site")
    p.add_argument(
        "--since",
        type=int,
        metavar="SEQ",
        help="events after SEQ (default: the last --last events)",
    )
    p.add_argument(
        "--last",
        type=int,
        metavar="N",
        help=f"without --since: the last N events and log records (default {DEFAULT_LAST})",
    )
    p.add_argument(
        "--since-log",
        dest="since_log",
        type=int,
        metavar="SEQ",
        help="log records after SEQ (all of them are shown)",
    )
    p.add_argument(
        "--follow", "-f", action="store_true", help="then keep printing live events and log records"
    )
    p.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="with --follow: stop after S seconds (default: until Ctrl-C)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        metavar="S",
        help="seconds to wait for each page of the answer (default 20)",
    )
    p.add_argument("--json", action="store_true", help="JSON lines, exactly as published")
    p.set_defaults(func="logs")

    p = sub.add_parser("verify-events", help="check a JSON-lines dump of events (hash chain)")
    p.add_argument("file", metavar="FILE", help="JSON lines ('-' = stdin)")
    p.add_argument(
        "--since",
        type=int,
        metavar="SEQ",
        help="the dump should start right after SEQ (0: at the chain's start)",
    )
    p.set_defaults(func="verify_events")
