"""Small builders shared by the core tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.audit import Audit
from kiosk.clock import ClockSnapshot, FakeClock, TrustedClock
from kiosk.codes import CodeEngine
from kiosk.config import Config
from kiosk.orders import Intake
from kiosk.sample import order_doc
from kiosk.store import Store
from kiosk.throttle import Throttle
from protocol.keys import Keyring, public_key_text, sign_document

SITE = "test-site"


@dataclass
class World:
    """A fresh store file, a fake clock and the real engine around them."""

    path: Path
    clock: FakeClock = field(default_factory=FakeClock)
    cfg: Config = field(default_factory=lambda: Config().replace("site", id=SITE))
    hub: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    owner: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def __post_init__(self) -> None:
        self.cfg = self.cfg.replace(
            "trust",
            hub_keys=(public_key_text(self.hub.public_key()),),
            owner_keys=(public_key_text(self.owner.public_key()),),
        )
        self.store = Store(self.path)
        self.tclock = TrustedClock(self.clock, synced=True)
        self.audit = Audit(self.store, SITE)
        self.keyring = Keyring(self.cfg.trust.hub_keys, self.cfg.trust.owner_keys)
        self.intake = Intake(
            self.store, self.audit, self.keyring, site=SITE, width=self.cfg.site.pickup_no_width
        )
        self.throttle = Throttle(self.store, self.cfg.throttle)
        self.engine = CodeEngine(
            self.store, self.cfg.codes, self.throttle, width=self.cfg.site.pickup_no_width
        )

    def snap(self) -> ClockSnapshot:
        return self.tclock.snapshot()

    def doc(self, order_id: str = "O-1", pickup_no: str = "042", **kw: Any) -> dict[str, Any]:
        return sign_document(
            order_doc(SITE, order_id, pickup_no, now=self.clock.wall(), **kw), self.hub
        )

    def add(self, order_id: str = "O-1", pickup_no: str = "042", **kw: Any) -> dict[str, Any]:
        doc = self.doc(order_id, pickup_no, **kw)
        res = self.intake.accept(doc, self.snap(), source="test")
        assert res.outcome == "stored", res
        return doc

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        evs = [e.as_dict() for e in self.store.iter_events()]
        return [e for e in evs if type_ is None or e["type"] == type_]
