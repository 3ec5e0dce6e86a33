"""Console accounts, their sessions and the console's audit log.

- **Accounts** have a role: ``owner`` (everything) or ``staff`` (sees
  everything, changes nothing: no unlock, no order change, no import, no
  acknowledgement). ``pickup-hub adduser NAME --role owner`` makes one.
- **Passwords** are hashed with scrypt (memory-hard, in Python's standard
  library: no extra dependency on the Pi): N=2^15, r=8, p=1, 32 MiB and
  about 0.1 s per check on the development machine. The parameters are
  stored with each hash, so they can be raised later without a migration.
- **Sessions** live in the archive (only the SHA-256 of the session id is
  stored); the cookie carries the id and an HMAC under the console secret
  (:mod:`hub.console.cookies`). A session ends when its account's
  ``generation`` changes (logout everywhere, a new password), after
  ``console.session_days``, or after ``console.idle_days`` unused.
- **The audit log** records every console action with the account's name
  (docs/hub.md, "The console").

Every method here runs on the archive thread except :func:`hash_password`
and :func:`check_password`, which the web layer runs in a thread of their
own (they take 0.1 s and 32 MiB each; at most :data:`HASH_CONCURRENCY` at
once, so a login flood cannot exhaust memory).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.db import Database
from hub.errors import RequestError

ROLES = ("owner", "staff")
NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}\Z")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
HASH_CONCURRENCY = 2
SEEN_WRITE_S = 60.0  # a session's last use is written at most this often

ACTIONS = (
    "login",
    "login_failed",
    "logout",
    "logout_everywhere",
    "unlock_prepared",
    "unlock_sent",
    "unlock_cancel_sent",
    "order_created",
    "order_changed",
    "order_cancelled",
    "order_new_link",
    "orders_imported",
    "alert_acked",
    "alert_muted",
    "alert_unmuted",
    "browser_key_added",
    "browser_key_revoked",
    "staff_added",
    "staff_revoked",
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64url), for :func:`check_password`."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=SCRYPT_MAXMEM,
        dklen=32,
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


#: checked when the account does not exist, so that a wrong name costs as long as a wrong
#: password (no telling which names exist by the time an answer takes)
_DUMMY = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def check_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored``; a missing or damaged hash is False."""
    try:
        scheme, n, r, p, salt, digest = (stored or _DUMMY).split("$")
        if scheme != "scrypt" or int(n) > 2**20 or int(r) > 32 or int(p) > 16:
            return False
        got = hashlib.scrypt(
            password.encode("utf-8", "replace"),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=SCRYPT_MAXMEM * 2,
            dklen=len(_unb64(digest)),
        )
    except (ValueError, TypeError):
        return False
    return stored is not None and hmac.compare_digest(got, _unb64(digest))


def check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RequestError(
            "an account name is 1 to 64 of A-Z, a-z, 0-9, '_', '.', '@', '-'", "name", 422
        )


def check_new_password(password: str) -> None:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise RequestError(
            f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters", "password", 422
        )
    if password.strip() != password or not password.isprintable():
        raise RequestError(
            "a password has no leading or trailing spaces and no control characters",
            "password",
            422,
        )


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    generation: int

    @property
    def owner(self) -> bool:
        return self.role == "owner"


@dataclass(frozen=True)
class Session:
    account: Account
    sid_hash: str
    csrf: str
    created_at: float


def sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("ascii", "replace")).hexdigest()


class Accounts:
    """Accounts, sessions and the audit log in the archive file."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ----- accounts --------------------------------------------------------------

    def add(self, name: str, role: str, pw_hash: str, now: float, *, replace: bool = False) -> None:
        """Create (or, with ``replace``, reset) an account; a reset ends its sessions."""
        check_name(name)
        if role not in ROLES:
            raise RequestError("role must be owner or staff", "role", 422)
        with self.db.atomic() as c:
            row = c.execute("SELECT generation FROM accounts WHERE name = ?", (name,)).fetchone()
            if row is not None and not replace:
                raise RequestError(
                    f"an account named {name!r} exists (give --replace to set a new password)",
                    "name",
                    409,
                )
            if row is None:
                c.execute(
                    "INSERT INTO accounts(name, role, pw_hash, created_at, changed_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (name, role, pw_hash, now, now),
                )
            else:
                c.execute(
                    "UPDATE accounts SET role = ?, pw_hash = ?, generation = generation + 1, "
                    "changed_at = ? WHERE name = ?",
                    (role, pw_hash, now, name),
                )
                c.execute("DELETE FROM sessions WHERE account = ?", (name,))

    def password_hash(self, name: str) -> str | None:
        if not isinstance(name, str) or not NAME_RE.match(name):
            return None
        row = self.db.one("SELECT pw_hash FROM accounts WHERE name = ?", (name,))
        return str(row["pw_hash"]) if row else None

    def get(self, name: str) -> Account | None:
        row = self.db.one("SELECT name, role, generation FROM accounts WHERE name = ?", (name,))
        return Account(row["name"], row["role"], int(row["generation"])) if row else None

    def everyone(self) -> list[Account]:
        rows = self.db.query("SELECT name, role, generation FROM accounts ORDER BY name")
        return [Account(r["name"], r["role"], int(r["generation"])) for r in rows]

    # ----- sessions --------------------------------------------------------------

    def start_session(self, name: str, address: str, now: float) -> tuple[str, Session]:
        """A new session for ``name``: (the session id for the cookie, the session)."""
        sid = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        with self.db.atomic() as c:
            row = c.execute(
                "SELECT name, role, generation FROM accounts WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                raise RequestError("no such account", "name", 401)
            account = Account(row["name"], row["role"], int(row["generation"]))
            c.execute(
                "INSERT INTO sessions(sid_hash, account, generation, csrf, created_at, seen_at, "
                "address) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sid_hash(sid), name, account.generation, csrf, now, now, address[:64]),
            )
        return sid, Session(account, sid_hash(sid), csrf, now)

    def session(self, sid: str, now: float, *, max_age_s: float, idle_s: float) -> Session | None:
        """The live session for ``sid``, or None (unknown, ended, too old, idle, or its
        account's generation moved on)."""
        h = sid_hash(sid)
        row = self.db.one(
            "SELECT s.csrf, s.created_at, s.seen_at, s.generation AS sgen, a.name, a.role, "
            "a.generation FROM sessions s JOIN accounts a ON a.name = s.account "
            "WHERE s.sid_hash = ?",
            (h,),
        )
        if row is None:
            return None
        if (
            int(row["sgen"]) != int(row["generation"])
            or now - float(row["created_at"]) >= max_age_s
            or now - float(row["seen_at"]) >= idle_s
        ):
            with self.db.atomic() as c:
                c.execute("DELETE FROM sessions WHERE sid_hash = ?", (h,))
            return None
        if now - float(row["seen_at"]) >= SEEN_WRITE_S:
            with self.db.atomic() as c:
                c.execute("UPDATE sessions SET seen_at = ? WHERE sid_hash = ?", (now, h))
        account = Account(row["name"], row["role"], int(row["generation"]))
        return Session(account, h, str(row["csrf"]), float(row["created_at"]))

    def still_live(self, h: str, now: float, *, max_age_s: float, idle_s: float) -> bool:
        """Whether the session with id hash ``h`` is live; reads only (an open page's
        stream asks this, and must not keep an unused session from going idle)."""
        row = self.db.one(
            "SELECT s.created_at, s.seen_at, s.generation AS sgen, a.generation "
            "FROM sessions s JOIN accounts a ON a.name = s.account WHERE s.sid_hash = ?",
            (h,),
        )
        return (
            row is not None
            and int(row["sgen"]) == int(row["generation"])
            and now - float(row["created_at"]) < max_age_s
            and now - float(row["seen_at"]) < idle_s
        )

    def end_session(self, h: str) -> None:
        with self.db.atomic() as c:
            c.execute("DELETE FROM sessions WHERE sid_hash = ?", (h,))

    def end_everywhere(self, name: str, now: float) -> int:
        """Logout everywhere: the generation moves on and every session ends."""
        with self.db.atomic() as c:
            c.execute(
                "UPDATE accounts SET generation = generation + 1, changed_at = ? WHERE name = ?",
                (now, name),
            )
            return int(c.execute("DELETE FROM sessions WHERE account = ?", (name,)).rowcount)

    def prune_sessions(self, now: float, *, max_age_s: float, idle_s: float) -> int:
        with self.db.atomic() as c:
            return int(
                c.execute(
                    "DELETE FROM sessions WHERE created_at <= ? OR seen_at <= ?",
                    (now - max_age_s, now - idle_s),
                ).rowcount
            )

    # ----- audit -----------------------------------------------------------------

    def audit(
        self,
        account: str,
        action: str,
        now: float,
        *,
        site: str | None = None,
        target: str | None = None,
        detail: Mapping[str, Any] | None = None,
        address: str = "",
    ) -> None:
        assert action in ACTIONS, action
        with self.db.atomic() as c:
            c.execute(
                "INSERT INTO console_audit(at, account, action, site, target, detail, address) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    now,
                    account[:64],
                    action,
                    site,
                    None if target is None else target[:128],
                    json.dumps(dict(detail or {}), ensure_ascii=False),
                    address[:64],
                ),
            )

    def audit_log(self, *, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM console_audit"
        params: tuple[Any, ...] = ()
        if before is not None:
            sql += " WHERE id < ?"
            params = (before,)
        rows = self.db.query(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]
