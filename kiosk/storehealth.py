"""The store's health as the doctor reports it: trail, rollbacks, retention, space.

:func:`store_health` looks at an open store and returns one doctor
:class:`~kiosk.health.Result` per check; :func:`check_store_health` is the
registered check (``kiosk doctor``). It only reads.

- ``store trail``: the kept trail verifies (kiosk.trail); an explained gap
  is a warning, a real break a failure;
- ``store start``: where the kept trail starts and why (nothing purged,
  purged after acknowledgement, freed on a full card);
- ``store rollback``: a warning when the trail holds a ``store_rollback``
  (the card lost events it had published);
- ``retention``: a warning when the latest retention pass was refused;
- ``store space``: free space on the card and the state of the reserve.

What may escape: StoreError from the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kiosk.config import Config
from kiosk.errors import StoreError
from kiosk.health import Result, check
from kiosk.store import Store
from kiosk.storefiles import Reserve, free_bytes
from kiosk.trail import verify_trail

RESTORE_FIX = (
    "keep a copy of the store with its -wal file, then restore the last backup "
    '(docs/install.md, "Backup and restore"); the hub keeps every published event'
)


HealthFinding = Result  # the doctor's own result type


def _latest(store: Store, types: tuple[str, ...]) -> dict[str, Any] | None:
    ev = store.latest_of(types)
    return ev.as_dict() if ev is not None else None


def store_health(store: Store) -> list[HealthFinding]:
    """The checks of the module docstring, in that order."""
    out: list[HealthFinding] = []
    report = verify_trail(store)
    if report.broken is not None:
        out.append(
            HealthFinding(
                "store trail",
                False,
                f"chain broken at seq {report.broken.seq}: {report.broken}",
                RESTORE_FIX,
            )
        )
    elif report.gaps:
        gaps = "; ".join(f"seqs {g.first} to {g.last} ({g.reason})" for g in report.gaps)
        out.append(
            HealthFinding(
                "store trail",
                True,
                f"{report.count} events verified; explained gaps: {gaps}",
                "the hub holds the missing seqs if it archived them before the loss",
                warning=True,
            )
        )
    else:
        out.append(HealthFinding("store trail", True, f"{report.count} events verified"))
    out.append(HealthFinding("store start", True, report.lines()[0]))
    if report.rollbacks:
        last = report.rollbacks[-1]
        out.append(
            HealthFinding(
                "store rollback",
                True,
                f"{len(report.rollbacks)} rollback(s); the last at seq {last.get('seq')}: the "
                f"card held seq {last.get('local_seq')} but had published "
                f"{last.get('published_seq')}",
                "check the SD card (power supply, fsck, replace it); see docs/reliability.md",
                warning=True,
            )
        )
    else:
        out.append(HealthFinding("store rollback", True, "none recorded"))
    latest = _latest(store, ("retention", "retention_refused"))
    if latest is not None and latest.get("type") == "retention_refused":
        d = latest.get("detail") or {}
        table = d.get("table")
        n = (d.get("would_delete") or {}).get(table, "?")
        out.append(
            HealthFinding(
                "retention",
                True,
                f"the last pass was refused at {latest.get('ts')}: it would have deleted "
                f"{n} {table} at once",
                "find out why so much is old (a clock that jumped?), then raise "
                "[store] max_purge_fraction for one pass if it is right",
                warning=True,
            )
        )
    else:
        when = f"last pass at {latest.get('ts')}" if latest else "nothing purged yet"
        out.append(HealthFinding("retention", True, when))
    free = free_bytes(store.path.parent)
    reserve = Reserve(store.path, 1)
    room = f"{free // (1024 * 1024)} MiB free on the card"
    if reserve.path.exists():
        out.append(HealthFinding("store space", True, f"{room}; space reserve in place"))
    elif store.last_seq() == 0:
        out.append(
            HealthFinding(
                "store space", True, f"{room}; the sync agent makes the space reserve at its start"
            )
        )
    else:
        out.append(
            HealthFinding(
                "store space",
                True,
                f"{room}; no space reserve (spent on a full card, or [store] reserve_kb = 0)",
                "free space on the card; the sync agent re-creates the reserve by itself",
                warning=True,
            )
        )
    return out


@check("store trail", 15)
def check_store_health(cfg: Config) -> list[Result]:
    """The store's trail, rollbacks, retention and space (after ``check_store`` made it)."""
    if not Path(cfg.store.path).exists():
        return []
    try:
        with Store(cfg.store.path, busy_timeout_ms=cfg.store.busy_timeout_ms) as store:
            return store_health(store)
    except StoreError:
        return []  # the store checks (writable, integrity, schema) say what is wrong
