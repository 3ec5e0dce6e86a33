"""Pickup codes: TOTP (RFC 6238) and HOTP (RFC 4226), SHA-1, as the kiosk checks them.

A pickup code is the pickup number followed by the one-time value. HOTP
truncation is ``mod 10^digits``, so a 6-digit value is the last six digits
of the 8-digit value for the same secret and step.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from collections.abc import Mapping
from typing import Any

import pyotp

SECRET_BITS = 160  # RFC 4226's recommended length


def new_secret(bits: int = SECRET_BITS) -> str:
    """Random base32 secret without padding."""
    return base64.b32encode(secrets.token_bytes(bits // 8)).decode("ascii").rstrip("=")


def _key(secret: str) -> bytes:
    norm = secret.strip().upper().rstrip("=")
    return base64.b32decode(norm + "=" * (-len(norm) % 8))


def hotp(secret: str, counter: int, digits: int = 6) -> str:
    """The HOTP value for ``counter``, zero-padded to ``digits`` (1 to 9).

    RFC 4226 section 5.3 with SHA-1. The HMAC is computed here rather than
    through pyotp because the code check runs it per keypress and pyotp
    refuses fewer than 6 digits (the guessing simulation uses fewer);
    tests hold it equal to pyotp and to ``oathtool``.
    """
    mac = hmac.new(_key(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10**digits).zfill(digits)


def step_at(t: float, period: int = 30) -> int:
    return int(t // period)


def totp(secret: str, t: float, digits: int = 6, period: int = 30) -> str:
    return hotp(secret, step_at(t, period), digits)


def seconds_left(t: float, period: int = 30) -> int:
    return period - int(t) % period


def pickup_code(pickup_no: str, secret: str, t: float, digits: int = 6, period: int = 30) -> str:
    """What the customer types before ``#``."""
    return pickup_no + totp(secret, t, digits, period)


def backup_code(pickup_no: str, secret: str, digits: int = 6) -> str:
    """The clock-independent backup code (HOTP counter 0)."""
    return pickup_no + hotp(secret, 0, digits)


def otpauth_uri(secret: str, *, label: str, issuer: str, digits: int = 6, period: int = 30) -> str:
    """An ``otpauth://totp/`` URI any authenticator app reads (as a QR code)."""
    uri = pyotp.TOTP(secret, digits=digits, interval=period).provisioning_uri(
        name=label, issuer_name=issuer
    )
    return str(uri)


def document_code(doc: Mapping[str, Any], t: float) -> tuple[str, int]:
    """An order document's pickup code at ``t`` and the seconds it stays valid."""
    otp = doc["otp"]
    period = int(otp.get("period", 30))
    code = pickup_code(str(doc["pickup_no"]), otp["secret"], t, int(otp.get("digits", 6)), period)
    return code, seconds_left(t, period)


def document_backup_code(doc: Mapping[str, Any]) -> str:
    """An order document's backup code (HOTP counter 0)."""
    otp = doc["otp"]
    return backup_code(str(doc["pickup_no"]), otp["secret"], int(otp.get("digits", 6)))
