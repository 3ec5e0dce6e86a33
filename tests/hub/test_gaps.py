"""Gap fetches: when, signed by whom, retried how (injected clock and random source)."""

from __future__ import annotations

import itertools
import json
import random

from hub.chain import ChainState
from hub.config import GapsSection
from hub.gaps import GapFiller
from protocol.backoff import Backoff
from protocol.commands import check_command
from protocol.events import Tail
from protocol.keys import Keyring, Role, generate_private_key, public_key_text

NOW = 1_780_000_000.0


def filler() -> tuple[GapFiller, Keyring]:
    key = generate_private_key()
    ring = Keyring(auditor_keys=[public_key_text(key.public_key())])
    cfg = GapsSection(grace_s=5, retry_max_s=60, result_timeout_s=30)
    return GapFiller(cfg, key, random.Random(1)), ring


def test_backoff_is_capped_full_jitter() -> None:
    b = Backoff(random.Random(3), base=1, cap=60)
    delays = [b.next_delay() for _ in range(12)]
    assert all(0 <= d <= min(60, 2**i) for i, d in enumerate(delays))
    b.reset()
    assert b.next_delay() <= 1


def test_fetch_after_grace_signed_by_the_auditor() -> None:
    g, ring = filler()
    chain = ChainState("shop-a", Tail(7, "a" * 64), status_last_seq=12)
    assert g.due(chain, NOW) is None and chain.gap_since == NOW  # within the grace
    topic, payload = g.due(chain, NOW + 5)  # type: ignore[misc]
    doc = json.loads(payload)
    assert topic == f"pickup/v1/shop-a/cmd/{doc['cmd_id']}"
    assert doc["cmd"] == "logs" and doc["args"] == {"since_seq": 7, "since_log_seq": 0}
    cmd = check_command(payload, topic_cmd_id=doc["cmd_id"], site="shop-a", keyring=ring)
    assert cmd.signer.role is Role.AUDITOR
    assert g.due(chain, NOW + 6) is None  # pages may still come


def test_pages_then_retry_with_backoff_until_filled() -> None:
    g, _ring = filler()
    chain = ChainState("shop-a", Tail(7, "a" * 64), status_last_seq=12)
    g.due(chain, NOW)
    _t, payload = g.due(chain, NOW + 5)  # type: ignore[misc]
    cmd_id = json.loads(payload)["cmd_id"]
    assert (
        g.on_result("shop-a", "someone-else", {"cmd_id": "someone-else", "ok": True}, NOW) is None
    )
    page = g.on_result(
        "shop-a",
        cmd_id,
        {"cmd_id": cmd_id, "ok": True, "page": 1, "last": False, "events": [{"seq": 8}]},
        NOW + 6,
    )
    assert page is not None and page.events == [{"seq": 8}] and not page.last
    page = g.on_result(
        "shop-a", cmd_id, {"cmd_id": cmd_id, "ok": True, "page": 2, "last": True}, NOW + 7
    )
    assert page is not None and page.last
    # still short (the kiosk wrote more meanwhile): asked again, but only after a backoff
    sent = [t for t in range(8, 200) if g.due(chain, NOW + t) is not None]
    assert sent and sent[0] > 7
    # filled: nothing more, and the backoff resets
    chain.tail = Tail(12, "b" * 64)
    assert g.due(chain, NOW + 300) is None and chain.gap_since is None


def test_refusal_and_silence_are_retried() -> None:
    g, _ring = filler()
    chain = ChainState("shop-a", Tail(0, "0" * 64), status_last_seq=3)
    g.due(chain, NOW)
    _t, payload = g.due(chain, NOW + 5)  # type: ignore[misc]
    cmd_id = json.loads(payload)["cmd_id"]
    g.on_result(
        "shop-a", cmd_id, {"cmd_id": cmd_id, "ok": False, "reason": "bad_signature"}, NOW + 6
    )
    assert g.state("shop-a")["last_refusal"] == "bad_signature"
    times = [t for t in range(6, 400) if g.due(chain, NOW + t) is not None]
    assert len(times) >= 2  # asked again after the refusal, and again when unanswered
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(d >= 30 for d in gaps)  # an unanswered fetch waits its result timeout
