"""Keys from a stream, a pipe or a terminal, and what they mean to the simulator."""

from __future__ import annotations

import io
import logging
import os
import queue
import termios
from collections.abc import Iterator

import pytest

from hardware.board import SimBoard
from hardware.keyboard import TerminalKeys, keyboard_handler, keyboard_keymap
from kiosk.clock import SystemClock
from kiosk.config import HardwareConfig, LockConfig
from kiosk.inputs import (
    DoorChanged,
    ExitPressed,
    InputEvent,
    KeyPressed,
    LanguageToggled,
    Quit,
)


class Collector:
    def __init__(self) -> None:
        self.q: queue.Queue[str] = queue.Queue()

    def __call__(self, ch: str) -> None:
        self.q.put(ch)

    def take(self, n: int, timeout: float = 5.0) -> list[str]:
        return [self.q.get(timeout=timeout) for _ in range(n)]

    def rest(self) -> list[str]:
        out = []
        while not self.q.empty():
            out.append(self.q.get_nowait())
        return out


def test_text_stream_skips_whitespace_and_keeps_order() -> None:
    got = Collector()
    keys = TerminalKeys(io.StringIO("04 2\n1\t#*\r\n  7"), got)
    assert keys.wait(5.0), "EOF must end the reader"
    assert not keys.is_tty
    assert got.rest() == list("0421#*7")
    keys.close()


def test_binary_stream() -> None:
    got = Collector()
    keys = TerminalKeys(io.BytesIO(b"9 8\n#"), got)
    assert keys.wait(5.0)
    assert got.rest() == ["9", "8", "#"]


def test_pipe_delivers_as_typed_and_ends_at_eof() -> None:
    r, w = os.pipe()
    got = Collector()
    with os.fdopen(r, "rb", buffering=0) as stream:
        keys = TerminalKeys(stream, got)
        os.write(w, b"1 2\n")
        assert got.take(2) == ["1", "2"]
        assert not keys.finished  # no EOF yet: still reading
        os.write(w, b"#")
        assert got.take(1) == ["#"]
        os.close(w)
        assert keys.wait(5.0)
        keys.close()


def test_close_stops_a_reader_blocked_on_a_pipe() -> None:
    r, w = os.pipe()
    try:
        with os.fdopen(r, "rb", buffering=0) as stream:
            keys = TerminalKeys(stream, Collector())
            assert not keys.finished
            keys.close()
            assert keys.finished
    finally:
        os.close(w)


@pytest.fixture
def pty() -> Iterator[tuple[int, io.FileIO]]:
    master, slave = os.openpty()
    stream = io.FileIO(slave, "rb", closefd=True)
    try:
        yield master, stream
    finally:
        stream.close()
        os.close(master)


def test_terminal_keys_in_cbreak_mode(pty: tuple[int, io.FileIO]) -> None:
    master, stream = pty
    before = termios.tcgetattr(stream.fileno())
    got = Collector()
    keys = TerminalKeys(stream, got)
    assert keys.is_tty
    lflag = termios.tcgetattr(stream.fileno())[3]
    assert not lflag & termios.ICANON and not lflag & termios.ECHO
    # 1, Enter, Backspace, arrow up (dropped), 2, Delete, space (skipped), 3, Enter
    os.write(master, b"1\r\x7f\x1b[A2\x1b[3~ 3\n")
    assert got.take(6) == ["1", "#", "*", "2", "*", "3"]
    assert got.take(1) == ["#"]
    os.write(master, b"\x1b")  # a lone Escape clears too
    assert got.take(1) == ["*"]
    keys.close()
    assert termios.tcgetattr(stream.fileno()) == before, "terminal mode not restored"


def test_keymap_without_a_board() -> None:
    events: list[InputEvent] = []
    handle = keyboard_handler(events.append)
    for ch in "5#*ocxlqzA?O":
        handle(ch)
    assert events == [
        KeyPressed("5"),
        KeyPressed("#"),
        KeyPressed("*"),
        DoorChanged(True),
        DoorChanged(False),
        ExitPressed(),
        LanguageToggled(),
        Quit("quit key"),
        DoorChanged(True),  # 'O' as 'o'
    ]
    assert keyboard_keymap["q"] == "quit"
    assert all(keyboard_keymap[d] == "key" for d in "0123456789*#")


def test_keymap_drives_the_simulated_pins() -> None:
    board = SimBoard(HardwareConfig(board="sim"), LockConfig(), clock=SystemClock(), threads=False)
    try:
        events: list[InputEvent] = []
        board.start(events.append)
        handle = keyboard_handler(events.append, board)
        handle("o")
        assert board.pin(board.hw.door_pin).state is True  # the pin moved...
        handle("c")
        handle("x")
        handle("4")  # through the mock matrix and the real scan
        # ...and the board's own callbacks produced the events.
        assert events == [DoorChanged(True), DoorChanged(False), ExitPressed(), KeyPressed("4")]
    finally:
        board.close()


def test_typed_digits_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[InputEvent] = []
    keys = TerminalKeys(io.StringIO("7319#zz"), keyboard_handler(events.append))
    assert keys.wait(5.0)
    assert len(events) == 5
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert not any(d in text for d in "7319")
