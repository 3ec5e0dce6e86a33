"""Remote unlock (and its cancel) from the console: prepare, sign, send, follow.

The door-opening key is an ``owner`` key (docs/protocol.md, "Commands").
Who holds it (docs/hub.md, "Remote unlock: who holds the key"):

- **the owner's browser** (the default): a non-extractable Ed25519 key made
  by WebCrypto in her phone, registered on the console
  (:class:`BrowserKeys`) and listed in the kiosk's ``trust.owner_keys``.
  The hub prepares the command document, the browser signs its canonical
  JSON, and the hub only checks the signature with the protocol's own
  rules (:func:`protocol.commands.check_command`) and relays it. The hub
  never holds a key that opens a door.
- **the hub** (``console.hub_holds_owner_key``, a documented risk): the
  hub signs with ``console.owner_key``, for phones whose browser has no
  Ed25519.

A command's life: ``prepared`` (a document waiting for a signature) ->
``pending`` (published; the kiosk may run it until its ``expires_at`` and
never after) -> ``done``, ``refused`` (with the kiosk's reason),
``failed`` or ``cancelled``. A pending command past its ``expires_at``
without an answer is shown as ``expired``: it can no longer open the door.
Only one unlock per site may be pending at once, so nobody presses twice
and opens twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.db import Database
from hub.errors import RequestError
from protocol import topics
from protocol.canonical import b64url_decode, dumps
from protocol.commands import (
    MAX_REASON_LEN,
    CommandRefused,
    check_args,
    check_command,
    check_times,
    new_cmd_id,
)
from protocol.keys import Keyring, key_id, parse_public_key, public_key_text, sign_document
from protocol.orders import printable
from protocol.times import format_time

log = logging.getLogger(__name__)

UNLOCK_TTL_S = 120.0  # time to confirm on the phone and for the kiosk to act; at most 600
OPEN = ("prepared", "pending")
MAX_KEYS_PER_ACCOUNT = 10


class BrowserKeys:
    """Public keys of owners' browsers (the private halves never leave the phones)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, account: str, public_key: str, label: str, now: float) -> str:
        try:
            pub = parse_public_key(public_key)
        except ValueError as err:
            raise RequestError(f"not an Ed25519 public key: {err}", "public_key", 422) from None
        label = label.strip()[:64]
        if not printable(label):
            raise RequestError("the label has control characters", "label", 422)
        kid = key_id(pub)
        with self.db.atomic() as c:
            n = c.execute(
                "SELECT COUNT(*) FROM browser_keys WHERE account = ? AND revoked_at IS NULL",
                (account,),
            ).fetchone()[0]
            if n >= MAX_KEYS_PER_ACCOUNT:
                raise RequestError(
                    f"at most {MAX_KEYS_PER_ACCOUNT} keys per account; revoke one first",
                    "public_key",
                    409,
                )
            if c.execute("SELECT 1 FROM browser_keys WHERE key_id = ?", (kid,)).fetchone():
                raise RequestError("this key is registered already", "public_key", 409)
            c.execute(
                "INSERT INTO browser_keys(key_id, account, public_key, label, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (kid, account, public_key.strip(), label or kid, now),
            )
        return kid

    def revoke(self, account: str, kid: str, now: float) -> bool:
        with self.db.atomic() as c:
            cur = c.execute(
                "UPDATE browser_keys SET revoked_at = ? WHERE key_id = ? AND account = ? "
                "AND revoked_at IS NULL",
                (now, kid, account),
            )
            return cur.rowcount > 0

    def active(self, account: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM browser_keys WHERE revoked_at IS NULL"
        params: tuple[Any, ...] = ()
        if account is not None:
            sql += " AND account = ?"
            params = (account,)
        return [dict(r) for r in self.db.query(sql + " ORDER BY created_at", params)]


class CommandBook:
    """The console's remote commands in the archive file (see the module doc)."""

    def __init__(self, db: Database, keys: BrowserKeys, hub_owner_key: Ed25519PrivateKey | None):
        self.db = db
        self.keys = keys
        self.hub_owner_key = hub_owner_key

    # ----- reading --------------------------------------------------------------

    def _row(self, cmd_id: str) -> Mapping[str, Any]:
        row = self.db.one("SELECT * FROM console_commands WHERE cmd_id = ?", (cmd_id,))
        if row is None:
            raise RequestError("no such command", "cmd_id", 404)
        return dict(row)

    def view(self, cmd_id: str, now: float) -> dict[str, Any]:
        return self._view(self._row(cmd_id), now)

    @staticmethod
    def _view(row: Mapping[str, Any], now: float) -> dict[str, Any]:
        doc = json.loads(row["doc"])
        result = json.loads(row["result"]) if row["result"] else None
        state = str(row["state"])
        if state in OPEN and now >= float(row["expires_at"]):
            state = "expired" if state == "pending" else "abandoned"
        error = ""
        if isinstance(result, dict) and result.get("ok") is False:
            error = str(result.get("error", ""))[:300]
        return {
            "cmd_id": row["cmd_id"],
            "site": row["site"],
            "cmd": row["cmd"],
            "account": row["account"],
            "reason": str(doc.get("args", {}).get("reason", "")),
            "state": state,
            "refusal": row["refusal"] or "",
            "error": error,
            "signer": row["signer"],
            "target": row["target"],
            "created_at": float(row["created_at"]),
            "expires_at": float(row["expires_at"]),
            "expires_text": format_time(float(row["expires_at"])),
            "seconds_left": max(0, int(float(row["expires_at"]) - now)),
            "doc": doc,
        }

    def recent(self, site: str, now: float, limit: int = 10) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT * FROM console_commands WHERE site = ? ORDER BY created_at DESC LIMIT ?",
            (site, limit),
        )
        return [self._view(dict(r), now) for r in rows]

    def pending_unlock(self, site: str, now: float) -> dict[str, Any] | None:
        row = self.db.one(
            "SELECT * FROM console_commands WHERE site = ? AND cmd = 'unlock' "
            "AND state = 'pending' AND expires_at > ? ORDER BY created_at DESC LIMIT 1",
            (site, now),
        )
        return self._view(dict(row), now) if row else None

    # ----- preparing and signing --------------------------------------------------

    def prepare(
        self, site: str, cmd: str, args: Mapping[str, Any], account: str, now: float
    ) -> dict[str, Any]:
        """A command document waiting for its signature (stored ``prepared``)."""
        reason = args.get("reason", "")
        if not isinstance(reason, str) or not reason.strip():
            raise RequestError("say why the door must open", "reason", 422)
        if len(reason) > MAX_REASON_LEN or not printable(reason):
            raise RequestError(
                f"the reason is at most {MAX_REASON_LEN} characters, without control characters",
                "reason",
                422,
            )
        if cmd == "unlock":
            pending = self.pending_unlock(site, now)
            if pending is not None:
                raise RequestError(
                    f"an unlock by {pending['account']} is pending until "
                    f"{pending['expires_text']}: wait for its answer, or cancel it",
                    "reason",
                    409,
                )
        doc = {
            "v": 1,
            "site": site,
            "cmd_id": new_cmd_id(cmd, now),
            "cmd": cmd,
            "issued_at": format_time(now),
            "expires_at": format_time(now + UNLOCK_TTL_S),
            "args": {**dict(args), "reason": reason.strip(), "account": account},
        }
        target = args.get("cmd_id") if cmd == "cancel" else None
        with self.db.atomic() as c:
            c.execute(
                "INSERT INTO console_commands(cmd_id, site, cmd, account, doc, state, "
                "created_at, expires_at, target) VALUES (?, ?, ?, ?, ?, 'prepared', ?, ?, ?)",
                (
                    doc["cmd_id"],
                    site,
                    cmd,
                    account,
                    json.dumps(doc, ensure_ascii=False),
                    now,
                    # whole seconds, as the document says: what the kiosk will judge
                    float(int(now + UNLOCK_TTL_S)),
                    target,
                ),
            )
        return doc

    def prepare_cancel(self, target: str, account: str, now: float) -> dict[str, Any]:
        row = self._row(target)
        if row["cmd"] != "unlock" or row["state"] != "pending":
            raise RequestError("only a pending unlock can be cancelled", "cmd_id", 409)
        return self.prepare(
            str(row["site"]),
            "cancel",
            {"cmd_id": target, "reason": f"withdrawn from the console by {account}"},
            account,
            now,
        )

    def _check(
        self, row: Mapping[str, Any], signed: Mapping[str, Any], keyring: Keyring, now: float
    ) -> str:
        """The signer's key id after the protocol's own checks; RequestError otherwise."""
        try:
            command = check_command(
                signed, topic_cmd_id=str(row["cmd_id"]), site=str(row["site"]), keyring=keyring
            )
            check_times(command, now)
            check_args(command)
        except CommandRefused as err:
            raise RequestError(f"the signed command is not valid: {err}", "sig", 422) from None
        return command.signer.key_id

    def signed_by_browser(self, cmd_id: str, account: str, sig: str, now: float) -> bytes:
        """The document with the browser's ``sig``, checked; returns the payload to publish."""
        row = self._row(cmd_id)
        self._may_send(row, account, now)
        try:
            if len(b64url_decode(sig)) != 64:
                raise ValueError
        except ValueError:
            raise RequestError("sig must be a 64-byte Ed25519 signature", "sig", 422) from None
        keys = [k["public_key"] for k in self.keys.active(account)]
        if not keys:
            raise RequestError("this account has no registered browser key", "sig", 422)
        signed = {**json.loads(row["doc"]), "sig": sig}
        kid = self._check(row, signed, Keyring(owner_keys=keys), now)
        return self._sent(row, signed, f"browser:{kid}", now)

    def signed_by_hub(self, cmd_id: str, account: str, now: float) -> bytes:
        row = self._row(cmd_id)
        self._may_send(row, account, now)
        if self.hub_owner_key is None:
            raise RequestError(
                "this hub holds no owner key (console.hub_holds_owner_key is off): sign on "
                "your phone",
                "sig",
                409,
            )
        signed = sign_document(json.loads(row["doc"]), self.hub_owner_key)
        keyring = Keyring(owner_keys=[public_key_text(self.hub_owner_key.public_key())])
        kid = self._check(row, signed, keyring, now)
        return self._sent(row, signed, f"hub:{kid}", now)

    def _may_send(self, row: Mapping[str, Any], account: str, now: float) -> None:
        if row["account"] != account:
            raise RequestError("this command was prepared by another account", "cmd_id", 403)
        if row["state"] != "prepared":
            raise RequestError(f"this command was {row['state']} already", "cmd_id", 409)
        if now >= float(row["expires_at"]):
            raise RequestError("this command expired before it was signed", "cmd_id", 409)
        if row["cmd"] == "unlock":
            pending = self.pending_unlock(str(row["site"]), now)
            if pending is not None:
                raise RequestError(
                    f"an unlock by {pending['account']} is pending until {pending['expires_text']}",
                    "cmd_id",
                    409,
                )

    def _sent(
        self, row: Mapping[str, Any], signed: Mapping[str, Any], signer: str, now: float
    ) -> bytes:
        with self.db.atomic() as c:
            c.execute(
                "UPDATE console_commands SET state = 'pending', signer = ?, sent_at = ?, "
                "doc = ? WHERE cmd_id = ? AND state = 'prepared'",
                (signer, now, json.dumps(dict(signed), ensure_ascii=False), row["cmd_id"]),
            )
        return dumps(dict(signed))

    def topic(self, cmd_id: str) -> str:
        row = self._row(cmd_id)
        return topics.cmd(str(row["site"]), cmd_id)

    def unsent(self, cmd_id: str) -> None:
        """The broker did not take it: back to prepared, so it can be sent again."""
        with self.db.atomic() as c:
            c.execute(
                "UPDATE console_commands SET state = 'prepared', sent_at = NULL "
                "WHERE cmd_id = ? AND state = 'pending'",
                (cmd_id,),
            )

    # ----- answers ---------------------------------------------------------------

    def on_result(self, site: str, cmd_id: str, doc: Mapping[str, Any], now: float) -> bool:
        """Take a ``cmd_result`` for one of the console's commands; False if not ours."""
        row = self.db.one(
            "SELECT * FROM console_commands WHERE cmd_id = ? AND site = ?", (cmd_id, site)
        )
        if row is None or doc.get("cmd_id") != cmd_id:
            return False
        ok = doc.get("ok") is True
        result = doc.get("result") if isinstance(doc.get("result"), dict) else {}
        assert isinstance(result, dict)
        reason = str(doc.get("reason", ""))[:64] if not ok else ""
        if ok:
            state = "done"
        elif reason == "cancelled":
            state = "cancelled"
        elif reason in ("door_failed", "door_timeout"):
            state = "failed"
        else:
            state = "refused"
        body = json.dumps(
            {k: doc[k] for k in ("ok", "error", "reason", "result") if k in doc},
            ensure_ascii=False,
        )[:2000]
        with self.db.atomic() as c:
            c.execute(
                "UPDATE console_commands SET state = ?, result = ?, refusal = ?, "
                "finished_at = ? WHERE cmd_id = ?",
                (state, body, reason or None, now, cmd_id),
            )
            if row["cmd"] == "cancel" and ok and row["target"]:
                outcome = str(result.get("state", ""))
                target_state = {"cancelled": "cancelled", "blocked": "cancelled"}.get(outcome)
                if target_state:
                    c.execute(
                        "UPDATE console_commands SET state = ?, refusal = 'cancelled', "
                        "finished_at = ? WHERE cmd_id = ? AND state IN ('prepared', 'pending')",
                        (target_state, now, row["target"]),
                    )
        log.info("console command %s (%s): %s %s", cmd_id, row["cmd"], state, reason)
        return True
