"""``kiosk``: the command line on the device (docs/protocol.md, "Command line").

Every subcommand loads the config the same way (``--config``, else
``$KIOSK_CONFIG``, else /etc/pickup-kiosk/kiosk.toml), prints a clear
one-line error instead of a stack trace, and returns an exit code:
0 ok, 1 the operation failed, 2 bad configuration or arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kiosk import __version__, logutil
from kiosk import config as config_mod
from kiosk.audit import Audit
from kiosk.clock import SystemClock, TrustedClock
from kiosk.config import Config
from kiosk.errors import ConfigError, KioskError, StoreError, ValidationError
from kiosk.orders import Intake, parse_documents, public_view
from kiosk.store import OrderRow, Store

log = logging.getLogger("kiosk")

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.prog != "kiosk":  # every subcommand also takes --config after its name
            self.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _open(cfg: Config) -> Store:
    return Store(cfg.store.path, busy_timeout_ms=cfg.store.busy_timeout_ms)


def _snapshot(cfg: Config, store: Store) -> Any:
    trust = cfg.clock.trust_system_clock
    from kiosk.clock import system_time_synchronized

    synced = trust == "always" or (trust == "auto" and system_time_synchronized())
    return TrustedClock(
        SystemClock(), store.clock_floor(), doc_floor=store.doc_floor(), synced=synced
    ).snapshot()


def _intake(cfg: Config, store: Store) -> Intake:
    return Intake(
        store,
        Audit(store, cfg.site.id),
        cfg.trust.keyring(),
        site=cfg.site.id,
        width=cfg.site.pickup_no_width,
        allow_unsigned=cfg.trust.allow_unsigned,
    )


# ----- config ---------------------------------------------------------------


def cmd_config_check(cfg: Config, args: argparse.Namespace) -> int:
    print(
        f"{cfg.source}: ok (site {cfg.site.id}, board {cfg.hardware.board}, "
        f"{'mqtt ' + cfg.mqtt.url if cfg.mqtt else 'offline'})"
    )
    if cfg.trust.allow_unsigned:
        print(
            "warning: trust.allow_unsigned = true accepts unsigned orders (lab bench only)",
            file=sys.stderr,
        )
    return EXIT_OK


def cmd_config_show(cfg: Config, args: argparse.Namespace) -> int:
    data = config_mod.describe(cfg)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"# effective configuration from {data.pop('source')}")
    for section, table in data.items():
        print(f"\n[{section}]")
        for key, value in table.items():
            print(f"{key} = {json.dumps(value, ensure_ascii=False)}")
    return EXIT_OK


# ----- orders ---------------------------------------------------------------


MAX_IMPORT_BYTES = 64 * 1024 * 1024  # about 30,000 orders; a larger file is refused whole


def _read_import(name: str) -> str:
    """The file's text, read at most MAX_IMPORT_BYTES + 1 bytes (so /dev/zero or a
    runaway pipe cannot exhaust memory); KioskError with one line otherwise."""
    try:
        if name == "-":
            raw = sys.stdin.buffer.read(MAX_IMPORT_BYTES + 1)
        else:
            with open(name, "rb") as f:
                raw = f.read(MAX_IMPORT_BYTES + 1)
    except IsADirectoryError:
        raise KioskError(f"cannot read {name}: it is a folder, not a file") from None
    except OSError as exc:
        raise KioskError(f"cannot read {name}: {exc.strerror or exc}") from None
    except MemoryError:
        raise KioskError(f"{name} is too large to import") from None
    if len(raw) > MAX_IMPORT_BYTES:
        raise KioskError(
            f"{name} is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB; split it "
            "(JSON lines can be cut anywhere between lines)"
        )
    if b"\0" in raw:
        raise KioskError(f"{name} is a binary file, not JSON text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KioskError(f"{name} is not UTF-8 text (bad byte at offset {exc.start})") from None


def cmd_orders_import(cfg: Config, args: argparse.Namespace) -> int:
    """Each document judged alone (docs/protocol.md, "Command line"); a defect met
    by one is its rejection with reason ``internal``, never a traceback."""
    try:
        text = _read_import(args.file)
    except KioskError as err:
        print(f"kiosk: {err}", file=sys.stderr)
        return EXIT_FAIL
    with Store(
        cfg.store.path, busy_timeout_ms=cfg.store.busy_timeout_ms, low_priority=True
    ) as store:
        intake = _intake(cfg, store)
        snap = _snapshot(cfg, store)
        try:
            docs = parse_documents(text)
        except ValidationError as err:
            intake.reject(snap, err, source="cli")
            intake.audit.flush_rejections(snap, force=True)
            print(f"kiosk: {args.file}: {err}; nothing imported", file=sys.stderr)
            return EXIT_FAIL
        except (RecursionError, MemoryError, ValueError) as exc:
            print(
                f"kiosk: {args.file}: cannot be split into documents ({type(exc).__name__})",
                file=sys.stderr,
            )
            return EXIT_FAIL
        counts = {"stored": 0, "ignored": 0, "rejected": 0, "forgotten": 0}
        batch = 500
        try:
            for start in range(0, len(docs), batch):
                chunk = [(d, None, None) for d in docs[start : start + batch]]
                for i, res in enumerate(intake.accept_many(chunk, snap, source="cli"), start + 1):
                    counts[res.outcome] += 1
                    if res.outcome in ("rejected", "ignored"):
                        name = res.order_id or "no valid order_id"
                        print(
                            f"document {i} ({name}): {res.outcome}: {res.message}", file=sys.stderr
                        )
        finally:
            intake.audit.flush_rejections(snap, force=True)
    print(f"{counts['stored']} stored, {counts['ignored']} ignored, {counts['rejected']} rejected")
    return EXIT_FAIL if counts["rejected"] else EXIT_OK


def cmd_orders_list(cfg: Config, args: argparse.Namespace) -> int:
    with _open(cfg) as store:
        orders = store.list_orders(args.status)
    if args.json:
        print(json.dumps([public_view(o) for o in orders], ensure_ascii=False))
        return EXIT_OK
    if not orders:
        print("no orders")
        return EXIT_OK
    print(f"{'no.':<6} {'status':<16} {'slot':<6} {'version':>7}  order")
    for o in orders:
        print(f"{o.pickup_no:<6} {o.status:<16} {o.slot or '-':<6} {o.version:>7}  {o.order_id}")
    return EXIT_OK


def _get_order(store: Store, order_id: str) -> OrderRow | None:
    order = store.get_order(order_id)
    if order is None:
        print(f"kiosk: no order {order_id!r} (kiosk orders list shows them)", file=sys.stderr)
    return order


def cmd_orders_show(cfg: Config, args: argparse.Namespace) -> int:
    with _open(cfg) as store:
        order = _get_order(store, args.order_id)
    if order is None:
        return EXIT_FAIL
    print(json.dumps(public_view(order), ensure_ascii=False, indent=2))
    return EXIT_OK


def cmd_orders_cancel(cfg: Config, args: argparse.Namespace) -> int:
    with _open(cfg) as store:
        order = _get_order(store, args.order_id)
        if order is None:
            return EXIT_FAIL
        snap = _snapshot(cfg, store)
        with store.atomic():
            store.put_order(
                OrderRow(**{**order.__dict__, "status": "cancelled", "updated_at": snap.now})
            )
            Audit(store, cfg.site.id).record(
                "order_cancelled",
                snap,
                order_id=order.order_id,
                detail={"by": "cli", "was": order.status},
            )
    print(f"order {args.order_id} cancelled: its code no longer opens the door")
    return EXIT_OK


def cmd_orders_code(cfg: Config, args: argparse.Namespace) -> int:
    from kiosk.sample import backup_code, current_code

    with _open(cfg) as store:
        order = _get_order(store, args.order_id)
        if order is None:
            return EXIT_FAIL
        now = _snapshot(cfg, store).now
    doc = {
        "pickup_no": order.pickup_no,
        "otp": {"secret": order.otp_secret, "digits": order.otp_digits, "period": order.otp_period},
    }
    code, left = current_code(doc, now)
    no = order.pickup_no
    if order.otp_digits > 6:
        short = no + code[len(no) :][-6:]
        print(f"{short}#  (or all {order.otp_digits}: {code}#; valid {left} s more)")
    else:
        print(f"{code}#  (valid {left} s more)")
    if order.backup_code:
        print(f"backup code: {backup_code(doc)}#")
    return EXIT_OK


# ----- events -----------------------------------------------------------------


def _print_event(ev: dict[str, Any], as_json: bool, body: str) -> None:
    if as_json:
        print(body, flush=True)
        return
    detail = ev.get("detail") or {}
    extra = " ".join(f"{k}={v}" for k, v in detail.items())
    print(
        f"{ev['seq']:>7} {ev['ts']} {ev['clock']:<9} {ev['type']:<16} "
        f"{ev.get('order_id') or '':<20} {extra}",
        flush=True,
    )


def cmd_events(cfg: Config, args: argparse.Namespace) -> int:
    with _open(cfg) as store:
        since = args.since
        while True:
            for row in store.iter_events(since):
                _print_event(row.as_dict(), args.json, row.body)
                since = row.seq
            if not args.follow:
                return EXIT_OK
            time.sleep(0.5)


def cmd_verify_log(cfg: Config, args: argparse.Namespace) -> int:
    """Exit 0 when every kept event verifies, explained gaps included (the
    retention anchor, a ``seq_gap`` after a rollback); 1 at a real break."""
    from kiosk.trail import verify_trail

    with _open(cfg) as store:
        report = verify_trail(store)
    for line in report.lines():
        print(line)
    if report.broken is not None:
        print(f"chain broken at seq {report.broken.seq}: {report.broken}", file=sys.stderr)
        return EXIT_FAIL
    if report.count:
        explained = f"; {len(report.gaps)} explained gap(s)" if report.gaps else ""
        print(
            f"ok: {report.count} events verified (seq {report.first_seq} to "
            f"{report.last_seq}{explained})"
        )
    else:
        print("ok: no events kept")
    return EXIT_OK


def cmd_backup(cfg: Config, args: argparse.Namespace) -> int:
    """A consistent copy, 0600 from its first byte (it holds the secrets)."""
    dest = Path(args.file)
    with _open(cfg) as store:
        try:
            store.backup_to(dest)
        except FileExistsError:
            print(f"kiosk: {dest} exists; give a new file name", file=sys.stderr)
            return EXIT_FAIL
        except StoreError:
            raise
        except OSError as exc:
            print(f"kiosk: cannot create {dest}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAIL
    print(f"store backed up to {dest} (consistent copy through SQLite's backup API)")
    return EXIT_OK


def cmd_security(cfg: Config, args: argparse.Namespace) -> int:
    from kiosk.security import bound, explain

    report = bound(cfg, args.orders, staff=args.staff)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(explain(report, cfg))
    return EXIT_OK


# ----- daemons ----------------------------------------------------------------


def cmd_door(cfg: Config, args: argparse.Namespace) -> int:
    from kiosk.cli.shell import run_door

    return run_door(cfg)


def cmd_sync(cfg: Config, args: argparse.Namespace) -> int:
    from kiosk.cli.shell import run_sync

    return run_sync(cfg)


def cmd_relock(cfg_path: str | None, args: argparse.Namespace) -> int:
    from hardware.board import relock

    try:
        hw = config_mod.load(cfg_path).hardware
    except ConfigError as err:
        # The door must relock even when someone broke the config.
        hw = config_mod.relay_fallback(cfg_path)
        print(
            f"kiosk relock: {err}; using relay pin {hw.relay_pin} "
            f"(active {'high' if hw.relay_active_high else 'low'})",
            file=sys.stderr,
        )
    relock(hw)  # HardwareError is reported by main() with exit 1
    print("relay line driven to locked")
    return EXIT_OK


def _count(text: str) -> int:
    """A whole number >= 0 for an option; argparse prints the message."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return n


def cmd_screenshots(cfg: Config, args: argparse.Namespace) -> int:
    from hardware.display import render_all

    out = Path(args.dir)
    try:
        paths = render_all(out)
    except OSError as err:
        print(f"kiosk: cannot write screenshots to {out}: {err.strerror or err}", file=sys.stderr)
        return EXIT_FAIL
    print(f"{len(paths)} screenshots written to {out}")
    return EXIT_OK


def _voice_dir(cfg_path: str | None, args: argparse.Namespace) -> Path:
    if args.dir:
        return Path(args.dir)
    return Path(config_mod.load(cfg_path).voice.dir)


def cmd_voice_build(cfg_path: str | None, args: argparse.Namespace) -> int:
    from kiosk import prompts

    out = _voice_dir(cfg_path, args)
    report = prompts.build(out, force=args.force)
    how = "trimmed and levelled with sox" if report.sox else "sox not installed: untrimmed"
    print(
        f"{out}: {report.written} prompts written, {report.kept} unchanged ({report.engine}; {how})"
    )
    return EXIT_OK


def cmd_voice_test(cfg_path: str | None, args: argparse.Namespace) -> int:
    """Play the idle prompt in both languages through the configured output."""
    from hardware.voice import Voice
    from kiosk.clock import SystemClock
    from kiosk.screens import Screen

    cfg = config_mod.load(cfg_path)
    voice_cfg = cfg.voice
    if args.dir:
        import dataclasses

        voice_cfg = dataclasses.replace(voice_cfg, dir=args.dir)
    voice = Voice(voice_cfg, clock=SystemClock())
    try:
        for lang in ("zh", "en"):
            before = len(voice.started)
            voice.say(Screen("idle", lang=lang))
            if len(voice.started) == before:
                print(f"kiosk voice test: nothing played ({lang}); see the log above")
                return EXIT_FAIL
            print("playing " + " + ".join(voice.started[-1]), flush=True)
            while voice.busy:
                time.sleep(0.05)
    finally:
        voice.close()
    return EXIT_OK


def cmd_doctor(cfg_path: str | None, args: argparse.Namespace) -> int:
    from kiosk.cli.doctor import main as doctor_main

    return int(doctor_main(cfg_path, args.json))


def cmd_run(cfg: Config | None, args: argparse.Namespace) -> int:
    if args.simulate and args.with_hub:
        from kiosk.cli.demo import run_demo

        return run_demo(cfg, args)
    from kiosk.cli.simulator import run_simulator

    return run_simulator(cfg, args)


# ----- parser -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kiosk", description="Pickup kiosk: the door, its store and its tools.")
    p.add_argument(
        "--config", help="config file (default: $KIOSK_CONFIG or /etc/pickup-kiosk/kiosk.toml)"
    )
    p.add_argument("--version", action="version", version=f"pickup-kiosk {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("config", help="check or show the configuration")
    csub = c.add_subparsers(dest="config_command", required=True, parser_class=_Parser)
    csub.add_parser("check", help="exit 0 if the config file is valid").set_defaults(
        func=cmd_config_check
    )
    show = csub.add_parser("show", help="print the effective config, secrets masked")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_config_show)

    o = sub.add_parser("orders", help="import, list, show or cancel orders")
    osub = o.add_subparsers(dest="orders_command", required=True, parser_class=_Parser)
    imp = osub.add_parser("import", help="store order documents (object, array or JSON lines)")
    imp.add_argument("file", help="a file, or - for standard input")
    imp.set_defaults(func=cmd_orders_import)
    lst = osub.add_parser("list", help="list orders (never their secrets)")
    lst.add_argument("--json", action="store_true")
    lst.add_argument(
        "--status", choices=["pending_payment", "paid", "ready", "collected", "cancelled"]
    )
    lst.set_defaults(func=cmd_orders_list)
    for name, func, text in (
        ("show", cmd_orders_show, "one order, without its secret"),
        ("cancel", cmd_orders_cancel, "cancel an order here, offline"),
        ("code", cmd_orders_code, "an order's current pickup code"),
    ):
        sp = osub.add_parser(name, help=text)
        sp.add_argument("order_id")
        sp.set_defaults(func=func)

    ev = sub.add_parser("events", help="print the audit trail")
    ev.add_argument("--since", type=_count, default=0, metavar="SEQ", help="only events after SEQ")
    ev.add_argument("--json", action="store_true", help="JSON lines, exactly as published")
    ev.add_argument("--follow", action="store_true", help="keep printing new events")
    ev.set_defaults(func=cmd_events)
    sub.add_parser("verify-log", help="check the event hash chain").set_defaults(
        func=cmd_verify_log
    )

    bak = sub.add_parser("backup", help="a consistent copy of the store (SQLite backup API)")
    bak.add_argument("file")
    bak.set_defaults(func=cmd_backup)

    sec = sub.add_parser("security", help="the chance random guessing opens the door in a night")
    sec.add_argument(
        "--orders", type=_count, default=500, metavar="N", help="active orders (default 500)"
    )
    sec.add_argument("--staff", type=_count, default=0, metavar="N", help="active staff codes")
    sec.add_argument("--json", action="store_true", help="the figures as one JSON object")
    sec.set_defaults(func=cmd_security)

    sub.add_parser("door", help="run the door daemon").set_defaults(func=cmd_door)
    sub.add_parser("sync", help="run the sync agent").set_defaults(func=cmd_sync)
    sub.add_parser(
        "relock", help="drive the relay line to locked (systemd ExecStopPost)"
    ).set_defaults(func=cmd_relock, raw_config=True)
    shots = sub.add_parser("screenshots", help="render every screen to PNG files")
    shots.add_argument("dir")
    shots.set_defaults(func=cmd_screenshots)
    vo = sub.add_parser("voice", help="build or test the spoken prompts")
    vsub = vo.add_subparsers(dest="voice_command", required=True, parser_class=_Parser)
    vb = vsub.add_parser("build", help="synthesise every prompt into DIR (espeak-ng, offline)")
    vb.add_argument("dir", nargs="?", help="where to write them (default: [voice] dir)")
    vb.add_argument("--force", action="store_true", help="remake files that look up to date")
    vb.set_defaults(func=cmd_voice_build, raw_config=True)
    vt = vsub.add_parser("test", help="play the idle prompt in both languages")
    vt.add_argument("dir", nargs="?", help="prompt folder (default: [voice] dir)")
    vt.set_defaults(func=cmd_voice_test, raw_config=True)
    doc = sub.add_parser("doctor", help="check this installation; the fix for each failure")
    doc.add_argument("--json", action="store_true")
    doc.set_defaults(func=cmd_doctor, raw_config=True)
    run = sub.add_parser("run", help="run the door (and sync when configured) in one process")
    run.add_argument(
        "--simulate",
        action="store_true",
        help="throwaway data, sample orders, simulated board and keypad",
    )
    run.add_argument("--broker", help="with --simulate: also sync with this MQTT broker URL")
    run.add_argument("--no-window", action="store_true", help="terminal only, no display window")
    run.add_argument(
        "--with-hub",
        action="store_true",
        help="with --simulate: also a local broker and the hub, orders made through the hub",
    )
    run.set_defaults(func=cmd_run, raw_config=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logutil.setup("INFO")
    try:
        if getattr(args, "raw_config", False):
            if args.func is cmd_run:
                cfg = config_mod.load(args.config) if (args.config or not args.simulate) else None
                return int(cmd_run(cfg, args))
            return int(args.func(args.config, args))
        cfg = config_mod.load(args.config)
        logutil.setup(cfg.log.level)
        return int(args.func(cfg, args))
    except ConfigError as err:
        print(f"kiosk: {err}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as err:
        print(f"kiosk: store: {err}", file=sys.stderr)
        return EXIT_FAIL
    except KioskError as err:
        print(f"kiosk: {err}", file=sys.stderr)
        return EXIT_FAIL
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] in DEVICE_MODULES:
            print(
                f"kiosk {args.command}: needs {err.name}, part of the kiosk's device extra: "
                "pip install 'pickup-kiosk[device]' (scripts/install.sh and scripts/run do)",
                file=sys.stderr,
            )
            return EXIT_FAIL
        raise
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


DEVICE_MODULES = ("pygame", "gpiozero", "lgpio")
