"""``pickup-hub serve`` as systemd runs it: READY, WATCHDOG, STOPPING, SIGTERM exit 0."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.broker import Broker, free_port
from tests.support.hub import archive, write_config
from tests.support.procs import env

pytestmark = [pytest.mark.slow, pytest.mark.broker]


def test_notify_watchdog_and_clean_stop(tmp_path: Path, broker: Broker) -> None:
    cfg = write_config(
        tmp_path, ("shop-a",), mqtt_url=broker.url, listen=f"127.0.0.1:{free_port()}"
    )
    addr = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(20)
    e = env(NOTIFY_SOCKET=addr, WATCHDOG_USEC="1000000")
    e.pop("PICKUP_HUB_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--config", str(cfg)],
        stderr=subprocess.PIPE,
        env=e,
    )
    try:
        seen: list[str] = []
        while not any(m.startswith("READY=1") for m in seen):
            seen.append(sock.recv(4096).decode())
        while "WATCHDOG=1" not in seen:
            seen.append(sock.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in seen:
            seen.append(sock.recv(4096).decode())
        assert proc.wait(20) == 0
        assert proc.stderr is not None and b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


def test_taken_port_and_bad_key_are_one_line_errors(tmp_path: Path, broker: Broker) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = write_config(tmp_path, ("shop-a",), mqtt_url=broker.url, listen=f"127.0.0.1:{port}")
        e = env()
        e.pop("PICKUP_HUB_CONFIG", None)
        out = subprocess.run(
            [sys.executable, "-m", "hub.cli", "serve", "--config", str(cfg)],
            capture_output=True,
            text=True,
            env=e,
            timeout=60,
            check=False,
        )
        assert out.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in out.stderr
        assert "Traceback" not in out.stderr
    (tmp_path / "auditor.key").write_text("not a key")
    out = subprocess.run(
        [sys.executable, "-m", "hub.cli", "serve", "--config", str(cfg)],
        capture_output=True,
        text=True,
        env=e,
        timeout=60,
        check=False,
    )
    assert (
        out.returncode == 1 and "keys.auditor_key" in out.stderr and "Traceback" not in out.stderr
    )


def test_log_records_are_bounded(tmp_path: Path) -> None:
    a = archive(tmp_path, log_records_per_site=50)
    recs = [{"v": 1, "site": "shop-a", "seq": i, "message": "m"} for i in range(1, 201)]
    assert a.store_logs("shop-a", recs[:100]) == 100
    assert a.store_logs("shop-a", recs) == 100  # the first 100 were duplicates
    kept = a.logs("shop-a", 1000)
    assert len(kept) == 50 and b'"seq":200' in kept[-1]
    assert a.store_logs("elsewhere", recs) == 0
