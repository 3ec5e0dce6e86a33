"""What the hub does with each received batch, on the archive thread.

:meth:`Dispatcher.process` routes a batch by topic (docs/hub.md, "What the
hub subscribes to"): events into the archive (one transaction), retained
status into the site's live state, log records into the bounded log table,
``cmd_result`` pages of the hub's own gap fetches into the archive as
fetched events. Then what the newly verified events mean: collections for
the order book, occurrences for the alerts. :meth:`Dispatcher.tick` runs
the timers: gap fetches to publish and alert conditions.

Only configured sites are handled; anything else is counted and dropped.
A message that cannot be read is counted by topic kind and reason and
affects nothing else.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.alerts import AlertBook, AlertEngine, Observed
from hub.archive import Incoming, SqliteArchive
from hub.config import Config
from hub.console.commands import CommandBook
from hub.console.timeline import Timeline
from hub.errors import ArchiveError
from hub.gaps import GapFiller, Page
from hub.ingest import Msg
from hub.orders import OrderBook
from protocol import topics
from protocol.canonical import decode_json_object
from protocol.errors import ValidationError
from protocol.status import parse_status

log = logging.getLogger(__name__)

MAX_RESULT_BYTES = 4 * 1024 * 1024  # a logs page holds up to 200 events and 200 records
STATUS_REFRESH_S = 60.0
LEARNED = frozenset({"order_collected", "order_cancelled"})


@dataclass
class Outcome:
    """What the loop must do after a batch or a tick."""

    publish: list[tuple[str, bytes, bool]] = field(default_factory=list)
    status_changed: set[str] = field(default_factory=set)
    orders_changed: bool = False
    alerts_changed: bool = False
    #: sites whose alerts may have changed (their Home Assistant state is redone)
    sites: set[str] = field(default_factory=set)
    #: sites with newly archived events (open console pages refresh them)
    events: set[str] = field(default_factory=set)
    #: console commands the kiosk answered
    commands: set[str] = field(default_factory=set)


class Dispatcher:
    def __init__(
        self,
        cfg: Config,
        archive: SqliteArchive,
        orders: OrderBook,
        alerts: AlertBook,
        engine: AlertEngine,
        gaps: GapFiller,
        commands: CommandBook | None = None,
        timeline: Timeline | None = None,
    ) -> None:
        self.cfg = cfg
        self.commands = commands
        self.timeline = timeline
        self.archive = archive
        self.orders = orders
        self.alerts = alerts
        self.engine = engine
        self.gaps = gaps
        self.sites = frozenset(cfg.site_ids)
        self.ignored: Counter[str] = Counter()  # topic kind or reason -> count

    def process(self, batch: Sequence[Msg], now: float) -> Outcome:
        """Handle a batch; a defect met by one message never stops the others.

        ArchiveError escapes (nothing is acknowledged; the broker sends the
        batch again). Any other exception is a defect of the hub: the batch
        is handled again message by message, and the one that meets it is
        logged, counted and dropped, so that it cannot crash-loop the hub.
        """
        try:
            return self._process(batch, now)
        except ArchiveError:
            raise
        except Exception:
            if len(batch) == 1:
                log.exception(
                    "a message on %s met a defect of the hub; dropped", batch[0].topic[:200]
                )
                self.ignored["internal_error"] += 1
                return Outcome()
        merged = Outcome()
        for m in batch:
            one = self.process([m], now)
            merged.publish += one.publish
            merged.status_changed |= one.status_changed
            merged.orders_changed |= one.orders_changed
            merged.alerts_changed |= one.alerts_changed
            merged.sites |= one.sites
            merged.events |= one.events
            merged.commands |= one.commands
        return merged

    def _process(self, batch: Sequence[Msg], now: float) -> Outcome:
        out = Outcome()
        items: list[Incoming] = []
        logs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        statuses: dict[str, dict[str, Any]] = {}  # the newest of the batch, per site
        answers: list[Page] = []  # complete answers to gap fetches
        for m in batch:
            t = topics.parse(m.topic)
            if t is None or t.site not in self.sites:
                self.ignored["foreign_topic"] += 1
                continue
            if t.kind == topics.EVENTS:
                items.append(Incoming(t.site, m.payload))
            elif t.kind == topics.STATUS:
                status = self._read_status(t.site, m.payload)
                if status is not None:
                    statuses[t.site] = status
            elif t.kind == topics.LOG:
                rec = self._decode(m.payload, "log")
                if rec is not None and rec.get("site") == t.site:
                    logs[t.site].append(rec)
            elif t.kind == topics.CMD_RESULT and t.ident:
                doc = self._decode(m.payload, "cmd_result", MAX_RESULT_BYTES)
                if doc is None:
                    continue
                if self.commands is not None and self.commands.on_result(t.site, t.ident, doc, now):
                    out.commands.add(t.ident)
                    continue
                page = self.gaps.on_result(t.site, t.ident, doc, now)
                if page is not None:
                    items.extend(Incoming(t.site, ev, "gap") for ev in page.events)
                    logs[t.site].extend(r for r in page.logs if r.get("site") == t.site)
                    if page.kiosk_top is not None:
                        answers.append(page)
            else:
                self.ignored[t.kind] += 1
        if items or answers:
            report = self.archive.ingest(items, now)
            for page in answers:  # after the page's own events: they may fill the gap
                assert page.kiosk_top is not None
                report.alarms += self.archive.drop_phantoms(
                    page.site, page.kiosk_top, page.asked_at, now
                )
            by_site: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for ev in report.verified:
                by_site[str(ev["site"])].append(ev)
            for site, evs in by_site.items():
                if any(e.get("type") in LEARNED for e in evs) and self.orders.learn(site, evs, now):
                    out.orders_changed = True
                self.engine.on_events(site, evs, now)
            self.engine.on_chain(report.alarms, now)
            out.sites = set(by_site) | {a.site for a in report.alarms}
            out.events = set(by_site)
            out.alerts_changed = bool(out.sites)
        for site, status in statuses.items():
            if self._status(site, status, now):
                out.status_changed.add(site)
        for site, recs in logs.items():
            self.archive.store_logs(site, recs)
        return out

    def _decode(
        self, payload: bytes, kind: str, max_bytes: int = 64 * 1024
    ) -> dict[str, Any] | None:
        if not payload:
            return None
        try:
            return decode_json_object(payload, max_bytes=max_bytes)
        except ValidationError as err:
            self.ignored[f"{kind}:{err.reason}"] += 1
            return None

    def _read_status(self, site: str, payload: bytes) -> dict[str, Any] | None:
        doc = self._decode(payload, "status")
        if doc is None:
            return None
        if "site" in doc and doc["site"] != site:
            self.ignored["status:wrong_site"] += 1
            return None
        return parse_status(doc)

    def _status(self, site: str, clean: dict[str, Any], now: float) -> bool:
        """Keep a status; True when it changed. An unchanged one (but for its
        ``ts``) is written at most once a minute: a status flood costs no
        flush per message."""
        old = self.archive.status(site)
        changed = old is None or {k: v for k, v in old[0].items() if k != "ts"} != {
            k: v for k, v in clean.items() if k != "ts"
        }
        if changed or old is None or now - old[1] >= STATUS_REFRESH_S:
            self.archive.set_status(site, clean, now)
        if self.timeline is not None and (
            old is None or old[0].get("online") != clean.get("online")
        ):
            self.timeline.record_presence(site, clean.get("online") is True, now)
        return changed

    def tick(self, now: float) -> Outcome:
        out = Outcome()
        observed: dict[str, Observed] = {}
        for site in self.cfg.site_ids:
            chain = self.archive.chain(site)
            before = chain.gap_since
            cmd = self.gaps.due(chain, now, self.archive.newest_log(site))
            if chain.gap_since != before:
                after, chain.gap_since = chain.gap_since, before
                self.archive.set_gap_since(site, after)
            if cmd is not None:
                out.publish.append((cmd[0], cmd[1], False))
            status = self.archive.status(site)
            st = status[0] if status else {}
            observed[site] = Observed(
                online=st.get("online") if status else None, clock=st.get("clock"), chain=chain
            )
        self.engine.tick(observed, now)
        out.sites, self.engine.changed = self.engine.changed, set()
        out.alerts_changed = bool(out.sites)
        return out

    def active_kinds(self, site: str) -> list[str]:
        return [a.kind for a in self.alerts.search(site=site, state="active")]
