"""docs/owner.md stays true: every ``console`` example is run and its output compared.

The guide is read as written: each ```` ```console ```` block's ``$`` lines
are run in order by bash, as a new owner would type them (``~`` is a fresh
home directory, ``kioskctl`` is this checkout's), against a real Mosquitto
and the kiosk model (tests/ctl/model.py) set up with the guide's story:
the site ``wuhan-caidian-01``, its retained status, its recent trail.
The guide's ``kioskctl.toml`` block is the config file used. Outputs are
compared after replacing what differs on every run (keys, ids, times,
codes) with placeholders (:func:`normalize`).
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from protocol import topics
from protocol.keys import generate_private_key, key_id, sign_document
from protocol.otp import new_secret
from protocol.status import log_record
from tests.support.broker import Broker
from tests.support.ctl import ROOT, FakeKiosk, publish_retained
from tests.support.ctl_model import KioskModel

pytestmark = [pytest.mark.broker, pytest.mark.slow]

DOC = ROOT / "docs" / "owner.md"
SITE = "wuhan-caidian-01"
DOC_HOME = "/home/li"

PLACEHOLDERS = [
    (re.compile(r"\b(?:unlock|cancel|logs|sync|time|orders)-\d{10}-[0-9a-f]{12}\b"), "<CMD_ID>"),
    (re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"), "<PUBLIC_KEY>"),
    (re.compile(r"\b[0-9a-f]{16}\b"), "<KEY_ID>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\b"), "<DATE_TIME>"),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}\b"), "<TIME>"),
    (re.compile(r"\b\d{2}:\d{2}\b"), "<HH:MM>"),
    (re.compile(r"code: \d+#"), "code: <CODE>#"),
    (re.compile(r"one-time value \d+, \d+ s left"), "one-time value <OTP>, <N> s left"),
    (re.compile(r"waiting up to \d+ s for the answer to"), "waiting up to <N> s for the answer to"),
    (re.compile(r"\bS-(\d+)-[0-9a-f]{4}\b"), r"S-\1-<HEX>"),  # a staff id's random part
    (re.compile(r"secret=[A-Z2-7]+&"), "secret=<SECRET>&"),
]
CMD_ID = PLACEHOLDERS[0][0]


def normalize(text: str, home: str = DOC_HOME) -> list[str]:
    text = text.replace(home, DOC_HOME)
    for pattern, placeholder in PLACEHOLDERS:
        text = pattern.sub(placeholder, text)
    return [line.rstrip() for line in text.rstrip("\n").splitlines()]


@dataclass
class Example:
    command: str  # as typed, continuation lines joined
    expected: str
    line: int  # in owner.md


def examples(text: str) -> Iterator[Example]:
    """Every ``$`` command of every console block, with the lines shown after it."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```console":
            i += 1
            continue
        i += 1
        current: Example | None = None
        while lines[i].strip() != "```":
            line = lines[i]
            if line.startswith("$ "):
                if current is not None:
                    yield current
                cmd, start = line[2:], i + 1
                while cmd.endswith("\\"):
                    i += 1
                    cmd = cmd[:-1] + " " + lines[i].strip()
                current = Example(cmd.strip(), "", start)
            elif current is not None:
                current.expected += line + "\n"
            i += 1
        if current is not None:
            yield current
        i += 1


def doc_config(text: str) -> str:
    """The guide's kioskctl.toml block."""
    m = re.search(r"```toml\n(# ~/.config/kioskctl.toml.*?)```", text, re.S)
    assert m, "owner.md has no ~/.config/kioskctl.toml block"
    return m.group(1)


Watch = tuple[str, Callable[["World"], None]]


@dataclass
class World:
    """The broker, the kiosk and the owner's machine the guide's story happens in."""

    tmp: Path
    broker: Broker
    home: Path = field(init=False)
    work: Path = field(init=False)
    bin: Path = field(init=False)
    model: KioskModel | None = None
    kiosk: FakeKiosk | None = None
    ids: dict[str, str] = field(default_factory=dict)  # id in the guide -> id of this run

    def __post_init__(self) -> None:
        self.home, self.work, self.bin = (self.tmp / n for n in ("home", "work", "bin"))
        for d in (self.home, self.work, self.bin):
            d.mkdir()
        wrapper = self.bin / "kioskctl"
        wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m hub.ctl.cli "$@"\n')
        wrapper.chmod(0o755)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSKCTL_")}
        env.update(
            HOME=str(self.home),
            PATH=f"{self.bin}:/usr/bin:/bin",
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
            TZ="Asia/Shanghai",
            COLUMNS="100",
        )
        env.pop("XDG_STATE_HOME", None)
        return env

    def run(self, command: str, answer: str | None, when: Watch | None = None) -> str:
        """stdout and stderr as one stream, in the order written (and the prompt's answer).

        ``when``: (text, action): run ``action`` once a line holding ``text`` is printed.
        """
        if answer is None:
            proc = subprocess.Popen(
                ["bash", "-c", command],
                cwd=self.work,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert proc.stdout is not None
            out = []
            try:
                for line in proc.stdout:
                    out.append(line)
                    if when is not None and when[0] in line:
                        when[1](self)
                        when = None
                proc.wait(timeout=120)
            finally:
                if proc.poll() is None:
                    proc.kill()
            return "".join(out)
        master, slave = pty.openpty()  # a terminal for the confirmation question
        try:
            child = subprocess.Popen(
                ["bash", "-c", command],
                cwd=self.work,
                env=self.env(),
                stdin=slave,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            os.write(master, answer.encode() + b"\n")
            out, _ = child.communicate(timeout=120)
        finally:
            os.close(master)
            os.close(slave)
        return out.replace("[y/N] ", f"[y/N] {answer}\n", 1)

    def after_keygen(self) -> None:
        """The owner's key exists: write the guide's config, start the kiosk with its story."""
        pub = (self.home / ".config/kioskctl/owner.key.pub").read_text().strip()
        kid = key_id(pub)
        text = doc_config(DOC.read_text(encoding="utf-8"))
        text = re.sub(r'broker = ".*"', f'broker = "{self.broker.url}"', text)
        text = re.sub(r"\b[0-9a-f]{16}\b", kid, text)
        (self.home / ".config/kioskctl.toml").write_text(text)
        self.model = story(SITE, pub)
        self.kiosk = FakeKiosk(self.broker.port, SITE, self.model, persistent=True)
        # yesterday's order, published by the hub, collected at the kiosk since
        publish_retained(self.broker.port, topics.order(SITE, STALE["order_id"]), STALE_SIGNED)

    def close(self) -> None:
        if self.kiosk is not None:
            self.kiosk.close()


def story(site: str, owner_pub: str) -> KioskModel:
    """The night the guide tells about: the last ten events of the trail, and a log record."""
    t0 = time.time() - 1800
    m = KioskModel(site, owner_keys=[owner_pub], first_seq=1833)
    m.logs = [
        log_record(site, 77, t0 + 341, "WARNING", "kiosk.door", "door open for 7 s"),
    ]
    detail = {
        "cmd_id": "unlock-1778640000-4be0c2d91a7f",
        "cmd": "unlock",
        "ok": True,
        "error": "",
        "key_id": key_id(owner_pub),
        "reason": "courier with a delivery",
    }
    order = "HM20260512-0042"
    for dt, type_, d, oid in [
        (0, "command", detail, None),
        (1, "door_unlocked", {"by": "command", "cmd_id": detail["cmd_id"]}, None),
        (4, "door_opened", {}, None),
        (31, "door_closed", {}, None),
        (310, "code_rejected", {"reason": "wrong_code"}, None),
        (331, "code_accepted", {"kind": "totp", "reentry": False}, order),
        (331, "door_unlocked", {"by": "code"}, order),
        (333, "door_opened", {}, order),
        (348, "door_closed", {}, order),
        (348, "order_collected", {}, order),
    ]:
        m.record(type_, d, oid, ts=t0 + dt)
    m.orders[order] = {
        "status": "collected",
        "version": 1,
        "pickup_no": "042",
        "collected_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + 348)),
    }
    return m


STALE = {
    "v": 1,
    "site": SITE,
    "order_id": "HM20260512-0042",
    "version": 1,
    "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400)),
    "status": "ready",
    "pickup_no": "042",
    "slot": "A2",
    "otp": {"secret": new_secret(), "digits": 6, "period": 30},
}
STALE_SIGNED = sign_document(STALE, generate_private_key())


def status(**over: Any) -> dict[str, Any]:
    doc = {
        "online": True,
        "site": SITE,
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "version": "0.1.0",
        "door": "closed",
        "lock": "locked",
        "mode": "night",
        "orders_ready": 12,
        "outbox": 0,
        "clock": "synced",
        "last_seq": 1842,
    }
    doc.update(over)
    return doc


# Before a command (matched by a substring of it): what happens in the world meanwhile.
def _offline(w: World) -> None:
    assert w.kiosk is not None
    w.kiosk.stop()  # the sync agent is stopped; the broker keeps its commands


def _back(w: World) -> None:
    assert w.kiosk is not None
    w.kiosk.start()  # the agent comes back and gets the queued commands


def _door_slow(w: World) -> None:
    assert w.model is not None
    w.model.door = "hold"  # the door daemon has not taken it yet


def _door_back(w: World) -> None:
    assert w.model is not None
    w.model.door = "auto"


HOOKS: list[tuple[str, Callable[[World], None]]] = [
    ('--reason "customer locked out"', _offline),
    ('--reason "parcel for the neighbour"', _door_slow),
    ("kioskctl time", _door_back),
]
#: while a command runs: once it prints the text, the world moves on
WHILE: dict[str, Watch] = {
    "kioskctl wait ": ("waiting up to", _back),  # the agent comes back while wait listens
}


def test_every_console_example_in_owner_md_is_real(tmp_path: Path, broker: Broker) -> None:
    text = DOC.read_text(encoding="utf-8")
    found = list(examples(text))
    assert len(found) >= 20, "owner.md lost its examples"
    publish_retained(broker.port, topics.status(SITE), status())
    publish_retained(
        broker.port,
        topics.status("wuhan-caidian-02"),
        {
            "online": False,
            "site": "wuhan-caidian-02",
            "version": "0.1.0",
            "reason": "connection lost",
        },
    )
    world = World(tmp_path, broker)
    try:
        fired: set[str] = set()
        for ex in found:
            command = CMD_ID.sub(lambda m: world.ids.get(m.group(0), m.group(0)), ex.command)
            for needle, hook in HOOKS:
                if needle in command and needle not in fired:
                    fired.add(needle)
                    hook(world)
            answer = "y" if "[y/N] y" in ex.expected else None
            when = next((w for needle, w in WHILE.items() if needle in command), None)
            actual = world.run(command, answer, when)
            if world.model is None and "keygen --out ~/.config/kioskctl/owner.key" in command:
                world.after_keygen()
            want, got = normalize(ex.expected), normalize(actual, str(world.home))
            assert got == want, (
                f"owner.md line {ex.line}: `{ex.command}` printed:\n{actual}\n"
                f"normalized:\n" + "\n".join(got)
            )
            # the ids this run made stand for the ones the guide shows, in order
            for shown, real in zip(
                CMD_ID.findall(ex.expected), CMD_ID.findall(actual), strict=True
            ):
                world.ids.setdefault(shown, real)
    finally:
        world.close()


def test_the_normalizer_keeps_what_matters() -> None:
    a = normalize("sent unlock unlock-1778642529-9f0c2a4d1e7b to s; valid until 01:12:40 (60 s)")
    b = normalize("sent unlock unlock-1778642000-000000000000 to s; valid until 23:59:59 (60 s)")
    assert a == b
    assert normalize("valid until 01:12:40 (60 s)") != normalize("valid until 01:12:40 (61 s)")
    assert normalize("door unlocked") != normalize("door locked")
    assert json.dumps(normalize(f"{DOC_HOME}/x")) == json.dumps(normalize("/tmp/h/x", "/tmp/h"))
