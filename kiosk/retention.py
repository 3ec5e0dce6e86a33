"""Retention that cannot destroy, and making room when the card is full.

Retention forgets what is old enough (docs/protocol.md, "Retention"), under
rules that hold whatever the clock or a document claims:

- it never deletes an active order (pending, paid or ready and not long
  past its expiry), an event the broker has not acknowledged, a log record
  not yet uploaded, or a command id the kiosk could still accept;
- it runs only at a trusted time, and never in a pass where the judged time
  moved against the monotonic clock since the previous pass (a jump), nor
  for ``jump_quiet_s`` (a day) of monotonic time after one; the first pass
  after a boot only takes the mark;
- it refuses a pass that would delete more than ``max_fraction`` of the
  orders, events or log records at once: a ``retention_refused`` event and
  an alarm instead (at most one event a day while it lasts);
- what it deleted is a ``retention`` event with the counts and the new
  anchor of the trail, so a purge is never silent (``kiosk verify-log``
  says where the kept trail starts and why).

:meth:`Retention.make_room` is the other duty: when the card is nearly full
it frees what may be lost (acknowledged log records, then acknowledged
events from the front of the trail, whatever their age), never anything
else, and re-creates the space reserve once there is room.

Every delete is its own short transaction of at most ``chunk`` rows, so the
door's commits never wait long behind retention.

What may escape: StoreError from the store.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiosk.audit import Audit
from kiosk.clock import ClockSnapshot
from kiosk.store import Store
from kiosk.storefiles import Reserve, free_bytes
from protocol.commands import COMMAND_MEMORY_S

log = logging.getLogger(__name__)

META_MARK = "retention_mark"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
REFUSED_EVERY_S = 86400.0


def boot_id() -> str:
    """This boot's id (monotonic times are comparable only within one boot)."""
    try:
        return BOOT_ID.read_text().strip()[:64]
    except OSError:
        return ""


@dataclass(frozen=True)
class RetentionPolicy:
    order_retention_s: float = 30 * 86400.0
    event_retention_s: float = 90 * 86400.0
    log_retention_s: float | None = None  # None: as events
    max_fraction: float = 0.25
    min_rows: int = 20  # the fraction rule applies only when more rows than this would go
    expired_grace_s: float = 86400.0  # expired orders stay at least this long past expiry
    done_grace_s: float = 3600.0  # collected/cancelled ones at least this long (re-entry)
    command_memory_s: float = COMMAND_MEMORY_S
    step_memory_s: float = 2 * 86400.0
    #: how long a forgotten order's version is remembered against replays (staff: always)
    tombstone_memory_s: float = 400 * 86400.0
    jump_tolerance_s: float = 120.0
    jump_quiet_s: float = 86400.0
    chunk: int = 500

    @classmethod
    def from_config(cls, store_cfg: Any) -> RetentionPolicy:
        return cls(
            order_retention_s=float(store_cfg.order_retention_days) * 86400,
            event_retention_s=float(store_cfg.event_retention_days) * 86400,
            max_fraction=float(getattr(store_cfg, "max_purge_fraction", 0.25)),
        )


@dataclass(frozen=True)
class PassResult:
    outcome: str  # purged | nothing | skipped | refused
    reason: str = ""  # skipped: untrusted | first_pass | clock_jump; refused: the table
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class _Plan:
    order_ids: list[str]
    events_through: int
    n_events: int
    n_logs: int
    n_commands: int
    log_cut: float
    step_cut: float
    command_cut: float


class Retention:
    """One site's retention passes and room-making, over one store."""

    def __init__(
        self,
        store: Store,
        audit: Audit,
        policy: RetentionPolicy,
        *,
        boot: str | None = None,
        reserve_bytes: int = 0,
    ) -> None:
        self.store = store
        self.audit = audit
        self.policy = policy
        self.boot = boot_id() if boot is None else boot
        self.reserve = Reserve(store.path, reserve_bytes)
        self.refused: str = ""  # the table of the refusal in force ("" when none)
        self._last_refused_event = -math.inf
        self.pressure = False  # the card is nearly full (the agent summarizes rejections)

    # ----- the pass -----------------------------------------------------------

    def _mark(self, snap: ClockSnapshot) -> str:
        """Compare with the previous pass's (judged time, monotonic time, boot) and
        save this one's; return why this pass must be skipped ("" when it may run)."""
        raw = self.store.get_meta(META_MARK)
        try:
            data = json.loads(raw or "null")
            then, mono, boot = float(data["now"]), float(data["mono"]), str(data["boot"])
            quiet = float(data.get("quiet", 0.0))
        except (ValueError, TypeError, KeyError, AttributeError):
            then, mono, boot, quiet = 0.0, 0.0, "", 0.0
        why = ""
        if not boot or boot != self.boot or snap.mono < mono:
            why, quiet = "first_pass", 0.0
        else:
            drift = (snap.now - then) - (snap.mono - mono)
            if abs(drift) > self.policy.jump_tolerance_s:
                log.warning(
                    "retention paused for %.0f h: the judged time moved %.0f s against the "
                    "monotonic clock since the last pass",
                    self.policy.jump_quiet_s / 3600,
                    drift,
                )
                quiet = snap.mono + self.policy.jump_quiet_s
            if snap.mono < quiet:
                why = "clock_jump"
        mark = {"now": snap.now, "mono": snap.mono, "boot": self.boot, "quiet": quiet}
        self.store.set_meta(META_MARK, json.dumps(mark))
        return why

    def run(self, snap: ClockSnapshot) -> PassResult:
        """One retention pass at ``snap``; see the module docstring."""
        why = self._mark(snap)
        if not snap.trusted:
            return PassResult("skipped", "untrusted")
        if why:
            return PassResult("skipped", why)
        plan = self._plan(snap.now)
        too_much = self._too_much(plan)
        if too_much:
            return self._refuse(snap, too_much, plan)
        self.refused = ""
        counts = self._execute(plan, snap)
        if not any(counts.values()):
            return PassResult("nothing", counts=counts)
        self._record(snap, counts, "retention")
        return PassResult("purged", counts=counts)

    def _plan(self, now: float) -> _Plan:
        p = self.policy
        log_keep = p.event_retention_s if p.log_retention_s is None else p.log_retention_s
        ids = self.store.purgeable_order_ids(
            done_before=now - max(p.order_retention_s, p.done_grace_s),
            expired_before=now - max(p.order_retention_s, p.expired_grace_s),
        )
        through, n_events = self.store.acked_front(now - p.event_retention_s)
        log_cut = now - log_keep
        command_cut = now - p.command_memory_s
        return _Plan(
            order_ids=ids,
            events_through=through,
            n_events=n_events,
            n_logs=self.store.purgeable_logs(log_cut),
            n_commands=self.store.count_purgeable_commands(command_cut),
            log_cut=log_cut,
            step_cut=now - p.step_memory_s,
            command_cut=command_cut,
        )

    def _too_much(self, plan: _Plan) -> str:
        p = self.policy
        for table, n, total in (
            ("orders", len(plan.order_ids), self.store.count_orders()),
            ("events", plan.n_events, self.store.count_events()),
            ("logs", plan.n_logs, self.store.count_logs()),
        ):
            if n > p.min_rows and total and n / total > p.max_fraction:
                return table
        return ""

    def _refuse(self, snap: ClockSnapshot, table: str, plan: _Plan) -> PassResult:
        counts = {
            "orders": len(plan.order_ids),
            "events": plan.n_events,
            "logs": plan.n_logs,
        }
        log.warning(
            "retention refused: it would delete %d %s at once, more than %.0f%% "
            "([store] max_purge_fraction)",
            counts[table],
            table,
            self.policy.max_fraction * 100,
        )
        if self.refused != table or snap.mono - self._last_refused_event >= REFUSED_EVERY_S:
            self._last_refused_event = snap.mono
            totals = {
                "orders": self.store.count_orders(),
                "events": self.store.count_events(),
                "logs": self.store.count_logs(),
            }
            self.audit.record(
                "retention_refused",
                snap,
                detail={
                    "table": table,
                    "would_delete": counts,
                    "held": totals,
                    "max_fraction": self.policy.max_fraction,
                },
            )
        self.refused = table
        return PassResult("refused", table, counts)

    def _execute(self, plan: _Plan, snap: ClockSnapshot) -> dict[str, int]:
        chunk = max(1, self.policy.chunk)
        counts = {"orders": 0, "events": 0, "logs": 0, "commands": 0, "steps": 0}
        for i in range(0, len(plan.order_ids), chunk):
            counts["orders"] += self.store.purge_orders(plan.order_ids[i : i + chunk], snap.now)
        if plan.events_through:
            counts["events"] = self._events_through(plan.events_through, "retention", snap)
        if plan.n_logs:
            counts["logs"] = self._logs(plan.log_cut)
        counts["commands"] = self.store.purge_commands(plan.command_cut)
        counts["steps"] = self.store.purge_used_steps(plan.step_cut)
        self.store.purge_tombstones(snap.now - self.policy.tombstone_memory_s)
        return counts

    def _events_through(self, last: int, reason: str, snap: ClockSnapshot) -> int:
        n = 0
        chunk = max(1, self.policy.chunk)
        while True:
            start = self.store.chain_anchor().seq
            if start >= last:
                return n
            step = self.store.purge_events_through(
                min(last, start + chunk), reason=reason, at=snap.now
            )
            if not step:
                return n
            n += step

    def _logs(self, before: float | None) -> int:
        n = 0
        while True:
            step = self.store.purge_logs(before, max(1, self.policy.chunk))
            n += step
            if step < self.policy.chunk:
                return n

    def _record(self, snap: ClockSnapshot, counts: dict[str, int], why: str) -> None:
        anchor = self.store.anchor()
        detail: dict[str, Any] = {
            "reason": why,
            "counts": counts,
            "anchor": {"seq": anchor.seq, "hash": anchor.hash},
        }
        self.audit.record("retention", snap, detail=detail)
        log.info(
            "retention (%s): forgot %s; the kept trail starts after seq %d",
            why,
            ", ".join(f"{n} {k}" for k, n in counts.items() if n),
            anchor.seq,
        )

    # ----- a full card ----------------------------------------------------------

    def available(self) -> int:
        """Room for new rows: free space on the card plus free pages in the file."""
        return free_bytes(self.store.path.parent) + self.store.freelist_bytes()

    def make_room(self, snap: ClockSnapshot, target: int) -> dict[str, int]:
        """Free acknowledged log records, then acknowledged events from the
        front, until ``target`` bytes are available; never anything else."""
        counts = {"logs": 0, "events": 0}
        if self.available() >= target:
            return counts
        chunk = max(1, self.policy.chunk)
        while self.available() < target:
            step = self.store.purge_logs(None, chunk)
            counts["logs"] += step
            if not step:
                break
        while self.available() < target:
            start = self.store.chain_anchor().seq
            last, n = self.store.acked_front()
            if not n or last <= start:
                break
            step = self.store.purge_events_through(
                min(last, start + chunk), reason="disk_full", at=snap.now
            )
            counts["events"] += step
            if not step:
                break
        if any(counts.values()):
            self.store.checkpoint("PASSIVE")  # let the freed pages be reused soon
            self._record(snap, counts, "disk_full")
        return counts

    def housekeep(self, snap: ClockSnapshot, low_water: int) -> bool:
        """The card's state, checked often and cheaply: make room when it is
        nearly full or the reserve was spent; re-create the reserve once there
        is room for it and more. Returns whether the card is under pressure."""
        need = low_water + (0 if self.reserve.present() else self.reserve.size)
        self.pressure = self.available() < low_water
        if self.pressure or not self.reserve.present():
            self.make_room(snap, need)
            self.pressure = self.available() < low_water
        if (
            self.reserve.size
            and not self.reserve.present()
            and free_bytes(self.store.path.parent) >= self.reserve.size + low_water
        ):
            self.reserve.create()
        return self.pressure
