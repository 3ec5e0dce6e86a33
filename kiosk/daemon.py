"""The door daemon's shell: one loop owns the door (STYLE.md 4 and 8).

Hardware and window callbacks only ``post`` input events onto a queue; this
loop takes them one at a time, asks the pure parts (code engine, door
machine, entry buffer) what to do, writes the audit trail *before* acting
(DESIGN.md rule 1), then drives the relay, buzzer, LED and screen through
small ports (``BoardPort``, ``DisplayPort``) that ``hardware`` implements.
This module imports neither gpiozero nor pygame nor paho.
"""

from __future__ import annotations

import json
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
from kiosk.door import HELD, OPEN, TRANSITIONS, UNLOCKED, DoorMachine, Entry
from kiosk.errors import StoreError
from kiosk.inputs import DoorChanged, ExitPressed, InputEvent, KeyPressed, LanguageToggled, Quit
from kiosk.notify import Notifier
from kiosk.screens import Item, Screen, StatusCorner, mask_name
from kiosk.store import DoorStatus, OrderRow, Store
from kiosk.throttle import Throttle

log = logging.getLogger(__name__)

REFUSED_SCREEN_S = 6.0
FLOOR_SAVE_S = 300.0
COMMAND_POLL_S = 0.5
STATUS_POLL_S = 2.0
STORE_RETRY_S = 5.0
PURGE_S = 3600.0
LANGUAGE_REVERT_S = 60.0


class LockPort(Protocol):
    def energize(self, seconds: float) -> None: ...
    def release(self) -> None: ...


class SignalPort(Protocol):
    def play(self, pattern: str) -> None: ...


class LedPort(Protocol):
    def set(self, state: str) -> None: ...


class BoardPort(Protocol):
    lock: Any
    buzzer: Any
    led: Any

    def start(self, post: Callable[[InputEvent], None]) -> None: ...
    def door_is_open(self) -> bool: ...
    def close(self) -> None: ...


class DisplayPort(Protocol):
    def show(self, screen: Screen) -> None: ...
    def poll_events(self) -> list[InputEvent]: ...
    def close(self) -> None: ...


@dataclass
class _Pending:
    type_: str
    snap: ClockSnapshot
    order_id: str | None
    detail: dict[str, Any]


def _hhmm(text: str) -> dtime | None:
    hh, mm = (int(x) for x in text.split(":"))
    return None if hh == 24 else dtime(hh, mm)


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
    # When the real store could not be opened at start (a read-only or broken
    # card), the daemon runs out of service on a stand-in and calls this to
    # open the real one again every STORE_RETRY_S.
    reopen: Callable[[], Store] | None = None
    log_handler: Any = None

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.queue: queue.Queue[InputEvent] = queue.Queue()
        self.audit = Audit(self.store, cfg.site.id)
        self.throttle = Throttle(self.store, cfg.throttle)
        self.engine = CodeEngine(
            self.store, cfg.codes, self.throttle, width=cfg.site.pickup_no_width
        )
        self.machine = DoorMachine(release_s=cfg.lock.release_s, held_open_s=cfg.lock.held_open_s)
        self.entry = Entry(max_len=max(self.engine.valid_lengths()))
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
        self.lang = cfg.display.language
        self.lang_changed_at = 0.0
        self.store_ok = True
        self.backlog: list[_Pending] = []
        self.overlay: Screen | None = None
        self.overlay_until = 0.0
        self.day = False
        self.status = StatusCorner()
        self.clock_trusted: bool | None = None
        self.stopping = False
        self.alarms: set[str] = set()  # shown on the status topic (e.g. display_degraded)
        self.last_screen: Screen | None = None
        self._last_door_status = ""
        mono = self.clock.monotonic()
        self._next = {
            "floor": mono + FLOOR_SAVE_S,
            "cmd": mono,
            "status": mono,
            "store": mono,
            "purge": mono + 60.0,
            "sync": mono + 60.0,
        }
        try:
            self.tz: ZoneInfo | None = ZoneInfo(cfg.site.timezone) if cfg.site.timezone else None
        except (KeyError, ValueError):
            self.tz = None

    # ----- inputs -------------------------------------------------------

    def post(self, event: InputEvent) -> None:
        """Thread-safe: hardware and window callbacks call only this."""
        self.queue.put_nowait(event)

    # ----- audit ----------------------------------------------------------

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
        """Record an event; on a store failure keep it for later and go out of service."""
        s = snap or self.snap()
        if self.store_ok:
            try:
                self.audit.record(type_, s, order_id=order_id, detail=detail)
                return True
            except StoreError as exc:
                self._store_failed(exc)
        self.backlog.append(_Pending(type_, s, order_id, dict(detail or {})))
        return False

    def _store_failed(self, exc: Exception) -> None:
        if self.store_ok:
            log.error("the store cannot be written, codes are refused until it can: %s", exc)
            self.board.buzzer.play("alarm")
            self.board.led.set("fault")
            # The owner's alarm, stamped with when the outage began; it is the first
            # thing written once the store takes writes again (then store_recovered).
            self.backlog.append(
                _Pending("store_unwritable", self.snap(), None, {"error": str(exc)[-200:]})
            )
        self.store_ok = False

    def start_without_store(self, exc: StoreError, reopen: Callable[[], Store]) -> None:
        """Begin out of service on a stand-in store; ``reopen`` is retried."""
        self.reopen = reopen
        self._store_failed(exc)

    def _swap_store(self, store: Store) -> None:
        stand_in, self.store = self.store, store
        self.audit.store = self.throttle.store = self.engine.store = store
        if self.log_handler is not None:
            self.log_handler.store = store
        self.tclock.raise_floor(store.clock_floor())
        self.tclock.adopt_doc_floor(store.doc_floor())
        self._last_door_status = ""
        stand_in.close()

    def _retry_store(self) -> None:
        if self.reopen is not None:
            try:
                store = self.reopen()
            except StoreError:
                return
            self.reopen = None
            self._swap_store(store)
        try:
            s = self.snap()
            with self.store.atomic():
                for item in self.backlog:
                    self.audit.record(
                        item.type_, item.snap, order_id=item.order_id, detail=item.detail
                    )
                self.audit.record("store_recovered", s, detail={"kept": len(self.backlog)})
        except StoreError:
            return
        log.warning(
            "the store is writable again; %d events kept in memory were written", len(self.backlog)
        )
        self.backlog.clear()
        self.store_ok = True
        self.board.led.set("idle")

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
            self.record(
                "clock_untrusted", detail={"wall": snap.wall, "floor": snap.floor}, snap=snap
            )
        self.board.start(self.post)
        if self.board.door_is_open():
            self.machine.handle("door_open", self.clock.monotonic())
            self.record("door_forced", detail={"at_start": True})
        self._update_mode()
        self._write_door_status()
        self._refresh_status()
        self._render()
        self.notifier.ready("taking codes")

    def shutdown(self) -> None:
        self.notifier.stopping()
        try:
            self.board.lock.release()
        finally:
            if self.store_ok:
                try:
                    self.store.save_clock_floor(self.tclock.evidence())
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
        for _event, actions in self.machine.tick(mono):
            self._act(actions)
        if self.machine.holding:
            self.board.lock.energize(self.cfg.lock.release_s)  # renew the lease
        self.entry.expire(mono)
        if (
            self.lang != self.cfg.display.language
            and mono - self.lang_changed_at > LANGUAGE_REVERT_S
            and not self.entry.digits
        ):
            self.lang = self.cfg.display.language
        if mono >= self._next["sync"]:
            self._next["sync"] = mono + 60.0
            self._check_clock()
            self._update_mode()
        if not self.store_ok and mono >= self._next["store"]:
            self._next["store"] = mono + STORE_RETRY_S
            self._retry_store()
        if self.store_ok and mono >= self._next["cmd"]:
            self._next["cmd"] = mono + COMMAND_POLL_S
            self._run_commands()
        if mono >= self._next["status"]:
            self._next["status"] = mono + STATUS_POLL_S
            self._refresh_status()
        if self.store_ok and mono >= self._next["floor"]:
            self._next["floor"] = mono + FLOOR_SAVE_S
            self._save_floor()
        if self.store_ok and mono >= self._next["purge"]:
            self._next["purge"] = mono + PURGE_S
            self._purge()
        self._write_door_status()
        self._render()

    # ----- keypad -----------------------------------------------------------

    def _key(self, key: str) -> None:
        mono = self.clock.monotonic()
        what, submitted = self.entry.press(key, mono)
        if what in ("typing", "cleared"):
            self.board.buzzer.play("key")
            self.overlay = None
        elif what == "toggle_language":
            self._toggle_language()
        elif what == "submit":
            self._submit(submitted)

    def _toggle_language(self) -> None:
        self.lang = "en" if self.lang == "zh" else "zh"
        self.lang_changed_at = self.clock.monotonic()
        self.overlay = None

    def _submit(self, entry: str) -> None:
        if not entry and self.day and self.cfg.schedule.day_mode == "free_entry":
            self._unlock("free_entry")
            return
        if not entry:
            return
        if not self.store_ok:
            self._refuse(Decision(False, "out_of_service"))
            return
        snap = self.snap()
        try:
            decision = self.engine.check(entry, snap)
        except StoreError as exc:
            self._store_failed(exc)
            self._refuse(Decision(False, "out_of_service"))
            return
        if not decision.ok:
            self._refuse(decision, snap)
            return
        self._accept(decision, snap)

    def _refuse(self, decision: Decision, snap: ClockSnapshot | None = None) -> None:
        detail: dict[str, Any] = {"reason": decision.reason}
        order_id = decision.order_id  # only known when the code itself was right
        if decision.reason == "throttled":
            detail["wait_s"] = round(decision.wait_s)
            self.record("throttled", detail=detail, snap=snap)
        elif decision.reason != "out_of_service":
            self.record("code_rejected", order_id=order_id, detail=detail, snap=snap)
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
            ),
            REFUSED_SCREEN_S,
        )

    def _accept(self, decision: Decision, snap: ClockSnapshot) -> None:
        order = decision.order
        assert order is not None
        try:
            with self.audit.batch():  # audit before action, in one commit
                if not self.engine.mark_used(decision, snap.now):
                    raise _Replayed
                self.audit.record(
                    "code_accepted",
                    snap,
                    order_id=order.order_id,
                    detail={
                        "kind": "backup" if decision.step == BACKUP_STEP else "totp",
                        "reentry": decision.reentry,
                    },
                )
                self.audit.record(
                    "door_unlocked", snap, order_id=order.order_id, detail={"by": "code"}
                )
        except _Replayed:
            self._refuse(Decision(False, "replayed", order=order), snap)
            return
        except StoreError as exc:
            self._store_failed(exc)
            self._refuse(Decision(False, "out_of_service"))
            return
        actions = self.machine.handle("unlock", self.clock.monotonic())
        if actions is not None:
            self._act(actions)
        if not decision.reentry and self.machine.state in (UNLOCKED, OPEN, HELD):
            # collected when the door closes behind the customer (it may be open already)
            self.machine.collect_order = order.order_id
        self.board.buzzer.play("accepted")
        self._show(self._accepted_screen(order, decision.reentry), self.cfg.lock.release_s)

    def _accepted_screen(self, order: OrderRow, reentry: bool) -> Screen:
        customer = order.doc.get("customer") or {}
        items = tuple(
            Item(str(i.get("name", "")), float(i.get("qty", 1)), str(i.get("unit", "")))
            for i in (order.doc.get("items") or [])[:6]
            if isinstance(i, dict)
        )
        return Screen(
            kind="accepted",
            slot=order.slot or "—",
            items=items,
            customer=mask_name(str(customer.get("name") or "")),
            seconds_left=int(self.cfg.lock.release_s),
            reentry=reentry,
        )

    # ----- door, exit, commands -------------------------------------------

    def _unlock(self, by: str, **detail: Any) -> bool:
        """Open for someone not identified by a code (exit, owner, free entry)."""
        if (self.machine.state, "unlock") not in TRANSITIONS:
            return False  # the door is open or held open by day mode: nothing to do
        recorded = self.record("door_unlocked", detail={"by": by, **detail})
        if not recorded and by != "exit":
            return False  # audit before action; only the exit button overrides
        actions = self.machine.handle("unlock", self.clock.monotonic())
        if actions is None:
            return False
        self._act(actions)
        if by != "exit":
            self.board.buzzer.play("accepted")
        self._show(Screen(kind="door_released"), self.cfg.lock.release_s)
        return True

    def _exit(self) -> None:
        self.record("exit_pressed")
        self._unlock("exit")

    def _door(self, is_open: bool) -> None:
        actions = self.machine.handle(
            "door_open" if is_open else "door_close", self.clock.monotonic()
        )
        if actions is not None:
            self._act(actions)

    def _act(self, actions: tuple[str, ...]) -> None:
        for action in actions:
            if action == "energize":
                self.board.lock.energize(self.cfg.lock.release_s)
                self.board.led.set("unlocked")
            elif action == "hold":
                self.board.lock.energize(self.cfg.lock.release_s)
            elif action == "release":
                self.board.lock.release()
                self.board.led.set("idle" if self.store_ok else "fault")
            elif action == "alarm":
                self.board.buzzer.play("alarm")
                self.board.led.set("alarm")
            elif action == "alarm_off":
                self.board.led.set("idle" if self.store_ok else "fault")
            elif action == "collect":
                self._collect()
            elif action.startswith("record:"):
                type_ = action.split(":", 1)[1]
                detail: dict[str, Any] = {}
                if type_ == "mode_changed":
                    detail["mode"] = "day" if self.day else "night"
                if type_ == "door_held_open":
                    detail["held_s"] = self.cfg.lock.held_open_s
                self.record(
                    type_,
                    order_id=self.machine.collect_order
                    if type_ in ("door_opened", "door_closed")
                    else None,
                    detail=detail,
                )

    def _collect(self) -> None:
        order_id, self.machine.collect_order = self.machine.collect_order, None
        if order_id is None:
            return
        snap = self.snap()
        try:
            with self.store.atomic():
                order = self.store.get_order(order_id)
                if order is not None and order.status != "collected":
                    self.store.put_order(
                        OrderRow(
                            **{
                                **order.__dict__,
                                "status": "collected",
                                "collected_at": snap.now,
                                "collected_locally": True,
                                "updated_at": snap.now,
                            }
                        )
                    )
                self.audit.record("order_collected", snap, order_id=order_id)
        except StoreError as exc:
            self._store_failed(exc)
            self.backlog.append(_Pending("order_collected", snap, order_id, {}))

    def _run_commands(self) -> None:
        try:
            pending = self.store.pending_door_commands()
        except StoreError as exc:
            self._store_failed(exc)
            return
        for cmd in pending:
            snap = self.snap()
            if cmd["cmd"] != "unlock":
                continue
            if cmd["expires_at"] is not None and snap.now >= cmd["expires_at"]:
                self.store.finish_command(
                    cmd["cmd_id"], "failed", "expired before the door could act on it"
                )
                continue
            ok = self._unlock("command", cmd_id=cmd["cmd_id"])
            error = "" if ok else "the door is already open or the store is not writable"
            self.store.finish_command(cmd["cmd_id"], "done" if ok else "failed", error)

    # ----- periodic ---------------------------------------------------------

    def _check_clock(self) -> None:
        assert self.synced is not None
        corrected = self.tclock.set_synced(self.synced())
        try:
            if corrected:
                self.store.save_doc_floor(0.0)  # NTP corrected a floor from documents
            self.tclock.raise_floor(self.store.clock_floor())
            self.tclock.adopt_doc_floor(self.store.doc_floor())
            signed = self.store.signed_time()
        except StoreError:
            signed = 0.0
        if signed:
            self.tclock.observe_signed(signed)
        snap = self.snap()
        if snap.trusted != self.clock_trusted:
            self.clock_trusted = snap.trusted
            self.record(
                "clock_trusted" if snap.trusted else "clock_untrusted",
                detail={"wall": snap.wall, "floor": snap.floor},
                snap=snap,
            )

    def _save_floor(self) -> None:
        try:
            self.store.save_clock_floor(self.tclock.evidence())
        except StoreError as exc:
            self._store_failed(exc)

    def _purge(self) -> None:
        try:
            counts = self.store.purge(
                self.snap().now,
                order_retention_s=self.cfg.store.order_retention_days * 86400,
                event_retention_s=self.cfg.store.event_retention_days * 86400,
            )
        except StoreError as exc:
            self._store_failed(exc)
            return
        if any(counts.values()):
            log.info(
                "retention: forgot %(orders)d orders, %(events)d events, %(logs)d log records",
                counts,
            )

    def _local(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, self.tz) if self.tz else datetime.fromtimestamp(t)

    def _update_mode(self) -> None:
        sched = self.cfg.schedule
        day = False
        if sched.day_mode != "off":
            now = self._local(self.snap().now).time()
            start, end = _hhmm(sched.day_start), _hhmm(sched.day_end)
            start = start or dtime(0, 0)
            if end is None:
                day = now >= start
            elif start <= end:
                day = start <= now < end
            else:  # spans midnight
                day = now >= start or now < end
        if day == self.day:
            return
        self.day = day
        mono = self.clock.monotonic()
        if sched.day_mode == "unlocked":
            actions = self.machine.handle("day_start" if day else "day_end", mono)
            if actions is not None:
                self._act(actions)
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
            alarms=tuple(sorted(self.alarms)),
        )
        text = json.dumps(status.as_dict(), sort_keys=True)
        if text == self._last_door_status or not self.store_ok:
            return
        try:
            self.store.set_door_status(status)
            self._last_door_status = text
        except StoreError as exc:
            self._store_failed(exc)

    # ----- screens ------------------------------------------------------------

    def _show(self, screen: Screen, seconds: float) -> None:
        self.overlay = screen
        self.overlay_until = self.clock.monotonic() + seconds

    def screen(self) -> Screen:
        """The screen for this instant, from the state (pure given the state)."""
        mono = self.clock.monotonic()
        common: dict[str, Any] = {"lang": self.lang, "status": self.status}
        if not self.store_ok:
            return Screen(kind="out_of_service", contact=self.cfg.site.contact, **common)
        if self.machine.state == HELD:
            since = self.machine.open_since or mono
            return Screen(kind="close_door", seconds_left=int(mono - since), **common)
        if self.overlay is not None and mono < self.overlay_until:
            left = max(0, int(self.overlay_until - mono + 0.999))
            ov = self.overlay
            if ov.kind == "refused" and ov.reason == "throttled":
                left = ov.seconds_left
            elif ov.kind == "refused":
                left = 0
            return Screen(
                **{**ov.__dict__, **common, "seconds_left": left, "contact": self.cfg.site.contact}
            )
        if self.entry.digits:
            return Screen(
                kind="typing",
                typed=len(self.entry.digits),
                expected=self.engine.valid_lengths()[0],
                **common,
            )
        if self.day and self.cfg.schedule.day_mode != "off":
            return Screen(
                kind="day_open",
                day_mode=self.cfg.schedule.day_mode,
                site_name=self.cfg.site.name,
                contact=self.cfg.site.contact,
                **common,
            )
        return Screen(
            kind="idle",
            site_name=self.cfg.site.name,
            contact=self.cfg.site.contact,
            clock_text=self._local(self.snap().now).strftime("%H:%M"),
            day_mode=self.cfg.schedule.day_mode,
            **common,
        )

    def _render(self) -> None:
        screen = self.screen()
        if screen == self.last_screen:
            return
        self.last_screen = screen
        if self.display is not None:
            self.display.show(screen)
        for sink in self.screen_sinks:
            sink(screen)


class _Replayed(Exception):
    pass


def _version() -> str:
    from kiosk import __version__

    return __version__
