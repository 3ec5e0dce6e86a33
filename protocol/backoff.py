"""Reconnecting politely: capped exponential backoff with full jitter.

The kiosk's sync agent and the hub both reconnect to the broker (and the
hub retries gap fetches) like aiomqtt's ``_reconnect_loop`` advises: wait a
delay drawn uniformly from ``[0, min(cap, base * 2^attempt)]``, reset after
a success. The random source is passed in, so tests are deterministic.
"""

from __future__ import annotations

import random


class Backoff:
    """Capped exponential backoff with full jitter: uniform(0, min(cap, base*2^n))."""

    def __init__(self, rng: random.Random, *, base: float = 1.0, cap: float = 60.0) -> None:
        self.rng = rng
        self.base = base
        self.cap = cap
        self.attempts = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        return self.rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        self.attempts = 0
