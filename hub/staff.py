"""Staff and courier codes the hub issues (the console's Staff page).

A code for a person, not an order (docs/protocol.md, "Staff and courier
codes"): the hub makes the secret, signs the staff document with its hub
key (the kiosk takes staff documents signed by a ``hub`` or an ``owner``
key) and publishes it retained on ``pickup/v1/{site}/staff/{staff_id}``
exactly as ``kioskctl staff add`` does; revoking publishes a newer version
with ``"revoked": true`` (:func:`protocol.staff.revocation`). Like orders, a
change is stored first (one transaction) and published after by the
service's timers, so a broker that is down loses nothing: an unpublished
version goes out when the broker is back.

The secret (docs/hub.md, "Staff codes"): :meth:`StaffBook.add` returns it
once, for the page that shows the person's ``otpauth://`` QR code; the hub
never shows it again. It stays in the archive only inside the signed
document, for as long as the code is live (a revocation keeps it, so the
kiosk still knows the code and refuses it as ``staff_revoked``, naming the
person); once the revocation is published the stored document loses its
``otp`` and the hub holds no trace of the secret. The hub key that signs
these could mint a code anyway, so the archive holding a live secret gives
a thief of the hub nothing the key does not.

Staff numbers are one digit longer than the site's pickup numbers, unique
among the site's codes that are not revoked, allocated round-robin after
the last one issued (a revoked person's number comes back as late as
possible). The hub does not see codes made with ``kioskctl`` (they are
numbered by hand); the kiosk tells two codes with one number apart by their
one-time values.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.config import Config, SiteSection
from hub.db import Database
from hub.errors import RequestError
from protocol import topics
from protocol.canonical import dumps
from protocol.errors import ValidationError
from protocol.keys import sign_document
from protocol.otp import new_secret, otpauth_uri
from protocol.staff import STAFF_DIGITS, revocation, staff_document, validate_staff

log = logging.getLogger(__name__)

# a protocol reason slug -> the form field it is about
_REASON_FIELD = {
    "bad_name": "name",
    "bad_role": "role",
    "bad_valid_from": "valid_from",
    "bad_valid_until": "valid_until",
    "bad_schedule": "hours",
}


@dataclass(frozen=True)
class NewCode:
    """A code just made: what the owner is shown once, and never again."""

    site: str
    staff_id: str
    staff_no: str
    name: str
    role: str
    secret: str
    uri: str


class StaffBook:
    """The staff codes the hub issued, per configured site, in the archive's file."""

    def __init__(self, db: Database, cfg: Config, hub_key: Ed25519PrivateKey) -> None:
        self.db = db
        self.cfg = cfg
        self.key = hub_key

    def _site(self, site: str) -> SiteSection:
        return self.cfg.require_site(site)

    # ----- reading -------------------------------------------------------------

    @staticmethod
    def view(row: sqlite3.Row | Mapping[str, Any]) -> dict[str, Any]:
        """A code as the console shows it: never the secret."""
        return {
            "site": row["site"],
            "staff_id": row["staff_id"],
            "staff_no": row["staff_no"],
            "name": row["name"],
            "role": row["role"],
            "valid_from": row["valid_from"],
            "valid_until": row["valid_until"],
            "schedule": json.loads(row["schedule"]),
            "revoked": bool(row["revoked"]),
            "version": row["version"],
            "published": row["published_version"] >= row["version"],
            "created_at": row["created_at"],
            "created_by": row["created_by"],
        }

    def search(self, site: str) -> list[dict[str, Any]]:
        """The site's codes: live ones first, by number; then the revoked, newest first."""
        self._site(site)
        rows = self.db.query(
            "SELECT * FROM staff WHERE site = ? ORDER BY revoked, "
            "CASE WHEN revoked = 0 THEN staff_no END, updated_at DESC",
            (site,),
        )
        return [self.view(r) for r in rows]

    def get(self, site: str, staff_id: str) -> dict[str, Any]:
        self._site(site)
        row = self.db.one("SELECT * FROM staff WHERE site = ? AND staff_id = ?", (site, staff_id))
        if row is None:
            raise RequestError(f"no staff code {staff_id!r} at site {site!r}", "staff_id", 404)
        return self.view(row)

    # ----- changes -------------------------------------------------------------

    def _allocate(self, c: sqlite3.Connection, site: SiteSection) -> str:
        width = site.pickup_no_width + 1
        top = 10**width - 1  # numbers 1..top; 0 is never given out
        held = {
            r[0]
            for r in c.execute(
                "SELECT staff_no FROM staff WHERE site = ? AND revoked = 0", (site.id,)
            )
        }
        last = c.execute(
            "SELECT staff_no FROM staff WHERE site = ? ORDER BY created_at DESC, rowid DESC "
            "LIMIT 1",
            (site.id,),
        ).fetchone()
        start = int(last[0]) % top + 1 if last else 1
        for i in range(top):
            text = str((start - 1 + i) % top + 1).zfill(width)
            if text not in held:
                return text
        raise RequestError(
            f"every staff number of site {site.id} is held by a code that is not revoked",
            "name",
            409,
        )

    def _sign(self, site: SiteSection, doc: dict[str, Any]) -> dict[str, Any]:
        """Sign a document checked with the kiosk's own rules; RequestError by field."""
        width = site.pickup_no_width
        try:
            validate_staff(doc, site=site.id, width=width)
        except ValidationError as err:
            raise RequestError(str(err), _REASON_FIELD.get(err.reason), 422) from None
        signed = sign_document(doc, self.key)
        validate_staff(signed, site=site.id, width=width, staff_id=str(doc["staff_id"]))
        return signed

    def add(
        self,
        site_id: str,
        *,
        name: str,
        role: str,
        now: float,
        by: str,
        valid_from: float | None = None,
        valid_until: float | None = None,
        schedule: Sequence[Mapping[str, Any]] = (),
    ) -> NewCode:
        """Make, sign and store a code (published by the service's timers).

        One transaction: a bad field raises RequestError naming it and
        stores nothing. The result holds the secret: show it once.
        """
        site = self._site(site_id)
        with self.db.atomic() as c:
            staff_no = self._allocate(c, site)
            staff_id = f"S-{staff_no}-{secrets.token_hex(4)}"
            while c.execute(
                "SELECT 1 FROM staff WHERE site = ? AND staff_id = ?", (site_id, staff_id)
            ).fetchone():
                staff_id = f"S-{staff_no}-{secrets.token_hex(4)}"
            secret = new_secret()
            doc = staff_document(
                site=site_id,
                staff_id=staff_id,
                staff_no=staff_no,
                name=name,
                role=role,
                secret=secret,
                issued_at=now,
                valid_from=valid_from,
                valid_until=valid_until,
                schedule=[dict(w) for w in schedule],
            )
            signed = self._sign(site, doc)
            c.execute(
                "INSERT INTO staff(site, staff_id, staff_no, name, role, valid_from, "
                "valid_until, schedule, revoked, version, doc, created_at, created_by, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 1, ?, ?, ?, ?)",
                (
                    site_id,
                    staff_id,
                    staff_no,
                    name,
                    role,
                    valid_from,
                    valid_until,
                    json.dumps(doc.get("schedule", []), ensure_ascii=False),
                    json.dumps(signed, ensure_ascii=False),
                    now,
                    by,
                    now,
                ),
            )
        log.info("staff code %s/%s (%s) made by %s", site_id, staff_id, role, by)
        uri = otpauth_uri(
            secret, label=f"{name} ({site_id})", issuer=site.name or site_id, digits=STAFF_DIGITS
        )
        return NewCode(site_id, staff_id, staff_no, name, role, secret, uri)

    def revoke(self, site_id: str, staff_id: str, now: float) -> dict[str, Any]:
        """Publish a newer version that stops the code at once; 409 if already revoked."""
        site = self._site(site_id)
        with self.db.atomic() as c:
            row = c.execute(
                "SELECT * FROM staff WHERE site = ? AND staff_id = ?", (site_id, staff_id)
            ).fetchone()
            if row is None:
                raise RequestError(
                    f"no staff code {staff_id!r} at site {site_id!r}", "staff_id", 404
                )
            if row["revoked"]:
                raise RequestError(f"staff code {staff_id} is already revoked", "staff_id", 409)
            signed = self._sign(site, revocation(json.loads(row["doc"]), now))
            c.execute(
                "UPDATE staff SET revoked = 1, version = ?, doc = ?, updated_at = ? "
                "WHERE site = ? AND staff_id = ?",
                (signed["version"], json.dumps(signed, ensure_ascii=False), now, site_id, staff_id),
            )
            row = c.execute(
                "SELECT * FROM staff WHERE site = ? AND staff_id = ?", (site_id, staff_id)
            ).fetchone()
        log.info("staff code %s/%s revoked", site_id, staff_id)
        return self.view(row)

    # ----- publishing ----------------------------------------------------------

    def republish_all(self) -> int:
        """As OrderBook.republish_all, for staff documents.

        A revoked code whose revocation was published no longer has its signed
        document here (the secret was dropped, see :meth:`published`): it is
        not sent again, since an unsigned copy would only be rejected; a kiosk
        that never saw the code refuses it anyway.
        """
        with self.db.atomic() as c:
            cur = c.execute(
                "UPDATE staff SET published_version = version - 1 "
                "WHERE published_version >= version "
                "AND (revoked = 0 OR json_extract(doc, '$.sig') IS NOT NULL)"
            )
            return cur.rowcount

    def unpublished(self, limit: int = 500) -> list[tuple[str, str, int, str, bytes]]:
        """(site, staff_id, version, topic, payload) of versions not yet published."""
        rows = self.db.query(
            "SELECT site, staff_id, version, doc FROM staff WHERE published_version < version "
            "LIMIT ?",
            (limit,),
        )
        return [
            (
                r["site"],
                r["staff_id"],
                r["version"],
                topics.staff(r["site"], r["staff_id"]),
                dumps(json.loads(r["doc"])),
            )
            for r in rows
        ]

    def published(self, site: str, staff_id: str, version: int) -> None:
        """The broker took this version; a published revocation forgets the secret."""
        with self.db.atomic() as c:
            c.execute(
                "UPDATE staff SET published_version = ? WHERE site = ? AND staff_id = ? "
                "AND version = ?",
                (version, site, staff_id, version),
            )
            row = c.execute(
                "SELECT doc FROM staff WHERE site = ? AND staff_id = ? AND revoked = 1 "
                "AND published_version >= version",
                (site, staff_id),
            ).fetchone()
            if row is not None:
                public = {k: v for k, v in json.loads(row[0]).items() if k not in ("otp", "sig")}
                c.execute(
                    "UPDATE staff SET doc = ? WHERE site = ? AND staff_id = ?",
                    (json.dumps(public, ensure_ascii=False), site, staff_id),
                )
