"""kioskctl's memory of the commands it sent: what may still run at a kiosk.

One owner action must never open the door twice. A command whose answer
never came may still run at the kiosk until it expires (the broker keeps it
for a kiosk that is offline), so ``unlock`` writes each command here
*before* publishing it, every answer updates it, and a second ``unlock``
while an earlier one may still run is refused or asked about
(:mod:`hub.ctl.unlock`).

The file is ``commands.json`` in the state directory (created 0700, the file
0600): a JSON object ``{"v": 1, "commands": [...]}``, each entry
``{"cmd_id", "site", "cmd", "issued_at", "expires_at", "reason", "state",
"target"}`` with times in Unix seconds and ``state`` one of :data:`STATES`.
Entries are kept for a week after they expire, at most :data:`MAX_ENTRIES`.
Concurrent kioskctl processes take an exclusive ``flock`` around each
read-modify-write, where the platform has one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from protocol.topics import valid_id, valid_site

try:
    import fcntl
except ImportError:  # Windows: no flock; one kioskctl at a time is then assumed
    fcntl = None  # type: ignore[assignment]

#: ``sent``: no outcome known, it may still run until it expires.
#: ``done``: it ran. ``refused``/``failed``: the kiosk did not carry it out.
#: ``cancelled``/``blocked``: withdrawn by a cancel; it will not run.
STATES = ("sent", "done", "refused", "failed", "cancelled", "blocked")
FINAL = frozenset(STATES) - {"sent"}
KEEP_S = 7 * 86400.0
MAX_ENTRIES = 200
#: the kiosk judges expiry by its own clock, which may run behind this
#: computer's; a command counts as possibly valid this much longer
CLOCK_MARGIN_S = 30.0


@dataclass(frozen=True)
class Sent:
    cmd_id: str
    site: str
    cmd: str
    issued_at: float
    expires_at: float
    reason: str = ""
    state: str = "sent"
    target: str | None = None  # for a cancel: the command it withdraws

    def may_still_run(self, now: float) -> bool:
        return self.state == "sent" and now < self.expires_at + CLOCK_MARGIN_S


def _entry(raw: Any) -> Sent | None:
    """One stored entry, or None if it is not one (a hand-edited file)."""
    if not isinstance(raw, dict):
        return None
    try:
        entry = Sent(
            cmd_id=str(raw["cmd_id"]),
            site=str(raw["site"]),
            cmd=str(raw["cmd"]),
            issued_at=float(raw["issued_at"]),
            expires_at=float(raw["expires_at"]),
            reason=str(raw.get("reason") or ""),
            state=str(raw.get("state") or "sent"),
            target=str(raw["target"]) if raw.get("target") else None,
        )
    except (KeyError, TypeError, ValueError):
        return None
    ok = valid_id(entry.cmd_id) and valid_site(entry.site) and entry.state in STATES
    return entry if ok else None


class CommandLog:
    """The state file; every method reads it fresh (other processes write it too)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "commands.json"
        self.warned = False

    def _warn(self, text: str) -> None:
        if not self.warned:
            print(f"warning: {text}", file=sys.stderr)
            self.warned = True

    def _read(self) -> list[Sent]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._warn(f"cannot read {self.path} ({exc}); earlier commands are not known")
            return []
        items = data.get("commands") if isinstance(data, dict) else None
        entries = [e for e in map(_entry, items if isinstance(items, list) else []) if e]
        return entries

    def _write(self, entries: list[Sent], now: float) -> None:
        keep = [e for e in entries if e.expires_at > now - KEEP_S][-MAX_ENTRIES:]
        body = json.dumps({"v": 1, "commands": [asdict(e) for e in keep]}, indent=1)
        tmp = self.path.with_name(f".commands.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body + "\n")
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if not self.directory.exists():
            self.directory.mkdir(parents=True, mode=0o700)
            os.chmod(self.directory, 0o700)
        fd = os.open(self.directory / "commands.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _change(self, now: float, change: Any) -> bool:
        """Apply ``change(entries) -> entries`` under the lock; False if it failed."""
        try:
            with self._locked():
                self._write(change(self._read()), now)
        except OSError as exc:
            self._warn(
                f"cannot write {self.path} ({exc.strerror or exc}); kioskctl will not "
                f"remember this command"
            )
            return False
        return True

    def add(self, entry: Sent, now: float) -> bool:
        return self._change(now, lambda es: [e for e in es if e.cmd_id != entry.cmd_id] + [entry])

    def set_state(self, cmd_id: str, state: str, now: float) -> bool:
        """Record an outcome; a final state is never moved back to ``sent``."""
        assert state in STATES

        def change(entries: list[Sent]) -> list[Sent]:
            out = []
            for e in entries:
                moved = e.cmd_id == cmd_id and not (state == "sent" and e.state in FINAL)
                out.append(replace(e, state=state) if moved else e)
            return out

        return self._change(now, change)

    def get(self, cmd_id: str) -> Sent | None:
        return next((e for e in self._read() if e.cmd_id == cmd_id), None)

    def open_unlocks(self, site: str, now: float) -> list[Sent]:
        """This site's unlocks that have no outcome yet and may still run."""
        return [
            e for e in self._read() if e.site == site and e.cmd == "unlock" and e.may_still_run(now)
        ]
