"""The owner's console: accounts, sessions, the timeline, remote unlock, live updates.

:func:`build` makes the console's parts over the hub's archive file; the
service passes them to the web app in :class:`hub.web.AppContext`
(``console``), which then serves the console's pages under ``/console``.
The pages themselves are in :mod:`hub.web` (``console_*`` modules).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hub.config import Config
from hub.console.accounts import HASH_CONCURRENCY, Accounts
from hub.console.commands import BrowserKeys, CommandBook
from hub.console.guard import LoginLimiter, Signer, load_secret, secret_path
from hub.console.live import Live
from hub.console.timeline import Timeline
from hub.db import Database

Publish = Callable[[str, bytes], Awaitable[bool]]


async def _not_connected(_topic: str, _payload: bytes) -> bool:
    return False


@dataclass
class Console:
    accounts: Accounts
    keys: BrowserKeys
    commands: CommandBook
    timeline: Timeline
    live: Live
    signer: Signer
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    #: publish a command (QoS 1, not retained); False when the broker did not take it
    publish: Publish = _not_connected
    #: CSV imports waiting for "store them" after their preview (id -> rows), bounded
    previews: dict[str, Any] = field(default_factory=dict)
    #: new staff codes waiting for their one showing (token -> code), bounded
    once: dict[str, Any] = field(default_factory=dict)
    _slots: asyncio.Semaphore | None = None

    @property
    def hash_slots(self) -> asyncio.Semaphore:
        """Password checks at once (each takes 32 MiB for 0.1 s)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(HASH_CONCURRENCY)
        return self._slots


def build(cfg: Config, db: Database, publish: Publish | None = None) -> Console:
    """The console over ``db``; raises KeyFileError for an unusable secret or owner key."""
    owner_key = None
    if cfg.console.hub_signs:
        from hub.keys import load_key

        owner_key = load_key(cfg.console.owner_key, "console.owner_key")
    keys = BrowserKeys(db)
    return Console(
        accounts=Accounts(db),
        keys=keys,
        commands=CommandBook(db, keys, owner_key),
        timeline=Timeline(db),
        live=Live(),
        signer=Signer(load_secret(secret_path(cfg))),
        publish=publish or _not_connected,
    )
