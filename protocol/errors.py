"""The project's exceptions: one root, leaves that also subclass a builtin.

Every error any part of pickup-kiosk raises on purpose derives from
:class:`PickupError`; the kiosk, the sync agent, kioskctl and the hub add
their own leaves under it.
"""

from __future__ import annotations


class PickupError(Exception):
    """Root of every error this project raises on purpose."""


class ValidationError(PickupError, ValueError):
    """A document, payload or input failed validation.

    ``reason`` is a short machine-readable slug (docs/protocol.md lists
    them); ``str(err)`` is a sentence for people. Neither ever contains a
    secret or typed digits, nor echoes the offending value.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SignatureError(ValidationError):
    """A signature is missing, malformed, wrong, or its signer's role does
    not allow what the document asks."""


class ChainError(PickupError, ValueError):
    """The event hash chain is broken; ``seq`` is the first bad event."""

    def __init__(self, seq: int, message: str) -> None:
        super().__init__(message)
        self.seq = seq
