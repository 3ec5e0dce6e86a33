"""The layering contract (docs/design.md, "Layering"), checked on the source.

Every import statement of every module counts, also those inside functions
(a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("protocol", "kiosk", "hardware", "sync", "hub")
DEVICE_LIBS = ("pygame", "gpiozero", "lgpio")
MQTT_LIBS = ("paho", "aiomqtt")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[module_name(path)] = path
    return out


def imports(path: Path, name: str) -> Iterator[str]:
    tree = ast.parse(path.read_text("utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            for alias in node.names:
                yield f"{target}.{alias.name}"


def top(name: str) -> str:
    return name.partition(".")[0]


GRAPH = {name: set(imports(path, name)) for name, path in modules().items()}


def offenders(source: str, forbidden: tuple[str, ...], *, exempt: str | None = None) -> list[str]:
    bad = []
    for name, targets in GRAPH.items():
        if not (name == source or name.startswith(source + ".")):
            continue
        if exempt and (name == exempt or name.startswith(exempt + ".")):
            continue
        for t in sorted(targets):
            if any(t == f or t.startswith(f + ".") for f in forbidden):
                bad.append(f"{name} imports {t}")
    return bad


def test_the_source_tree_is_what_the_contract_covers() -> None:
    assert {"protocol.keys", "kiosk.daemon", "kiosk.cli.shell", "hardware.board",
            "sync.agent", "hub.ctl.cli"} <= set(GRAPH)  # fmt: skip


def test_protocol_imports_nothing_of_ours() -> None:
    assert offenders("protocol", ("kiosk", "hardware", "sync", "hub", "tests")) == []


def test_the_kiosk_core_stays_pure() -> None:
    forbidden = ("hardware", "sync", "hub", "tests", *DEVICE_LIBS, *MQTT_LIBS)
    assert offenders("kiosk", forbidden, exempt="kiosk.cli") == []


def test_only_the_composition_root_wires_hardware_and_sync() -> None:
    wired = {
        top(t) for name, targets in GRAPH.items() if name.startswith("kiosk.cli") for t in targets
    }
    assert {"hardware", "sync"} <= wired  # the root is where they meet


def test_hardware_and_sync_never_import_each_other() -> None:
    assert offenders("hardware", ("sync", "hub", "tests", *MQTT_LIBS)) == []
    assert offenders("sync", ("hardware", "hub", "tests", *DEVICE_LIBS)) == []


def test_the_hub_never_imports_the_door() -> None:
    assert offenders("hub", ("hardware", "sync", "kiosk.cli", "tests", *DEVICE_LIBS)) == []


def test_kioskctl_runs_from_the_base_install() -> None:
    # the owner's laptop: no pygame, no gpiozero, none of the kiosk's code
    assert offenders("hub.ctl", ("kiosk", "hardware", "sync", *DEVICE_LIBS)) == []


def cycles() -> list[list[str]]:
    ours = set(GRAPH)

    def deps(name: str) -> set[str]:
        out = set()
        for target in GRAPH[name]:
            t = target
            while t and t not in ours:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
        return out

    edges = {n: deps(n) for n in ours}
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges[n]):
            # a package's __init__ re-exporting its modules is not a cycle of design
            if n.startswith(m + ".") or m.startswith(n + "."):
                continue
            if state.get(m) == 1:
                found.append([*stack[stack.index(m) :], m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(ours):
        if n not in state:
            visit(n)
    return found


def test_no_import_cycles() -> None:
    assert cycles() == []


@pytest.mark.parametrize("forbidden", ["../shared", "DESIGN.md", "STYLE.md", "PROTOCOL.md"])
def test_docstrings_cite_only_pages_in_the_repository(forbidden: str) -> None:
    hits = [
        str(p.relative_to(ROOT))
        for pkg in (*PACKAGES, "tests", "bench", "scripts", "systemd")
        for p in (ROOT / pkg).rglob("*")
        if p.is_file()
        and p.suffix in (".py", ".sh", ".service", ".toml", "")
        and p.name != "test_layering.py"
        and forbidden in p.read_text("utf-8", "replace")
    ]
    assert hits == []


def test_tests_and_benchmarks_share_helpers_only_through_tests_support() -> None:
    bad = []
    for folder in ("tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel.parts[:2] == ("tests", "support"):
                continue
            name = ".".join(rel.with_suffix("").parts)
            for target in imports(path, name):
                if target.startswith("tests.") and not target.startswith("tests.support"):
                    bad.append(f"{rel} imports {target}")
    assert bad == []
