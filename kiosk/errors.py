"""The project's exceptions: one root, leaves that also subclass a builtin."""

from __future__ import annotations


class KioskError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(KioskError, ValueError):
    """A configuration file is missing, unreadable or has a bad key or value.

    The message names the file, the key and what is expected.
    """


class ValidationError(KioskError, ValueError):
    """A document (order, command, keypad entry) failed validation.

    ``reason`` is a short machine-readable slug; ``str(err)`` is a sentence
    for people. Neither ever contains a secret or typed digits.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SignatureError(ValidationError):
    """A document's signature is missing, malformed, wrong or from a signer
    without the needed role."""


class StoreError(KioskError, OSError):
    """The SQLite store cannot be opened, read or written."""


class ChainError(KioskError, ValueError):
    """The event hash chain is broken; ``seq`` is the first bad event."""

    def __init__(self, seq: int, message: str) -> None:
        super().__init__(message)
        self.seq = seq
