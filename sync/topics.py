"""Topic names of PROTOCOL.md, in one place for the agent and kioskctl."""

from __future__ import annotations

import re

PREFIX = "pickup/v1"
ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SITE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def base(site: str) -> str:
    return f"{PREFIX}/{site}"


def order(site: str, order_id: str) -> str:
    return f"{PREFIX}/{site}/orders/{order_id}"


def orders_filter(site: str) -> str:
    return f"{PREFIX}/{site}/orders/+"


def cmd(site: str, cmd_id: str) -> str:
    return f"{PREFIX}/{site}/cmd/{cmd_id}"


def cmd_filter(site: str) -> str:
    return f"{PREFIX}/{site}/cmd/+"


def cmd_result(site: str, cmd_id: str) -> str:
    return f"{PREFIX}/{site}/cmd_result/{cmd_id}"


def events(site: str) -> str:
    return f"{PREFIX}/{site}/events"


def log(site: str) -> str:
    return f"{PREFIX}/{site}/log"


def status(site: str) -> str:
    return f"{PREFIX}/{site}/status"


def split(topic: str) -> tuple[str, str, str | None] | None:
    """``pickup/v1/{site}/{kind}[/{id}]`` -> (site, kind, id) or None if foreign."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != "pickup" or parts[1] != "v1":
        return None
    site, kind = parts[2], parts[3]
    ident = "/".join(parts[4:]) if len(parts) > 4 else None
    return site, kind, ident
