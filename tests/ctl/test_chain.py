"""The audit chain check of kioskctl logs and verify-events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hub.ctl.watch import ChainWatch
from protocol.events import verify_chain
from tests.support.ctl import make_chain, run_ctl

SITE = "shop-1"


def chain(n: int = 5) -> list[dict[str, Any]]:
    return make_chain(SITE, [("door_opened", None, {})] * n)


def feed(events: list[dict[str, Any]], since: int | None = 0) -> ChainWatch:
    watch = ChainWatch(SITE, since)
    for ev in events:
        watch.feed(ev)
    return watch


def test_intact_chain_has_no_problems_and_agrees_with_verify_chain() -> None:
    events = chain()
    assert verify_chain(events) == 5
    assert feed(events).problems == []


def test_duplicates_are_dropped_silently() -> None:
    events = chain()
    watch = ChainWatch(SITE, 0)
    shown = [watch.feed(ev) for ev in [*events[:3], events[1], *events[3:], events[4]]]
    assert shown == [True, True, True, False, True, True, False]
    assert watch.problems == []


def test_changed_event_is_named_by_seq() -> None:
    events = chain()
    events[2]["detail"] = {"sneaky": True}
    problems = feed(events).problems
    assert len(problems) == 1 and "seq 3" in problems[0] and "changed" in problems[0]


def test_gap_and_reorder_are_named() -> None:
    events = chain(6)
    gap = feed([*events[:2], *events[3:]]).problems
    assert len(gap) == 1 and "seq 3 missing" in gap[0] and "gap before seq 4" in gap[0]
    reorder = feed([events[0], events[2], events[1], *events[3:]]).problems
    assert any("seq 2" in p and "out of order" in p for p in reorder)


def test_missing_start_is_a_gap() -> None:
    problems = feed(chain()[2:], since=0).problems
    assert len(problems) == 1 and "seq 1 to 2 missing" in problems[0]
    assert feed(chain()[2:], since=2).problems == []


@pytest.mark.slow
def test_verify_events_command(tmp_path: Path) -> None:
    events = chain()
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(e) + "\n" for e in events))
    proc = run_ctl("verify-events", str(good))
    assert proc.returncode == 0, proc.stderr
    assert "5 events (seq 1 to 5): chain intact" in proc.stdout
    events[3]["type"] = "door_closed"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(e) + "\n" for e in events))
    proc = run_ctl("verify-events", str(bad))
    assert proc.returncode == 3
    assert "AUDIT CHAIN WARNING" in proc.stderr and "seq 4" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("line", ["not json", '{"n": ' + "9" * 5000 + "}", '{"x": "\\ud800"}'])
def test_verify_events_names_a_bad_line(tmp_path: Path, line: str) -> None:
    f = tmp_path / "dump.jsonl"
    f.write_text(json.dumps(chain(1)[0]) + "\n" + line + "\n")
    proc = run_ctl("verify-events", str(f))
    assert proc.returncode == 1
    assert f"{f} line 2:" in proc.stderr and "Traceback" not in proc.stderr
