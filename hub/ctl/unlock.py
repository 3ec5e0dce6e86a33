"""Remote unlock, and the way out of "no answer": ``wait`` and ``cancel``.

One owner action never produces two unlocks:

- ``unlock`` publishes exactly one command, once, and never retries with a
  new ``cmd_id``. It is remembered (:mod:`hub.ctl.state`) before it is
  published, so even a Ctrl-C or a lost connection leaves a trace.
- Its validity is short (``--ttl``, default 60 s) and stated when sending.
  When no answer comes within ``--timeout``, kioskctl says whether the
  kiosk may still unlock and until when, and exits 2.
- A second ``unlock`` of the same site while an earlier one may still run
  is refused (or, on a terminal, asked about) unless ``--again``.
- ``wait CMD_ID`` keeps waiting for the answer until the validity ends; as
  an answer published while nobody listened is lost, it also looks for the
  command's events in the kiosk's trail (``logs``), when a key is set.
- ``cancel CMD_ID`` withdraws a command (a signed ``cancel``) and says in
  words what became of it.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Mapping
from typing import Any

from hub.ctl.commands import (
    Interrupted,
    NoAnswer,
    Outgoing,
    Refused,
    ResultReader,
    add_ttl_flags,
    check_timeout,
    check_ttl,
    print_json,
    refusal_text,
    send_command,
    validity,
    wait_result,
)
from hub.ctl.config import Settings, SubParsers
from hub.ctl.keys import load_private_key
from hub.ctl.mqtt import MAX_MESSAGE, BrokerError, Connection, UsageError
from hub.ctl.state import FINAL, CommandLog, Sent
from hub.ctl.watch import last_seq_of
from hub.ctl.words import FAILURES, Times, clean, quoted
from protocol import topics
from protocol.canonical import decode_json_object
from protocol.commands import MAX_LIFETIME_S, MAX_REASON_LEN
from protocol.errors import ValidationError
from protocol.orders import printable

#: after expiry an answer may still come: a door cycle the kiosk started
#: just before, then the publish
RESULT_GRACE_S = 40.0
#: events of the trail ``wait`` looks through for the command's outcome
HISTORY = 200
NO_LOGS = 2**53  # the largest since_log_seq a kiosk takes
_CMD_ID_TIME = re.compile(r"^[A-Za-z0-9_.]{1,16}-(\d{10})-[0-9a-f]{12}\Z")


def check_reason(text: str | None, *, required: bool) -> str:
    reason = (text or "").strip()
    if required and not reason:
        raise UsageError("--reason must say why the door is opened (it goes into the audit trail)")
    if len(reason) > MAX_REASON_LEN or not printable(reason):
        raise UsageError(f"--reason must be at most {MAX_REASON_LEN} printable characters")
    return reason


def check_cmd_id(cmd_id: str) -> str:
    if not topics.valid_id(cmd_id):
        raise UsageError(f"{cmd_id!r} is not a command id ([A-Za-z0-9_.-]{{1,64}})")
    return cmd_id


def _is_tty() -> bool:
    return sys.stdin.isatty()


def ask(question: str) -> bool:
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def confirm(question: str, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    if not _is_tty():
        raise UsageError(
            "refusing to unlock without confirmation: stdin is not a terminal; "
            "pass --yes to confirm from a script"
        )
    return ask(question)


def _earlier_text(e: Sent, times: Times) -> str:
    why = f", reason {quoted(e.reason)}" if e.reason else ""
    return (
        f"an earlier unlock of {e.site} has no answer yet ({e.cmd_id}, sent "
        f"{times.clock(e.issued_at)}{why}); it may still unlock the door until "
        f"{times.clock(e.expires_at)}"
    )


def _hints(cmd_id: str) -> str:
    return f"`kioskctl wait {cmd_id}` to keep waiting, `kioskctl cancel {cmd_id}` to withdraw it"


def allowed_to_send(
    args: argparse.Namespace, site: str, reason: str, earlier: list[Sent], times: Times
) -> bool:
    """The guard against a second unlock, then the usual confirmation."""
    if earlier:
        e = earlier[-1]
        text = _earlier_text(e, times)
        if args.again:
            print(f"warning: {text}; sending another one (--again)", file=sys.stderr)
        elif _is_tty() and not args.yes:
            print(f"warning: {text}", file=sys.stderr)
            print(f"({_hints(e.cmd_id)})", file=sys.stderr)
            return ask(f"Send a second unlock of {site} anyway? The door may open twice.")
        else:
            raise Refused(
                f"{text}. Not sending a second one: {_hints(e.cmd_id)}; "
                f"or pass --again to send another anyway"
            )
    return confirm(f"Unlock the door of {site} now (reason: {reason})?", args.yes)


def pending_text(site: str, cmd_id: str, expires_at: float | None, times: Times, head: str) -> str:
    """Whether the command may still run, and until when."""
    now = time.time()
    if expires_at is None:
        return (
            f"{head}; kioskctl does not know when {cmd_id} expires (at most "
            f"{MAX_LIFETIME_S:.0f} s after it was sent) — {_hints(cmd_id)}"
        )
    if now < expires_at:
        return (
            f"{head}; the kiosk may still unlock until {times.clock(expires_at)} — {_hints(cmd_id)}"
        )
    return (
        f"{head}; {cmd_id} expired at {times.clock(expires_at)}, so the kiosk will not run "
        f"it any more (unless its clock is behind); whether it did before: "
        f"kioskctl logs --site {site}"
    )


# -- outcomes -------------------------------------------------------------------


def unlock_outcome(site: str, cmd_id: str, result: Mapping[str, Any]) -> tuple[str, str]:
    """(state for the state file, sentence) from an unlock's result; Refused if not done."""
    if result["ok"] is True:
        body = result.get("result") or {}
        state = body.get("state", "done")
        if state == "done":
            return "done", f"{site}: door unlocked by {cmd_id}"
        raise Refused(f"{site} answered the unlock with state {clean(state, 32)}, not done")
    reason = result.get("reason")
    text = refusal_text(result)
    if reason in FAILURES:
        state, sentence = "failed", f"the unlock {cmd_id} failed at {site}: {text}"
    elif reason == "cancelled":
        state, sentence = "cancelled", f"{site} refused {cmd_id}: it was withdrawn by a cancel"
    else:
        state, sentence = "refused", f"{site} refused the unlock {cmd_id}: {text}"
    return state, sentence


def event_outcome(ev: Mapping[str, Any], cmd_id: str, times: Times) -> tuple[str, str] | None:
    """What an event of the trail says about ``cmd_id``: (state, sentence) or None."""
    detail = ev.get("detail")
    if not isinstance(detail, dict) or detail.get("cmd_id") != cmd_id:
        return None
    at = times.stamp(ev.get("ts"))
    if ev.get("type") == "door_unlocked" and detail.get("by") == "command":
        return "done", f"the door was unlocked for it at {at}"
    if ev.get("type") != "command":
        return None
    if detail.get("ok") is True:
        return "accepted", f"the kiosk accepted it at {at}"
    refusal = detail.get("refusal")
    if refusal in ("replayed", "retained"):
        return None  # a later copy was refused; says nothing about the first
    error = clean(detail.get("error") or refusal or "no reason given")
    if refusal in FAILURES:
        return "failed", f"it failed at {at}: {error}"
    if refusal == "cancelled":
        return "cancelled", f"it was refused at {at}: withdrawn by a cancel"
    return "refused", f"it was refused at {at}: {error}"


def _finish(
    log: CommandLog, site: str, cmd_id: str, result: Mapping[str, Any], *, json_out: bool
) -> int:
    if json_out:
        print_json(result)
    try:
        state, sentence = unlock_outcome(site, cmd_id, result)
    except Refused:
        log.set_state(cmd_id, "refused", time.time())
        raise
    log.set_state(cmd_id, state, time.time())
    if state != "done":
        raise Refused(sentence)
    if not json_out:
        print(sentence)
    return 0


# -- unlock ---------------------------------------------------------------------


def cmd_unlock(args: argparse.Namespace, settings: Settings) -> int:
    site = settings.need_site()
    reason = check_reason(args.reason, required=True)
    ttl, timeout = check_ttl(args.ttl), check_timeout(args.timeout)
    key = load_private_key(settings.need_key())
    times = Times(args.utc)
    log = CommandLog(settings.state_dir)
    if not allowed_to_send(args, site, reason, log.open_unlocks(site, time.time()), times):
        print("not unlocked", file=sys.stderr)
        return 1
    sent: Outgoing | None = None

    def remember(out: Outgoing) -> None:
        nonlocal sent
        sent = out
        entry = Sent(out.cmd_id, site, "unlock", out.issued_at, out.expires_at, reason)
        log.add(entry, time.time())

    try:
        with Connection(settings.broker, timeout=settings.timeout) as conn:
            out = send_command(
                conn, site, "unlock", {"reason": reason}, key, ttl=ttl, before_publish=remember
            )
            print(
                f"sent unlock {out.cmd_id} to {site}; {validity(out, times)}; "
                f"waiting up to {timeout:g} s for the answer",
                file=sys.stderr,
            )
            result = wait_result(conn, ResultReader(site, out.cmd_id), time.monotonic() + timeout)
    except BrokerError as err:
        if sent is None:
            raise
        raise BrokerError(
            pending_text(site, sent.cmd_id, sent.expires_at, times, f"{err} (after sending)")
        ) from None
    except KeyboardInterrupt:
        if sent is None:
            raise
        raise Interrupted(
            pending_text(site, sent.cmd_id, sent.expires_at, times, "interrupted")
        ) from None
    if result is None:
        head = f"no answer yet from {site} within {timeout:g} s"
        raise NoAnswer(pending_text(site, out.cmd_id, out.expires_at, times, head))
    return _finish(log, site, out.cmd_id, result, json_out=args.json)


# -- wait -----------------------------------------------------------------------


def guess_expiry(cmd_id: str) -> float | None:
    """The latest a command can expire, from the time in a kioskctl id."""
    m = _CMD_ID_TIME.match(cmd_id)
    return float(m.group(1)) + MAX_LIFETIME_S if m else None


class _Trail:
    """Reads the command's outcome from events: live ones and a ``logs`` answer."""

    def __init__(self, site: str, cmd_id: str, times: Times) -> None:
        self.site, self.cmd_id, self.times = site, cmd_id, times
        self.logs: ResultReader | None = None
        self.state: tuple[str, str] | None = None

    def take_event(self, ev: Any) -> None:
        if not isinstance(ev, dict):
            return
        found = event_outcome(ev, self.cmd_id, self.times)
        if found is not None and (self.state is None or self.state[0] == "accepted"):
            self.state = found

    def take(self, msg: Any) -> None:
        if self.logs is not None and msg.topic == self.logs.topic:
            page = self.logs.read(msg)
            events = page.get("events") if page and page["ok"] is True else None
            for ev in events if isinstance(events, list) else []:
                self.take_event(ev)
        elif msg.topic == topics.events(self.site):
            try:
                self.take_event(decode_json_object(msg.payload, max_bytes=MAX_MESSAGE))
            except ValidationError:
                return

    @property
    def final(self) -> bool:
        return self.state is not None and self.state[0] != "accepted"


def cmd_wait(args: argparse.Namespace, settings: Settings) -> int:
    cmd_id = check_cmd_id(args.cmd_id)
    log = CommandLog(settings.state_dir)
    entry = log.get(cmd_id)
    site = args.site or (entry.site if entry else None) or settings.need_site()
    times = Times(args.utc)
    if entry is not None and entry.state in FINAL:
        words = {"done": "it ran (the door was unlocked)", "cancelled": "it was withdrawn"}
        print(f"{site}: {cmd_id} is already settled: {words.get(entry.state, entry.state)}")
        return 0 if entry.state == "done" else 1
    expires = entry.expires_at if entry is not None else guess_expiry(cmd_id)
    now = time.time()
    if args.timeout is not None:
        timeout = check_timeout(args.timeout)
    elif expires is not None:
        timeout = max(1.0, expires + RESULT_GRACE_S - now)
    else:
        timeout = 60.0
    key = load_private_key(settings.key) if settings.key else None
    trail = _Trail(site, cmd_id, times)
    reader = ResultReader(site, cmd_id)
    until = f"valid until {times.clock(expires)}" if expires is not None else "expiry unknown"
    with Connection(settings.broker, timeout=settings.timeout) as conn:
        # Read the retained status before listening for the answer: reading it
        # consumes what else arrives meanwhile, and the answer must not be lost so.
        last_seq = last_seq_of(conn, site) if key is not None else None
        conn.subscribe([reader.topic, topics.events(site)])
        print(
            f"waiting up to {timeout:.0f} s for the answer to {cmd_id} from {site} ({until})",
            file=sys.stderr,
        )
        if key is not None:
            since = max(0, last_seq - HISTORY) if last_seq is not None else 0
            # events only: no log record has a seq that high
            trail_args = {"since_seq": since, "since_log_seq": NO_LOGS}
            logs = send_command(conn, site, "logs", trail_args, key)
            trail.logs = ResultReader(site, logs.cmd_id)
        else:
            print("(no --key: the audit trail is not searched for its outcome)", file=sys.stderr)
        deadline = time.monotonic() + timeout
        result = None
        while not trail.final and result is None:
            result = wait_result(
                conn, reader, min(deadline, time.monotonic() + 0.5), other=trail.take
            )
            if time.monotonic() >= deadline:
                break
    if result is not None:
        return _finish(log, site, cmd_id, result, json_out=args.json)
    if trail.state is not None:
        state, sentence = trail.state
        if state == "done":
            log.set_state(cmd_id, "done", time.time())
            print(f"{site}: {cmd_id} ran: {sentence} (from the audit trail; its answer was missed)")
            return 0
        if state != "accepted":
            log.set_state(cmd_id, state, time.time())
            raise Refused(f"{site}: {cmd_id} did not run: {sentence} (from the audit trail)")
        head = f"no answer yet from {site}: {sentence}, but has not reported it done"
    else:
        head = f"no answer from {site} within {timeout:.0f} s"
    raise NoAnswer(pending_text(site, cmd_id, expires, times, head))


# -- cancel ---------------------------------------------------------------------

CANCEL_STATES = {
    # state -> (the target's state, exit code, sentence)
    "cancelled": ("cancelled", 0, "withdrawn: {t} was pending and will not run"),
    "blocked": (
        "blocked",
        0,
        "withdrawn before it arrived: the kiosk has not seen {t}; if it comes later it is "
        "refused (cancelled)",
    ),
    "done": ("done", 1, "too late: {t} already ran"),
    "refused": ("refused", 0, "nothing to withdraw: the kiosk had refused {t}"),
    "failed": ("failed", 0, "nothing to withdraw: {t} had failed"),
}


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    target = check_cmd_id(args.cmd_id)
    reason = check_reason(args.reason, required=False)
    ttl, timeout = check_ttl(args.ttl), check_timeout(args.timeout)
    log = CommandLog(settings.state_dir)
    entry = log.get(target)
    site = args.site or (entry.site if entry else None) or settings.need_site()
    key = load_private_key(settings.need_key())
    times = Times(args.utc)
    cancel_args: dict[str, Any] = {"cmd_id": target}
    if reason:
        cancel_args["reason"] = reason

    def remember(out: Outgoing) -> None:
        entry = Sent(
            out.cmd_id, site, "cancel", out.issued_at, out.expires_at, reason, target=target
        )
        log.add(entry, time.time())

    with Connection(settings.broker, timeout=settings.timeout) as conn:
        sent = send_command(
            conn, site, "cancel", cancel_args, key, ttl=ttl, before_publish=remember
        )
        print(
            f"sent cancel {sent.cmd_id} for {target} to {site}; {validity(sent, times)}",
            file=sys.stderr,
        )
        result = wait_result(conn, ResultReader(site, sent.cmd_id), time.monotonic() + timeout)
    if result is None:
        expires = entry.expires_at if entry is not None else guess_expiry(target)
        head = (
            f"no answer to the cancel from {site} within {timeout:g} s; the kiosk gets "
            f"commands in order and may run {target} before it reads the cancel"
        )
        raise NoAnswer(pending_text(site, target, expires, times, head))
    if args.json:
        print_json(result)
    if result["ok"] is not True:
        log.set_state(sent.cmd_id, "refused", time.time())
        raise Refused(f"{site} refused the cancel: {refusal_text(result)}")
    log.set_state(sent.cmd_id, "done", time.time())
    body = result.get("result") or {}
    state = body.get("state")
    if body.get("target") not in (None, target) or state not in CANCEL_STATES:
        raise Refused(f"{site} answered the cancel with {clean(state, 32)!s}; not understood")
    target_state, code, sentence = CANCEL_STATES[state]
    log.set_state(target, target_state, time.time())
    if not args.json:
        print(f"{site}: {sentence.format(t=target)}")
    return code


def add_parsers(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "unlock",
        parents=[common],
        help="open the door once, remotely (signed owner command)",
        description="Sends one signed unlock, valid for --ttl seconds, and waits for the "
        "answer. The reason and the signing key's id go into the kiosk's audit trail. "
        "Without an answer it says until when the kiosk may still unlock; it never "
        "sends a second unlock by itself, and refuses to while an earlier one may still "
        "run (--again overrides). Exit 0 unlocked, 1 refused or failed, 2 no answer in "
        "time.",
    )
    p.add_argument("--site")
    p.add_argument(
        "--reason",
        required=True,
        help="why (recorded in the kiosk's audit trail with the key that signed)",
    )
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--again",
        action="store_true",
        help="send even though an earlier unlock of this site may still run",
    )
    add_ttl_flags(p)
    p.set_defaults(func="unlock")

    p = sub.add_parser(
        "wait",
        parents=[common],
        help="keep waiting for the answer to a command sent earlier",
        description="Waits for the answer to CMD_ID until its validity ends (or --timeout), "
        "and looks for its outcome in the kiosk's audit trail (needs --key). Exit 0 it "
        "ran, 1 refused or failed, 2 still no answer.",
    )
    p.add_argument("cmd_id", metavar="CMD_ID")
    p.add_argument("--site", help="default: the site it was sent to")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help=f"seconds to wait (default: until its validity ends, plus {RESULT_GRACE_S:.0f} s)",
    )
    p.add_argument("--json", action="store_true", help="print the kiosk's result as JSON")
    p.add_argument("--utc", action="store_true", help="show times in UTC, not local time")
    p.set_defaults(func="wait")

    p = sub.add_parser(
        "cancel",
        parents=[common],
        help="withdraw a command sent earlier (signed owner command)",
        description="Sends a signed cancel of CMD_ID and says what became of it. Exit 0 "
        "it will not run (withdrawn, or refused/failed already), 1 too late (it ran) or "
        "the cancel was refused, 2 no answer.",
    )
    p.add_argument("cmd_id", metavar="CMD_ID")
    p.add_argument("--site", help="default: the site it was sent to")
    p.add_argument("--reason", help="why (recorded in the audit trail)")
    add_ttl_flags(p)
    p.set_defaults(func="cancel")
