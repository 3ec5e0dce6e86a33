"""The audit chain check of ``kioskctl logs`` and ``kioskctl verify-events``.

The check is the protocol's (:func:`protocol.events.link`): seq
continuity, ``prev_hash`` equal to the previous event's ``hash``, and each
``hash`` recomputed. Unlike ``verify_chain`` it does not stop at the first
fault: it reports every gap, reorder, duplicate-with-different-contents or
changed event loudly on stderr (naming the seq) and keeps going, because an
owner watching at night needs to see what comes next too. Duplicates with
the same contents are normal (QoS 1 redelivery, resends after a reconnect)
and are dropped silently by seq.

Events are hash-chained, not signed: the check proves that nothing changed
between events kioskctl saw, not that the kiosk wrote them (a broker that
forges a whole consistent chain from seq 1 is not detected here; the
hub's archive, compared over time, is; docs/threat-model.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hub.ctl.config import SubParsers
from hub.ctl.mqtt import CtlError
from hub.ctl.words import clean
from protocol.canonical import decode_json_object
from protocol.errors import ValidationError
from protocol.events import Tail, Verdict, check_event, hash_ok, link

EXIT_CHAIN = 3
#: seqs remembered for de-duplication behind the newest one (a resend after
#: a reconnect starts at the first unacknowledged event, never this far back)
DEDUP_WINDOW = 10_000
MAX_FILE_LINE = 1024 * 1024


class ChainWatch:
    """Feeds events one at a time; collects every problem as one sentence."""

    def __init__(self, site: str | None, since: int | None) -> None:
        self.site = site
        self.first_seq = None if since is None else since + 1
        self.last_seq: int | None = None
        self.last_hash: str | None = None
        self.seen: dict[int, str] = {}  # seq -> hash, the last DEDUP_WINDOW seqs
        self.count = 0  # distinct events taken
        self.low: int | None = None
        self.problems: list[str] = []

    def _problem(self, text: str) -> None:
        self.problems.append(text)
        if len(self.problems) > 1000:  # a hostile stream: stop printing, keep counting
            return
        bar = "!" * 72
        where = f" at site {self.site}" if self.site else ""
        print(f"{bar}\n!!! AUDIT CHAIN WARNING{where}: {text}\n{bar}", file=sys.stderr, flush=True)

    def _remember(self, seq: int, stated: str) -> None:
        self.seen[seq] = stated
        self.count += 1
        self.low = seq if self.low is None else min(self.low, seq)
        if len(self.seen) > 2 * DEDUP_WINDOW:
            top = max(self.seen)
            self.seen = {s: h for s, h in self.seen.items() if s > top - DEDUP_WINDOW}

    def feed(self, ev: Mapping[str, Any]) -> bool:
        """Check one event; return True if it is new and well formed (to be shown)."""
        try:
            check_event(dict(ev), self.site)
        except ValidationError as err:
            after = f" after seq {self.last_seq}" if self.last_seq is not None else ""
            self._problem(f"a malformed event{after}: {clean(err)}")
            return False
        seq = int(ev["seq"])
        if self.site is None:
            self.site = str(ev["site"])
        stated = str(ev["hash"])
        if seq in self.seen:
            if self.seen[seq] != stated:
                self._problem(f"seq {seq}: received twice with different contents")
            return False
        self._remember(seq, stated)
        if not hash_ok(ev):
            self._problem(f"seq {seq}: hash does not match its contents (the event was changed)")
        if self.last_seq is None:
            if self.first_seq is not None and seq > self.first_seq:
                self._problem(
                    f"seq {self.first_seq} to {seq - 1} missing: the first event "
                    f"received is seq {seq} (gap before seq {seq})"
                )
            elif self.first_seq is not None and seq < self.first_seq:
                self._problem(f"seq {seq}: older than asked for (after {self.first_seq - 1})")
            if seq == 1 and ev.get("prev_hash") != Tail().hash:
                self._problem("seq 1: prev_hash is not the zero hash of a chain's start")
        elif seq > self.last_seq:
            verdict = link(Tail(self.last_seq, str(self.last_hash)), ev)
            if verdict.verdict is Verdict.EARLY:
                missing = (
                    f"seq {self.last_seq + 1}"
                    if seq == self.last_seq + 2
                    else f"seq {self.last_seq + 1} to {seq - 1}"
                )
                self._problem(f"{missing} missing (gap before seq {seq})")
            elif verdict.verdict is Verdict.BREAK and ev.get("prev_hash") != self.last_hash:
                self._problem(
                    f"seq {seq}: prev_hash does not match seq {self.last_seq}'s hash "
                    f"(an event was changed or left out)"
                )
        else:
            self._problem(f"seq {seq}: arrived after seq {self.last_seq} (out of order)")
            return True
        self.last_seq = seq
        self.last_hash = stated
        return True


def read_events(path: str) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line number, event) from JSON lines; log records are skipped."""
    try:
        fh = sys.stdin if path == "-" else Path(path).open(encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise CtlError(f"cannot read {path}: {exc.strerror or exc}") from None
    with fh:
        try:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    item = decode_json_object(line, max_bytes=MAX_FILE_LINE)
                except ValidationError as err:
                    raise CtlError(f"{path} line {number}: {err}") from None
                if "hash" in item:
                    yield number, item  # log records in a `logs --json` dump are skipped
        except UnicodeDecodeError:
            raise CtlError(f"{path} is not UTF-8 text") from None


def cmd_verify_events(args: argparse.Namespace) -> int:
    chain = ChainWatch(None, args.since)
    lines = 0
    for _number, ev in read_events(args.file):
        chain.feed(ev)
        lines += 1
    if chain.problems:
        print(
            f"kioskctl: {len(chain.problems)} audit chain problem(s) in {lines} events",
            file=sys.stderr,
        )
        return EXIT_CHAIN
    span = f"seq {chain.low} to {chain.last_seq}" if chain.count else "no events"
    print(f"{chain.count} events ({span}): chain intact")
    return 0


def add_parsers(sub: SubParsers, _common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("verify-events", help="check a JSON-lines dump of events (hash chain)")
    p.add_argument("file", metavar="FILE", help="JSON lines ('-' = stdin)")
    p.add_argument(
        "--since",
        type=int,
        metavar="SEQ",
        help="the dump should start right after SEQ (0: at the chain's start)",
    )
    p.set_defaults(func="verify_events")
