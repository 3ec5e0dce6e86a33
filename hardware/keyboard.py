"""Keypad keys from a terminal, a pipe or a USB keypad (which types like a keyboard).

:class:`TerminalKeys` reads characters on a thread and hands each one to a
callback; :func:`keyboard_handler` turns those characters into the door's
input events, driving the simulated board's pins where it can so that the
real device code runs (the simulator).

On a terminal the stream is put in cbreak mode (keys arrive one at a time,
Ctrl-C still raises SIGINT) and restored on :meth:`TerminalKeys.close` and
at exit. Enter means '#', Backspace, Delete and Escape mean '*'; other escape
sequences (arrow keys, function keys) are dropped whole. On a pipe or file,
each character is one key and whitespace is skipped, as docs/protocol.md asks.
End of input ends the reader thread and nothing else.

Typed characters are never logged.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import io
import logging
import os
import select
import threading
from collections.abc import Callable, Mapping
from typing import IO, Any, Final, Protocol

from kiosk.inputs import (
    KEYS,
    DoorChanged,
    ExitPressed,
    InputEvent,
    KeyPressed,
    LanguageToggled,
    Quit,
)

log = logging.getLogger(__name__)

#: What each character means to the simulator.
keyboard_keymap: Final[Mapping[str, str]] = {
    **{k: "key" for k in sorted(KEYS)},
    "o": "door_open",
    "c": "door_close",
    "x": "exit",
    "l": "language",
    "q": "quit",
}

_ESC: Final = "\x1b"
_ENTER: Final = frozenset("\r\n")
_ERASE: Final = frozenset("\x7f\x08")
#: How long after ESC more bytes must arrive to count as an escape sequence.
_ESC_SEQUENCE_S: Final = 0.03
_DELETE_SEQUENCE: Final = "[3~"


class TerminalKeys:
    """Read keys from ``stream`` on a thread, calling ``on_char`` for each.

    ``stream`` may be text or binary, a terminal, a pipe, a file or an
    in-memory stream. ``on_char`` runs on the reader thread; it should only
    convert and enqueue (docs/design.md). An exception from it is logged (without
    the character) and reading goes on.
    """

    def __init__(self, stream: IO[str] | IO[bytes] | Any, on_char: Callable[[str], None]) -> None:
        self._stream = stream
        self._on_char = on_char
        self._stop = threading.Event()
        self._fd = _fileno(stream)
        self._tty = self._fd is not None and os.isatty(self._fd)
        self._saved_mode: list[Any] | None = None
        self._wake_r, self._wake_w = os.pipe() if self._fd is not None else (-1, -1)
        encoding = getattr(stream, "encoding", None) or "utf-8"
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._pending = ""
        if self._tty:
            self._enter_cbreak()
        self._thread = threading.Thread(target=self._run, name="terminal-keys", daemon=True)
        self._thread.start()

    @property
    def is_tty(self) -> bool:
        return self._tty

    @property
    def finished(self) -> bool:
        """True once the reader thread has ended (end of input or close)."""
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the reader to end; return whether it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- terminal mode -------------------------------------------------

    def _enter_cbreak(self) -> None:
        import termios
        import tty

        assert self._fd is not None
        self._saved_mode = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        atexit.register(self._restore_terminal)

    def _restore_terminal(self) -> None:
        if self._saved_mode is None or self._fd is None:
            return
        import termios

        try:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved_mode)
        except (termios.error, OSError):
            log.warning("could not restore the terminal mode")
        self._saved_mode = None
        atexit.unregister(self._restore_terminal)

    # -- reading -------------------------------------------------------

    def _read_chunk(self, timeout: float | None = None) -> str | None:
        """Decoded text from the stream; '' if nothing came in ``timeout``;
        None at end of input or when closed."""
        if self._fd is None:
            data = self._stream.read(1)
            if not data:
                return None
            if isinstance(data, bytes):
                return self._decoder.decode(data)
            return str(data)
        ready, _, _ = select.select([self._fd, self._wake_r], [], [], timeout)
        if self._stop.is_set():
            return None
        if not ready:
            return ""
        try:
            data = os.read(self._fd, 1024)
        except OSError:
            return None  # e.g. EIO when a pty's other side went away
        if not data:
            return None
        return self._decoder.decode(data)

    def _next_char(self, timeout: float | None = None) -> str | None:
        while not self._pending:
            chunk = self._read_chunk(timeout)
            if chunk is None or chunk == "":
                return chunk
            self._pending += chunk
        ch, self._pending = self._pending[0], self._pending[1:]
        return ch

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ch = self._next_char()
                if ch is None:
                    break
                key = self._translate_tty(ch) if self._tty else ch
                if key is None or key.isspace():
                    continue
                self._deliver(key)
        except Exception:
            log.exception("keyboard reader stopped")
        log.debug("keyboard input ended")

    def _translate_tty(self, ch: str) -> str | None:
        if ch in _ENTER:
            return "#"
        if ch in _ERASE:
            return "*"
        if ch == _ESC:
            seq = ""
            while True:
                nxt = self._next_char(_ESC_SEQUENCE_S)
                if not nxt:
                    break
                seq += nxt
                # CSI sequences end in a letter or '~'; SS3 ('O' + letter) too.
                if len(seq) > 1 and (nxt.isalpha() or nxt == "~"):
                    break
                if len(seq) > 16:
                    break
            if not seq or seq == _DELETE_SEQUENCE:
                return "*"
            return None
        if not ch.isprintable():
            return None
        return ch

    def _deliver(self, ch: str) -> None:
        try:
            self._on_char(ch)
        except Exception:
            log.exception("keyboard key handler failed")

    def close(self) -> None:
        """Stop reading and restore the terminal (idempotent)."""
        self._stop.set()
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._restore_terminal()
        if not self._thread.is_alive():
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._wake_r = self._wake_w = -1


def _fileno(stream: Any) -> int | None:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return fd if isinstance(fd, int) else None


class SimControls(Protocol):
    """What :func:`keyboard_handler` needs from a simulated board."""

    @property
    def has_matrix(self) -> bool: ...

    def press(self, key: str) -> None: ...

    def set_door(self, open: bool) -> None: ...

    def press_exit(self) -> None: ...


def keyboard_handler(
    post: Callable[[InputEvent], None], sim: SimControls | None = None
) -> Callable[[str], None]:
    """An ``on_char`` for :class:`TerminalKeys` following ``keyboard_keymap``.

    With a simulated board, keys go through its mock keypad matrix (when it
    has one), door and exit keys through its mock pins, so the board's own
    callbacks post the events; without one, events are posted directly.
    """

    def on_char(ch: str) -> None:
        action = keyboard_keymap.get(ch) or keyboard_keymap.get(ch.lower())
        if action is None or (action == "key" and ch not in KEYS):
            if ch.isdigit():
                log.debug("ignored a digit the keypad does not have")
            else:
                log.debug("ignored key %r (keys: digits, * # o c x l q)", ch)
            return
        if action == "key":
            if sim is not None and sim.has_matrix:
                sim.press(ch)
            else:
                post(KeyPressed(ch))
        elif action in ("door_open", "door_close"):
            is_open = action == "door_open"
            if sim is not None:
                sim.set_door(is_open)
            else:
                post(DoorChanged(is_open))
        elif action == "exit":
            if sim is not None:
                sim.press_exit()
            else:
                post(ExitPressed())
        elif action == "language":
            post(LanguageToggled())
        elif action == "quit":
            post(Quit("quit key"))

    return on_char
