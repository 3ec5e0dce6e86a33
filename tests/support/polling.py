"""Bounded polling and de-duplication shared by the tests that use real
processes and a real broker (where no injected clock can stand in)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    pred: Callable[[], Any],
    timeout: float = 20.0,
    what: str = "condition",
    *,
    interval: float = 0.02,
    tick: Callable[[], None] | None = None,
) -> Any:
    """Poll until ``pred()`` is truthy and return it; AssertionError after ``timeout``.

    ``tick`` runs between polls (e.g. to advance an injected clock).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        if tick is not None:
            tick()
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def dedup(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """First copy of each event_id, in arrival order (what a receiver keeps)."""
    seen: set[str] = set()
    out = []
    for ev in events:
        if ev["event_id"] not in seen:
            seen.add(ev["event_id"])
            out.append(ev)
    return out
