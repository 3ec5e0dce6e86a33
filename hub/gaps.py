"""Gap filling: the hub fetches what a broker lost, with a signed ``logs`` command.

A gap is any seq the hub knows exists but does not hold: before held early
events, or up to the ``last_seq`` the kiosk's retained status reports
(:meth:`hub.chain.ChainState.missing`). After ``gaps.grace_s`` (ordinary
redelivery may still close it) the hub publishes
``{"cmd": "logs", "args": {"since_seq": <last verified seq>}}`` to
``pickup/v1/{site}/cmd/{cmd_id}``, signed with its **auditor** key, and
feeds the pages that come back on ``cmd_result/{cmd_id}`` into the archive
like live events. It retries with capped exponential backoff and full
jitter (``gaps.retry_max_s``) until the archive holds 1..N, re-asking when
a fetch got no answer within ``gaps.result_timeout_s``. A refused fetch
(the kiosk does not trust the auditor key, say) is logged with the kiosk's
reason and retried the same way; the ``gap_unfilled`` alert tells the owner.

Pure state with the time and random source passed in (docs/design.md); the
service calls it on the archive thread.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.chain import ChainState
from hub.config import GapsSection
from protocol import topics
from protocol.backoff import Backoff
from protocol.canonical import dumps
from protocol.commands import build_command, new_cmd_id

log = logging.getLogger(__name__)


@dataclass
class _Fetch:
    cmd_id: str
    since: int
    sent_at: float  # moved on by each page: the result timeout counts from the newest
    asked_at: float = 0.0  # when the command went out (never moved)
    top: int = 0  # the newest seq of the site's events in the pages so far
    pages: set[int] = field(default_factory=set)
    last_page: int | None = None


@dataclass
class _Site:
    backoff: Backoff
    fetch: _Fetch | None = None
    next_at: float = 0.0
    refusal: str = ""
    fetches: int = 0


@dataclass(frozen=True)
class Page:
    """What a ``logs`` result page brought (to be archived by the caller)."""

    site: str
    events: list[dict[str, Any]]
    logs: list[dict[str, Any]]
    last: bool
    #: a complete answer (pages 1..last all seen): the kiosk's newest seq
    #: when it answered, and when the hub asked. A held event received
    #: before the asking and newer than that is not the kiosk's.
    kiosk_top: int | None = None
    asked_at: float = 0.0


class GapFiller:
    def __init__(
        self, cfg: GapsSection, auditor_key: Ed25519PrivateKey, rng: random.Random | None = None
    ) -> None:
        self.cfg = cfg
        self.key = auditor_key
        self.rng = rng or random.Random()
        self._sites: dict[str, _Site] = {}
        self.stray_results = 0

    def _site(self, site: str) -> _Site:
        s = self._sites.get(site)
        if s is None:
            s = _Site(Backoff(self.rng, base=max(1.0, self.cfg.grace_s), cap=self.cfg.retry_max_s))
            self._sites[site] = s
        return s

    def state(self, site: str) -> dict[str, Any]:
        s = self._site(site)
        return {
            "fetching": s.fetch is not None,
            "fetches": s.fetches,
            "last_refusal": s.refusal or None,
        }

    def due(
        self, chain: ChainState, now: float, since_log_seq: int = 0
    ) -> tuple[str, bytes] | None:
        """The command to publish for this site now, if any; updates gap_since.

        Returns (topic, payload). The caller persists ``chain.gap_since``.
        ``since_log_seq``: the newest kiosk log record the hub holds (without
        it, every fetch would bring back every record the kiosk keeps).
        """
        s = self._site(chain.site)
        gap = chain.missing()
        if gap is None:
            chain.gap_since = None
            s.fetch = None
            s.backoff.reset()
            s.next_at = 0.0
            return None
        if chain.gap_since is None:
            chain.gap_since = now
        if now - chain.gap_since < self.cfg.grace_s:
            return None
        if s.fetch is not None:
            if now - s.fetch.sent_at < self.cfg.result_timeout_s:
                return None  # pages still coming
            log.warning("site %s: no answer to the gap fetch %s", chain.site, s.fetch.cmd_id)
            s.fetch = None
            s.next_at = now + s.backoff.next_delay()
        if now < s.next_at:
            return None
        cmd_id = new_cmd_id("logs", now)
        doc = build_command(
            chain.site,
            "logs",
            {"since_seq": chain.tail.seq, "since_log_seq": since_log_seq},
            self.key,
            now=now,
            ttl=self.cfg.result_timeout_s,
            cmd_id=cmd_id,
        )
        s.fetch = _Fetch(cmd_id, chain.tail.seq, now, asked_at=now, top=chain.tail.seq)
        s.fetches += 1
        log.info(
            "site %s: seq %d to %d missing; fetching with logs since_seq=%d (%s)",
            chain.site,
            gap[0],
            gap[1],
            chain.tail.seq,
            cmd_id,
        )
        return topics.cmd(chain.site, cmd_id), dumps(doc)

    def on_result(self, site: str, cmd_id: str, doc: Mapping[str, Any], now: float) -> Page | None:
        """Judge a ``cmd_result`` message; a Page when it is one of our fetch's."""
        s = self._site(site)
        fetch = s.fetch
        if fetch is None or fetch.cmd_id != cmd_id or doc.get("cmd_id") != cmd_id:
            self.stray_results += 1
            return None
        if doc.get("ok") is not True:
            reason = doc.get("reason") if isinstance(doc.get("reason"), str) else "refused"
            s.refusal = str(reason)[:64]
            s.fetch = None
            s.next_at = now + s.backoff.next_delay()
            log.warning("site %s: the kiosk refused the gap fetch %s: %s", site, cmd_id, s.refusal)
            return Page(site, [], [], True)
        fetch.sent_at = now  # pages are flowing: the timeout counts from the newest
        page = doc.get("page")
        numbered = isinstance(page, int) and not isinstance(page, bool) and 1 <= page <= 10**6
        if numbered:
            fetch.pages.add(int(page))  # type: ignore[arg-type]
        events = doc.get("events") if isinstance(doc.get("events"), list) else []
        logs = doc.get("logs") if isinstance(doc.get("logs"), list) else []
        assert isinstance(events, list) and isinstance(logs, list)
        events = [e for e in events if isinstance(e, dict)]
        for e in events:
            seq = e.get("seq")
            if e.get("site") == site and isinstance(seq, int) and not isinstance(seq, bool):
                fetch.top = max(fetch.top, min(seq, 2**53))
        last = doc.get("last") is True
        if last and numbered:
            fetch.last_page = int(page)  # type: ignore[arg-type]
        top: int | None = None
        if fetch.last_page is not None and fetch.pages == set(range(1, fetch.last_page + 1)):
            top = fetch.top  # every page seen (they may come out of order)
            s.fetch = None
        if last:
            s.refusal = ""
            # Still short after a complete answer (events written since): ask
            # again after the backoff; a filled gap resets it in due(). Pages
            # that are still missing may come; else the result timeout ends it.
            s.next_at = now + s.backoff.next_delay()
            if not numbered:
                s.fetch = None
        return Page(
            site,
            events,
            [r for r in logs if isinstance(r, dict)],
            last,
            kiosk_top=top,
            asked_at=fetch.asked_at,
        )
