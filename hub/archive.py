"""The event archive: each kiosk's events once, byte for byte, chain verified.

:class:`Archive` is the interface the rest of the hub uses; :class:`SqliteArchive`
is the embedded implementation (a later issue adds PostgreSQL behind the
same calls). :meth:`Archive.ingest` takes a batch of messages and commits
them in one transaction: that is what makes the archive both fast (one
flush per batch) and exact (a batch is in the archive whole or not at all,
and a crash at any instant leaves the last committed state, from which the
gap filler fetches the rest).

Each message is judged alone (docs/design.md, rule 4): bad JSON, a
malformed event, an event for another site or one that fails the chain is
rejected or held by itself, counted by reason, and never affects another
message or another site. What an attacker can make the hub store is
bounded per site: held early events (``limits.early_events_per_site``),
evidence rows (``limits.rejections_per_site``), and the site's archive
bytes (``limits.site_bytes``).

Stored bytes: a live event is stored exactly as the kiosk published it; an
event fetched with ``logs`` arrives inside a page and is stored as the
kiosk's compact serialization of it (the same bytes the kiosk publishes,
docs/hub.md "Exactly once").
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.chain import ChainState, VerifyResult
from hub.config import LimitsSection
from hub.db import Database
from hub.errors import ArchiveError
from protocol.canonical import decode_json_object, dumps
from protocol.errors import ValidationError
from protocol.events import Tail, Verdict, check_event, hash_ok, link
from protocol.status import parse_status

log = logging.getLogger(__name__)

MAX_CANDIDATES = 4  # held copies of one early seq (a forger cannot crowd out the real one)
MAX_EVENT_BYTES = 64 * 1024


@dataclass(frozen=True)
class Incoming:
    """One event message: the site of its topic, and its bytes (``live``) or
    the decoded event from a ``logs`` page (``gap``)."""

    site: str
    payload: bytes | Mapping[str, Any]
    source: str = "live"


@dataclass(frozen=True)
class ChainAlarm:
    site: str
    kind: str  # chain_break, chain_conflict, site_full
    seq: int | None
    message: str


@dataclass
class IngestReport:
    verified: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    early: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    alarms: list[ChainAlarm] = field(default_factory=list)
    sites: set[str] = field(default_factory=set)


class Archive(Protocol):
    """What the hub needs of an archive. Every call may raise ArchiveError."""

    def ingest(self, items: Sequence[Incoming], now: float) -> IngestReport: ...
    def chain(self, site: str) -> ChainState: ...
    def events(self, site: str, since: int = 0, limit: int | None = None) -> Iterator[bytes]: ...
    def count(self, site: str) -> int: ...
    def verify(self, site: str) -> VerifyResult: ...
    def set_status(self, site: str, status: Mapping[str, Any], now: float) -> ChainState: ...
    def status(self, site: str) -> tuple[dict[str, Any], float] | None: ...
    def store_logs(self, site: str, records: Iterable[Mapping[str, Any]]) -> int: ...
    def set_gap_since(self, site: str, when: float | None) -> None: ...
    def rejections(self, site: str) -> dict[str, int]: ...
    def drop_phantoms(
        self, site: str, kiosk_top: int, asked_at: float, now: float
    ) -> list[ChainAlarm]: ...
    def newest_log(self, site: str) -> int: ...


class SqliteArchive:
    """The archive in the hub's SQLite file (see :mod:`hub.db`)."""

    def __init__(self, db: Database, sites: Iterable[str], limits: LimitsSection) -> None:
        self.db = db
        self.sites = frozenset(sites)
        self.limits = limits
        self.unknown_site = 0  # messages for sites not in hub.toml (in memory only)
        self._chains: dict[str, ChainState] = {}
        self._load()

    # ----- state -------------------------------------------------------------

    def _load(self) -> None:
        with self.db.atomic() as c:
            for site in self.sites:
                c.execute(
                    "INSERT OR IGNORE INTO chain(site, tail_seq, tail_hash) VALUES (?, 0, ?)",
                    (site, Tail().hash),
                )
        self._chains = {}
        for site in self.sites:
            self._chains[site] = self._read_chain(site)

    def _read_chain(self, site: str) -> ChainState:
        row = self.db.one("SELECT * FROM chain WHERE site = ?", (site,))
        assert row is not None
        state = ChainState(
            site=site,
            tail=Tail(int(row["tail_seq"]), str(row["tail_hash"])),
            bytes=int(row["bytes"]),
            status_last_seq=int(row["status_last_seq"]),
            break_seq=row["break_seq"],
            break_message=row["break_message"] or "",
            duplicates=int(row["duplicates"]),
            gap_since=row["gap_since"],
        )
        self._refresh_early(state)
        ev = self.db.one("SELECT COUNT(*) AS n FROM evidence WHERE site = ?", (site,))
        state.evidence = int(ev["n"]) if ev else 0
        return state

    def _refresh_early(self, state: ChainState) -> None:
        row = self.db.one(
            "SELECT COUNT(*) AS n, MIN(seq) AS lo, MAX(seq) AS hi FROM early WHERE site = ?",
            (state.site,),
        )
        assert row is not None
        state.early = int(row["n"])
        state.early_min = int(row["lo"] or 0)
        state.early_max = int(row["hi"] or 0)

    def _save_chain(self, c: sqlite3.Connection, s: ChainState) -> None:
        c.execute(
            "UPDATE chain SET tail_seq=?, tail_hash=?, bytes=?, early=?, early_max=?, "
            "status_last_seq=?, break_seq=?, break_message=?, duplicates=?, gap_since=? "
            "WHERE site=?",
            (
                s.tail.seq,
                s.tail.hash,
                s.bytes,
                s.early,
                s.early_max,
                s.status_last_seq,
                s.break_seq,
                s.break_message or None,
                s.duplicates,
                s.gap_since,
                s.site,
            ),
        )

    def chain(self, site: str) -> ChainState:
        return self._chains[site]

    # ----- ingest --------------------------------------------------------------

    def ingest(self, items: Sequence[Incoming], now: float) -> IngestReport:
        """Judge and store a batch in one transaction; see the module doc.

        Raises ArchiveError when the archive cannot be written: then nothing
        of the batch is kept and the in-memory state is reloaded.
        """
        report = IngestReport()
        rejections: Counter[tuple[str, str]] = Counter()
        try:
            with self.db.atomic() as c:
                touched: set[str] = set()
                for item in items:
                    reason = self._one(c, item, now, report)
                    if reason:
                        report.rejected[reason] += 1
                        if item.site in self.sites:
                            rejections[item.site, reason] += 1
                    elif item.site in self.sites:
                        touched.add(item.site)
                for (site, reason), n in rejections.items():
                    c.execute(
                        "INSERT INTO rejections(site, reason, count, first_at, last_at) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT(site, reason) DO UPDATE SET "
                        "count = count + excluded.count, last_at = excluded.last_at",
                        (site, reason, n, now, now),
                    )
                    touched.add(site)
                for site in touched:
                    self._save_chain(c, self._chains[site])
                report.sites = touched
            self._log_alarms(report)
        except (ArchiveError, sqlite3.Error) as exc:
            self._chains = {site: self._read_chain(site) for site in self.sites}
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(f"{self.db.path}: cannot write the archive: {exc}") from None
        return report

    @staticmethod
    def _log_alarms(report: IngestReport) -> None:
        """One line per site and kind per batch: a flood must not flood the journal."""
        seen: Counter[tuple[str, str]] = Counter((a.site, a.kind) for a in report.alarms)
        for (site, kind), n in seen.items():
            first = next(a for a in report.alarms if a.site == site and a.kind == kind)
            more = f" (and {n - 1} more in this batch)" if n > 1 else ""
            log.warning("site %s: %s: %s%s", site, kind, first.message, more)

    def _one(self, c: sqlite3.Connection, item: Incoming, now: float, report: IngestReport) -> str:
        """Handle one message; return a rejection reason, or "" when taken."""
        if item.site not in self.sites:
            self.unknown_site += 1
            return "unknown_site"
        state = self._chains[item.site]
        try:
            if isinstance(item.payload, bytes):
                if len(item.payload) > MAX_EVENT_BYTES:
                    raise ValidationError("too_large", "an event is at most 64 KiB")
                ev = decode_json_object(item.payload)
                body = item.payload
            else:
                ev = dict(item.payload)
                body = dumps(ev)
                if len(body) > MAX_EVENT_BYTES:
                    raise ValidationError("too_large", "an event is at most 64 KiB")
            check_event(ev, item.site)
            if body is item.payload and dumps(ev) != body:
                # Not the byte form a kiosk publishes (docs/protocol.md "For a
                # hub"): archived first, such a copy (spaces, escapes) would
                # stand for the kiosk's own bytes, which then count as a duplicate.
                raise ValidationError(
                    "not_compact", "an event is published in its compact serialization"
                )
        except ValidationError as err:
            self._evidence(c, state, None, err.reason, str(err), None, now)
            return err.reason
        seq = int(ev["seq"])
        if seq <= state.tail.seq:
            row = c.execute(
                "SELECT hash FROM events WHERE site = ? AND seq = ?", (item.site, seq)
            ).fetchone()
            verdict = link(state.tail, ev, row[0] if row else None)
            if verdict.verdict is Verdict.DUPLICATE:
                state.duplicates += 1
                report.duplicates += 1
                return ""
            self._alarm(c, state, "chain_conflict", seq, verdict.message, body, now, report)
            return "conflict"
        if state.bytes + len(body) > self.limits.site_bytes:
            msg = f"the site's archive reached limits.site_bytes ({self.limits.site_bytes})"
            report.alarms.append(ChainAlarm(item.site, "site_full", seq, msg))
            return "site_full"
        if seq > state.tail.seq + 1:
            if not hash_ok(ev):
                # Never valid whatever comes before it: refused now, so that
                # such copies cannot crowd the real one out of the held slots.
                msg = f"seq {seq}: hash does not match its contents (changed)"
                self._alarm(c, state, "chain_break", seq, msg, body, now, report, hold=False)
                return "bad_hash"
            return self._hold(c, state, ev, body, item.source, now, report)
        verdict = link(state.tail, ev)
        if verdict.verdict is not Verdict.VERIFIED:
            self._alarm(c, state, "chain_break", seq, verdict.message, body, now, report)
            return "chain_break"
        self._store(c, state, ev, body, item.source, now, report)
        self._release(c, state, now, report)
        return ""

    def _store(
        self,
        c: sqlite3.Connection,
        state: ChainState,
        ev: dict[str, Any],
        body: bytes,
        source: str,
        now: float,
        report: IngestReport,
    ) -> None:
        seq = int(ev["seq"])
        c.execute(
            "INSERT INTO events(site, seq, hash, type, order_id, ts, body, source, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                state.site,
                seq,
                ev["hash"],
                str(ev["type"]),
                ev.get("order_id") if isinstance(ev.get("order_id"), str) else None,
                str(ev["ts"]),
                body,
                source,
                now,
            ),
        )
        state.tail = Tail(seq, str(ev["hash"]))
        state.bytes += len(body)
        if state.break_seq is not None and state.break_seq <= seq:
            # The kiosk's own copy of the broken seq linked: the bad copy was
            # not the kiosk's. The evidence and the alert stay.
            state.break_seq, state.break_message = None, ""
        report.verified.append(ev)

    def _hold(
        self,
        c: sqlite3.Connection,
        state: ChainState,
        ev: dict[str, Any],
        body: bytes,
        source: str,
        now: float,
        report: IngestReport,
    ) -> str:
        seq = int(ev["seq"])
        rows = c.execute(
            "SELECT hash FROM early WHERE site = ? AND seq = ?", (state.site, seq)
        ).fetchall()
        if any(r[0] == ev["hash"] for r in rows):
            state.duplicates += 1
            report.duplicates += 1
            return ""
        if len(rows) >= MAX_CANDIDATES:
            return "early_crowded"
        if state.early >= self.limits.early_events_per_site:
            # Full: keep the events nearest the tail (they are what unblocks
            # the chain); the farthest are dropped and fetched later.
            if seq >= state.early_max:
                return "early_overflow"
            far = c.execute(
                "SELECT seq, hash, length(body) FROM early WHERE site = ? "
                "ORDER BY seq DESC LIMIT 1",
                (state.site,),
            ).fetchone()
            c.execute(
                "DELETE FROM early WHERE site = ? AND seq = ? AND hash = ?",
                (state.site, far[0], far[1]),
            )
            state.bytes -= int(far[2])
            state.early -= 1
            report.rejected["early_overflow"] += 1
            self._refresh_early(state)
        c.execute(
            "INSERT INTO early(site, seq, hash, body, source, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (state.site, seq, ev["hash"], body, source, now),
        )
        state.bytes += len(body)
        state.early += 1
        state.early_max = max(state.early_max, seq)
        state.early_min = seq if not state.early_min else min(state.early_min, seq)
        report.early += 1
        return ""

    def _release(
        self, c: sqlite3.Connection, state: ChainState, now: float, report: IngestReport
    ) -> None:
        """Verify held events that now follow the tail, in order."""
        if not state.early or state.early_min > state.tail.seq + 1:
            return
        while True:
            nxt = state.tail.seq + 1
            rows = c.execute(
                "SELECT hash, body, source FROM early WHERE site = ? AND seq <= ? ORDER BY seq",
                (state.site, nxt),
            ).fetchall()
            if not rows:
                break
            c.execute("DELETE FROM early WHERE site = ? AND seq <= ?", (state.site, nxt))
            linked = False
            for _hash, body, source in rows:
                state.bytes -= len(body)
                ev = decode_json_object(bytes(body))
                if int(ev["seq"]) < nxt:
                    continue  # superseded (a fetched copy verified first)
                if not linked and link(state.tail, ev).verdict is Verdict.VERIFIED:
                    self._store(c, state, ev, bytes(body), source, now, report)
                    linked = True
                else:
                    msg = link(state.tail, ev).message or f"seq {nxt}: another copy verified"
                    kind = "chain_conflict" if linked else "chain_break"
                    self._alarm(c, state, kind, int(ev["seq"]), msg, bytes(body), now, report)
            if not linked:
                break
        self._refresh_early(state)

    def _evidence(
        self,
        c: sqlite3.Connection,
        state: ChainState,
        seq: int | None,
        kind: str,
        message: str,
        body: bytes | None,
        now: float,
    ) -> None:
        if state.evidence >= self.limits.rejections_per_site:
            return  # counted in rejections; the first ones are kept
        c.execute(
            "INSERT INTO evidence(site, seq, kind, message, body, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (state.site, seq, kind, message[:500], body[:MAX_EVENT_BYTES] if body else None, now),
        )
        state.evidence += 1

    def _alarm(
        self,
        c: sqlite3.Connection,
        state: ChainState,
        kind: str,
        seq: int,
        message: str,
        body: bytes,
        now: float,
        report: IngestReport,
        *,
        hold: bool = True,
    ) -> None:
        self._evidence(c, state, seq, kind, message, body, now)
        if hold and kind == "chain_break" and state.break_seq is None:
            state.break_seq, state.break_message = seq, message
        report.alarms.append(ChainAlarm(state.site, kind, seq, message))

    def drop_phantoms(
        self, site: str, kiosk_top: int, asked_at: float, now: float
    ) -> list[ChainAlarm]:
        """Drop held events the kiosk does not have; the alarms to raise.

        A complete answer to a fetch asked at ``asked_at`` ends at
        ``kiosk_top``. A kiosk publishes an event only after storing it, so
        a held event received before the asking with a seq beyond that is
        not the kiosk's: a forgery (or another kiosk's, with the same site),
        which would otherwise hold the gap open for ever (``verify`` failing,
        a fetch every ``gaps.retry_max_s``). It is kept as evidence, and the
        same goes for a ``last_seq`` of a status received before the asking.
        """
        state = self._chains[site]
        alarms: list[ChainAlarm] = []
        with self.db.atomic() as c:
            rows = c.execute(
                "SELECT seq, hash, body FROM early WHERE site = ? AND seq > ? "
                "AND received_at < ? ORDER BY seq",
                (site, kiosk_top, asked_at),
            ).fetchall()
            for seq, hash_, body in rows:
                c.execute(
                    "DELETE FROM early WHERE site = ? AND seq = ? AND hash = ?", (site, seq, hash_)
                )
                state.bytes -= len(body)
                msg = (
                    f"seq {seq} was held, but the kiosk's complete answer to a fetch asked "
                    f"after it ends at seq {kiosk_top}: not the kiosk's event"
                )
                self._evidence(c, state, int(seq), "phantom", msg, bytes(body), now)
                alarms.append(ChainAlarm(site, "phantom", int(seq), msg))
            status = c.execute(
                "SELECT received_at FROM site_status WHERE site = ?", (site,)
            ).fetchone()
            claim = state.status_last_seq
            if claim > kiosk_top and status is not None and float(status[0]) < asked_at:
                state.status_last_seq = kiosk_top
                msg = (
                    f"the status claimed seq {claim}, but the kiosk's complete answer to a "
                    f"fetch asked after it ends at seq {kiosk_top}"
                )
                self._evidence(c, state, claim, "phantom", msg, None, now)
                alarms.append(ChainAlarm(site, "phantom", claim, msg))
            if alarms:
                c.execute(
                    "INSERT INTO rejections(site, reason, count, first_at, last_at) "
                    "VALUES (?, 'phantom', ?, ?, ?) ON CONFLICT(site, reason) DO UPDATE SET "
                    "count = count + excluded.count, last_at = excluded.last_at",
                    (site, len(alarms), now, now),
                )
                self._refresh_early(state)
                self._save_chain(c, state)
        if alarms:
            self._log_alarms(IngestReport(alarms=alarms))
        return alarms

    # ----- status, logs --------------------------------------------------------

    def set_status(self, site: str, status: Mapping[str, Any], now: float) -> ChainState:
        """Keep a site's retained status (already parsed) and its last_seq."""
        state = self._chains[site]
        clean = parse_status(status)
        with self.db.atomic() as c:
            c.execute(
                "INSERT INTO site_status(site, body, received_at) VALUES (?, ?, ?) "
                "ON CONFLICT(site) DO UPDATE SET body = excluded.body, "
                "received_at = excluded.received_at",
                (site, dumps(clean).decode("utf-8"), now),
            )
            last = clean.get("last_seq")
            if isinstance(last, int) and last != state.status_last_seq:
                state.status_last_seq = last
                self._save_chain(c, state)
        return state

    def status(self, site: str) -> tuple[dict[str, Any], float] | None:
        row = self.db.one("SELECT body, received_at FROM site_status WHERE site = ?", (site,))
        if row is None:
            return None
        return decode_json_object(row["body"]), float(row["received_at"])

    def store_logs(self, site: str, records: Iterable[Mapping[str, Any]]) -> int:
        """Keep kiosk log records (de-duplicated by seq, the newest N per site)."""
        keep = self.limits.log_records_per_site
        if site not in self.sites or keep == 0:
            return 0
        rows = []
        for rec in records:
            seq = rec.get("seq")
            if isinstance(seq, int) and not isinstance(seq, bool) and 0 < seq <= 2**53:
                body = dumps(dict(rec))
                if len(body) <= MAX_EVENT_BYTES:
                    rows.append((site, seq, body))
        if not rows:
            return 0
        with self.db.atomic() as c:
            floor = c.execute(
                "SELECT seq FROM logs WHERE site = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
                (site, keep - 1),
            ).fetchone()
            if floor is not None:  # full: older records than the kept ones are not taken again
                rows = [r for r in rows if r[1] > floor[0]]
            before = c.total_changes
            c.executemany("INSERT OR IGNORE INTO logs(site, seq, body) VALUES (?, ?, ?)", rows)
            added = c.total_changes - before
            c.execute(
                "DELETE FROM logs WHERE site = ? AND seq <= "
                "(SELECT seq FROM logs WHERE site = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (site, site, keep),
            )
        return added

    def newest_log(self, site: str) -> int:
        """The newest kiosk log record's seq the hub holds (0 for none)."""
        row = self.db.one("SELECT MAX(seq) AS n FROM logs WHERE site = ?", (site,))
        return int(row["n"]) if row and row["n"] is not None else 0

    def logs(self, site: str, limit: int = 100) -> list[bytes]:
        rows = self.db.query(
            "SELECT body FROM logs WHERE site = ? ORDER BY seq DESC LIMIT ?", (site, limit)
        )
        return [bytes(r["body"]) for r in reversed(rows)]

    def set_gap_since(self, site: str, when: float | None) -> None:
        state = self._chains[site]
        if state.gap_since == when:
            return
        state.gap_since = when
        with self.db.atomic() as c:
            self._save_chain(c, state)

    def rejections(self, site: str) -> dict[str, int]:
        rows = self.db.query("SELECT reason, count FROM rejections WHERE site = ?", (site,))
        return {str(r["reason"]): int(r["count"]) for r in rows}

    def evidence(self, site: str, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT seq, kind, message, received_at FROM evidence WHERE site = ? "
            "ORDER BY id DESC LIMIT ?",
            (site, limit),
        )
        return [dict(r) for r in rows]

    # ----- reading ---------------------------------------------------------

    def events(self, site: str, since: int = 0, limit: int | None = None) -> Iterator[bytes]:
        """The verified events after ``since``, in seq order, exactly as stored."""
        last = since
        left = limit
        while left is None or left > 0:
            batch = 1000 if left is None else min(1000, left)
            rows = self.db.query(
                "SELECT seq, body FROM events WHERE site = ? AND seq > ? ORDER BY seq LIMIT ?",
                (site, last, batch),
            )
            for r in rows:
                yield bytes(r["body"])
            if len(rows) < batch:
                return
            last = int(rows[-1]["seq"])
            if left is not None:
                left -= len(rows)

    def count(self, site: str) -> int:
        row = self.db.one("SELECT COUNT(*) AS n FROM events WHERE site = ?", (site,))
        return int(row["n"]) if row else 0

    def verify(self, site: str) -> VerifyResult:
        """Re-check the whole archived chain of a site from its bytes.

        ok when 1..N are all present, linked and unchanged, nothing is held
        after a gap, and the kiosk reported no newer seq; otherwise the
        message names the first gap or break.
        """
        tail = Tail()
        for body in self.events(site):
            try:
                ev = decode_json_object(body)
                check_event(ev, site)
            except ValidationError as err:
                return VerifyResult(False, tail.seq, f"seq {tail.seq + 1}: unreadable ({err})")
            seq = int(ev["seq"])
            if seq != tail.seq + 1:
                return VerifyResult(False, tail.seq, f"gap: {_span(tail.seq + 1, seq - 1)} missing")
            verdict = link(tail, ev)
            if verdict.verdict is not Verdict.VERIFIED:
                return VerifyResult(
                    False, tail.seq, f"chain broken at seq {seq}: {verdict.message}"
                )
            tail = Tail(seq, str(ev["hash"]))
        state = self._chains.get(site) or self._read_chain(site)
        if state.break_seq is not None:
            return VerifyResult(
                False, tail.seq, f"chain broken at seq {state.break_seq}: {state.break_message}"
            )
        gap = state.missing()
        if gap is not None:
            return VerifyResult(False, tail.seq, f"gap: {_span(*gap)} missing")
        if tail.seq == 0:
            return VerifyResult(False, 0, "no events archived yet")
        return VerifyResult(True, tail.seq, "")


def _span(first: int, last: int) -> str:
    """``seq 3`` or ``seq 3 to 5``: one wording for every gap verify names."""
    return f"seq {first}" if first == last else f"seq {first} to {last}"
