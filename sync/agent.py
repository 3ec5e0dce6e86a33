"""The sync agent (`kiosk sync`): orders down, events and logs up, commands, status.

One loop on one thread owns all state (STYLE.md 4): it drives the paho client
through :class:`sync.connection.Connection`, whose callbacks only enqueue,
then handles what arrived, drains the store's outbox, follows pending unlocks
and keeps the retained status fresh. The door daemon and this agent meet only
in the SQLite file, so either can crash or restart alone.

Entry point: :func:`run`. Also runnable as ``python -m sync.agent --config FILE``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

import kiosk
from kiosk import logutil
from kiosk.audit import Audit, parse_rfc3339, rfc3339
from kiosk.clock import Clock, ClockSnapshot, SystemClock, TrustedClock, system_time_synchronized
from kiosk.config import Config, MqttConfig
from kiosk.errors import ConfigError, StoreError, ValidationError
from kiosk.orders import Intake
from kiosk.store import Store
from kiosk.wire import Keyring
from sync import topics
from sync.connection import Connected, Connection, Disconnected, Message, Published, Settings
from sync.outbox import Outbox
from sync.protocol import (
    COMMANDS,
    FUTURE_SKEW_S,
    PAGE_SIZE,
    Command,
    CommandRefused,
    check_args,
    check_command,
    check_times,
    command_id_ok,
    decode_json_object,
    dumps,
    log_payload,
    refusal,
)

log = logging.getLogger(__name__)

UNLOCK_TIMEOUT_S = 30.0
STATUS_CHECK_S = 1.0
STATUS_EVERY_S = 300.0
SYNC_CHECK_S = 60.0
MAX_FLOOR_LEAD_S = 86400.0  # a signed time this far ahead of a trusted clock is a hub bug
IDLE_POLL_S = 0.1
RESULT_WINDOW = 20  # cmd_result pages in flight at once
DOOR_DEFAULTS = {
    "door": ("closed", "open"),
    "lock": ("locked", "unlocked"),
    "mode": ("night", "day"),
}


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
        self.keyring = Keyring(cfg.trust.hub_keys, cfg.trust.owner_keys)
        self.audit = Audit(self.store, self.site)
        self.intake = Intake(
            self.store,
            self.audit,
            self.keyring,
            site=self.site,
            width=cfg.site.pickup_no_width,
            allow_unsigned=cfg.trust.allow_unsigned,
        )
        self.tclock = TrustedClock(clock, self.store.clock_floor(), synced=self._system_synced())
        mq = cfg.mqtt or MqttConfig()
        self.outbox = Outbox(self.store, self.site, clock, window=mq.inflight)
        self.conn: Connection | None = None
        self.pending_unlocks: dict[str, float] = {}  # cmd_id -> deadline (trusted time)
        self.results: list[tuple[str, bytes]] = []  # cmd_result messages waiting to go
        self.result_mids: set[int] = set()
        self.logs_jobs: list[_LogsJob] = []
        self.refused_retained: set[str] = set()
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

    def _observe_signed_time(self, t: float, snap: ClockSnapshot) -> None:
        """A signature-verified issued_at: raise and persist the clock floor."""
        if snap.trusted and t > snap.now + MAX_FLOOR_LEAD_S:
            log.warning(
                "a signed issued_at is %.0f s ahead of the synced clock; not using it", t - snap.now
            )
            return
        if t > self.tclock.floor():
            self.tclock.observe_hub_time(t)
            self.store.save_clock_floor(self.tclock.floor())
            # The door daemon reads this to let a signed hub time confirm its clock.
            self.store.set_meta("hub_time", repr(t))
        else:
            self.tclock.observe_hub_time(t)

    # ----- the loop -------------------------------------------------------

    def serve(self) -> int:
        """Run until ``stop`` is set; 0 when it was."""
        if self.cfg.mqtt is None:
            self.store.set_meta("mqtt_online", "0")
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
        self.store.set_meta("mqtt_online", "0")
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
                parts = topics.split(ev.topic)
                if parts is None or parts[0] != self.site:
                    continue
                if parts[1] == "orders":
                    orders.append(ev)
                elif parts[1] == "cmd":
                    if orders:
                        self._ingest(orders)
                        orders = []
                    self._command(ev, parts[2])
            elif isinstance(ev, Published):
                if not self.outbox.on_ack(ev.mid, ev.ok, ev.reason):
                    self.result_mids.discard(ev.mid)
            elif isinstance(ev, Connected):
                self._on_connected(ev)
            elif isinstance(ev, Disconnected):
                self.outbox.restart()
                self.result_mids.clear()
                self.store.set_meta("mqtt_online", "0")
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
        self.store.set_meta("mqtt_online", "1")
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
            self.tclock.set_synced(self._system_synced())

    def _publish(self, topic: str, payload: bytes) -> int | None:
        assert self.conn is not None
        return self.conn.publish(topic, payload, qos=1)

    # ----- orders down ----------------------------------------------------

    def _ingest(self, msgs: list[Message]) -> None:
        """One transaction for a batch of order messages, in arrival order."""
        snap = self.tclock.snapshot()
        signed_times: list[float] = []
        run: list[tuple[Any, str | None, str | None]] = []

        def flush_run() -> None:
            if not run:
                return
            results = self.intake.accept_many(run, snap, source="mqtt")
            for (doc, _oid, _topic), res in zip(run, results, strict=True):
                if res.outcome in ("stored", "ignored") and "sig" in doc:
                    with contextlib.suppress(ValueError, TypeError):
                        signed_times.append(parse_rfc3339(doc["issued_at"]))
            run.clear()

        with self.store.atomic():
            held = self._held_ids(msgs)
            for m in msgs:
                parts = topics.split(m.topic)
                oid = parts[2] if parts else None
                topic = m.topic[:256]
                if oid is None or not topics.ID_RE.match(oid):
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
                if not m.payload:
                    flush_run()
                    self.intake.forget(oid, snap)
                    continue
                try:
                    doc = decode_json_object(m.payload)
                except ValidationError as err:
                    flush_run()
                    self.intake.reject(snap, err, source="mqtt", order_id=oid, topic=topic)
                    continue
                if oid in held and self._already_held(doc, oid):
                    self.replays_skipped += 1
                    continue
                run.append((doc, oid, topic))
            flush_run()
            if signed_times:
                self._observe_signed_time(max(signed_times), snap)
        self.ingested += len(msgs)

    def _held_ids(self, msgs: list[Message]) -> set[str]:
        """Which of the batch's order ids the store holds (one query per 500)."""
        ids = sorted({p[2] for m in msgs if (p := topics.split(m.topic)) and p[2]})
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" for _ in chunk)
            rows = self.store.db.query(
                f"SELECT order_id FROM orders WHERE order_id IN ({marks})",  # noqa: S608
                chunk,
            )
            found.update(str(r["order_id"]) for r in rows)
        return found

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

    def _command(self, msg: Message, cmd_id: str | None) -> None:
        snap = self.tclock.snapshot()
        if cmd_id is None or not command_id_ok(cmd_id):
            self.intake.reject(
                snap,
                ValidationError("bad_cmd_id", "the topic's cmd_id must match [A-Za-z0-9_.-]{1,64}"),
                source="mqtt",
                topic=msg.topic[:256],
            )
            return
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
            self._observe_signed_time(command.issued_at, snap)
            snap = self.tclock.snapshot()
        try:
            if self.store.command_seen(cmd_id):
                raise CommandRefused("replayed")
            check_times(command, snap.now)
            if command.cmd not in COMMANDS:
                raise CommandRefused("unknown_cmd")
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
            self.audit.record(
                "command",
                snap,
                detail={
                    "cmd_id": cmd_id,
                    "cmd": name,
                    "ok": False,
                    "error": result["error"],
                    "reason": err.reason,
                },
            )
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
            self.audit.record(
                "command",
                snap,
                detail={"cmd_id": cmd_id, "cmd": command.cmd, "ok": True, "error": ""},
            )
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
                    detail={"cmd_id": cmd_id, "cmd": "unlock", "ok": False, "error": error},
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
            "logs": [log_payload(self.site, r) for r in recs],
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

    def _door_status(self) -> dict[str, str]:
        out = {k: v[0] for k, v in DOOR_DEFAULTS.items()}
        raw = self.store.get_meta("door_status")
        if raw:
            try:
                data = json.loads(raw)
            except ValueError:
                data = {}
            if isinstance(data, dict):
                for key, allowed in DOOR_DEFAULTS.items():
                    if data.get(key) in allowed:
                        out[key] = data[key]
        return out

    def status(self) -> dict[str, Any]:
        snap = self.tclock.snapshot()
        return {
            "online": True,
            "site": self.site,
            "ts": rfc3339(snap.now),
            "version": kiosk.__version__,
            **self._door_status(),
            "orders_ready": self.store.count_orders("ready"),
            "outbox": self.store.outbox_size(),
            "clock": snap.state,
            "last_seq": self.store.last_seq(),
        }

    def _offline(self, reason: str) -> dict[str, Any]:
        return {"online": False, "site": self.site, "version": kiosk.__version__, "reason": reason}

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
                offline = dict(self._offline("shutdown"))
                offline["ts"] = rfc3339(self.tclock.snapshot().now)
                self.conn.close(topics.status(self.site), dumps(offline))
        except Exception:
            log.exception("closing the MQTT connection failed")
        try:
            self.outbox.flush(force=True)
            self.store.set_meta("mqtt_online", "0")
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
