"""The kiosk's exceptions, under the project's one root (protocol.errors).

``KioskError`` is the project root :class:`protocol.errors.PickupError`;
validation, signature and chain errors are the protocol's own, so that a
refusal reads the same whichever program met it.
"""

from __future__ import annotations

from protocol.errors import ChainError, PickupError, SignatureError, ValidationError

KioskError = PickupError

__all__ = [
    "ChainError",
    "ConfigError",
    "KioskError",
    "SignatureError",
    "StoreError",
    "ValidationError",
]


class ConfigError(KioskError, ValueError):
    """A configuration file is missing, unreadable or has a bad key or value.

    The message names the file, the key and what is expected.
    """


class StoreError(KioskError, OSError):
    """The SQLite store cannot be opened, read or written."""
