"""Assembling and running the daemons: one ordered start, one reverse stop.

Every way of running the door (``kiosk door``, ``kiosk run``, the
simulator) goes through :class:`Shell` and :func:`build_door`: components
start in order (store, log handler, board, display, daemon, keys) and stop
in reverse in ``finally``, each stop guarded so one failure is logged with
its name and the rest still stop (docs/design.md, "Composition root").
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any

from kiosk import logutil
from kiosk.clock import SystemClock
from kiosk.config import Config
from kiosk.daemon import DoorDaemon
from kiosk.errors import StoreError
from kiosk.i18n import render_text
from kiosk.notify import Notifier
from kiosk.screens import Screen
from kiosk.store import Store

if TYPE_CHECKING:  # the hardware package is imported only when a door is built
    from hardware.slotlight import SlotLight
    from hardware.voice import Voice

log = logging.getLogger(__name__)


class Shell:
    """Components started in order, stopped in reverse (each stop guarded)."""

    def __init__(self) -> None:
        self._stack = ExitStack()

    def on_stop(self, name: str, close: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                close()
            except Exception:
                log.exception("stopping %s failed", name)

        self._stack.callback(guarded)

    def __enter__(self) -> Shell:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()


def install_stop(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` (main thread only)."""

    def handler(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def open_store(cfg: Config) -> Store:
    return Store(cfg.store.path, busy_timeout_ms=cfg.store.busy_timeout_ms)


def screen_printer(printer: Callable[[str], None]) -> Callable[[Screen], None]:
    """A screen sink for a terminal: the screen as text, skipping countdown ticks."""
    last: list[Screen] = []

    def print_screen(screen: Screen) -> None:
        calm = dataclasses.replace(screen, seconds_left=0)
        if not last or calm != last[0]:
            last[:] = [calm]
            printer(render_text(screen))

    return print_screen


def build_door(
    cfg: Config,
    shell: Shell,
    *,
    keys_from_stdin: bool,
    printer: Callable[[str], None] | None = None,
    with_display: bool | None = None,
) -> DoorDaemon:
    """Assemble the door daemon from the config inside ``shell``.

    With the simulated board, screens, relay, buzzer and LED are printed to
    ``printer`` (stdout unless given), so ``kiosk door`` shows what happens.
    """
    from hardware.board import open_board

    clock = SystemClock()
    store_error: StoreError | None = None
    try:
        store = open_store(cfg)
    except StoreError as exc:
        # The exit button and the out-of-service screen must work even when the
        # card is read-only or the file is broken: run on a stand-in and retry.
        store, store_error = Store(":memory:"), exc
    handler = logutil.attach_store(store, clock.wall, cfg.log.level)
    shell.on_stop("log handler", lambda: logging.getLogger().removeHandler(handler))
    board = open_board(cfg.hardware, cfg.lock, clock=clock)
    shell.on_stop("board", board.close)
    display = None
    if cfg.display.enabled if with_display is None else with_display:
        from hardware.display import open_display

        display = open_display(
            cfg.display,
            site_name=cfg.site.name,
            contact=cfg.site.contact,
            english_without_cjk=True,
        )
        shell.on_stop("display", display.close)
    voice, slot_light = _voice_and_light(cfg, shell, clock)
    daemon = DoorDaemon(
        cfg,
        store,
        board,
        clock,
        display=display,
        notifier=Notifier(),
        log_handler=handler,
        english_only=bool(getattr(display, "english_only", False)),
        voice=voice,
        slot_light=slot_light,
    )
    shell.on_stop("store", lambda: daemon.store.close())  # noqa: PLW0108 - swapped later
    if store_error is not None:
        daemon.start_without_store(store_error, lambda: open_store(cfg))
    sim = cfg.hardware.board == "sim"
    if printer is None and sim:
        printer = _stdout_printer
    if printer is not None:
        daemon.screen_sinks.append(screen_printer(printer))
        out = printer
        for part in (board, voice, slot_light):
            if part is not None and hasattr(part, "on_activity"):
                part.on_activity = lambda what: out(f"  [{what}]")
    if sim and keys_from_stdin:
        from hardware.board import SimBoard
        from hardware.keyboard import TerminalKeys, keyboard_handler

        assert isinstance(board, SimBoard)
        keys = TerminalKeys(sys.stdin, keyboard_handler(daemon.post, board))
        shell.on_stop("keys", keys.close)
    return daemon


def _voice_and_light(
    cfg: Config, shell: Shell, clock: SystemClock
) -> tuple[Voice | None, SlotLight | None]:
    """The optional voice and slot light; neither can keep the door from starting."""
    from zoneinfo import ZoneInfo

    from hardware.devices import HardwareError
    from hardware.slotlight import open_slot_light
    from hardware.voice import open_voice

    try:
        tz = ZoneInfo(cfg.site.timezone) if cfg.site.timezone else None
    except (KeyError, ValueError):
        tz = None
    voice = open_voice(cfg.voice, clock=clock, tz=tz)
    if voice is not None:
        shell.on_stop("voice", voice.close)
    try:
        slot_light = open_slot_light(cfg)
    except HardwareError as exc:
        log.error("slot light: %s; the door runs without it", exc)
        slot_light = None
    if slot_light is not None:
        shell.on_stop("slot light", slot_light.close)
    return voice, slot_light


def _stdout_printer(text: str) -> None:
    print(text, flush=True)


def run_door(cfg: Config) -> int:
    """``kiosk door``: the door daemon until SIGTERM."""
    stop = threading.Event()
    install_stop(stop)
    with Shell() as shell:
        daemon = build_door(cfg, shell, keys_from_stdin=True)
        return int(daemon.run(stop))


def run_sync(cfg: Config) -> int:
    """``kiosk sync``: the sync agent until SIGTERM."""
    from sync.agent import run

    return int(run(cfg))


def start_sync_thread(cfg: Config, stop: threading.Event, shell: Shell) -> None:
    """The sync agent in a thread of this process (``kiosk run``), when configured."""
    if cfg.mqtt is None:
        return
    from sync.agent import run

    thread = threading.Thread(
        target=run,
        args=(cfg,),
        kwargs={"stop": stop, "store_logs": False},
        name="sync",
        daemon=True,
    )
    thread.start()
    shell.on_stop("sync", lambda: thread.join(10))
    shell.on_stop("stop signal", stop.set)


def run_together(
    cfg: Config,
    *,
    printer: Callable[[str], None] | None = None,
    with_display: bool | None = None,
    before: Callable[[Shell, threading.Event], Any] | None = None,
) -> int:
    """``kiosk run``: the door, and the sync agent when configured, in one process."""
    stop = threading.Event()
    install_stop(stop)
    with Shell() as shell:
        if before is not None:
            before(shell, stop)
        daemon = build_door(
            cfg, shell, keys_from_stdin=True, printer=printer, with_display=with_display
        )
        start_sync_thread(cfg, stop, shell)
        return int(daemon.run(stop))
