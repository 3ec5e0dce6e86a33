"""README.md and docs/ name only what exists: every backticked repository path, and
every ``kiosk``, ``kioskctl`` and ``pickup-hub`` command line with its options.

A new user copies these; a renamed file, a dropped subcommand or option, or a
misspelt one in the docs fails here (docs/owner.md's examples are also run
whole by tests/ctl/test_docs.py).
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.cli import build_parser as hub_parser
from hub.ctl.cli import build_parser as ctl_parser
from kiosk.cli.main import build_parser as kiosk_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PARSERS = {"kiosk": kiosk_parser, "kioskctl": ctl_parser, "pickup-hub": hub_parser}
TOP = {"protocol", "kiosk", "hardware", "sync", "hub", "tests", "bench", "scripts"}
TOP |= {"systemd", "docs", ".ci"}


def spans() -> Iterator[tuple[str, int, str]]:
    """(file, line, text) of every inline code span and every fenced command line."""
    for doc in DOCS:
        fenced, shell = False, False
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
                shell = line.strip().removeprefix("```") in ("sh", "console")
                continue
            name = doc.relative_to(ROOT).as_posix()
            if fenced:
                # commands: every line of a shell block, the "$ " lines of any other
                # (the rest of those is output, which may start with a word like kiosk)
                cmd = line.strip()
                if not shell and not cmd.startswith("$ "):
                    continue
                cmd = cmd.removeprefix("$ ").removeprefix("sudo -u pickup-kiosk ")
                if cmd.split(" ")[0] in PARSERS:
                    yield name, n, cmd
                continue
            for text in re.findall(r"`([^`\n]+)`", line):
                yield name, n, text


def tracked() -> set[str]:
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    files = set(out)
    return (
        files
        | {str(Path(f).parent) for f in files}
        | {str(p) for f in files for p in Path(f).parents}
    )


def test_every_backticked_repository_path_exists() -> None:
    known = tracked()
    missing = []
    for doc, line, text in spans():
        t = text.strip().removeprefix("./")
        if not re.fullmatch(r"[\w.\-/]+", t) or "/" not in t or t.split("/")[0] not in TOP:
            continue
        path = t.rstrip("/")
        if path not in known and not (ROOT / path).exists():
            missing.append(f"{doc}:{line}: `{text}`")
    assert not missing, "docs name files that are not in the repository:\n" + "\n".join(missing)


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(p: argparse.ArgumentParser) -> set[str]:
    return {s for a in p._actions for s in a.option_strings}


def check_command(words: list[str]) -> str | None:
    """None when ``words`` (a documented command line) parses its subcommands and
    options against the real parser; else what is wrong."""
    parser = PARSERS[words[0]]()
    options = _options(parser)
    path = [words[0]]
    for word in words[1:]:
        if word.startswith("-") and word != "-":  # "-": standard input
            opt = word.split("=", 1)[0]
            if opt not in options:
                return f"`{' '.join(path)}` has no option {opt}"
            continue
        subs = _subparsers(parser)
        if not subs:
            continue  # a positional argument (FILE, SITE, ...)
        if word not in subs:
            if re.fullmatch(r"[a-z][a-z-]*", word):
                return f"`{' '.join(path)}` has no subcommand {word!r} ({', '.join(subs)})"
            return None  # a placeholder such as ACTION, or prose after the command
        parser = subs[word]
        options |= _options(parser)  # options before the subcommand still count
        path.append(word)
    return None


def documented_commands() -> Iterator[tuple[str, int, list[str]]]:
    for doc, line, text in spans():
        # a shell pipe or list separates commands; a|b (no spaces) are alternatives
        for piece in re.split(r"\s+\\?\|\s+|\s*(?:&&|;|,)\s*", text):
            head = piece.strip().split(" ")[0]
            if head not in PARSERS:
                continue
            # [--opt] and [--opt ARG] become --opt
            part = re.sub(r"[\[\]]", " ", piece).replace("\\|", "|")
            try:
                words = shlex.split(part)
            except ValueError:
                words = part.split()
            alternatives = [words]
            for i, w in enumerate(words):
                if "|" in w and not w.startswith("-") and re.fullmatch(r"[a-z|-]+", w):
                    alternatives = [[*words[:i], alt, *words[i + 1 :]] for alt in w.split("|")]
                    break
            for alt in alternatives:
                yield doc, line, alt


def test_every_documented_command_and_option_exists() -> None:
    found = list(documented_commands())
    assert len(found) > 100, "the command scan found too little: has the docs' layout changed?"
    wrong = [f"{doc}:{line}: {err}" for doc, line, w in found if (err := check_command(w))]
    assert not wrong, "docs name commands or options that do not exist:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("pickup-hub verfy SITE", "no subcommand 'verfy'"),
        ("kiosk events --folow", "no option --folow"),
        ("kioskctl staff add NAME --number 0042 --colour red", "no option --colour"),
    ],
)
def test_the_checker_catches_a_wrong_command(line: str, problem: str) -> None:
    err = check_command(line.split())
    assert err is not None and problem in err


def test_the_checker_accepts_real_commands() -> None:
    for line in (
        "pickup-hub orders list --site S --status ready --json",
        "kiosk --config FILE orders import FILE",
        "kioskctl logs --site wuhan-caidian-01 --last 50",
    ):
        assert check_command(line.split()) is None, line


def test_every_documented_benchmark_option_exists() -> None:
    """``bench/X.py --opt`` in the docs: the script exists, takes --help and has --opt."""
    used: dict[str, set[str]] = {}
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for script, rest in re.findall(r"(bench/\w+\.py)([^#`\n]*)", text):
            used.setdefault(script, set()).update(re.findall(r"(?<!\w)--[a-z][a-z-]*", rest))
    assert len(used) >= 7, used  # every benchmark the docs run
    wrong = []
    for script, options in sorted(used.items()):
        out = subprocess.run(
            [sys.executable, script, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0 or "Traceback" in out.stderr:
            wrong.append(f"{script} --help: exit {out.returncode}\n{out.stderr[-500:]}")
            continue
        wrong += [f"{script} has no {opt}" for opt in sorted(options) if opt not in out.stdout]
    assert not wrong, "\n".join(wrong)
