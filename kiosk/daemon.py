"""The door daemon's loop: one thread owns the door (docs/design.md, "Door daemon").

Hardware and window callbacks only ``post`` input events onto a queue; this
loop takes them one at a time, asks the pure parts (code engine, door
machine, entry buffer) what to do, hands the machine's actions to the
effects interpreter (:mod:`kiosk.effects`: audit before action, the backlog
while the store is unwritable) and keeps the timers (command hand-off,
clock, day mode, retention, status). The screen of each instant is composed
from the state by :func:`kiosk.screens.compose`. This module imports
neither gpiozero nor pygame nor paho.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as dtime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from kiosk.audit import Audit
from kiosk.clock import Clock, ClockSnapshot, TrustedClock, system_time_synchronized
from kiosk.codes import BACKUP_STEP, CodeEngine, Decision
from kiosk.config import Config
from kiosk.door import DoorMachine, Entrant, Entry, Event, State
from kiosk.effects import BoardPort, Effects
from kiosk.errors import StoreError
from kiosk.inputs import DoorChanged, ExitPressed, InputEvent, KeyPressed, LanguageToggled, Quit
from kiosk.notify import Notifier
from kiosk.screens import DoorView, Item, Screen, StatusCorner, compose, fallback, mask_name
from kiosk.staff import StaffCheck, StaffDecision
from kiosk.store import DoorStatus, OrderRow, Store
from kiosk.throttle import Throttle

log = logging.getLogger(__name__)

REFUSED_SCREEN_S = 6.0
FLOOR_SAVE_S = 300.0
COMMAND_POLL_S = 0.5
STATUS_POLL_S = 2.0
STORE_RETRY_S = 5.0
LANGUAGE_REVERT_S = 60.0

__all__ = ["BoardPort", "DisplayPort", "DoorDaemon"]


class DisplayPort(Protocol):
    def show(self, screen: Screen) -> None: ...
    def poll_events(self) -> list[InputEvent]: ...
    def close(self) -> None: ...


class VoicePort(Protocol):
    """Spoken prompts (``hardware.voice``): one per screen, cut short by the next key."""

    def say(self, screen: Screen) -> None: ...
    def stop(self) -> None: ...


class SlotLightPort(Protocol):
    """Pick-to-light (``hardware.slotlight``): the accepted order's slot lights until
    the door closes or relocks."""

    def light(self, slot: str) -> None: ...
    def off(self) -> None: ...


def _hhmm(text: str) -> dtime | None:
    hh, mm = (int(x) for x in text.split(":"))
    return None if hh == 24 else dtime(hh, mm)


class _Replayed(Exception):
    pass


@dataclass
class DoorDaemon:
    cfg: Config
    store: Store
    board: BoardPort
    clock: Clock
    display: DisplayPort | None = None
    notifier: Notifier = field(default_factory=lambda: Notifier({}))
    screen_sinks: list[Callable[[Screen], None]] = field(default_factory=list)
    synced: Callable[[], bool] | None = None
    log_handler: Any = None
    english_only: bool = False  # the display has no CJK font (an alarm, not a stop)
    voice: VoicePort | None = None
    slot_light: SlotLightPort | None = None

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.queue: queue.Queue[InputEvent] = queue.Queue()
        self.audit = Audit(self.store, cfg.site.id)
        self.throttle = Throttle(self.store, cfg.throttle)
        self.engine = CodeEngine(
            self.store, cfg.codes, self.throttle, width=cfg.site.pickup_no_width
        )
        self.machine = DoorMachine(release_s=cfg.lock.release_s, held_open_s=cfg.lock.held_open_s)
        try:
            self.tz: ZoneInfo | None = ZoneInfo(cfg.site.timezone) if cfg.site.timezone else None
        except (KeyError, ValueError):
            self.tz = None
        self.staff = StaffCheck(
            self.store,
            self.throttle,
            width=cfg.site.pickup_no_width,
            window=cfg.codes.totp_window,
            local=self._local,
        )
        self.entry = Entry(max_len=max(*self.engine.valid_lengths(), *self.staff.lengths()))
        if self.synced is None:
            mode = cfg.clock.trust_system_clock
            self.synced = {"always": lambda: True, "never": lambda: False}.get(
                mode, system_time_synchronized
            )
        self.tclock = TrustedClock(
            self.clock,
            self.store.clock_floor(),
            doc_floor=self.store.doc_floor(),
            synced=self.synced(),
        )
        self.clock_epoch = self.store.clock_epoch()  # the owner's floor repairs adopted
        self.effects = Effects(self.board, self.audit, cfg.lock.release_s, self.snap)
        self.effects.on_swap.append(self._swapped)
        self.lang = "en" if self.english_only else cfg.display.language
        self.lang_changed_at = 0.0
        self.overlay: Screen | None = None
        self.overlay_until = 0.0
        self.visit: Screen | None = None  # the accepted customer's screen
        self.day = False
        self.status = StatusCorner()
        self.clock_trusted: bool | None = None
        self.stopping = False
        self.alarms: set[str] = {"display_degraded"} if self.english_only else set()
        self.last_screen: Screen | None = None
        self._last_door_status: DoorStatus | None = None
        mono = self.clock.monotonic()
        self._next = {
            "floor": mono + FLOOR_SAVE_S,
            "cmd": mono,
            "status": mono,
            "store": mono,
            "sync": mono + 60.0,
        }
        self.day_override: tuple[bool, bool] | None = None  # (day, what the schedule said)

    # ----- inputs -------------------------------------------------------

    def post(self, event: InputEvent) -> None:
        """Thread-safe: hardware and window callbacks call only this."""
        self.queue.put_nowait(event)

    # ----- the store, through the effects ---------------------------------

    @property
    def store_ok(self) -> bool:
        return self.effects.store_ok

    def snap(self) -> ClockSnapshot:
        return self.tclock.snapshot()

    def record(
        self,
        type_: str,
        *,
        order_id: str | None = None,
        detail: dict[str, Any] | None = None,
        snap: ClockSnapshot | None = None,
    ) -> bool:
        return self.effects.record(type_, order_id=order_id, detail=detail, snap=snap)

    def start_without_store(self, exc: StoreError, reopen: Callable[[], Store]) -> None:
        """Begin out of service on a stand-in store; ``reopen`` is retried."""
        self.effects.reopen = reopen
        self.effects.store_failed(exc)

    def _swapped(self, store: Store) -> None:
        self.store = self.throttle.store = self.engine.store = self.staff.store = store
        if self.log_handler is not None:
            self.log_handler.store = store
        self.tclock.raise_floor(store.clock_floor())
        self.tclock.adopt_doc_floor(store.doc_floor())
        self._last_door_status = None

    # ----- start and stop -------------------------------------------------

    def start(self) -> None:
        snap = self.snap()
        self.clock_trusted = snap.trusted
        self.record(
            "boot",
            detail={"version": _version(), "board": self.cfg.hardware.board, "clock": snap.state},
            snap=snap,
        )
        if not snap.trusted:
            self.record("clock_untrusted", detail=self._clock_detail(snap), snap=snap)
        if self.english_only:
            log.error("no CJK font: the screens show English only; see `kiosk doctor`")
            self.record(
                "display_degraded",
                detail={"problem": "no_cjk_font", "fix": "install fonts-wqy-microhei"},
                snap=snap,
            )
        self.board.start(self.post)
        if self.board.door_is_open():
            actions = self.machine.door(self.clock.monotonic(), True)
            if actions:
                self.effects.apply(self._at_start(actions))
        self._update_mode()
        self._write_door_status()
        self._refresh_status()
        self._render()
        self.notifier.ready("taking codes")

    @staticmethod
    def _at_start(actions: tuple[Any, ...]) -> tuple[Any, ...]:
        from kiosk.door import Record

        return tuple(
            Record(a.type, a.order_id, (*a.detail, ("at_start", True)))
            if isinstance(a, Record) and a.type == "door_forced"
            else a
            for a in actions
        )

    def shutdown(self) -> None:
        self.notifier.stopping()
        try:
            self.board.lock.release()
        finally:
            if self.store_ok:
                try:
                    self.store.save_clock_floor(self.tclock.evidence(), self.clock_epoch)
                    self.record("shutdown")
                except StoreError:
                    pass
            self._write_door_status(force_locked=True)

    def run(self, stop: threading.Event | None = None, tick_s: float = 0.1) -> int:
        """Run until Quit or ``stop``; always release the relay on the way out."""
        stop = stop or threading.Event()
        try:
            self.start()
            while not stop.is_set() and not self.stopping:
                self.step(tick_s)
        finally:
            self.shutdown()
        return 0

    # ----- the loop -------------------------------------------------------

    def step(self, timeout: float = 0.0) -> None:
        """Handle at most one queued input (waiting up to ``timeout``), then tick."""
        if self.display is not None:
            for ev in self.display.poll_events():
                self.post(ev)
        try:
            event = self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
        except queue.Empty:
            event = None
        if event is not None:
            self.handle(event)
        self.tick()

    def drain(self) -> None:
        """Handle everything queued (tests and scripted input)."""
        while not self.queue.empty():
            self.step()

    def handle(self, event: InputEvent) -> None:
        if isinstance(event, KeyPressed):
            self._key(event.key)
        elif isinstance(event, DoorChanged):
            self._door(event.open)
        elif isinstance(event, ExitPressed):
            self._exit()
        elif isinstance(event, LanguageToggled):
            self._toggle_language()
        elif isinstance(event, Quit):
            log.info("stopping: %s", event.reason or "asked to quit")
            self.stopping = True
        self._render()

    def tick(self) -> None:
        mono = self.clock.monotonic()
        self.notifier.watchdog(mono)
        for event, actions in self.machine.tick(mono):
            self.effects.apply(actions)
            if event is Event.PULSE_END:  # nobody went in: the slot goes dark again
                self._guard("slot light", lambda s: s.off(), self.slot_light)
        if self.machine.holding:
            self.board.lock.energize(self.cfg.lock.release_s)  # renew the lease
        self.entry.expire(mono)
        if (
            self.lang != self._home_lang()
            and mono - self.lang_changed_at > LANGUAGE_REVERT_S
            and not self.entry.digits
        ):
            self.lang = self._home_lang()
        if mono >= self._next["sync"]:
            self._next["sync"] = mono + 60.0
            self._check_clock()
            self._update_mode()
        if not self.store_ok and mono >= self._next["store"]:
            self._next["store"] = mono + STORE_RETRY_S
            self.effects.retry()
        if self.store_ok and mono >= self._next["cmd"]:
            self._next["cmd"] = mono + COMMAND_POLL_S
            self._run_commands()
        if mono >= self._next["status"]:
            self._next["status"] = mono + STATUS_POLL_S
            self._refresh_status()
        if self.store_ok and mono >= self._next["floor"]:
            self._next["floor"] = mono + FLOOR_SAVE_S
            self._save_floor()
        self._write_door_status()
        self._render()

    # ----- keypad -----------------------------------------------------------

    def _home_lang(self) -> str:
        return "en" if self.english_only else self.cfg.display.language

    def _key(self, key: str) -> None:
        mono = self.clock.monotonic()
        self._guard("voice", lambda v: v.stop(), self.voice)
        what, submitted = self.entry.press(key, mono)
        if what in ("typing", "cleared"):
            self.board.buzzer.play("key")
            self.overlay = None
        elif what == "toggle_language":
            self._toggle_language()
        elif what == "submit":
            self._submit(submitted)

    def _toggle_language(self) -> None:
        if self.english_only:
            return  # no font for the other language
        self.lang = "en" if self.lang == "zh" else "zh"
        self.lang_changed_at = self.clock.monotonic()
        self.overlay = None

    def _submit(self, entry: str) -> None:
        if not entry and self.day and self.cfg.schedule.day_mode == "free_entry":
            self._unlock(Entrant("free_entry"))
            return
        if not entry:
            return
        if not self.store_ok:
            self._refuse(Decision(False, "out_of_service"))
            return
        snap = self.snap()
        if len(entry) in self.staff.lengths():
            self._staff_entry(entry, snap)
            return
        try:
            decision = self.engine.check(entry, snap)
        except StoreError as exc:
            self.effects.store_failed(exc)
            self._refuse(Decision(False, "out_of_service"))
            return
        if not decision.ok:
            self._refuse(decision, snap)
            return
        self._accept(decision, snap)

    def _refuse(
        self, decision: Decision, snap: ClockSnapshot | None = None, *, staff: Any = None
    ) -> None:
        detail: dict[str, Any] = {"reason": decision.reason}
        if staff is not None:  # the staff code itself was right
            detail["staff_id"] = staff.staff_id
        if decision.reason == "throttled":
            detail["wait_s"] = round(decision.wait_s)
            self.record("throttled", detail=detail, snap=snap)
        elif decision.reason != "out_of_service":
            # order_id only when the code itself was right (a status refusal)
            self.record("code_rejected", order_id=decision.order_id, detail=detail, snap=snap)
        else:
            self.record("code_rejected", detail=detail, snap=snap)
            self.board.buzzer.play("alarm")
        self.board.buzzer.play("refused")
        collected_at = ""
        if (
            decision.reason == "already_collected"
            and decision.order
            and decision.order.collected_at
        ):
            collected_at = self._local(decision.order.collected_at).strftime("%H:%M")
        self._show(
            Screen(
                kind="refused",
                reason=decision.reason,
                collected_at=collected_at,
                seconds_left=int(decision.wait_s + 0.999),
                expected=self._expected(),
            ),
            REFUSED_SCREEN_S,
        )

    def _commit(self, write: Callable[[], tuple[Any, ...]], replayed: Callable[[], None]) -> bool:
        """Run ``write`` as one durable commit, then perform its actions; False if refused.

        ``write`` raises ``_Replayed`` when the step was used meanwhile; a store
        failure puts the kiosk out of service. Either way the door machine is
        restored to where it was, so a refused entry changes nothing.
        """
        saved = self.machine.checkpoint()
        try:
            with self.audit.batch():
                actions = write()
        except _Replayed:
            self.machine.restore(saved)
            replayed()
            return False
        except StoreError as exc:
            self.machine.restore(saved)
            self.effects.store_failed(exc)
            self._refuse(Decision(False, "out_of_service"))
            return False
        # Committed: from here nothing may stop the door cycle (docs/design.md, rule 1).
        self.effects.perform(actions)
        self.board.buzzer.play("accepted")
        self.overlay = None
        return True

    def _accept(self, decision: Decision, snap: ClockSnapshot) -> None:
        """One durable commit (step used, code accepted, door unlocked), then the relay."""
        order = decision.order
        assert order is not None
        entrant = Entrant("code", order.order_id, decision.reentry)

        def write() -> tuple[Any, ...]:
            if not self.engine.commit(decision, snap.now):
                raise _Replayed
            self.audit.record(
                "code_accepted",
                snap,
                order_id=order.order_id,
                detail={
                    "kind": "backup" if decision.step == BACKUP_STEP else "totp",
                    "reentry": decision.reentry,
                    "full": decision.full,
                },
            )
            actions = self.machine.unlock(self.clock.monotonic(), entrant) or ()
            self.effects.write(actions, snap)
            return tuple(actions)

        reason = "backup_used" if decision.step == BACKUP_STEP else "replayed"
        if not self._commit(
            write, lambda: self._refuse(Decision(False, reason, order=order), snap)
        ):
            return
        try:
            self.visit = self._visit_screen(order, decision.reentry)
        except Exception:
            log.exception("building the accepted screen failed; showing a plain one")
            self.visit = fallback("accepted", self.lang)
        if order.slot:
            slot = order.slot
            self._guard("slot light", lambda s: s.light(slot), self.slot_light)

    def _staff_entry(self, entry: str, snap: ClockSnapshot) -> None:
        try:
            d = self.staff.check(entry, snap)
        except StoreError as exc:
            self.effects.store_failed(exc)
            self._refuse(Decision(False, "out_of_service"))
            return
        if d.ok and d.action != "open" and not self._may_toggle_day():
            d = StaffDecision(False, "day_toggle_not_now", staff=d.staff, step=d.step)
        if not d.ok:
            self._refuse(Decision(False, d.reason, wait_s=d.wait_s), snap, staff=d.staff)
            return
        staff = d.staff
        assert staff is not None
        who: tuple[tuple[str, Any], ...] = (("staff_id", staff.staff_id), ("role", staff.role))

        def write() -> tuple[Any, ...]:
            if not self.staff.commit(d, snap.now):
                raise _Replayed
            self.audit.record(
                "staff_entry", snap, detail={**dict(who), "name": staff.name, "action": d.action}
            )
            if d.action != "open":
                return ()
            actions = self.machine.unlock(self.clock.monotonic(), Entrant("staff", detail=who))
            self.effects.write(actions or (), snap)
            return tuple(actions or ())

        refused = Decision(False, "replayed")
        if not self._commit(write, lambda: self._refuse(refused, snap, staff=staff)):
            return
        if d.action == "open":
            self.visit = Screen(kind="staff_open", customer=mask_name(staff.name[:64]))
        else:
            self.day_override = (d.action == "day_on", self._scheduled_day())
            self._update_mode()

    def _may_toggle_day(self) -> bool:
        """Staff may switch day mode at the door during staffed hours only."""
        return self.cfg.schedule.day_mode != "off" and self._scheduled_day()

    def _visit_screen(self, order: OrderRow, reentry: bool) -> Screen:
        customer = order.doc.get("customer") or {}
        items = tuple(
            Item(str(i.get("name", ""))[:64], float(i.get("qty", 1)), str(i.get("unit", ""))[:16])
            for i in (order.doc.get("items") or [])[:6]
            if isinstance(i, dict)
        )
        return Screen(
            kind="accepted",
            slot=(order.slot or "—")[:16],
            items=items,
            customer=mask_name(str(customer.get("name") or "")[:64]),
            reentry=reentry,
        )

    def _expected(self) -> int:
        return self.engine.width + self.engine.short

    # ----- door, exit, commands -------------------------------------------

    def _unlock(self, entrant: Entrant) -> bool:
        """Open for someone not identified by a code (exit, owner, free entry)."""
        saved = self.machine.checkpoint()
        actions = self.machine.unlock(self.clock.monotonic(), entrant)
        if not actions:
            return False  # the door is open or held open by day mode: nothing to do
        # audit before action; only the exit button overrides an unwritable store
        if not self.effects.apply(actions, must_record=entrant.by != "exit"):
            self.machine.restore(saved)
            return False
        if entrant.by != "exit":
            self.board.buzzer.play("accepted")
        self.overlay = None
        return True

    def _exit(self) -> None:
        self.record("exit_pressed")
        self._unlock(Entrant("exit"))

    def _door(self, is_open: bool) -> None:
        actions = self.machine.door(self.clock.monotonic(), is_open)
        if actions is not None:
            self.effects.apply(actions)
            if not is_open and self.machine.state is State.LOCKED:
                self.visit = None
                self._guard("slot light", lambda s: s.off(), self.slot_light)

    @staticmethod
    def _guard(what: str, call: Callable[[Any], None], port: Any) -> None:
        """Call an optional port; its failure is logged and never reaches the door."""
        if port is None:
            return
        try:
            call(port)
        except Exception:
            log.exception("the %s failed", what)

    def _run_commands(self) -> None:
        try:
            pending = self.store.pending_door_commands()
        except StoreError as exc:
            self.effects.store_failed(exc)
            return
        for cmd in pending:
            if cmd["cmd"] != "unlock":
                continue
            try:
                self._run_unlock(cmd)
            except StoreError as exc:
                self.effects.store_failed(exc)
                return

    def _run_unlock(self, cmd: dict[str, Any]) -> None:
        snap = self.snap()
        if cmd["expires_at"] is not None and snap.expiry_now >= cmd["expires_at"]:
            self.store.finish_command(
                cmd["cmd_id"], "failed", "expired before the door could act on it"
            )
            return
        args = _args(cmd.get("args"))
        detail: list[tuple[str, Any]] = [("cmd_id", cmd["cmd_id"])]
        for key in ("reason", "account"):
            if isinstance(args.get(key), str) and args[key]:
                detail.append((key, args[key][:200]))
        ok = self._unlock(Entrant("command", detail=tuple(detail)))
        error = "" if ok else "the door is already open or the store is not writable"
        self.store.finish_command(cmd["cmd_id"], "done" if ok else "failed", error)

    # ----- periodic ---------------------------------------------------------

    @staticmethod
    def _clock_detail(snap: ClockSnapshot) -> dict[str, Any]:
        return {"wall": round(snap.wall, 3), "floor": round(snap.floor, 3)}

    def _check_clock(self) -> None:
        assert self.synced is not None
        corrected = self.tclock.set_synced(self.synced())
        try:
            if corrected:
                self.store.save_doc_floor(0.0)  # NTP corrected a floor from documents
            epoch = self.store.clock_epoch()
            if epoch != self.clock_epoch:  # the owner lowered a floor that was too far ahead
                self.clock_epoch = epoch
                self.tclock.reset_floor(self.store.clock_floor())
            self.tclock.raise_floor(self.store.clock_floor())
            stored = self.store.doc_floor()
            if stored == 0.0 and self.tclock.doc_floor() > 0.0:
                # the owner's `time` command or NTP discarded the documents' floor
                self.tclock.clear_doc_floor()
            self.tclock.adopt_doc_floor(stored)
            signed = self.store.signed_time()
            self.throttle.rebase(self.snap().now)  # the judged time may have moved back
        except StoreError:
            signed = 0.0
        if signed:
            self.tclock.observe_signed(signed)
        snap = self.snap()
        if snap.trusted != self.clock_trusted:
            self.clock_trusted = snap.trusted
            self.record(
                "clock_trusted" if snap.trusted else "clock_untrusted",
                detail=self._clock_detail(snap),
                snap=snap,
            )

    def _save_floor(self) -> None:
        try:
            self.store.save_clock_floor(self.tclock.evidence(), self.clock_epoch)
        except StoreError as exc:
            self.effects.store_failed(exc)

    def _local(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, self.tz) if self.tz else datetime.fromtimestamp(t)

    def _scheduled_day(self) -> bool:
        sched = self.cfg.schedule
        if sched.day_mode == "off":
            return False
        now = self._local(self.snap().now).time()
        start, end = _hhmm(sched.day_start), _hhmm(sched.day_end)
        start = start or dtime(0, 0)
        if end is None:
            return now >= start
        if start <= end:
            return start <= now < end
        return now >= start or now < end  # spans midnight

    def _update_mode(self) -> None:
        sched = self.cfg.schedule
        day = self._scheduled_day()
        if self.day_override is not None:
            wanted, scheduled_then = self.day_override
            if day == scheduled_then:
                day = wanted  # a staff member's switch holds until the schedule turns
            else:
                self.day_override = None
        if day == self.day:
            return
        self.day = day
        if sched.day_mode == "unlocked":
            actions = self.machine.day(self.clock.monotonic(), day)
            if actions is not None:
                self.effects.apply(actions)
                return
        self.record("mode_changed", detail={"mode": "day" if day else "night"})

    def _refresh_status(self) -> None:
        try:
            online = self.store.mqtt_online()
            outbox = self.store.outbox_size()
        except StoreError:
            online, outbox = False, 0
        self.status = StatusCorner(
            online=online,
            outbox=outbox,
            clock_trusted=bool(self.clock_trusted),
            mode="day" if self.day else "night",
        )

    def _write_door_status(self, force_locked: bool = False) -> None:
        status = DoorStatus(
            door=self.machine.door_state,
            lock="locked" if force_locked else self.machine.lock_state,
            mode="day" if self.day else "night",
            alarms=tuple(
                sorted(self.alarms | ({"store_unwritable"} if not self.store_ok else set()))
            ),
        )
        if status == self._last_door_status or not self.store_ok:
            return
        try:
            self.store.set_door_status(status)
            self._last_door_status = status
        except StoreError as exc:
            self.effects.store_failed(exc)

    # ----- screens ------------------------------------------------------------

    def _show(self, screen: Screen, seconds: float) -> None:
        self.overlay = screen
        self.overlay_until = self.clock.monotonic() + seconds

    def view(self) -> DoorView:
        """The state the screen is composed from."""
        mono = self.clock.monotonic()
        m = self.machine
        return DoorView(
            lang=self.lang,
            status=self.status,
            site_name=self.cfg.site.name,
            contact=self.cfg.site.contact,
            clock_text=self._local(self.snap().now).strftime("%H:%M"),
            store_ok=self.store_ok,
            door=m.state,
            entrant=m.entrant.by if m.entrant else None,
            unlock_left=m.unlock_left(mono),
            open_for=m.open_for(mono),
            visit=self.visit,
            overlay=self.overlay,
            overlay_left=max(0.0, self.overlay_until - mono) if self.overlay else 0.0,
            typed=len(self.entry.digits),
            expected=self._expected(),
            day=self.day,
            day_mode=self.cfg.schedule.day_mode,
        )

    def screen(self) -> Screen:
        """The screen for this instant, from the state."""
        try:
            return compose(self.view())
        except Exception:
            log.exception("composing the screen failed; showing a plain one")
            return fallback("idle", self.lang)

    def _render(self) -> None:
        screen = self.screen()
        if screen == self.last_screen:
            return
        self.last_screen = screen
        self._guard("voice", lambda v: v.say(screen), self.voice)
        try:
            if self.display is not None:
                self.display.show(screen)
            for sink in self.screen_sinks:
                sink(screen)
        except Exception:
            # A screen that cannot be drawn must not stop the door: the relay,
            # the timers and the records go on, and a plain screen of the same
            # kind stands in.
            log.exception("drawing the %s screen failed; showing a plain one", screen.kind)
            plain = fallback(screen.kind, self.lang)
            try:
                if self.display is not None:
                    self.display.show(plain)
            except Exception:
                log.exception("drawing the plain %s screen failed too", screen.kind)


def _args(raw: Any) -> dict[str, Any]:
    import json

    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _version() -> str:
    from kiosk import __version__

    return __version__
