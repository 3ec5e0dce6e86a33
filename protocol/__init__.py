"""The pickup protocol, v1, once: what every program that speaks it shares.

Pure: no sockets, no files, no clock reads. The kiosk (``kiosk``, ``sync``),
the owner's ``kioskctl`` and the hub (``hub``) all import it; it imports
nothing of theirs (docs/design.md, "Layering"). The wire contract it
implements is docs/protocol.md.

- :mod:`protocol.errors`: the project's root exception and validation errors
- :mod:`protocol.canonical`: canonical JSON, strict decoding, base64url
- :mod:`protocol.times`: RFC 3339 times in the plausible range
- :mod:`protocol.topics`: topic names, ids, parsing
- :mod:`protocol.keys`: Ed25519 keys, signatures, roles (the keyring)
- :mod:`protocol.orders`, :mod:`protocol.commands`: the signed documents
- :mod:`protocol.events`: event documents and the streaming chain verifier
- :mod:`protocol.status`: status and log record documents
- :mod:`protocol.otp`: TOTP/HOTP pickup codes
"""

VERSION = 1
