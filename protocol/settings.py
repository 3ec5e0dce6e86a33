"""TOML settings into frozen dataclasses, with errors a person can act on.

The kiosk's ``kiosk.toml`` and the hub's ``hub.toml`` follow one
convention, kept here once: every key is a dataclass field with a type, a
default and metadata (``help``, an optional ``check`` and whether it is a
``secret``); an unknown key or a bad value is a message naming the file,
the key and what is expected, with "did you mean" for misspellings; a
secret's value is never echoed. Pure: the callers read the files and the environment.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

Check = Callable[[Any], str | None]
T = TypeVar("T")


def meta(help: str, check: Check | None = None, secret: bool = False) -> dict[str, Any]:
    """A field's metadata."""
    return {"help": help, "check": check, "secret": secret}


def in_range(lo: float, hi: float) -> Check:
    def check(v: Any) -> str | None:
        return None if lo <= v <= hi else f"a number from {lo:g} to {hi:g}"

    return check


def choice(*options: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in options else "one of " + ", ".join(repr(o) for o in options)

    return check


def did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def shown_value(value: Any, limit: int = 80) -> str:
    """A bad value as the message shows it: its repr, cut short (a 400-digit
    number or a pasted blob must not drown the one line)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SettingsProblem(ValueError):
    """One problem with one key; the caller turns it into its own ConfigError."""


def coerce(src: str, key: str, tp: Any, value: Any, *, secret: bool = False) -> Any:
    """``value`` as the field's type; raises SettingsProblem naming file and key."""
    shown = "(hidden)" if secret else shown_value(value)

    def bad(expected: str) -> SettingsProblem:
        return SettingsProblem(f"{src}: {key} = {shown} is not valid: expected {expected}")

    if tp is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("a whole number")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad("a string in quotes")
        return value
    # tuple[str, ...] or tuple[int, ...]
    inner = tp.__args__[0]
    if not isinstance(value, list):
        example = "[1, 2]" if inner is int else '["a", "b"]'
        raise bad(f"a list like {example}")
    for item in value:
        if inner is int and (isinstance(item, bool) or not isinstance(item, int)):
            raise bad("a list of whole numbers")
        if inner is str and not isinstance(item, str):
            raise bad('a list of strings like ["a", "b"]')
    return tuple(value)


def build_section(
    src: str, name: str, cls: type[T], table: Any, problems: list[str] | None = None
) -> T:
    """One table into its dataclass.

    Raises SettingsProblem at the first problem; with ``problems`` given,
    every problem is noted there and the key keeps its default (so a doctor
    can report them all at once).
    """

    def bad(message: str) -> None:
        if problems is None:
            raise SettingsProblem(message)
        problems.append(message)

    if not isinstance(table, dict):
        bad(f"{src}: [{name}] must be a table, not {type(table).__name__}")
        return cls()
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            bad(
                f"{src}: unknown key {name}.{key}{did_you_mean(key, list(fields))}; "
                f"[{name}] takes: {', '.join(fields)}"
            )
            continue
        full = f"{name}.{key}"
        secret = bool(fields[key].metadata.get("secret"))
        try:
            coerced = coerce(src, full, hints[key], value, secret=secret)
        except SettingsProblem as err:
            bad(str(err))
            continue
        check = fields[key].metadata.get("check")
        problem = check(coerced) if check else None
        if problem:
            shown = "(hidden)" if secret else shown_value(value)
            bad(f"{src}: {full} = {shown} is not valid: expected {problem}")
            continue
        kwargs[key] = coerced
    return cls(**kwargs)


def parse_toml(path: Path, raw: bytes) -> dict[str, Any]:
    """Parse a settings file's bytes (the caller read them); raises SettingsProblem."""
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SettingsProblem(f"{path}: the config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsProblem(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise SettingsProblem(f"{path}: not valid TOML: nested too deeply") from None


def resolve(explicit: str | os.PathLike[str] | None, env_value: str | None, default: Path) -> Path:
    """``--config FILE``, else the environment variable's value, else the default path."""
    if explicit:
        return Path(explicit)
    return Path(env_value) if env_value else default


def described(section: Any) -> dict[str, Any]:
    """A section as plain data, secrets masked."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if f.metadata.get("secret") and value:
            value = ["********"] * len(value) if isinstance(value, tuple) else "********"
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def help_texts(sections: Mapping[str, type[Any]]) -> dict[str, dict[str, str]]:
    return {
        name: {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}
        for name, cls in sections.items()
    }
