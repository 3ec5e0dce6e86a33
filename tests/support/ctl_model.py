"""A kiosk's side of owner commands, in the simplest honest way, for kioskctl's tests.

Commands are judged with the protocol's own checks (:mod:`protocol.commands`)
against a real keyring, in the order docs/protocol.md gives; state lives in
memory; every command is a hash-chained ``command`` event with the detail
the kiosk writes (``cmd_id, cmd, ok, error, key_id, reason, account,
refusal``). It answers ``unlock``, ``cancel``, ``orders``, ``time``,
``logs`` and ``sync`` as issue 12 specifies them. The real kiosk's
implementation is tested against the same wire by the end-to-end tests.

``door``: ``"auto"`` unlocks at once; ``"hold"`` keeps unlocks pending until
:meth:`KioskModel.release` (a door daemon that has not taken them yet);
``"fail"`` fails them (``door_timeout``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from protocol.commands import (
    Command,
    CommandRefused,
    check_args,
    check_command,
    check_times,
    refusal,
    success,
)
from protocol.events import ZERO_HASH, build_event
from protocol.keys import Keyring
from protocol.times import format_time


class KioskModel:
    def __init__(
        self,
        site: str,
        *,
        owner_keys: Iterable[str] = (),
        hub_keys: Iterable[str] = (),
        auditor_keys: Iterable[str] = (),
        orders: dict[str, dict[str, Any] | None] | None = None,
        door: str = "auto",
        first_seq: int = 1,
        logs: list[dict[str, Any]] | None = None,
    ) -> None:
        self.site = site
        self.keyring = Keyring(
            hub_keys=list(hub_keys), owner_keys=list(owner_keys), auditor_keys=list(auditor_keys)
        )
        self.orders = dict(orders or {})
        self.door = door
        self.states: dict[str, str] = {}  # cmd_id -> pending/done/refused/failed/cancelled
        self.expiry: dict[str, float] = {}
        self.blocked: set[str] = set()
        self.floor: float | None = None
        self.events: list[dict[str, Any]] = []
        self.logs = list(logs or [])  # log records as published on log
        self._seq = first_seq - 1
        self._prev = ZERO_HASH
        self._lock = threading.Lock()
        self.publish: Callable[[str, dict[str, Any]], None] | None = None  # set by FakeKiosk

    # -- the trail --------------------------------------------------------------

    def record(
        self,
        type_: str,
        detail: dict[str, Any],
        order_id: str | None = None,
        *,
        ts: float | None = None,
        clock: str = "synced",
    ) -> None:
        self._seq += 1
        ev = build_event(
            site=self.site,
            seq=self._seq,
            prev_hash=self._prev,
            ts=time.time() if ts is None else ts,
            clock=clock,
            type_=type_,
            order_id=order_id,
            detail=detail,
        )
        self._prev = ev["hash"]
        self.events.append(ev)

    def _command_event(
        self, cmd_id: str, command: Command | None, err: CommandRefused | None
    ) -> None:
        detail: dict[str, Any] = {
            "cmd_id": cmd_id,
            "cmd": command.cmd if command else None,
            "ok": err is None,
            "error": "" if err is None else f"{err.reason}: {err}",
        }
        signer = (err.signer if err else None) or (command.signer if command else None)
        if signer is not None:
            detail["key_id"] = signer.key_id
        if command is not None and command.reason_text:
            detail["reason"] = command.reason_text
        if command is not None and isinstance(command.args.get("account"), str):
            detail["account"] = command.args["account"]
        if err is not None:
            detail["refusal"] = err.reason
        self.record("command", detail)

    # -- commands -------------------------------------------------------------------

    def __call__(self, doc: dict[str, Any], cmd_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return self._judge(doc, cmd_id)

    def _judge(self, doc: dict[str, Any], cmd_id: str) -> list[dict[str, Any]]:
        now = time.time()
        command = None
        try:
            command = check_command(doc, topic_cmd_id=cmd_id, site=self.site, keyring=self.keyring)
            if cmd_id in self.states:
                raise CommandRefused("replayed", signer=command.signer)
            check_times(command, now)
            args = check_args(command)
            if cmd_id in self.blocked:
                raise CommandRefused("cancelled", signer=command.signer)
        except CommandRefused as err:
            if command is not None and err.reason != "replayed":
                self.states[cmd_id] = "refused"
            self._command_event(cmd_id, command, err)
            return [refusal(cmd_id, err)]
        self.states[cmd_id] = "done"
        self.expiry[cmd_id] = command.expires_at
        self._command_event(cmd_id, command, None)
        handler = getattr(self, f"_cmd_{command.cmd}")
        return list(handler(command, args))

    def _cmd_unlock(self, command: Command, _args: dict[str, Any]) -> list[dict[str, Any]]:
        self.states[command.cmd_id] = "pending"
        if self.door == "hold":
            return []
        if self.door == "fail":
            return [self._fail(command.cmd_id)]
        return [self._unlocked(command.cmd_id)]

    def _unlocked(self, cmd_id: str) -> dict[str, Any]:
        self.states[cmd_id] = "done"
        self.record("door_unlocked", {"by": "command", "cmd_id": cmd_id})
        result = {"cmd": "unlock", "state": "done", "expires_at": format_time(self.expiry[cmd_id])}
        return success(cmd_id, result)

    def _fail(self, cmd_id: str) -> dict[str, Any]:
        self.states[cmd_id] = "failed"
        error = "door daemon not running"
        self.record(
            "command",
            {
                "cmd_id": cmd_id,
                "cmd": "unlock",
                "ok": False,
                "error": error,
                "refusal": "door_timeout",
            },
        )
        return {"cmd_id": cmd_id, "ok": False, "error": error, "reason": "door_timeout"}

    def release(self) -> list[str]:
        """The door daemon takes the pending unlocks that are still valid."""
        done = []
        with self._lock:
            for cmd_id, state in list(self.states.items()):
                if state == "pending" and self.expiry[cmd_id] > time.time():
                    body = self._unlocked(cmd_id)
                    done.append(cmd_id)
                    if self.publish is not None:
                        self.publish(cmd_id, body)
        return done

    def _cmd_cancel(self, command: Command, args: dict[str, Any]) -> list[dict[str, Any]]:
        target = args["cmd_id"]
        state = self.states.get(target)
        if state == "pending":
            self.states[target] = "cancelled"
            outcome = "cancelled"
        elif state is None:
            self.blocked.add(target)
            outcome = "blocked"
        else:
            outcome = {"done": "done", "refused": "refused", "failed": "failed"}.get(
                state, "cancelled"
            )
        return [success(command.cmd_id, {"cmd": "cancel", "target": target, "state": outcome})]

    def _cmd_orders(self, command: Command, args: dict[str, Any]) -> list[dict[str, Any]]:
        held = {oid: self.orders.get(oid) for oid in args["order_ids"]}
        return [success(command.cmd_id, {"cmd": "orders", "orders": held})]

    def _cmd_time(self, command: Command, _args: dict[str, Any]) -> list[dict[str, Any]]:
        self.floor = command.issued_at
        self.record("clock_set", {"floor": format_time(command.issued_at)})
        result = {"cmd": "time", "floor": format_time(command.issued_at), "clock": "synced"}
        return [success(command.cmd_id, result)]

    def _cmd_sync(self, command: Command, _args: dict[str, Any]) -> list[dict[str, Any]]:
        return [success(command.cmd_id, {"cmd": "sync"})]

    def _cmd_logs(self, command: Command, args: dict[str, Any]) -> list[dict[str, Any]]:
        wanted = [e for e in self.events if e["seq"] > args["since_seq"]]
        logs = [r for r in self.logs if r["seq"] > args["since_log_seq"]][-200:]
        pages = [wanted[i : i + 200] for i in range(0, len(wanted), 200)] or [[]]
        return [
            {
                "cmd_id": command.cmd_id,
                "ok": True,
                "page": n,
                "last": n == len(pages),
                "events": page,
                "logs": logs if n == 1 else [],
            }
            for n, page in enumerate(pages, 1)
        ]
