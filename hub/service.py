"""``pickup-hub serve``: the composition root.

Components start in one order and stop in the reverse, each guarded so that
one failure is logged with context (docs/design.md):

1. the archive file (:mod:`hub.db`) and the books on it (archive, orders,
   staff codes, tokens, alerts), on one worker thread (:class:`hub.db.Runner`);
2. the signing keys (:mod:`hub.keys`);
3. the HTTP API (Starlette on uvicorn, on a socket bound here so that a
   taken port is a clear error, not an exit from inside uvicorn);
4. the MQTT link (:class:`hub.ingest.MqttLink`);
5. the timers: gap fetches, alert conditions, order and staff code
   publishing, Home Assistant state, the systemd watchdog;
6. alert delivery, in a loop of its own: a notification bot that hangs
   must not hold back the timers (orders waiting to be published, gap
   fetches, the watchdog).

systemd: ``READY=1`` once all are up, ``WATCHDOG=1`` from the timers loop
(a stalled loop gets the hub restarted), ``STOPPING=1`` on SIGTERM, which
stops everything in reverse and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from hub import console as console_parts
from hub import homeassistant
from hub.alerts import AlertBook, AlertEngine, Deliverer
from hub.archive import SqliteArchive
from hub.config import Config
from hub.db import Database, Runner
from hub.dispatch import Dispatcher, Outcome
from hub.gaps import GapFiller
from hub.ingest import MqttLink, Msg
from hub.keys import load_keys
from hub.orders import OrderBook
from hub.staff import StaffBook
from hub.tokens import Tokens
from hub.web import AppContext, create_app
from protocol import topics

log = logging.getLogger(__name__)

TICK_S = 1.0
#: HTTP requests in progress (and connections) beyond which uvicorn answers 503 at
#: once: far above what a shop's backend, its owners and customers need, far below
#: the file descriptors the hub has (hub.web.server.raise_file_limit), which keep the MQTT link,
#: the archive and the accept loop alive under a flood of slow connections.
HTTP_CONCURRENCY = 512


class _Once(logging.Filter):
    """Lets a message through at most once a minute (a flood must not flood the journal)."""

    def __init__(self, text: str, every_s: float = 60.0) -> None:
        super().__init__()
        self.text, self.every_s, self.last, self.dropped = text, every_s, -1e18, 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self.text not in record.getMessage():
            return True
        now = time.monotonic()
        if now - self.last < self.every_s:
            self.dropped += 1
            return False
        self.last = now
        if self.dropped:
            record.msg = f"{record.msg} (and {self.dropped} more in the last minute)"
            record.args = None
            self.dropped = 0
        return True


class Notifier:
    """systemd's notify protocol without libsystemd; a no-op outside systemd."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        self.address = env.get("NOTIFY_SOCKET", "")
        usec = env.get("WATCHDOG_USEC", "")
        self.interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None
        self._last = float("-inf")

    def send(self, message: str) -> None:
        if not self.address:
            return
        addr = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto(message.encode(), addr)
        except OSError as exc:
            log.warning("cannot notify systemd: %s", exc)

    def watchdog(self, mono: float) -> None:
        if self.interval is not None and mono - self._last >= self.interval:
            self._last = mono
            self.send("WATCHDOG=1")


def filters(cfg: Config) -> list[str]:
    out = []
    for site in cfg.site_ids:
        out += [
            topics.events(site),
            topics.status(site),
            topics.log(site),
            topics.cmd_result_filter(site),
        ]
    if cfg.homeassistant.enabled:
        out.append(homeassistant.birth_topic(cfg))
    return out


def bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it (Linux): without it a response written in two
    # parts waits for the client's delayed ACK, 40 ms per request on a kept-alive link.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {listen}: {exc.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class Service:
    """The running hub. ``clock`` and ``rng`` are injectable for tests."""

    def __init__(
        self,
        cfg: Config,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.rng = rng or random.Random()
        self.notifier = Notifier(env)
        self.stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._ha_dirty: set[str] = set(cfg.site_ids)
        self._ha_discovery = cfg.homeassistant.enabled

    # ----- start and stop -------------------------------------------------------

    def _build(self) -> None:
        cfg = self.cfg
        self.db = Database(cfg.hub.archive)
        self.keys = load_keys(cfg.keys.hub_key, cfg.keys.auditor_key)
        self.runner = Runner()
        self.archive = SqliteArchive(self.db, cfg.site_ids, cfg.limits)
        self.orders = OrderBook(self.db, cfg, self.keys.hub)
        self.staff = StaffBook(self.db, cfg, self.keys.hub)
        self.tokens = Tokens(self.db)
        self.alerts = AlertBook(self.db)
        self.engine = AlertEngine(self.alerts, cfg, self.clock())
        self.gaps = GapFiller(cfg.gaps, self.keys.auditor, self.rng)
        self.console = console_parts.build(cfg, self.db, self._publish_command)
        self.dispatcher = Dispatcher(
            cfg,
            self.archive,
            self.orders,
            self.alerts,
            self.engine,
            self.gaps,
            commands=self.console.commands,
            timeline=self.console.timeline,
        )
        self.deliverer = Deliverer(cfg, self.alerts, self.runner.call, self.rng)
        self.ctx = AppContext(
            cfg=cfg,
            archive=self.archive,
            orders=self.orders,
            tokens=self.tokens,
            alerts=self.alerts,
            runner=self.runner,
            clock=self.clock,
            orders_changed=self._wake.set,
            alerts_changed=self._alerts_changed,
            extra={"gaps": self.gaps, "dispatcher": self.dispatcher},
            console=self.console,
            staff=self.staff,
            staff_changed=self._wake.set,
        )
        self.link = MqttLink(
            cfg.mqtt, filters(cfg), self._handle, on_connect=self._on_connect, rng=self.rng
        )

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; return the exit code. Start-up errors escape."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        self._build()
        logging.getLogger("asyncio").addFilter(_Once("out of system resource"))
        logging.getLogger("uvicorn.error").addFilter(_Once("Exceeded concurrency limit"))
        import uvicorn

        class _Server(uvicorn.Server):
            def capture_signals(self) -> Any:  # the service owns the signals
                return contextlib.nullcontext()

        from hub.web import server as http_guard

        http_guard.raise_file_limit()
        sock = bind(self.cfg.hub.listen)
        server = _Server(
            uvicorn.Config(
                create_app(self.ctx),
                lifespan="off",
                log_level="warning",
                access_log=False,
                # idle and slow-head connections are closed, their number bounded
                http=http_guard.protocol(per_address=not self.cfg.console.trust_forwarded_for),
                limit_concurrency=HTTP_CONCURRENCY,
            )
        )
        tasks: list[tuple[str, asyncio.Task[Any]]] = []
        try:
            tasks.append(("http", asyncio.create_task(server.serve(sockets=[sock]))))
            tasks.append(("mqtt", asyncio.create_task(self.link.run(self.stop))))
            tasks.append(("timers", asyncio.create_task(self._timers())))
            tasks.append(("alert delivery", asyncio.create_task(self._deliveries())))
            self.notifier.send("READY=1\nSTATUS=archiving " + ", ".join(self.cfg.site_ids))
            log.info(
                "pickup-hub serving %d site(s); API on http://%s",
                len(self.cfg.site_ids),
                self.cfg.hub.listen,
            )
            await self.stop.wait()
        finally:
            self.notifier.send("STOPPING=1")
            self.stop.set()
            self.console.live.close()  # open pages' streams end, so uvicorn can stop
            server.should_exit = True
            for name, task in reversed(tasks):
                try:
                    await asyncio.wait_for(task, timeout=10)
                except (TimeoutError, asyncio.CancelledError):
                    task.cancel()
                except Exception:
                    log.exception("the %s component failed while stopping", name)
            sock.close()
            self.runner.close()
            self.db.close()
            log.info("pickup-hub stopped")
        return 0

    # ----- MQTT -----------------------------------------------------------------

    async def _handle(self, batch: list[Msg]) -> None:
        birth = homeassistant.birth_topic(self.cfg) if self.cfg.homeassistant.enabled else None
        if birth is not None:
            if any(m.topic == birth and m.payload == b"online" for m in batch):
                self._ha_discovery = True
                self._ha_dirty |= set(self.cfg.site_ids)
                self._wake.set()
            batch = [m for m in batch if m.topic != birth]
        if not batch:
            return
        outcome = await self.runner.call(self.dispatcher.process, batch, self.clock())
        self._after(outcome)

    def _after(self, outcome: Outcome) -> None:
        self._ha_dirty |= outcome.status_changed | outcome.sites
        if outcome.orders_changed or outcome.alerts_changed or outcome.status_changed:
            self._wake.set()
        self._tell_pages(outcome)

    def _tell_pages(self, outcome: Outcome) -> None:
        """What open console pages must fetch again (docs/hub.md, "The console")."""
        names = {f"site:{s}" for s in outcome.events | outcome.sites | outcome.status_changed}
        names |= {f"cmd:{c}" for c in outcome.commands}
        if outcome.status_changed or outcome.events:
            names.add("sites")
        if outcome.alerts_changed:
            names.add("alerts")
        if outcome.orders_changed:
            names.add("orders")
        self.console.live.changed(names)

    async def _publish_command(self, topic: str, payload: bytes) -> bool:
        return await self.link.publish(topic, payload, retain=False)

    def _alerts_changed(self) -> None:
        self._ha_dirty |= set(self.cfg.site_ids)
        self._wake.set()

    async def _on_connect(self) -> None:
        if not self.link.session_present:
            # A broker without our session (restarted without persistence, or
            # the session expired) may have lost every retained order and staff
            # code: publish them again (a kiosk skips an identical document).
            n = await self.runner.call(self.orders.republish_all)
            n += await self.runner.call(self.staff.republish_all)
            if n:
                log.info("the broker kept no session for the hub: publishing %d documents again", n)
        self._ha_discovery = self.cfg.homeassistant.enabled
        self._ha_dirty |= set(self.cfg.site_ids)
        self._wake.set()

    # ----- timers ---------------------------------------------------------------

    async def _timers(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=TICK_S)
            self._wake.clear()
            self.notifier.watchdog(time.monotonic())
            for name, step in self._steps():
                try:
                    await step
                except Exception:
                    log.exception("the hub's %s step failed; retrying at the next tick", name)

    def _steps(self) -> Iterator[tuple[str, Any]]:
        yield "gap and alert", self._tick()
        yield "order publishing", self._publish_orders()
        yield "staff code publishing", self._publish_staff()
        yield "home assistant", self._home_assistant()

    async def _deliveries(self) -> None:
        """Alert delivery, apart from the timers (see the module doc)."""
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=TICK_S)
            try:
                await self.deliverer.run_once(self.clock())
            except Exception:
                log.exception("alert delivery failed; retrying in a moment")

    async def _tick(self) -> None:
        outcome = await self.runner.call(self.dispatcher.tick, self.clock())
        self._ha_dirty |= outcome.sites
        self._tell_pages(outcome)
        for topic, payload, retain in outcome.publish:
            await self.link.publish(topic, payload, retain=retain)

    async def _publish_orders(self) -> None:
        if not self.link.connected.is_set():
            return
        for site, oid, version, topic, payload in await self.runner.call(self.orders.unpublished):
            if not await self.link.publish(topic, payload, retain=True):
                return
            await self.runner.call(self.orders.published, site, oid, version)

    async def _publish_staff(self) -> None:
        """As orders: stored first, published retained when the broker takes them."""
        if not self.link.connected.is_set():
            return
        for site, sid, version, topic, payload in await self.runner.call(self.staff.unpublished):
            if not await self.link.publish(topic, payload, retain=True):
                return
            await self.runner.call(self.staff.published, site, sid, version)

    async def _home_assistant(self) -> None:
        if not self.cfg.homeassistant.enabled or not self.link.connected.is_set():
            return
        if self._ha_discovery:
            for topic, payload, retain in homeassistant.discovery(self.cfg):
                if not await self.link.publish(topic, payload, retain=retain):
                    return
            self._ha_discovery = False
        dirty, self._ha_dirty = self._ha_dirty, set()
        for site in sorted(dirty):
            status = await self.runner.call(self.archive.status, site)
            kinds = await self.runner.call(self.dispatcher.active_kinds, site)
            for topic, payload, retain in homeassistant.state(
                self.cfg, site, status[0] if status else None, kinds
            ):
                if not await self.link.publish(topic, payload, retain=retain):
                    self._ha_dirty.add(site)
                    return


def serve(cfg: Config) -> int:
    service = Service(cfg)
    rc = asyncio.run(service.run())
    if service.deliverer.stuck():
        # Everything is stopped and the archive closed; only a notification
        # still hangs on a thread of Apprise's pool, which the interpreter
        # would wait for at exit, for ever (systemd would SIGKILL us).
        log.warning("a notification was still being sent; exiting without waiting for it")
        logging.shutdown()
        os._exit(rc)
    return rc
