"""Owner commands on the kiosk (docs/protocol.md, "Commands"): judge, refuse, run, answer.

The sync agent hands each message of ``cmd/{cmd_id}`` to
:meth:`Commands.handle`. A command is judged by the protocol
(:func:`protocol.commands.check_command`, then its times and args) against
the kiosk's memory of command ids, and then:

- refused: a ``command`` event with ``ok: false`` and the ``refusal`` slug,
  and a ``cmd_result``. Refusals anyone could produce without a key
  (unsigned, malformed, retained, replayed) pass the audit's flood limiter:
  beyond its rate they are only counted in the next ``rejections_summarized``
  and get no answer, so a flood costs a bounded amount. A refusal of a
  signed command is always recorded and answered (each signed id once);
- run: ``unlock`` is left ``pending`` for the door daemon, which takes it
  (``running``) and reports ``done`` or ``failed``; ``cancel`` withdraws a
  pending unlock atomically or tombstones an id not seen yet; ``time`` lets
  the owner repair the clock; ``orders``, ``logs`` and ``sync`` answer from
  the store.

Deadlines are monotonic, so a clock that jumps never times out an unlock
early. What may escape :meth:`Commands.handle`: StoreError (the agent
answers ``internal``) and nothing else by design; the agent guards each
message anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kiosk.audit import Audit
from kiosk.clock import SIGNED_SKEW_S, Clock, ClockSnapshot, TrustedClock
from kiosk.errors import ValidationError
from kiosk.store import Store
from protocol import topics
from protocol.canonical import dumps
from protocol.commands import (
    FUTURE_SKEW_S,
    MAX_AGE_S,
    MAX_LIFETIME_S,
    PAGE_SIZE,
    Command,
    CommandRefused,
    check_args,
    check_command,
    check_times,
    lower_from,
    refusal,
    success,
)
from protocol.status import log_record
from protocol.times import format_time

log = logging.getLogger(__name__)

UNLOCK_TIMEOUT_S = 30.0  # the door daemon must take an unlock within this (monotonic)
RUNNING_GRACE_S = 30.0  # ... and report what it did within this much more
RESULT_WINDOW = 20  # cmd_result pages in flight at once
MAX_RESULTS = 1000  # answers waiting for a connection; the oldest go first
MAX_RETAINED_IDS = 10_000  # retained command ids refused once per run, remembered
#: how far the floor a lowering ``time`` names may be from the kiosk's floor (it
#: moves on while the owner reads it and sends the repair)
LOWER_MATCH_S = 86400.0
KEYLESS = frozenset({"retained", "replayed"})  # refusals anyone can produce by replaying


@dataclass
class LogsJob:
    """A `logs` command still producing pages."""

    cmd_id: str
    since_seq: int
    since_log_seq: int
    page: int = 1


class Commands:
    """Command state of one sync agent: what waits for the door, what to answer."""

    def __init__(
        self,
        *,
        store: Store,
        audit: Audit,
        keyring: Any,
        site: str,
        tclock: TrustedClock,
        clock: Clock,
        observe_signed: Callable[[float, ClockSnapshot, str], None],
        on_sync: Callable[[], None],
        on_clock_set: Callable[[], None],
    ) -> None:
        self.store = store
        self.audit = audit
        self.keyring = keyring
        self.site = site
        self.tclock = tclock
        self.clock = clock
        self.observe_signed = observe_signed
        self.on_sync = on_sync
        self.on_clock_set = on_clock_set
        self.results: list[tuple[str, bytes]] = []
        self.result_mids: set[int] = set()
        self.logs_jobs: list[LogsJob] = []
        self.pending_unlocks: dict[str, float] = {}  # cmd_id -> monotonic deadline
        self.pending_cancels: dict[str, tuple[str, float]] = {}  # cancel id -> (target, deadline)
        self.refused_retained: set[str] = set()

    # ----- answers ----------------------------------------------------------

    def answer(self, cmd_id: str, body: dict[str, Any]) -> None:
        if len(self.results) >= MAX_RESULTS:
            self.results.pop(0)
        self.results.append((topics.cmd_result(self.site, cmd_id), dumps(body)))

    def send(self, publish: Callable[[str, bytes], int | None]) -> None:
        """Hand waiting answers to the connection; `logs` pages a few at a time."""
        while self.results:
            topic, payload = self.results[0]
            if publish(topic, payload) is None:
                return
            self.results.pop(0)
        while self.logs_jobs and len(self.result_mids) < RESULT_WINDOW:
            job = self.logs_jobs[0]
            page = self._logs_page(job)
            mid = publish(topics.cmd_result(self.site, job.cmd_id), dumps(page))
            if mid is None:
                return
            self.result_mids.add(mid)
            if page["last"]:
                self.logs_jobs.pop(0)
            else:
                job.since_seq = page["events"][-1]["seq"] if page["events"] else job.since_seq
                job.since_log_seq = page["logs"][-1]["seq"] if page["logs"] else job.since_log_seq
                job.page += 1

    def _logs_page(self, job: LogsJob) -> dict[str, Any]:
        """The next page of a `logs` command (does not advance the job)."""
        evs = self.store.events_since(job.since_seq, PAGE_SIZE + 1)
        recs = self.store.logs_since(job.since_log_seq, PAGE_SIZE + 1)
        more = len(evs) > PAGE_SIZE or len(recs) > PAGE_SIZE
        evs, recs = evs[:PAGE_SIZE], recs[:PAGE_SIZE]
        return {
            "cmd_id": job.cmd_id,
            "ok": True,
            "page": job.page,
            "last": not more,
            "events": [e.as_dict() for e in evs],
            "logs": [
                log_record(self.site, r.seq, r.ts, r.level, r.logger, r.message) for r in recs
            ],
        }

    # ----- judging ------------------------------------------------------------

    def handle(self, cmd_id: str, payload: bytes, retain: bool) -> None:
        """One message on ``cmd/{cmd_id}`` (a valid id; the agent checked it)."""
        snap = self.tclock.snapshot()
        if not payload:
            return  # someone clearing a retained message: not a command
        if retain:
            # Never act on a retained command. It comes back on every subscribe,
            # so it is refused (and recorded) once per run of the agent.
            if cmd_id not in self.refused_retained:
                if len(self.refused_retained) < MAX_RETAINED_IDS:
                    self.refused_retained.add(cmd_id)
                self.refuse(cmd_id, None, CommandRefused("retained"), snap)
            return
        try:
            command = check_command(
                payload, topic_cmd_id=cmd_id, site=self.site, keyring=self.keyring
            )
        except CommandRefused as err:
            # Not remembered: an unsigned message must not burn a cmd_id the owner
            # will use. A signed one refused here (wrong role, lifetime, args) is
            # remembered like any signed command, so replaying it is `replayed`,
            # which the flood limiter holds: a captured signed refusal must not be
            # an unlimited source of events.
            if err.signer is not None and self.store.command_state(cmd_id) is not None:
                err = CommandRefused("replayed", signer=err.signer)
            self.refuse(cmd_id, None, err, snap, remember=err.signer is not None)
            return
        if command.cmd != "time" and command.issued_at <= snap.now + FUTURE_SKEW_S:
            self.observe_signed(command.issued_at, snap, "command")
            snap = self.tclock.snapshot()
        try:
            state = self.store.command_state(cmd_id)
            if state == "blocked":
                raise CommandRefused("cancelled", signer=command.signer)
            if state is not None:
                raise CommandRefused("replayed", signer=command.signer)
            if command.cmd == "time":
                self._check_time_command(command, snap)
            else:
                check_times(command, snap.expiry_now)
            args = check_args(command)
        except CommandRefused as err:
            self.refuse(cmd_id, command, err, snap, remember=err.reason != "replayed")
            return
        try:
            self._accept(command, args, snap)
        except CommandRefused as err:  # its id appeared meanwhile (another writer)
            self.refuse(cmd_id, command, err, snap)

    def _lowers(self, command: Command, snap: ClockSnapshot) -> bool:
        """A ``time`` command behind the evidence floor that the wall clock agrees
        with (two sources against one) and that names the floor it repairs
        (``args.lower_from``, within LOWER_MATCH_S of it): the floor is too far
        ahead (an owner's earlier `time` from a laptop whose clock was wrong).

        Naming the floor is what a captured old ``time`` replayed under a
        spoofed wall clock (a fake NTP server) cannot do: it was signed before
        the floor it would have to name existed.
        """
        evidence = self.tclock.evidence()
        named = lower_from(command)
        return (
            named is not None
            and abs(evidence - named) <= LOWER_MATCH_S
            and command.issued_at < evidence - SIGNED_SKEW_S
            and abs(command.issued_at - snap.wall) <= SIGNED_SKEW_S
            and command.expires_at > snap.wall
        )

    def _check_time_command(self, command: Command, snap: ClockSnapshot) -> None:
        """Freshness against the evidence floor, never the document floor (which
        a poisoned document may have raised), so the owner can always repair;
        or, for a floor too far ahead, against the wall clock (:meth:`_lowers`)."""
        if self._lowers(command, snap):
            return
        evidence = self.tclock.evidence()
        if command.expires_at <= evidence:
            raise CommandRefused(
                "expired",
                f"expires_at is not after this kiosk's clock floor {format_time(evidence)}; "
                "if that floor is wrong, send a time command naming it as args.lower_from "
                "(kioskctl time --lower-from)",
                signer=command.signer,
            )
        if command.issued_at < evidence - MAX_AGE_S:
            raise CommandRefused("too_old", signer=command.signer)
        if snap.trusted and command.issued_at > snap.wall + SIGNED_SKEW_S:
            raise CommandRefused(
                "clock_conflict",
                f"issued_at is more than {SIGNED_SKEW_S:.0f} s ahead of this kiosk's "
                "synchronised clock; the kiosk keeps its clock (check the sender's)",
                signer=command.signer,
            )

    def refuse(
        self,
        cmd_id: str,
        command: Command | None,
        err: ValidationError,
        snap: ClockSnapshot,
        *,
        remember: bool = False,
    ) -> None:
        """A ``command`` event with the refusal, and the answer (see the module
        docstring for which refusals the flood limiter holds back)."""
        signer = getattr(err, "signer", None) or (command.signer if command else None)
        keyless = signer is None or err.reason in KEYLESS
        if keyless and not self.audit.admit(snap, "cmd", err.reason):
            return  # counted for the summary; no answer, no log line
        result = refusal(cmd_id, err)
        name = command.cmd if command is not None else None
        detail: dict[str, Any] = {
            "cmd_id": cmd_id,
            "cmd": name,
            "ok": False,
            "error": result["error"],
            "refusal": err.reason,
        }
        if signer is not None:
            detail["key_id"] = signer.key_id
        if command is not None and command.reason_text:
            detail["reason"] = command.reason_text
        with self.store.atomic():
            if remember and command is None and signer is not None and err.reason != "replayed":
                self.store.record_command(
                    cmd_id,
                    "",
                    received_at=snap.now,
                    expires_at=snap.now,
                    state="refused",
                    error=err.reason,
                )
            elif remember and command is not None:
                if err.reason == "cancelled":
                    self.store.refuse_blocked(cmd_id, name or "", command.expires_at)
                else:
                    self.store.record_command(
                        cmd_id,
                        name or "",
                        received_at=snap.now,
                        expires_at=command.expires_at,
                        state="refused",
                        error=err.reason,
                    )
            self.audit.record("command", snap, detail=detail)
        log.warning("refused command %s: %s", cmd_id, result["error"])
        self.answer(cmd_id, result)

    # ----- running --------------------------------------------------------------

    def _accept(self, command: Command, args: dict[str, Any], snap: ClockSnapshot) -> None:
        cmd_id = command.cmd_id
        state = "pending" if command.cmd == "unlock" else "done"
        detail: dict[str, Any] = {
            "cmd_id": cmd_id,
            "cmd": command.cmd,
            "ok": True,
            "error": "",
            "key_id": command.signer.key_id,
        }
        for key in ("reason", "account"):
            if args.get(key):
                detail[key] = args[key]
        after: Callable[[], None] = lambda: None  # noqa: E731 - the command's effect, once committed
        with self.store.atomic():
            fresh = self.store.record_command(
                cmd_id,
                command.cmd,
                received_at=snap.now,
                expires_at=command.expires_at,
                state=state,
                args=args,
            )
            if not fresh:
                raise CommandRefused("replayed", signer=command.signer)
            if command.cmd == "cancel":
                after = self._cancel(command, args, snap, detail)
            elif command.cmd == "time":
                after = self._time(command, snap, detail)
            else:
                self.audit.record("command", snap, detail=detail)
        log.info("accepted command %s (%s)", cmd_id, command.cmd)
        after()
        if command.cmd == "unlock":
            self.pending_unlocks[cmd_id] = self.clock.monotonic() + UNLOCK_TIMEOUT_S
        elif command.cmd == "logs":
            self.logs_jobs.append(LogsJob(cmd_id, args["since_seq"], args["since_log_seq"]))
        elif command.cmd == "sync":
            self.on_sync()
            self.answer(cmd_id, success(cmd_id, {"cmd": "sync"}))
        elif command.cmd == "orders":
            self.answer(cmd_id, success(cmd_id, {"cmd": "orders", "orders": self._orders(args)}))

    def _cancel(
        self, command: Command, args: dict[str, Any], snap: ClockSnapshot, detail: dict[str, Any]
    ) -> Callable[[], None]:
        target = args["cmd_id"]
        # A target not seen yet is remembered as long as any command that could
        # still be accepted: it cannot outlive this cancel's own lifetime by more.
        remember = max(snap.now, command.expires_at) + MAX_LIFETIME_S + FUTURE_SKEW_S
        state = self.store.cancel_command(
            target, by=command.cmd_id, received_at=snap.now, remember_until=remember
        )
        self.audit.record("command", snap, detail={**detail, "target": target, "state": state})

        def answer() -> None:
            if state == "running":  # the door has it right now: answer with its outcome
                deadline = self.clock.monotonic() + UNLOCK_TIMEOUT_S + RUNNING_GRACE_S
                self.pending_cancels[command.cmd_id] = (target, deadline)
            else:
                self._cancel_result(command.cmd_id, target, state)

        return answer

    def _cancel_result(self, cmd_id: str, target: str, state: str) -> None:
        self.answer(cmd_id, success(cmd_id, {"cmd": "cancel", "target": target, "state": state}))

    def _time(
        self, command: Command, snap: ClockSnapshot, detail: dict[str, Any]
    ) -> Callable[[], None]:
        before = self.tclock.floor()
        had_doc_floor = self.tclock.doc_floor() > 0
        lowered = self._lowers(command, snap)
        if lowered:
            self.tclock.reset_floor(command.issued_at)
            self.store.lower_clock_floor(command.issued_at)
        else:
            self.tclock.raise_floor(command.issued_at)
            self.tclock.clear_doc_floor()
            self.store.save_clock_floor(self.tclock.evidence())
            self.store.save_doc_floor(0.0)
        after = self.tclock.snapshot()
        self.audit.record("command", snap, detail=detail)
        self.audit.record(
            "clock_set",
            after,
            detail={
                "by": command.cmd_id,
                "key_id": command.signer.key_id,
                "floor": format_time(after.floor),
                "previous_floor": format_time(before) if before else None,
                "doc_floor_cleared": had_doc_floor,
                "lowered": lowered,
            },
        )
        result = {"cmd": "time", "floor": format_time(after.floor), "clock": after.state}

        def answer() -> None:
            self.on_clock_set()
            self.answer(command.cmd_id, success(command.cmd_id, result))

        return answer

    def _orders(self, args: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for oid in args["order_ids"]:
            order = self.store.get_order(oid)
            out[oid] = (
                None
                if order is None
                else {
                    "status": order.status,
                    "version": order.version,
                    "pickup_no": order.pickup_no,
                    "collected_at": format_time(order.collected_at) if order.collected_at else None,
                }
            )
        return out

    # ----- following the door ---------------------------------------------------

    def resume(self) -> None:
        """After a restart: follow the unlocks the door has not finished."""
        deadline = self.clock.monotonic() + UNLOCK_TIMEOUT_S
        for row in self.store.pending_commands():
            if row["cmd"] == "unlock":
                self.pending_unlocks[row["cmd_id"]] = deadline

    def follow(self) -> None:
        """Answer unlocks and cancels whose outcome is known, or time them out."""
        mono = self.clock.monotonic()
        for cmd_id, deadline in list(self.pending_unlocks.items()):
            if self._follow_unlock(cmd_id, deadline, mono):
                del self.pending_unlocks[cmd_id]
        for cmd_id, (target, deadline) in list(self.pending_cancels.items()):
            state = self.store.command_state(target) or "failed"
            if state == "running" and mono < deadline:
                continue
            del self.pending_cancels[cmd_id]
            self._cancel_result(cmd_id, target, "failed" if state == "running" else state)

    def _follow_unlock(self, cmd_id: str, deadline: float, mono: float) -> bool:
        row = self.store.get_command(cmd_id)
        state = row["state"] if row else "missing"
        expires = format_time(row["expires_at"]) if row and row["expires_at"] else None
        if state == "done":
            self.answer(
                cmd_id,
                success(cmd_id, {"cmd": "unlock", "state": "done", "expires_at": expires}),
            )
            return True
        if state in ("pending", "running"):
            limit = deadline if state == "pending" else deadline + RUNNING_GRACE_S
            if mono < limit:
                return False
            error = (
                "door daemon not running"
                if state == "pending"
                else "the door daemon took the command but did not report what it did"
            )
            if not self.store.fail_command_if(cmd_id, (state,), error):
                return False  # the door daemon moved it just now; see next turn
            snap = self.tclock.snapshot()
            self.audit.record(
                "command",
                snap,
                detail={
                    "cmd_id": cmd_id,
                    "cmd": "unlock",
                    "ok": False,
                    "error": error,
                    "refusal": "door_timeout",
                },
            )
            log.warning("unlock %s failed: %s", cmd_id, error)
            self.answer(
                cmd_id,
                {
                    "cmd_id": cmd_id,
                    "ok": False,
                    "error": error,
                    "reason": "door_timeout",
                    "expires_at": expires,
                },
            )
            return True
        if state == "cancelled":
            error = (row or {}).get("error") or "cancelled"
            self.answer(
                cmd_id,
                {
                    "cmd_id": cmd_id,
                    "ok": False,
                    "error": f"cancelled: {error}",
                    "reason": "cancelled",
                },
            )
            return True
        error = (row or {}).get("error") or f"unlock {state}"
        self.answer(
            cmd_id,
            {
                "cmd_id": cmd_id,
                "ok": False,
                "error": error,
                "reason": "door_failed",
                "expires_at": expires,
            },
        )
        return True
