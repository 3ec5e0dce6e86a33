"""The console's secret, signed cookies and the login rate limit.

- **The secret** signs session cookies (HMAC-SHA256). It is 32 random
  bytes made once, mode 0600 from its first byte, in
  ``console.secret_file`` (default ``console.secret`` beside the archive).
  Replacing the file ends every session.
- **Cookies** carry ``SID.SIG``: the session id (256 random bits; the
  archive keeps only its SHA-256) and its HMAC. A cookie that does not
  verify is refused before the archive is asked.
- **Login limits**, per account and per client address, in memory with the
  time passed in (a restart forgets them; the per-account limit is what
  stops guessing one password, the per-address limit what stops trying
  many names): after :data:`ACCOUNT_FREE` failures an account waits
  :data:`ACCOUNT_BASE_S` doubling up to :data:`ACCOUNT_MAX_S`; an address
  gets :data:`ADDRESS_BURST` failures per :data:`ADDRESS_WINDOW_S`. Both
  tables are bounded (the oldest entries go first).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

from hub.config import Config
from hub.errors import KeyFileError

log = logging.getLogger(__name__)

SECRET_BYTES = 32
ACCOUNT_FREE = 5
ACCOUNT_BASE_S = 30.0
ACCOUNT_MAX_S = 900.0
ADDRESS_BURST = 20
ADDRESS_WINDOW_S = 600.0
MAX_TRACKED = 10000


def secret_path(cfg: Config) -> Path:
    if cfg.console.secret_file:
        return Path(cfg.console.secret_file)
    return Path(cfg.hub.archive).with_name("console.secret")


def load_secret(path: Path) -> bytes:
    """The console secret, made (0600) on first use. Raises KeyFileError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    except OSError as exc:
        raise KeyFileError(f"cannot read the console secret {path}: {exc.strerror}") from None
    if len(data) >= SECRET_BYTES:
        return data[:SECRET_BYTES]
    if data:
        raise KeyFileError(f"the console secret {path} is damaged (delete it: a new one is made)")
    raw = secrets.token_bytes(SECRET_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return load_secret(path)
    except OSError as exc:
        raise KeyFileError(f"cannot create the console secret {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
        fh.flush()
        os.fsync(fh.fileno())
    log.info("made the console secret %s", path)
    return raw


class Signer:
    """HMAC-SHA256 signatures of cookie values under the console secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: str, value: str) -> str:
        msg = f"{purpose}\0{value}".encode("utf-8", "replace")
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:43]

    def sign(self, purpose: str, value: str) -> str:
        return f"{value}.{self._mac(purpose, value)}"

    def unsign(self, purpose: str, signed: str | None) -> str | None:
        if not signed or len(signed) > 256 or "." not in signed:
            return None
        value, _, mac = signed.rpartition(".")
        if not hmac.compare_digest(mac.encode(), self._mac(purpose, value).encode()):
            return None
        return value


@dataclass
class _Account:
    failures: int = 0
    until: float = 0.0


@dataclass
class LoginLimiter:
    """Failed logins per account and per address; see the module doc.

    A try is counted *when it starts* (:meth:`attempt`) and forgiven when
    it succeeds (:meth:`succeeded`): the check and the count happen with no
    ``await`` between them, so forty logins sent at once get five password
    checks, not forty. Names of real accounts and other names are kept in
    separate tables, so a flood of made-up names can push out only made-up
    names, never the count of a real account.
    """

    accounts: OrderedDict[str, _Account] = field(default_factory=OrderedDict)
    names: OrderedDict[str, _Account] = field(default_factory=OrderedDict)
    addresses: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def wait(self, account: str, address: str, now: float) -> float:
        """Seconds before another try is allowed (0: now)."""
        a = self.accounts.get(account) or self.names.get(account)
        account_wait = max(0.0, a.until - now) if a else 0.0
        q = self.addresses.get(address)
        address_wait = 0.0
        if q is not None:
            while q and q[0] <= now - ADDRESS_WINDOW_S:
                q.popleft()
            if len(q) >= ADDRESS_BURST:
                address_wait = q[0] + ADDRESS_WINDOW_S - now
        return max(account_wait, address_wait)

    def attempt(self, account: str, address: str, now: float, *, known: bool) -> float:
        """Start a try: the seconds to wait (nothing counted), or 0 and the try counted
        as a failure until :meth:`succeeded` says otherwise. ``known``: the account
        exists (its count is never pushed out by other names)."""
        wait = self.wait(account, address, now)
        if wait > 0:
            return wait
        self.failed(account, address, now, known=known)
        return 0.0

    def failed(self, account: str, address: str, now: float, *, known: bool = True) -> None:
        table = self.accounts if known else self.names
        a = table.pop(account, None) or _Account()
        a.failures += 1
        if a.failures >= ACCOUNT_FREE:
            extra = a.failures - ACCOUNT_FREE
            a.until = now + min(ACCOUNT_MAX_S, ACCOUNT_BASE_S * 2 ** min(extra, 20))
        table[account] = a
        q = self.addresses.pop(address, None) or deque()
        q.append(now)
        while len(q) > ADDRESS_BURST:
            q.popleft()
        self.addresses[address] = q
        for t in (self.accounts, self.names, self.addresses):
            while len(t) > MAX_TRACKED:
                t.popitem(last=False)

    def succeeded(self, account: str, address: str | None = None) -> None:
        """The right password: the account's count goes, and the try's address mark."""
        self.accounts.pop(account, None)
        self.names.pop(account, None)
        q = self.addresses.get(address) if address is not None else None
        if q:
            q.pop()
