"""The hub's exceptions, leaves of the project's root (protocol.errors).

Each also subclasses the builtin it resembles, so callers that only know
Python's own exceptions still catch them sensibly.
"""

from __future__ import annotations

from protocol.errors import PickupError

HubError = PickupError


class ConfigError(HubError, ValueError):
    """hub.toml is missing, unreadable, or has a bad key or value.

    The message names the file, the key and what is expected.
    """


class ArchiveError(HubError, OSError):
    """The archive cannot be opened, read or written."""


class KeyFileError(HubError, ValueError):
    """A key file is missing, unreadable or not an Ed25519 PEM private key."""


class RequestError(HubError, ValueError):
    """An API request or import row is invalid; ``field`` names what is wrong.

    ``status`` is the HTTP status the API answers with (4xx).
    """

    def __init__(self, error: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.field = field
        self.status = status

    def body(self) -> dict[str, str | None]:
        return {"error": self.error, "field": self.field}
