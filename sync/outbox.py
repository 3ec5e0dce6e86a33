"""Events and log records going up: the store is the outbox (docs/design.md, rule 3).

Rows are published in ``seq`` order with QoS 1 through a bounded in-flight
window; a row is marked acknowledged in the store only after the broker's
PUBACK for it. Acks are written in batches (one transaction per batch) to
keep SQLite commits off the per-message path; a crash before a batch is
written only means those rows are sent again, which receivers de-duplicate by
``event_id`` (events) or ``site`` + ``seq`` (log records). After every
(re)connect :meth:`Outbox.restart` starts again from the first unacknowledged
row, because a new paho client knows nothing of the old one's in-flight
messages.

What may escape: StoreError from the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from kiosk.clock import Clock
from kiosk.store import Store
from protocol import topics
from protocol.canonical import dumps
from protocol.status import log_record

log = logging.getLogger(__name__)

EVENT = "event"
LOG = "log"
ACK_BATCH = 500
ACK_FLUSH_S = 0.5

Publish = Callable[[str, bytes], "int | None"]


@dataclass(frozen=True)
class InFlight:
    kind: str
    seq: int


class Outbox:
    def __init__(self, store: Store, site: str, clock: Clock, *, window: int = 50) -> None:
        self.store = store
        self.site = site
        self.clock = clock
        self.window = max(1, window)
        self.inflight: dict[int, InFlight] = {}
        self.last_event_sent = 0
        self.last_log_sent = 0
        self._acked_events: list[int] = []
        self._acked_logs: list[int] = []
        self._last_flush = clock.monotonic()
        self.refused = 0  # PUBACKs with a failure reason (e.g. not authorized)
        self.published = 0  # messages handed to paho, all kinds (benchmarks read it)
        self.acked = 0  # acknowledgements written to the store

    def restart(self, window: int | None = None) -> None:
        """A new connection: forget in-flight mids, resend from the first unacked row."""
        try:
            self.flush(force=True)
        finally:
            # Even if the acks could not be written: those rows simply go again.
            self._acked_events, self._acked_logs = [], []
            if window is not None:
                self.window = max(1, window)
            self.inflight.clear()
            self.last_event_sent = 0
            self.last_log_sent = 0

    def fill(self, publish: Publish, *, max_seq: int | None = None) -> int:
        """Publish rows until the window is full; return how many were sent.

        Events above ``max_seq`` wait: the agent publishes an event only after
        a retained status claiming its seq was acknowledged (docs/protocol.md,
        "Status"). Log records carry no seq claim and do not wait.
        """
        sent = 0
        free = self.window - len(self.inflight)
        if free <= 0:
            return 0
        rows = self.store.outbox(limit=free, after_seq=self.last_event_sent)
        if max_seq is not None:
            rows = [ev for ev in rows if ev.seq <= max_seq]
        for ev in rows:
            mid = publish(topics.events(self.site), ev.body.encode("utf-8"))
            if mid is None:
                return sent
            self.inflight[mid] = InFlight(EVENT, ev.seq)
            self.last_event_sent = ev.seq
            self.published += 1
            sent += 1
        free = self.window - len(self.inflight)
        if free <= 0:
            return sent
        for rec in self.store.logs_since(self.last_log_sent, free, unacked_only=True):
            body = log_record(self.site, rec.seq, rec.ts, rec.level, rec.logger, rec.message)
            mid = publish(topics.log(self.site), dumps(body))
            if mid is None:
                return sent
            self.inflight[mid] = InFlight(LOG, rec.seq)
            self.last_log_sent = rec.seq
            self.published += 1
            sent += 1
        return sent

    def on_ack(self, mid: int, ok: bool, reason: str = "") -> bool:
        """A PUBACK; return whether the mid was one of ours."""
        item = self.inflight.pop(mid, None)
        if item is None:
            return False
        if not ok:
            # Left unacked in the store: it goes again after the next reconnect.
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                log.warning(
                    "the broker refused %s %d (%s); it stays in the outbox",
                    item.kind,
                    item.seq,
                    reason,
                )
            return True
        (self._acked_events if item.kind == EVENT else self._acked_logs).append(item.seq)
        return True

    def pending_acks(self) -> int:
        return len(self._acked_events) + len(self._acked_logs)

    def flush(self, *, force: bool = False) -> int:
        """Write the acks gathered so far, in one transaction, when due."""
        n = self.pending_acks()
        if not n:
            return 0
        now = self.clock.monotonic()
        if not force and n < ACK_BATCH and now - self._last_flush < ACK_FLUSH_S and self.inflight:
            return 0
        events, logs = self._acked_events, self._acked_logs
        with self.store.atomic():
            self.store.mark_events_acked(events, self.clock.wall())
            self.store.mark_logs_acked(logs)
        self._acked_events, self._acked_logs = [], []
        self._last_flush = now
        self.acked += n
        return n
