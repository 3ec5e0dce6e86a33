"""Reading the kiosk's own retained status after a connect (a disk that lies).

Before the agent publishes anything on a new connection it subscribes to its
own ``status`` topic (no-local, so its own later statuses do not come back),
then to its orders and commands. The broker sends the status topic's
retained message, if any, before it answers the second SUBSCRIBE, so that
SUBACK closes the window (or ``CLAIM_WAIT_S`` without it). The retained
status's claim (``last_seq``, ``last_hash``, ``seal``) is then compared
with the store by :func:`kiosk.trail.check_published`, which continues the
chain after the published seq when the store is behind it.

Only retained messages arriving inside the window count; anything else on
the status topic is ignored (and the agent unsubscribes once it is done),
so a publisher flooding the status topic costs nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kiosk.clock import TrustedClock
from kiosk.errors import ValidationError
from kiosk.store import Store
from kiosk.trail import Outcome, check_published, read_claim
from protocol import topics
from protocol.canonical import MAX_PAYLOAD, decode_json_object
from sync.connection import Connection, Message, Subscribed

log = logging.getLogger(__name__)

CLAIM_WAIT_S = 10.0  # how long to wait for the broker's SUBACK before judging without it


@dataclass
class ClaimCheck:
    site: str
    checking: bool = False
    deadline: float = 0.0
    status_mid: int | None = None
    last_mid: int | None = None
    retained: bytes | None = None

    def start(self, conn: Connection, mono: float) -> None:
        """Subscribe to our status, then to ``filters``'s topics (the caller's)."""
        self.checking = True
        self.retained = None
        self.deadline = mono + CLAIM_WAIT_S
        self.status_mid = conn.subscribe([(topics.status(self.site), 1)], no_local=True)

    def then(self, mid: int | None) -> None:
        """The SUBSCRIBE sent after ours: its SUBACK closes the window."""
        self.last_mid = mid

    def on_message(self, msg: Message) -> None:
        if self.checking and msg.retain and len(msg.payload) <= MAX_PAYLOAD:
            self.retained = msg.payload

    def on_subscribed(self, ev: Subscribed) -> bool:
        """True when this SUBACK closes the window."""
        if ev.mid == self.status_mid and not ev.ok:
            log.warning(
                "the broker does not let this kiosk read its own status topic (ACL: "
                "'pattern readwrite pickup/v1/%%u/status'); a store rollback cannot be noticed"
            )
        return self.checking and ev.mid == self.last_mid

    def overdue(self, mono: float) -> bool:
        return self.checking and mono >= self.deadline

    def finish(self, conn: Connection | None, store: Store, tclock: TrustedClock) -> Outcome:
        """Judge what arrived (once); the caller may publish again afterwards."""
        self.checking = False
        payload, self.retained = self.retained, None
        if conn is not None:
            conn.unsubscribe(topics.status(self.site))
        if not payload:
            return Outcome("unknown", {"reason": "no retained status"})
        try:
            doc = decode_json_object(payload)
        except ValidationError:
            log.warning("the retained status on the broker is not a JSON object; ignored")
            return Outcome("unknown", {"reason": "not an object"})
        claim = read_claim(doc, self.site, store.status_key())
        if claim is None:
            return Outcome("unknown", {"reason": "no claim"})
        return check_published(store, self.site, claim, tclock.snapshot())
