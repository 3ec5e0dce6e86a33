"""Where kioskctl's settings come from: flags, then environment, then a file.

The file is small TOML, by default ``~/.config/kioskctl.toml``::

    broker = "mqtts://broker.example:8883"
    username = "owner"
    password = "..."
    ca_file = "/etc/ssl/certs/ca-certificates.crt"
    key = "~/.config/kioskctl/owner.key"
    site = "wuhan-caidian-01"
    pickup_no_width = 3

    [keys]                     # optional: key id -> the name logs show
    5f1c0e9a2b7d4c38 = "laptop"

A missing default file is fine; a missing ``--config`` file, an unknown key
or a value of the wrong type is a :class:`UsageError` naming the file and
the key.

kioskctl's own memory (recent commands, see :mod:`hub.ctl.state`) lives in
the state directory: ``state_dir``, else ``$XDG_STATE_HOME/kioskctl``, else
``~/.local/state/kioskctl``.
"""

from __future__ import annotations

import argparse
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.ctl.mqtt import BrokerSettings, UsageError
from protocol import topics
from protocol.orders import printable

# argparse's subparsers action; Any because kioskctl uses its own parser class.
if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[Any]
else:  # not subscriptable at run time before Python 3.12
    SubParsers = argparse._SubParsersAction

DEFAULT_CONFIG = "~/.config/kioskctl.toml"
DEFAULT_BROKER = "mqtt://127.0.0.1:1883"

# key in the file -> (environment variable, type)
FILE_KEYS: dict[str, tuple[str | None, type]] = {
    "broker": ("KIOSKCTL_BROKER", str),
    "username": ("KIOSKCTL_USERNAME", str),
    "password": ("KIOSKCTL_PASSWORD", str),
    "ca_file": ("KIOSKCTL_CA_FILE", str),
    "key": ("KIOSKCTL_KEY", str),
    "query_key": ("KIOSKCTL_QUERY_KEY", str),
    "site": ("KIOSKCTL_SITE", str),
    "pickup_no_width": ("KIOSKCTL_PICKUP_NO_WIDTH", int),
    "state_dir": ("KIOSKCTL_STATE_DIR", str),
}
#: tables in the file (not settable from the environment)
FILE_TABLES = ("keys",)
KEY_ID_RE = re.compile(r"^[0-9a-f]{16}\Z")


def valid_key_name(name: object) -> bool:
    return isinstance(name, str) and 1 <= len(name) <= 64 and printable(name)


@dataclass(frozen=True)
class Settings:
    broker: BrokerSettings
    key: str | None
    site: str | None
    pickup_no_width: int
    timeout: float
    key_names: Mapping[str, str] = field(default_factory=dict)
    query_key: str | None = None
    state_dir: Path = Path("~/.local/state/kioskctl")

    def need_site(self) -> str:
        if not self.site:
            raise UsageError("which site? pass --site SITE (or set KIOSKCTL_SITE or site = ...)")
        return self.site

    def need_key(self) -> str:
        if not self.key:
            raise UsageError(
                "a signing key is needed: pass --key FILE (or set KIOSKCTL_KEY or key = ...); "
                "make one with: kioskctl keygen --out FILE"
            )
        return self.key


def read_config_file(path: str | None, env: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    """The file's settings and its path; {} for an absent default file."""
    explicit = path is not None or "KIOSKCTL_CONFIG" in env
    chosen = path or env.get("KIOSKCTL_CONFIG") or DEFAULT_CONFIG
    file = Path(chosen).expanduser()
    if not file.exists():
        if explicit:
            raise UsageError(f"config file {file} does not exist")
        return {}, str(file)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read config file {file}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {file} is not valid TOML: {exc}") from None
    for key, value in data.items():
        if key in FILE_TABLES:
            check_key_names(value, file)
            continue
        if key not in FILE_KEYS:
            known = ", ".join([*FILE_KEYS, *(f"[{t}]" for t in FILE_TABLES)])
            raise UsageError(f"config file {file}: unknown key {key!r} (known: {known})")
        want = FILE_KEYS[key][1]
        if isinstance(value, bool) or not isinstance(value, want):
            raise UsageError(f"config file {file}: {key} must be a {want.__name__}")
    return data, str(file)


def check_key_names(table: Any, file: Path) -> None:
    """``[keys]``: key id (16 hex digits, as keygen prints it) -> a short name."""
    if not isinstance(table, dict):
        raise UsageError(f"config file {file}: keys must be a table ([keys])")
    for kid, name in table.items():
        if not KEY_ID_RE.match(kid):
            raise UsageError(
                f"config file {file}: [keys] {kid!r} is not a key id (16 hex digits, as "
                f"kioskctl keygen and kioskctl key-id print it)"
            )
        if not valid_key_name(name):
            raise UsageError(
                f"config file {file}: [keys] {kid} must name the key with 1 to 64 "
                f"printable characters"
            )


def default_state_dir(env: Mapping[str, str]) -> Path:
    xdg = env.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path("~/.local/state")
    return (base / "kioskctl").expanduser()


def resolve(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    """Merge flags over environment over file. Raises UsageError."""
    env = os.environ if env is None else env
    data, _file = read_config_file(getattr(args, "config", None), env)

    def pick(name: str) -> Any:
        flag = getattr(args, name, None)
        if flag is not None:
            return flag
        env_name = FILE_KEYS[name][0]
        if env_name and env.get(env_name):
            return env[env_name]
        return data.get(name)

    width_raw = pick("pickup_no_width")
    try:
        width = int(width_raw) if width_raw is not None else 3
    except ValueError:
        raise UsageError(f"pickup_no_width must be a whole number, not {width_raw!r}") from None
    if not 1 <= width <= 8:
        raise UsageError("pickup_no_width must be from 1 to 8")
    site = pick("site")
    if site is not None and not topics.SITE_RE.match(site):
        raise UsageError(f"site {site!r} is not a valid site id ([a-z0-9][a-z0-9-]{{0,63}})")
    key = pick("key")
    query_key = pick("query_key")
    state_dir = pick("state_dir")
    ca_file = pick("ca_file")
    broker = BrokerSettings(
        url=pick("broker") or DEFAULT_BROKER,
        username=pick("username"),
        password=pick("password"),
        ca_file=str(Path(ca_file).expanduser()) if ca_file else None,
    )
    broker.endpoint()  # fail early on a malformed URL
    timeout = float(getattr(args, "broker_timeout", None) or 10.0)
    return Settings(
        broker=broker,
        key=str(Path(key).expanduser()) if key else None,
        site=site,
        pickup_no_width=width,
        timeout=timeout,
        key_names=dict(data.get("keys") or {}),
        query_key=str(Path(query_key).expanduser()) if query_key else None,
        state_dir=Path(state_dir).expanduser() if state_dir else default_state_dir(env),
    )


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """Broker and identity flags every networked subcommand accepts."""
    g = parser.add_argument_group("broker and identity (flags win over env over config file)")
    g.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML settings file (default {DEFAULT_CONFIG}, or $KIOSKCTL_CONFIG)",
    )
    g.add_argument(
        "--broker",
        metavar="URL",
        help=f"mqtt://host:port or mqtts://host:port ($KIOSKCTL_BROKER; default {DEFAULT_BROKER})",
    )
    g.add_argument("--username", help="broker user name ($KIOSKCTL_USERNAME)")
    g.add_argument("--password", help="broker password ($KIOSKCTL_PASSWORD; prefer the env)")
    g.add_argument(
        "--ca-file",
        dest="ca_file",
        metavar="FILE",
        help="CA certificate(s) for mqtts ($KIOSKCTL_CA_FILE)",
    )
    g.add_argument(
        "--key", metavar="FILE", help="Ed25519 private key (PEM) that signs ($KIOSKCTL_KEY)"
    )
    g.add_argument(
        "--query-key",
        dest="query_key",
        metavar="FILE",
        help="an owner or auditor key for questions to the kiosk (the orders command) "
        "when --key is a hub key ($KIOSKCTL_QUERY_KEY; default --key)",
    )
    g.add_argument(
        "--broker-timeout",
        dest="broker_timeout",
        type=float,
        metavar="S",
        help="seconds to wait for the broker (default 10)",
    )
