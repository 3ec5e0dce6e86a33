"""Watching kiosks: ``status`` and ``logs`` (with the audit chain check).

``logs`` sends a signed ``logs`` command, collects the paged answer, checks
the hash chain (:mod:`hub.ctl.chain`) and prints events and log records in
words (:mod:`hub.ctl.words`) or, with ``--json``, exactly as published.
:func:`fetch_trail` is the same fetch for other commands (``wait`` looks
up a command's outcome in it).

Everything read here comes from the broker: retained status documents and
result pages are strictly decoded (:func:`protocol.canonical.decode_json_object`),
a page or message that is not one is skipped with a warning, and at most
:data:`MAX_HELD` events and log records are held before printing.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.ctl.chain import EXIT_CHAIN, ChainWatch
from hub.ctl.commands import (
    NoAnswer,
    Refused,
    ResultReader,
    refusal_text,
    send_command,
    wait_result,
)
from hub.ctl.config import Settings, SubParsers
from hub.ctl.keys import load_private_key
from hub.ctl.mqtt import MAX_MESSAGE, Connection, CtlError, Message, UsageError
from hub.ctl.words import Describer, Times, clean, to_unix
from protocol import topics
from protocol.canonical import decode_json_object
from protocol.errors import ValidationError

DEFAULT_LAST = 50
MAX_HELD = 100_000  # events plus log records collected before printing
MAX_PAGES = 10_000


# -- status -------------------------------------------------------------------


def collect_status(conn: Connection, site: str | None) -> dict[str, dict[str, Any]]:
    """site -> its retained status document, as the broker holds it."""
    filt = topics.status(site) if site else topics.status("+")
    return parse_statuses(conn.collect_retained([filt]))


def parse_statuses(found: Mapping[str, Message]) -> dict[str, dict[str, Any]]:
    """site -> status document from retained messages (strictly decoded; others skipped)."""
    out: dict[str, dict[str, Any]] = {}
    for topic, msg in sorted(found.items()):
        parsed = topics.parse(topic)
        if parsed is None or parsed.kind != topics.STATUS or not msg.payload:
            continue
        if not topics.valid_site(parsed.site):
            continue
        try:
            out[parsed.site] = decode_json_object(msg.payload, max_bytes=MAX_MESSAGE)
        except ValidationError as err:
            print(f"warning: {clean(topic)}: {err}; skipped", file=sys.stderr)
    return out


def _cell(value: Any, times: Times | None = None) -> str:
    if times is not None:
        return times.stamp(value)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return "?"
    return clean(value, 24) or "-"


def status_table(rows: Mapping[str, Mapping[str, Any]], times: Times | None = None) -> str:
    times = times or Times()
    head = ["SITE", "ONLINE", "LAST SEEN", "DOOR", "LOCK", "MODE", "READY", "OUTBOX", "CLOCK"]
    table = [head]
    for site in sorted(rows):
        st = rows[site]
        keys = ("online", "ts", "door", "lock", "mode", "orders_ready", "outbox", "clock")
        cells = [_cell(st.get(k), times if k == "ts" else None) for k in keys]
        table.append([site, *cells])
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
        print(status_table(rows, Times(args.utc)))
    if not rows:
        if site:
            raise CtlError(
                f"no status from site {site} on the broker (never connected, or a "
                f"different site id?)"
            )
        if not args.json:
            print("no kiosk has published a status on this broker", file=sys.stderr)
    return 0


def last_seq_of(conn: Connection, site: str) -> int | None:
    value = collect_status(conn, site).get(site, {}).get("last_seq")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**53:
        return value
    return None


# -- the trail ----------------------------------------------------------------


class LogsSession:
    """Collects a ``logs`` answer, then (optionally) live events and log records."""

    def __init__(
        self,
        site: str,
        since: int,
        *,
        describe: Describer | None = None,
        json_out: bool = False,
        last_logs: int | None = None,
        show: bool = True,
    ) -> None:
        self.site = site
        self.since = since
        self.chain = ChainWatch(site, since)
        self.describe = describe or Describer()
        self.json_out = json_out
        self.last_logs = last_logs
        self.show = show
        self.log_seen: set[int] = set()
        self.events: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.live: list[Message] = []
        self.on_event: Callable[[Mapping[str, Any]], None] | None = None

    def _new_log(self, rec: Any) -> bool:
        seq = rec.get("seq") if isinstance(rec, dict) else None
        if not isinstance(seq, int) or isinstance(seq, bool) or seq in self.log_seen:
            return False
        self.log_seen.add(seq)
        if len(self.log_seen) > 2 * MAX_HELD:
            self.log_seen = {s for s in self.log_seen if s > max(self.log_seen) - MAX_HELD}
        return True

    def take_page(self, page: Mapping[str, Any]) -> None:
        events, logs = page.get("events"), page.get("logs")
        for ev in events if isinstance(events, list) else []:
            if isinstance(ev, dict) and self.chain.feed(ev):
                self.events.append(ev)
                if self.on_event is not None:
                    self.on_event(ev)
        for rec in logs if isinstance(logs, list) else []:
            if self._new_log(rec):
                self.logs.append(rec)
        if len(self.events) + len(self.logs) > MAX_HELD:
            raise CtlError(
                f"the answer holds more than {MAX_HELD} events and log records; "
                f"fetch it in parts with --since SEQ"
            )

    def print_collected(self) -> None:
        logs = self.logs
        if self.last_logs is not None and len(logs) > self.last_logs:
            hidden = len(logs) - self.last_logs
            logs = logs[hidden:]
            print(f"({hidden} older log records not shown; use --since-log SEQ)", file=sys.stderr)
        tagged = heapq.merge(
            ((to_unix(e.get("ts")) or 0.0, 0, e) for e in self.events),
            ((to_unix(r.get("ts")) or 0.0, 1, r) for r in logs),
            key=lambda t: t[:2],
        )
        for _, kind, item in tagged:
            self.emit(item, is_event=kind == 0)

    def emit(self, item: Mapping[str, Any], *, is_event: bool) -> None:
        if not self.show:
            return
        if self.json_out:
            print(json.dumps(item, ensure_ascii=False, separators=(",", ":")), flush=True)
        else:
            line = self.describe.event(item) if is_event else self.describe.log(item)
            print(line, flush=True)

    def take_live(self, msg: Message) -> None:
        if msg.topic not in (topics.events(self.site), topics.log(self.site)):
            return
        try:
            item = decode_json_object(msg.payload, max_bytes=MAX_MESSAGE)
        except ValidationError as err:
            print(f"warning: a message on {msg.topic} is not one: {err}", file=sys.stderr)
            return
        if msg.topic == topics.events(self.site):
            if self.chain.feed(item):
                if self.on_event is not None:
                    self.on_event(item)
                self.emit(item, is_event=True)
        elif self._new_log(item):
            self.emit(item, is_event=False)


def collect_pages(
    conn: Connection, session: LogsSession, reader: ResultReader, timeout: float
) -> None:
    """Take the pages of a ``logs`` answer until the last; NoAnswer if one is late."""
    pages: set[Any] = set()
    last_page: int | None = None
    while True:
        page = wait_result(conn, reader, time.monotonic() + timeout, other=session.live.append)
        if page is None:
            raise NoAnswer(
                f"no answer from {session.site} to the logs command within {timeout:g} s; "
                f"is the kiosk online? see kioskctl status --site {session.site}"
            )
        if page["ok"] is not True:
            raise Refused(f"{session.site} refused the logs command: {refusal_text(page)}")
        n = page.get("page")
        if n in pages or not (n is None or (isinstance(n, int) and not isinstance(n, bool))):
            continue
        pages.add(n)
        if len(pages) > MAX_PAGES:
            raise CtlError(f"the answer has more than {MAX_PAGES} pages; fetch it in parts")
        session.take_page(page)
        if page.get("last", True) is True:  # an answer without pages is one page
            last_page = n if isinstance(n, int) else len(pages)
        if last_page is not None:
            ints = {p for p in pages if isinstance(p, int)}
            start = 0 if 0 in ints else 1
            if not isinstance(n, int) or ints >= set(range(start, last_page + 1)):
                return


def fetch_trail(
    conn: Connection,
    session: LogsSession,
    key: Ed25519PrivateKey,
    *,
    since_log: int = 0,
    timeout: float,
    also_subscribe: tuple[str, ...] = (),
) -> ResultReader:
    """Send ``logs`` for events after ``session``'s since and collect the answer."""
    cmd_args = {"since_seq": session.since, "since_log_seq": since_log}
    sent = send_command(conn, session.site, "logs", cmd_args, key, also_subscribe=also_subscribe)
    reader = ResultReader(session.site, sent.cmd_id)
    collect_pages(conn, session, reader, timeout)
    return reader


def cmd_logs(args: argparse.Namespace, settings: Settings) -> int:
    site = settings.need_site()
    key = load_private_key(settings.need_key())
    if args.last is not None and args.last < 0:
        raise UsageError("--last must be zero or more")
    if args.since is not None and args.since < 0:
        raise UsageError("--since must be zero or more")
    last = DEFAULT_LAST if args.last is None else args.last
    live = (topics.events(site), topics.log(site)) if args.follow else ()
    times = Times(args.utc)
    describe = Describer(times=times, key_names=settings.key_names)
    if not args.json:
        print(times.zone_note(), file=sys.stderr)
    with Connection(settings.broker, timeout=settings.timeout) as conn:
        since = args.since
        if since is None:
            last_seq = last_seq_of(conn, site)
            since = max(0, last_seq - last) if last_seq is not None else 0
        session = LogsSession(
            site,
            since,
            describe=describe,
            json_out=args.json,
            last_logs=None if args.since_log is not None else last,
        )
        reader = None
        try:
            reader = fetch_trail(
                conn,
                session,
                key,
                since_log=args.since_log or 0,
                timeout=args.timeout,
                also_subscribe=live,
            )
        except NoAnswer:
            if not args.follow:
                raise
            print(
                f"warning: {site} did not answer the logs command; following live only",
                file=sys.stderr,
            )
        session.print_collected()
        if args.follow:
            _follow(conn, session, reader, args.duration)
    if conn.dropped:
        print(f"warning: {conn.dropped} messages were dropped (a flood?)", file=sys.stderr)
    if session.chain.problems:
        print(
            f"kioskctl: {len(session.chain.problems)} audit chain problem(s) at {site}; "
            f"see the warnings above",
            file=sys.stderr,
        )
        return EXIT_CHAIN
    return 0


def _follow(
    conn: Connection, session: LogsSession, reader: ResultReader | None, duration: float | None
) -> None:
    for early in session.live:
        session.take_live(early)
    session.live.clear()
    end = None if duration is None else time.monotonic() + duration
    try:
        while end is None or time.monotonic() < end:
            msg = conn.get(1.0 if end is None else min(1.0, end - time.monotonic()))
            if msg is None or (reader is not None and msg.topic == reader.topic):
                continue  # late pages of the answer were already taken
            session.take_live(msg)
    except KeyboardInterrupt:
        print(file=sys.stderr)


def add_parsers(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("status", parents=[common], help="the kiosks' retained health")
    p.add_argument("--site")
    p.add_argument("--all", action="store_true", help="every site on the broker")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--utc", action="store_true", help="show times in UTC, not local time")
    p.set_defaults(func="status")

    p = sub.add_parser(
        "logs",
        parents=[common],
        help="a kiosk's events and log records in words (checks the hash chain)",
        description="Fetches the trail with a signed logs command and prints it in words, "
        "in this computer's local time (--utc for UTC). Exit 0 fine, 1 refused, 2 no "
        "answer, 3 audit chain problem.",
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
    p.add_argument("--utc", action="store_true", help="show times in UTC, not local time")
    p.set_defaults(func="logs")
