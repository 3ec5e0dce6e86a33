"""The sync agent (`kiosk sync`): orders down, events and logs up, commands, status.

One loop on one thread owns all state (docs/design.md): it drives the paho client
through :class:`sync.connection.Connection`, whose callbacks only enqueue,
then handles what arrived and runs its timed duties. The door daemon and
this agent meet only in the SQLite file, so either can crash or restart alone.

Every message is judged alone and every duty runs alone (docs/design.md,
rule 4): whatever one message holds or one duty meets becomes that
message's rejection or that duty's log line, and the next message, the
event drain, the answers to commands and the status go on.

A disk that lies (docs/protocol.md, "Status"): on every connect the agent
first reads its own retained status and compares the ``last_seq`` /
``last_hash`` it had published (sealed with the store's key) with the
store (:func:`kiosk.trail.check_published`); until that is done it
publishes neither events nor a new status. Afterwards an event is published
only once a status claiming its seq was acknowledged by the broker, so the
retained status always covers every published seq.

Entry point: :func:`run`. Also runnable as ``python -m sync.agent --config FILE``.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import Any

import kiosk
from kiosk import logutil
from kiosk.audit import Audit
from kiosk.clock import Clock, ClockSnapshot, SystemClock, TrustedClock, system_time_synchronized
from kiosk.config import Config, MqttConfig
from kiosk.errors import ConfigError, StoreError, ValidationError
from kiosk.orders import Incoming, Intake, internal_error
from kiosk.retention import Retention, RetentionPolicy
from kiosk.staff import StaffIntake
from kiosk.store import LOW_WATER, Store
from kiosk.trail import tail_claim
from protocol import topics
from protocol.canonical import decode_json_object, dumps
from protocol.status import offline
from protocol.times import format_time
from sync.claims import CLAIM_WAIT_S, ClaimCheck
from sync.commands import Commands
from sync.connection import (
    Connected,
    Connection,
    Disconnected,
    Message,
    Published,
    Settings,
    Subscribed,
)
from sync.outbox import Outbox

log = logging.getLogger(__name__)

STATUS_CHECK_S = 1.0
STATUS_EVERY_S = 300.0
SYNC_CHECK_S = 60.0
IDLE_POLL_S = 0.1
HOUSEKEEP_S = 5.0  # free space, the reserve
RETENTION_S = 3600.0
RETENTION_FIRST_S = 60.0
ORDERS_RETRY_S = 30.0  # resubscribe to orders after the store refused a batch


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
        reserve = cfg.store.reserve_kb * 1024
        self.low_water = max(LOW_WATER, reserve)
        self.store = Store(
            cfg.store.path,
            busy_timeout_ms=cfg.store.busy_timeout_ms,
            low_priority=True,
            low_water=self.low_water,
        )
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
        self.staff_intake = StaffIntake(self.intake)
        self.tclock = TrustedClock(
            clock,
            self.store.clock_floor(),
            doc_floor=self.store.doc_floor(),
            synced=self._system_synced(),
        )
        self.retention = Retention(
            self.store,
            self.audit,
            RetentionPolicy.from_config(cfg.store),
            reserve_bytes=reserve,
        )
        self._last_conflict = -1e18
        self.commands = Commands(
            store=self.store,
            audit=self.audit,
            keyring=self.keyring,
            site=self.site,
            tclock=self.tclock,
            clock=clock,
            observe_signed=self._observe_signed_time,
            on_sync=self._resync,
            on_clock_set=lambda: self.alarms.discard("clock_conflict"),
        )
        mq = cfg.mqtt or MqttConfig()
        self.outbox = Outbox(self.store, self.site, clock, window=mq.inflight)
        self.conn: Connection | None = None
        self.alarms: set[str] = set()
        self.defects = logutil.Throttled()
        self.last_status: dict[str, Any] | None = None
        self.status_due = True
        self.status_mid: int | None = None
        self.status_claim = 0  # last_seq of the status in flight
        self.announced = -1  # last_seq of the latest status the broker acknowledged
        self.claims = ClaimCheck(self.site)  # our own retained status, after each connect
        self.orders_retry_at: float | None = None
        mono = clock.monotonic()
        self.last_status_check = -1e18
        self.last_status_sent = -1e18
        self._due = {
            "sync": mono + SYNC_CHECK_S,
            "housekeep": mono,
            "retention": mono + RETENTION_FIRST_S,
        }
        self.ingested = 0  # order messages handled (benchmarks read it)
        self.replays_skipped = 0

    # ----- guards -----------------------------------------------------------

    def _guard(self, what: str, fn: Callable[[], object]) -> bool:
        """Run one duty or one message alone; its failure is logged (throttled)."""
        try:
            fn()
        except StoreError as exc:
            if self.defects.ready(f"store:{what}", self.clock.monotonic()) is not None:
                log.warning("%s: the store refused: %s", what, exc)
            return False
        except Exception as exc:
            self.defects.defect(log, what, self.clock.monotonic(), what, exc)
            return False
        return True

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
            log.info("no [mqtt] section: the kiosk runs offline; the sync agent keeps house")
            while not self.stop.wait(1.0):
                self._housework()
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
            will_payload=self._will,
            will_delay_s=mq.will_delay_s,
        )
        self._guard("resuming pending unlocks", self.commands.resume)
        log.info("sync agent for site %s starting (%s)", self.site, settings)

    def _will(self) -> bytes:
        doc = self._offline("connection lost")
        with suppress(StoreError):  # a will without a claim: the next status says it
            doc.update(tail_claim(self.store, self.site))
        return dumps(doc)

    def step(self, timeout: float = IDLE_POLL_S) -> None:
        """One turn of the loop: network, then what arrived, then the duties."""
        conn = self.conn
        assert conn is not None
        if not conn.connected and conn.state == "disconnected":
            wait = min(timeout, conn.seconds_to_next_attempt())
            if wait > 0 and self.stop.wait(wait):
                return
        events = conn.poll(timeout if not self.outbox.inflight else min(timeout, 0.05))
        self._dispatch(events)
        self._tick()

    def _dispatch(self, events: list[Any]) -> None:
        """Each message alone; orders in arrival order, in batches between commands."""
        orders: list[Message] = []
        for ev in events:
            if isinstance(ev, Message):
                kind = self._kind(ev)
                if kind == topics.ORDERS:
                    orders.append(ev)
                    continue
                self._flush_orders(orders)
                if kind == topics.CMD:
                    self._guard("a command message", partial(self._command, ev))
                elif kind == topics.STAFF:
                    self._guard("a staff message", partial(self._staff, ev))
                elif kind == topics.STATUS:
                    self.claims.on_message(ev)
            else:
                self._flush_orders(orders)
                self._guard(type(ev).__name__, partial(self._connection_event, ev))
        self._flush_orders(orders)

    def _kind(self, msg: Message) -> str | None:
        try:
            parsed = topics.parse(msg.topic)
        except Exception:  # a topic the parser never imagined: not ours
            return None
        if parsed is None or parsed.site != self.site:
            return None
        return parsed.kind

    def _connection_event(self, ev: Any) -> None:
        if isinstance(ev, Published):
            if ev.mid == self.status_mid:
                self.status_mid = None
                mono = self.clock.monotonic()
                if not ev.ok and self.defects.ready("status refused", mono) is not None:
                    # An ACL without write on status: events must still go out, only
                    # without the claim that lets a rollback be noticed (doctor says so).
                    log.warning(
                        "the broker refused the status (%s): events are published without "
                        "a seq claim, so a store rollback cannot be noticed",
                        ev.reason,
                    )
                self.announced = max(self.announced, self.status_claim)
            elif not self.outbox.on_ack(ev.mid, ev.ok, ev.reason):
                self.commands.result_mids.discard(ev.mid)
        elif isinstance(ev, Subscribed):
            if self.claims.on_subscribed(ev):
                self._finish_check()
        elif isinstance(ev, Connected):
            self._on_connected(ev)
        elif isinstance(ev, Disconnected):
            self.claims.checking = False
            self.status_mid = None
            self.announced = -1
            self.commands.result_mids.clear()
            try:
                self.outbox.restart()
            finally:
                self.store.set_mqtt_online(False)

    def _on_connected(self, ev: Connected) -> None:
        assert self.conn is not None
        # Our own retained status first: the SUBACK of the second SUBSCRIBE comes
        # after the broker sent the first one's retained message, if any.
        self.claims.start(self.conn, self.clock.monotonic())
        # Subscribe on every connect, session or not: the retained orders come
        # again, so an order taken off the wire just before a crash is not lost.
        self.claims.then(
            self.conn.subscribe(
                [
                    (topics.orders_filter(self.site), 1),
                    (topics.staff_filter(self.site), 1),
                    (topics.cmd_filter(self.site), 1),
                ]
            )
        )
        mq = self.cfg.mqtt or MqttConfig()
        window = mq.inflight if not ev.receive_maximum else min(mq.inflight, ev.receive_maximum)
        self.commands.result_mids.clear()
        self.announced = -1
        self.status_mid = None
        self.outbox.restart(window)
        self.store.set_mqtt_online(True)
        self.status_due = True

    # ----- what this kiosk published before ----------------------------------

    def _finish_check(self) -> None:
        """Judge the retained status (or its absence) once, then publish again."""
        if not self.claims.checking:
            return
        self.status_due = True
        outcome = self.claims.finish(self.conn, self.store, self.tclock)
        if outcome.what in ("rollback", "conflict"):
            self.alarms.add("store_rollback")

    # ----- timed duties -------------------------------------------------------

    def _tick(self) -> None:
        conn = self.conn
        assert conn is not None
        mono = self.clock.monotonic()
        if self.claims.overdue(mono):
            log.warning("no SUBACK from the broker in %.0f s; judging without it", CLAIM_WAIT_S)
            self._guard("the published-status check", self._finish_check)
        if conn.connected and not self.claims.checking:
            self._guard("the status", self._maybe_status)
            self._guard("the event drain", self._drain)
        self._guard("the acknowledgements", self.outbox.flush)
        self._guard("following unlocks", self.commands.follow)
        if conn.connected:
            self._guard("command answers", lambda: self.commands.send(self._publish))
        if self.orders_retry_at is not None and mono >= self.orders_retry_at and conn.connected:
            self.orders_retry_at = None
            self._guard("re-reading the orders", self._resubscribe_orders)
        if mono >= self._due["sync"]:
            self._due["sync"] = mono + SYNC_CHECK_S
            self._guard("the clock check", self._check_sync)
        self._housework()

    def _housework(self) -> None:
        mono = self.clock.monotonic()
        self._guard(
            "the rejection summary", lambda: self.audit.flush_rejections(self.tclock.snapshot())
        )
        if mono >= self._due["housekeep"]:
            self._due["housekeep"] = mono + HOUSEKEEP_S
            self._guard("making room", self._housekeep)
        if mono >= self._due["retention"]:
            self._due["retention"] = mono + RETENTION_S
            self._guard("retention", lambda: self.retention.run(self.tclock.snapshot()))

    def _housekeep(self) -> None:
        pressure = self.retention.housekeep(self.tclock.snapshot(), self.low_water)
        # While the card is nearly full, rejections are only counted (summaries).
        self.audit.limiter.quiet = pressure

    def _check_sync(self) -> None:
        if self.tclock.set_synced(self._system_synced()):
            self.store.save_doc_floor(0.0)  # NTP corrected a floor from documents

    def _drain(self) -> None:
        self.outbox.fill(self._publish, max_seq=self.announced)

    def _publish(self, topic: str, payload: bytes) -> int | None:
        assert self.conn is not None
        return self.conn.publish(topic, payload, qos=1)

    def _resync(self) -> None:
        self.status_due = True
        self.last_status = None

    def _resubscribe_orders(self) -> None:
        if self.conn is not None:
            self.conn.subscribe([(topics.orders_filter(self.site), 1)])

    # ----- orders down ----------------------------------------------------

    def _staff(self, m: Message) -> None:
        """One staff document (docs/protocol.md, "Staff and courier codes"), judged alone."""
        snap = self.tclock.snapshot()
        ident = _ident(m)
        topic = _topic_text(m)
        if ident is None or not topics.valid_id(ident):
            self.intake.reject(
                snap,
                ValidationError(
                    "bad_staff_id", "the topic's staff_id must match [A-Za-z0-9_.-]{1,64}"
                ),
                source="mqtt",
                topic=topic,
            )
            return
        if not m.payload:
            self.staff_intake.forget(ident, snap)
            return
        try:
            doc: Any = decode_json_object(m.payload)
        except ValidationError as err:
            doc = err  # rejected alone by the intake
        self.staff_intake.accept(doc, snap, source="mqtt", staff_id=ident, topic=topic)

    def _flush_orders(self, msgs: list[Message]) -> None:
        if msgs:
            batch = list(msgs)
            msgs.clear()
            if not self._guard("an order batch", lambda: self._ingest(batch)):
                # The store refused (or a defect): the retained orders come again.
                self.orders_retry_at = self.clock.monotonic() + ORDERS_RETRY_S

    def _ingest(self, msgs: list[Message]) -> None:
        """Judge a batch of order messages, each alone, in arrival order."""
        snap = self.tclock.snapshot()
        self.intake.signed_times.clear()
        items: list[Incoming] = []
        held = self.store.held_order_ids(sorted({i for m in msgs if (i := _ident(m))}))
        for m in msgs:
            try:
                item = self._prepare(m, held)
            except Exception as exc:  # a defect met by this message: it alone is refused
                item = Incoming(internal_error(exc), None, _topic_text(m))
            if item is not None:
                items.append(item)
        try:
            self.intake.accept_many(items, snap, source="mqtt")
        except StoreError:
            raise
        except Exception:
            # A defect in the batch path itself: judge one by one so it hurts no other.
            for item in items:
                self._guard(
                    "an order message",
                    partial(self.intake.accept_many, [item], snap, source="mqtt"),
                )
        if self.intake.signed_times:
            self._observe_signed_time(max(self.intake.signed_times), snap, "order")
        self.ingested += len(msgs)

    def _prepare(self, m: Message, held: set[str]) -> Incoming | None:
        oid = _ident(m)
        topic = _topic_text(m)
        if not topics.valid_id(oid):
            err = ValidationError(
                "bad_order_id", "the topic's order_id must match [A-Za-z0-9_.-]{1,64}"
            )
            return Incoming(err, None, topic)
        if not m.payload:
            return Incoming(None, oid, topic, forget=True)
        try:
            doc: Any = decode_json_object(m.payload)
        except ValidationError as err:
            doc = err  # rejected alone, in order, by the intake
        if oid in held and isinstance(doc, dict) and self._already_held(doc, str(oid)):
            self.replays_skipped += 1
            return None
        return Incoming(doc, oid, topic)

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

    def _command(self, msg: Message) -> None:
        cmd_id = _ident(msg)
        if cmd_id is None or not topics.valid_id(cmd_id):
            self.intake.reject(
                self.tclock.snapshot(),
                ValidationError("bad_cmd_id", "the topic's cmd_id must match [A-Za-z0-9_.-]{1,64}"),
                source="mqtt",
                topic=_topic_text(msg),
            )
            return
        try:
            self.commands.handle(cmd_id, msg.payload, msg.retain)
        except StoreError as exc:
            # Nothing of it was kept; say so, so the owner can send it again.
            self.commands.answer(
                cmd_id,
                {
                    "cmd_id": cmd_id,
                    "ok": False,
                    "error": "internal: the kiosk could not record this command "
                    f"({type(exc).__name__}); send it again with a new cmd_id",
                    "reason": "internal",
                },
            )
            raise
        except Exception as exc:
            self.commands.refuse(cmd_id, None, internal_error(exc), self.tclock.snapshot())
            raise

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
            **tail_claim(self.store, self.site),
            "alarms": alarms,
        }

    def _live_alarms(self) -> set[str]:
        live = set()
        if self.audit.limiter.flooding:
            live.add("flood")
        if self.retention.refused:
            live.add("retention_refused")
        if self.retention.pressure:
            live.add("disk_full")
        elif self.retention.reserve.size and not self.retention.reserve.present():
            live.add("reserve_spent")
        return live

    def _offline(self, reason: str) -> dict[str, Any]:
        return offline(self.site, kiosk.__version__, reason)

    def _maybe_status(self) -> None:
        """Publish the status when due, changed, or needed to cover new events
        (no event goes out before a status claiming its seq was acknowledged)."""
        if self.status_mid is not None:
            return  # one status in flight at a time
        mono = self.clock.monotonic()
        behind = self.store.last_seq() > self.announced
        if not self.status_due and not behind and mono - self.last_status_check < STATUS_CHECK_S:
            return
        self.last_status_check = mono
        current = self.status()
        same = self.last_status is not None and {k: v for k, v in current.items() if k != "ts"} == {
            k: v for k, v in self.last_status.items() if k != "ts"
        }
        if (
            same
            and not behind
            and not self.status_due
            and mono - self.last_status_sent < STATUS_EVERY_S
        ):
            return
        assert self.conn is not None
        mid = self.conn.publish(topics.status(self.site), dumps(current), qos=1, retain=True)
        if mid is None:
            return
        self.status_mid, self.status_claim = mid, int(current["last_seq"])
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
                goodbye = self._offline("shutdown")
                goodbye["ts"] = format_time(self.tclock.snapshot().now)
                with suppress(StoreError):
                    goodbye.update(tail_claim(self.store, self.site))
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


def _ident(msg: Message) -> str | None:
    try:
        parsed = topics.parse(msg.topic)
    except Exception:
        return None
    return parsed.ident if parsed else None


def _topic_text(msg: Message) -> str:
    return msg.topic[:256]


NICE = 10  # the agent's scheduling priority below the door daemon's (nice 0)


def _yield_to_the_door() -> None:
    """A flood can keep the agent busy on every core it gets; the door must
    still get the CPU for a customer's code within its budget, so the agent
    (its own process) runs at a lower priority. Only lowering is asked for,
    which needs no privilege."""
    try:
        current = os.getpriority(os.PRIO_PROCESS, 0)
        if current < NICE:
            os.setpriority(os.PRIO_PROCESS, 0, NICE)
    except OSError:
        log.debug("could not lower the agent's priority", exc_info=True)


def run(
    cfg: Config,
    *,
    clock: Clock | None = None,
    stop: threading.Event | None = None,
    store_logs: bool = True,
) -> int:
    """Run the sync agent until SIGTERM/SIGINT or ``stop`` is set; return an exit code.

    0 after a clean stop, 1 when the store cannot be opened (systemd restarts
    the unit). Signal handlers are installed, and the process's priority is
    lowered below the door's (nice 10), only on the main thread. With
    ``store_logs`` false the caller already queues log records in the store
    (``kiosk run`` runs the door in the same process).
    """
    clock = clock or SystemClock()
    stop = stop or threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
        _yield_to_the_door()
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
