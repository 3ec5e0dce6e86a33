"""The sync agent (`kiosk sync`): orders down, events and logs up, commands, status.

One loop on one thread owns all state (docs/design.md): it drives the paho client
through :class:`sync.connection.Connection`, whose callbacks only enqueue,
then handles what arrived, drains the store's outbox, follows pending unlocks
and keeps the retained status fresh. The door daemon and this agent meet only
in the SQLite file, so either can crash or restart alone.

Entry point: :func:`run`. Also runnable as ``python -m sync.agent --config FILE``.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

import kiosk
from kiosk import logutil
from kiosk.audit import Audit
from kiosk.clock import Clock, ClockSnapshot, SystemClock, TrustedClock, system_time_synchronized
from kiosk.config import Config, MqttConfig
from kiosk.errors import ConfigError, StoreError, ValidationError
from kiosk.orders import Intake
from kiosk.store import Store
from protocol import topics
from protocol.canonical import decode_json_object, dumps
from protocol.commands import (
    FUTURE_SKEW_S,
    PAGE_SIZE,
    Command,
    CommandRefused,
    check_args,
    check_command,
    check_times,
    refusal,
)
from protocol.status import log_record, offline
from protocol.times import format_time
from sync.connection import Connected, Connection, Disconnected, Message, Published, Settings
from sync.outbox import Outbox

log = logging.getLogger(__name__)

UNLOCK_TIMEOUT_S = 30.0
STATUS_CHECK_S = 1.0
STATUS_EVERY_S = 300.0
SYNC_CHECK_S = 60.0
IDLE_POLL_S = 0.1
RESULT_WINDOW = 20  # cmd_result pages in flight at once


@dataclass
class _LogsJob:
    """A `logs` command still producing pages."""

    cmd_id: str
    since_seq: int
    since_log_seq: int
    page: int = 1


class Agent:
    """The agent's state; :meth:`serve` is its loop."""

    def __init__(
        self, cfg: Config, clock: Clock, stop: threading.Event, rng: random.Random | None = None
    ) -> None:
        self.cfg = cfg
        self.site = cfg.site.id
        self.clock = clock
        self.stop = stop
        self.rng = rng or random.Random()
        self.store = Store(cfg.store.path, busy_timeout_ms=cfg.store.busy_timeout_ms)
        self.keyring = cfg.trust.keyring()
        self.audit = Audit(self.store, self.site)
        self.intake = Intake(
            self.store,
            self.audit,
            self.keyring,
            site=self.site,
            width=cfg.site.pickup_no_width,
            allow_unsigned=cfg.trust.allow_unsigned,
        )
        self.tclock = TrustedClock(
            clock,
            self.store.clock_floor(),
            doc_floor=self.store.doc_floor(),
            synced=self._system_synced(),
        )
        self._last_conflict = -1e18
        mq = cfg.mqtt or MqttConfig()
        self.outbox = Outbox(self.store, self.site, clock, window=mq.inflight)
        self.conn: Connection | None = None
        self.pending_unlocks: dict[str, float] = {}  # cmd_id -> deadline (trusted time)
        self.results: list[tuple[str, bytes]] = []  # cmd_result messages waiting to go
        self.result_mids: set[int] = set()
        self.logs_jobs: list[_LogsJob] = []
        self.refused_retained: set[str] = set()
        self.alarms: set[str] = set()
        self.last_status: dict[str, Any] | None = None
        self.status_due = True
        self.last_status_check = -1e18
        self.last_status_sent = -1e18
        self.last_sync_check = clock.monotonic()
        self.ingested = 0  # order messages handled (benchmarks read it)
        self.replays_skipped = 0

    # ----- clock ----------------------------------------------------------

    def _system_synced(self) -> bool:
        mode = self.cfg.clock.trust_system_clock
        if mode == "always":
            return True
        if mode == "never" or not isinstance(self.clock, SystemClock):
            return False
        return system_time_synchronized()

    def _observe_signed_time(self, t: float, snap: ClockSnapshot, source: str) -> None:
        """A signature-verified issued_at: raise the document floor within its bound.

        A time further ahead than the kiosk can account for is not adopted:
        it is a ``clock_conflict`` event (at most one a minute) and an alarm
        on the status topic (docs/protocol.md, "Time").
        """
        seen = self.tclock.observe_signed(t)
        if seen.outcome == "raised":
            self.store.save_doc_floor(self.tclock.doc_floor())
        if seen.outcome != "conflict":
            # The door daemon reads this to let a signed time confirm its clock.
            self.store.save_signed_time(t)
            return
        self.alarms.add("clock_conflict")
        if snap.mono - self._last_conflict < 60.0:
            return
        self._last_conflict = snap.mono
        self.audit.record(
            "clock_conflict",
            snap,
            detail={
                "source": source,
                "signed": format_time(t),
                "bound": format_time(seen.bound),
                "ahead_s": round(t - snap.now),
            },
        )
        log.warning(
            "a signed %s time is %.0f s ahead of what this kiosk can account for; not adopted",
            source,
            t - snap.now,
        )

    # ----- the loop -------------------------------------------------------

    def serve(self) -> int:
        """Run until ``stop`` is set; 0 when it was."""
        if self.cfg.mqtt is None:
            self.store.set_mqtt_online(False)
            log.info("no [mqtt] section: the kiosk runs offline; the sync agent idles")
            while not self.stop.wait(1.0):
                pass
            return 0
        self.open()
        while not self.stop.is_set():
            self.step()
        return 0

    def open(self) -> None:
        """Prepare the connection (the first attempt happens in :meth:`step`)."""
        mq = self.cfg.mqtt
        if mq is None:
            raise ConfigError(f"{self.cfg.source}: no [mqtt] section")
        self.store.set_mqtt_online(False)
        settings = Settings.from_url(
            mq.url,
            client_id=mq.client_id or f"kiosk-{self.site}",
            username=mq.username,
            password=mq.password,
            ca_file=mq.ca_file,
            cert_file=mq.cert_file,
            key_file=mq.key_file,
            keepalive=mq.keepalive_s,
            inflight=mq.inflight,
        )
        self.conn = Connection(
            settings,
            self.clock,
            self.rng,
            will_topic=topics.status(self.site),
            will_payload=dumps(self._offline("connection lost")),
        )
        self._resume_pending_unlocks()
        log.info("sync agent for site %s starting (%s)", self.site, settings)

    def step(self, timeout: float = IDLE_POLL_S) -> None:
        """One turn of the loop: network, then what arrived, then timers."""
        conn = self.conn
        assert conn is not None
        if not conn.connected and conn.state == "disconnected":
            wait = min(timeout, conn.seconds_to_next_attempt())
            if wait > 0 and self.stop.wait(wait):
                return
        events = conn.poll(timeout if not self.outbox.inflight else min(timeout, 0.05))
        try:
            self._dispatch(events)
            self._tick()
        except StoreError:
            # The store refused a write: what arrived is not safely kept. Drop the
            # connection; resubscribing replays the retained orders after backoff.
            log.exception("store error in the sync agent; reconnecting to replay")
            conn.drop("store error")
            try:
                self.outbox.restart()
            except StoreError:
                log.debug("acks not written; those rows go again", exc_info=True)
        except Exception:
            # A defect met by some input must not crash-loop the agent on the
            # same retained message; the batch's transaction was rolled back.
            log.exception("unexpected error in the sync agent's loop; input skipped")

    def _dispatch(self, events: list[Any]) -> None:
        orders: list[Message] = []
        for ev in events:
            if isinstance(ev, Message):
                parsed = topics.parse(ev.topic)
                if parsed is None or parsed.site != self.site:
                    continue
                if parsed.kind == topics.ORDERS:
                    orders.append(ev)
                elif parsed.kind == topics.CMD:
                    if orders:
                        self._ingest(orders)
                        orders = []
                    self._command(ev, parsed.ident)
            elif isinstance(ev, Published):
                if not self.outbox.on_ack(ev.mid, ev.ok, ev.reason):
                    self.result_mids.discard(ev.mid)
            elif isinstance(ev, Connected):
                self._on_connected(ev)
            elif isinstance(ev, Disconnected):
                self.outbox.restart()
                self.result_mids.clear()
                self.store.set_mqtt_online(False)
        if orders:
            self._ingest(orders)

    def _on_connected(self, ev: Connected) -> None:
        assert self.conn is not None
        # Subscribe on every connect, session or not: the retained orders come
        # again, so an order taken off the wire just before a crash is not lost.
        self.conn.subscribe(
            [(topics.orders_filter(self.site), 1), (topics.cmd_filter(self.site), 1)]
        )
        mq = self.cfg.mqtt or MqttConfig()
        window = mq.inflight if not ev.receive_maximum else min(mq.inflight, ev.receive_maximum)
        self.outbox.restart(window)
        self.result_mids.clear()
        self.store.set_mqtt_online(True)
        self.status_due = True

    def _tick(self) -> None:
        conn = self.conn
        assert conn is not None
        if conn.connected:
            self.outbox.fill(self._publish)
        self.outbox.flush()
        self._follow_unlocks()
        if conn.connected:
            self._send_results()
            self._maybe_status()
        mono = self.clock.monotonic()
        if mono - self.last_sync_check >= SYNC_CHECK_S:
            self.last_sync_check = mono
            if self.tclock.set_synced(self._system_synced()):
                self.store.save_doc_floor(0.0)  # NTP corrected a floor from documents
        self.audit.flush_rejections(self.tclock.snapshot())

    def _publish(self, topic: str, payload: bytes) -> int | None:
        assert self.conn is not None
        return self.conn.publish(topic, payload, qos=1)

    # ----- orders down ----------------------------------------------------

    def _ingest(self, msgs: list[Message]) -> None:
        """One transaction for a batch of order messages, in arrival order.

        Each message is judged alone (see kiosk.orders.Intake); a defect met
        by one never reaches another.
        """
        snap = self.tclock.snapshot()
        run: list[tuple[Any, str | None, str | None]] = []

        def flush_run() -> None:
            if run:
                self.intake.accept_many(run, snap, source="mqtt")
                run.clear()

        self.intake.signed_times.clear()
        with self.store.atomic():
            held = self.store.held_order_ids(
                sorted({p.ident for m in msgs if (p := topics.parse(m.topic)) and p.ident})
            )
            for m in msgs:
                parsed = topics.parse(m.topic)
                oid = parsed.ident if parsed else None
                topic = m.topic[:256]
                if not topics.valid_id(oid):
                    flush_run()
                    self.intake.reject(
                        snap,
                        ValidationError(
                            "bad_order_id", "the topic's order_id must match [A-Za-z0-9_.-]{1,64}"
                        ),
                        source="mqtt",
                        topic=topic,
                    )
                    continue
                assert oid is not None
                if not m.payload:
                    flush_run()
                    self.intake.forget(oid, snap)
                    continue
                try:
                    doc: Any = decode_json_object(m.payload)
                except ValidationError as err:
                    doc = err  # rejected alone, in order, by the intake
                if oid in held and isinstance(doc, dict) and self._already_held(doc, oid):
                    self.replays_skipped += 1
                    continue
                run.append((doc, oid, topic))
            flush_run()
            if self.intake.signed_times:
                self._observe_signed_time(max(self.intake.signed_times), snap, "order")
        self.ingested += len(msgs)

    def _already_held(self, doc: dict[str, Any], oid: str) -> bool:
        """True for the exact document already stored (the retained replay on
        every subscribe). It would be ignored as not newer anyway; skipping it
        saves an Ed25519 verification per order per reconnect. Anything that
        differs, even only in its signature's validity, takes the full path
        unless its content is identical to what was verified before.
        """
        held = self.store.get_order(oid)
        if held is None or held.collected_locally or doc.get("version") != held.version:
            return False
        otp = doc.get("otp")
        if (
            not isinstance(otp, dict)
            or otp.get("secret") != held.otp_secret
            or otp.get("digits", 6) != held.otp_digits
            or otp.get("period", 30) != held.otp_period
        ):
            return False
        return {k: v for k, v in doc.items() if k not in ("sig", "otp")} == held.doc

    # ----- commands -------------------------------------------------------

    def _command(self, msg: Message, topic_id: str | None) -> None:
        snap = self.tclock.snapshot()
        if topic_id is None or not topics.valid_id(topic_id):
            self.intake.reject(
                snap,
                ValidationError("bad_cmd_id", "the topic's cmd_id must match [A-Za-z0-9_.-]{1,64}"),
                source="mqtt",
                topic=msg.topic[:256],
            )
            return
        cmd_id = topic_id
        if not msg.payload:
            return  # someone clearing a retained message: not a command
        if msg.retain:
            # Never act on a retained command. It comes back on every subscribe,
            # so it is refused (and recorded) once per run of the agent.
            if cmd_id not in self.refused_retained:
                self.refused_retained.add(cmd_id)
                self._refuse(cmd_id, None, CommandRefused("retained"), snap)
            return
        try:
            command = check_command(
                msg.payload, topic_cmd_id=cmd_id, site=self.site, keyring=self.keyring
            )
        except CommandRefused as err:
            # Not recorded in the commands table: an unsigned message must not
            # be able to burn a cmd_id the owner will use.
            self._refuse(cmd_id, None, err, snap)
            return
        if command.issued_at <= snap.now + FUTURE_SKEW_S:
            self._observe_signed_time(command.issued_at, snap, "command")
            snap = self.tclock.snapshot()
        try:
            if self.store.command_seen(cmd_id):
                raise CommandRefused("replayed", signer=command.signer)
            check_times(command, snap.expiry_now)
            args = check_args(command)
        except CommandRefused as err:
            self._refuse(cmd_id, command, err, snap, remember=err.reason != "replayed")
            return
        self._accept(command, args, snap)

    def _refuse(
        self,
        cmd_id: str,
        command: Command | None,
        err: ValidationError,
        snap: ClockSnapshot,
        *,
        remember: bool = False,
    ) -> None:
        result = refusal(cmd_id, err)
        name = command.cmd if command is not None else None
        detail: dict[str, Any] = {
            "cmd_id": cmd_id,
            "cmd": name,
            "ok": False,
            "error": result["error"],
            "refusal": err.reason,
        }
        signer = getattr(err, "signer", None) or (command.signer if command else None)
        if signer is not None:
            detail["key_id"] = signer.key_id
        if command is not None and command.reason_text:
            detail["reason"] = command.reason_text
        with self.store.atomic():
            if remember and command is not None:
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
        self.results.append((topics.cmd_result(self.site, cmd_id), dumps(result)))

    def _accept(self, command: Command, args: dict[str, Any], snap: ClockSnapshot) -> None:
        cmd_id = command.cmd_id
        state = "pending" if command.cmd == "unlock" else "done"
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
                raise StoreError("a command id appeared twice in one transaction")
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
            self.audit.record("command", snap, detail=detail)
        log.info("accepted command %s (%s)", cmd_id, command.cmd)
        if command.cmd == "unlock":
            self.pending_unlocks[cmd_id] = snap.now + UNLOCK_TIMEOUT_S
        elif command.cmd == "logs":
            self.logs_jobs.append(_LogsJob(cmd_id, args["since_seq"], args["since_log_seq"]))
        elif command.cmd == "sync":
            self.status_due = True
            self.last_status = None
            self._result(cmd_id, {"cmd_id": cmd_id, "ok": True, "result": {"cmd": "sync"}})

    def _result(self, cmd_id: str, body: dict[str, Any]) -> None:
        self.results.append((topics.cmd_result(self.site, cmd_id), dumps(body)))

    def _resume_pending_unlocks(self) -> None:
        for row in self.store.pending_door_commands():
            if row["cmd"] == "unlock":
                self.pending_unlocks[row["cmd_id"]] = float(row["received_at"]) + UNLOCK_TIMEOUT_S

    def _follow_unlocks(self) -> None:
        if not self.pending_unlocks:
            return
        snap = self.tclock.snapshot()
        for cmd_id, deadline in list(self.pending_unlocks.items()):
            row = self.store.get_command(cmd_id)
            state = row["state"] if row else "missing"
            if state == "done":
                self._result(
                    cmd_id,
                    {"cmd_id": cmd_id, "ok": True, "result": {"cmd": "unlock", "state": "done"}},
                )
            elif state == "pending":
                if snap.now < deadline:
                    continue
                error = "door daemon not running"
                if not self.store.fail_command_if_pending(cmd_id, error):
                    continue  # the door daemon took it just now; see next turn
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
                self._result(
                    cmd_id,
                    {"cmd_id": cmd_id, "ok": False, "error": error, "reason": "door_timeout"},
                )
            else:
                error = (row or {}).get("error") or f"unlock {state}"
                self._result(
                    cmd_id, {"cmd_id": cmd_id, "ok": False, "error": error, "reason": "door_failed"}
                )
            del self.pending_unlocks[cmd_id]

    def _logs_page(self, job: _LogsJob) -> dict[str, Any]:
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

    def _send_results(self) -> None:
        while self.results:
            topic, payload = self.results[0]
            mid = self._publish(topic, payload)
            if mid is None:
                return
            self.results.pop(0)
        # `logs` pages are made lazily, a few in flight at a time.
        while self.logs_jobs and len(self.result_mids) < RESULT_WINDOW:
            job = self.logs_jobs[0]
            page = self._logs_page(job)
            mid = self._publish(topics.cmd_result(self.site, job.cmd_id), dumps(page))
            if mid is None:
                return
            self.result_mids.add(mid)
            if page["last"]:
                self.logs_jobs.pop(0)
            else:
                job.since_seq = page["events"][-1]["seq"] if page["events"] else job.since_seq
                job.since_log_seq = page["logs"][-1]["seq"] if page["logs"] else job.since_log_seq
                job.page += 1

    # ----- status ---------------------------------------------------------

    def status(self) -> dict[str, Any]:
        snap = self.tclock.snapshot()
        door = self.store.door_status()
        alarms = sorted(set(door.alarms) | self.alarms | self._live_alarms())
        return {
            "online": True,
            "site": self.site,
            "ts": format_time(snap.now),
            "version": kiosk.__version__,
            "door": door.door,
            "lock": door.lock,
            "mode": door.mode,
            "orders_ready": self.store.count_orders("ready"),
            "outbox": self.store.outbox_size(),
            "clock": snap.state,
            "last_seq": self.store.last_seq(),
            "alarms": alarms,
        }

    def _live_alarms(self) -> set[str]:
        return {"flood"} if self.audit.limiter.flooding else set()

    def _offline(self, reason: str) -> dict[str, Any]:
        return offline(self.site, kiosk.__version__, reason)

    def _maybe_status(self) -> None:
        mono = self.clock.monotonic()
        if not self.status_due and mono - self.last_status_check < STATUS_CHECK_S:
            return
        self.last_status_check = mono
        current = self.status()
        same = self.last_status is not None and {k: v for k, v in current.items() if k != "ts"} == {
            k: v for k, v in self.last_status.items() if k != "ts"
        }
        if same and not self.status_due and mono - self.last_status_sent < STATUS_EVERY_S:
            return
        assert self.conn is not None
        if self.conn.publish(topics.status(self.site), dumps(current), qos=1, retain=True) is None:
            return
        self.last_status = current
        self.last_status_sent = mono
        self.status_due = False

    # ----- shutdown -------------------------------------------------------

    def close(self) -> None:
        """Say goodbye on status, write the last acks, close the store (in reverse)."""
        try:
            if self.conn is not None:
                if self.conn.connected:
                    self._dispatch(self.conn.poll(0.0))  # what already arrived
                    self.outbox.flush(force=True)
                goodbye = offline(
                    self.site, kiosk.__version__, "shutdown", self.tclock.snapshot().now
                )
                self.conn.close(topics.status(self.site), dumps(goodbye))
        except Exception:
            log.exception("closing the MQTT connection failed")
        try:
            self.audit.flush_rejections(self.tclock.snapshot(), force=True)
            self.outbox.flush(force=True)
            self.store.set_mqtt_online(False)
        except StoreError:
            log.exception("writing the last acknowledgements failed")
        self.store.close()


def run(
    cfg: Config,
    *,
    clock: Clock | None = None,
    stop: threading.Event | None = None,
    store_logs: bool = True,
) -> int:
    """Run the sync agent until SIGTERM/SIGINT or ``stop`` is set; return an exit code.

    0 after a clean stop, 1 when the store cannot be opened (systemd restarts
    the unit). Signal handlers are installed only on the main thread. With
    ``store_logs`` false the caller already queues log records in the store
    (``kiosk run`` runs the door in the same process).
    """
    clock = clock or SystemClock()
    stop = stop or threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    handler: logutil.StoreLogHandler | None = None
    agent: Agent | None = None
    try:
        try:
            agent = Agent(cfg, clock, stop)
        except StoreError as exc:
            log.error("sync agent cannot start: %s", exc)
            return 1
        mq = cfg.mqtt or MqttConfig()
        if store_logs:
            handler = logutil.attach_store(
                agent.store, clock.wall, mq.log_level, mq.log_rate_per_min
            )
        return agent.serve()
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
        if agent is not None:
            agent.close()
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: list[str] | None = None) -> int:
    """``python -m sync.agent [--config FILE]`` (``kiosk sync`` does the same)."""
    from kiosk import config as config_mod

    parser = argparse.ArgumentParser(prog="python -m sync.agent")
    parser.add_argument("--config", help="the kiosk's TOML file")
    ns = parser.parse_args(argv)
    try:
        cfg = config_mod.load(ns.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logutil.setup(cfg.log.level)
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
