"""API bearer tokens, one per integration, stored only as SHA-256 hashes.

A token is ``ph_`` and 32 random bytes in base64url (256 bits), shown once
by ``pickup-hub token add NAME``. The archive keeps its SHA-256: with that
much entropy a plain hash is as good as a slow one, and it lets a request
be matched with one indexed look-up. Revoked tokens stay listed (who had
access, until when) and never match again.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from hub.db import Database
from hub.errors import RequestError

PREFIX = "ph_"
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
_TOKEN_RE = re.compile(r"^ph_[A-Za-z0-9_-]{20,100}\Z")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    name: str
    created_at: float
    revoked_at: float | None


class Tokens:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, name: str, now: float) -> str:
        """A new token for ``name``; raises RequestError for a bad or taken name."""
        if not NAME_RE.match(name):
            raise RequestError("a token name is 1 to 64 of A-Z, a-z, 0-9, '_', '.', '-'", "name")
        token = PREFIX + secrets.token_urlsafe(32)
        with self.db.atomic() as c:
            row = c.execute("SELECT revoked_at FROM tokens WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] is None:
                raise RequestError(f"a token named {name!r} exists; revoke it first", "name", 409)
            c.execute("DELETE FROM tokens WHERE name = ?", (name,))
            c.execute(
                "INSERT INTO tokens(name, hash, created_at) VALUES (?, ?, ?)",
                (name, token_hash(token), now),
            )
        return token

    def check(self, token: str) -> str | None:
        """The integration's name for a valid, unrevoked token, else None."""
        if not _TOKEN_RE.match(token):
            return None
        row = self.db.one(
            "SELECT name FROM tokens WHERE hash = ? AND revoked_at IS NULL", (token_hash(token),)
        )
        return str(row["name"]) if row else None

    def revoke(self, name: str, now: float) -> bool:
        with self.db.atomic() as c:
            cur = c.execute(
                "UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (now, name),
            )
            return cur.rowcount > 0

    def list(self) -> list[TokenInfo]:
        rows = self.db.query("SELECT name, created_at, revoked_at FROM tokens ORDER BY name")
        return [TokenInfo(r["name"], r["created_at"], r["revoked_at"]) for r in rows]
