"""``kiosk doctor``: check an installation and say how to fix what is wrong.

Every config problem is reported at once; then every check the parts
registered (``kiosk.health``, ``hardware.health``, ``sync.health``) runs
on the config, with defaults standing in for keys that were wrong, so one
typo does not hide the rest. Prints a table (or JSON with ``--json``) and
returns 1 if any check failed, else 0. Safe on a live kiosk (see
``kiosk.health``); never prints a password.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from kiosk import config as config_mod
from kiosk import health
from kiosk.health import Result, config_results, render_table


def _load_checks() -> None:
    """Import the modules whose checks register themselves."""
    import hardware.health
    import kiosk.storehealth
    import sync.health

    del hardware, kiosk, sync


def run_checks(cfg_path: str | None) -> list[Result]:
    _load_checks()
    path = config_mod.resolve_path(cfg_path)
    cfg, problems = config_mod.load_all(cfg_path)
    results = config_results(path, problems, cfg)
    if cfg is None:
        return results
    return results + health.run(cfg)


def main(cfg_path: str | None, as_json: bool, out: TextIO | None = None) -> int:
    """Run every check, print the results, return 1 if any failed else 0.

    ``--json`` prints ``{"ok": bool, "checks": [{"name", "ok", "detail", "fix",
    "warning"}, ...]}``.
    """
    stream = out if out is not None else sys.stdout
    results = run_checks(cfg_path)
    ok = all(r.ok for r in results)
    if as_json:
        json.dump(
            {"ok": ok, "checks": [r.as_dict() for r in results]},
            stream,
            ensure_ascii=False,
            indent=2,
        )
        stream.write("\n")
    else:
        stream.write(render_table(results) + "\n")
    return 0 if ok else 1
