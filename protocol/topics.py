"""Topic names and ids (docs/protocol.md, "Topics").

All topics start with ``pickup/v1/{site}/``. ``site`` is a slug
``[a-z0-9][a-z0-9-]{0,63}``; ``order_id``, ``cmd_id`` and ``staff_id`` are
``[A-Za-z0-9_.-]{1,64}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "pickup/v1"
SITE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}\Z")
ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
ID_PATTERN = "[A-Za-z0-9_.-]{1,64}"

ORDERS = "orders"
STAFF = "staff"
CMD = "cmd"
CMD_RESULT = "cmd_result"
EVENTS = "events"
LOG = "log"
STATUS = "status"
#: kinds that carry an id after them
WITH_ID = frozenset({ORDERS, STAFF, CMD, CMD_RESULT})
KINDS = frozenset({ORDERS, STAFF, CMD, CMD_RESULT, EVENTS, LOG, STATUS})


def valid_site(site: object) -> bool:
    return isinstance(site, str) and bool(SITE_RE.match(site))


def valid_id(ident: object) -> bool:
    return isinstance(ident, str) and bool(ID_RE.match(ident))


def base(site: str) -> str:
    return f"{PREFIX}/{site}"


def order(site: str, order_id: str) -> str:
    return f"{PREFIX}/{site}/{ORDERS}/{order_id}"


def orders_filter(site: str) -> str:
    return f"{PREFIX}/{site}/{ORDERS}/+"


def staff(site: str, staff_id: str) -> str:
    return f"{PREFIX}/{site}/{STAFF}/{staff_id}"


def staff_filter(site: str) -> str:
    return f"{PREFIX}/{site}/{STAFF}/+"


def cmd(site: str, cmd_id: str) -> str:
    return f"{PREFIX}/{site}/{CMD}/{cmd_id}"


def cmd_filter(site: str) -> str:
    return f"{PREFIX}/{site}/{CMD}/+"


def cmd_result(site: str, cmd_id: str) -> str:
    return f"{PREFIX}/{site}/{CMD_RESULT}/{cmd_id}"


def cmd_result_filter(site: str) -> str:
    return f"{PREFIX}/{site}/{CMD_RESULT}/+"


def events(site: str) -> str:
    return f"{PREFIX}/{site}/{EVENTS}"


def log(site: str) -> str:
    return f"{PREFIX}/{site}/{LOG}"


def status(site: str) -> str:
    return f"{PREFIX}/{site}/{STATUS}"


@dataclass(frozen=True)
class Topic:
    """A parsed topic: ``site``, ``kind`` and, for kinds with one, ``ident``.

    ``ident`` is the raw text after the kind; it may be invalid (check with
    :func:`valid_id`), so that a receiver can reject the message with a
    reason instead of ignoring it.
    """

    site: str
    kind: str
    ident: str | None


def parse(topic: str) -> Topic | None:
    """``pickup/v1/{site}/{kind}[/{id}]`` to a :class:`Topic`; None if foreign.

    Foreign: another prefix or version, or a kind this version does not know.
    """
    parts = topic.split("/", 4)
    if len(parts) < 4 or parts[0] != "pickup" or parts[1] != "v1":
        return None
    site, kind = parts[2], parts[3]
    if kind not in KINDS:
        return None
    ident = parts[4] if len(parts) > 4 else None
    if kind in WITH_ID and ident is None:
        ident = ""
    if kind not in WITH_ID and ident is not None:
        return None
    return Topic(site, kind, ident)
