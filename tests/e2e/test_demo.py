"""The README's run command, as a person runs it: broker, hub and simulated kiosk together.

``scripts/run`` ends in ``kiosk run --simulate --with-hub``; this runs that
command as a real process, checks it prints what README.md shows, logs in to
the console with the printed demo login, types a live code it printed, and
checks the door opened, the hub archived it, and everything stopped on ``q``.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from tests.support.polling import wait_for
from tests.support.procs import env

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
#: what differs on every run: ports, the token, link tokens, codes, seconds left
VARYING = [
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<PORT>"),
    (re.compile(r"ph_[A-Za-z0-9_-]{43}"), "ph_<TOKEN>"),
    (re.compile(r"/c/[A-Za-z0-9_-]{32}"), "/c/<LINK>"),
    (re.compile(r"\b\d{9}#"), "<CODE>#"),
    (re.compile(r"\b\d{11}#"), "<CODE8>#"),
    (re.compile(r"\(\s*\d+ s\)"), "(<N> s)"),
]


def normalized(line: str) -> str:
    for pattern, placeholder in VARYING:
        line = pattern.sub(placeholder, line)
    return line.rstrip()


def readme_output() -> list[str]:
    """The quick start's shown output block, as README.md has it."""
    m = re.search(r"```text\n(console:.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert m, "README.md lost the quick start's output"
    return [normalized(x) for x in m.group(1).splitlines()]


def in_order(wanted: list[str], printed: list[str]) -> list[str]:
    """The wanted lines not found in ``printed`` in this order (empty: all were)."""
    rest = iter(printed)
    return [w for w in wanted if not any(w == p for p in rest)]


def log_in(console: str) -> tuple[urllib.request.OpenerDirector, str]:
    """Log in with the printed demo login as a browser does: the session, the Sites page."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(console + "login", timeout=10) as r:
        csrf = re.search(r'name="csrf" value="([^"]+)"', r.read().decode())
    assert csrf, "the login form has no CSRF field"
    form = {"csrf": csrf.group(1), "next": "/console/", "name": "demo"}
    form["password"] = "pickup-demo"
    body = urllib.parse.urlencode(form).encode()
    with opener.open(console + "login", data=body, timeout=10) as r:
        assert r.status == 200 and r.url.endswith("/console/"), r.url
        return opener, str(r.read().decode())


class Reader:
    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self.q: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)


def test_the_whole_system_runs_and_a_sample_code_opens_the_door(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk.cli", "run", "--simulate", "--with-hub", "--no-window"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
        cwd=tmp_path,
    )
    out, err = Reader(proc.stdout), Reader(proc.stderr)
    try:
        wait_for(lambda: "ready            slot B3" in out.text(), 60, "the hub's orders")
        api = re.search(r"hub API:\s+(\S+)\s+\(token: (\S+)\)", out.text())
        assert api, out.text()
        console = re.search(r"console:\s+(\S+)\s+\(log in as demo / pickup-demo\)", out.text())
        assert console, out.text()
        with urllib.request.urlopen(console.group(1), timeout=5) as r:  # the login page
            assert "pickup-demo" not in r.read().decode()  # the page does not leak the login
            assert r.status == 200
        session, sites = log_in(console.group(1))
        assert "demo-site" in sites and "demo" in sites
        tonight = console.group(1) + "sites/demo-site/tonight"
        with session.open(tonight, timeout=10) as r:
            assert "李*云" not in r.read().decode()  # nobody has come yet
        # README.md shows the output as it is (every placeholder aside), once all four
        # orders' codes are printed
        wait_for(lambda: re.search(r"\d{9}#.*paid\s+slot -", out.text()), 60, "the codes")
        printed = [normalized(x) for x in out.text().replace("\r", "").splitlines()]
        missing = in_order(readme_output(), printed)
        assert not missing, "README.md shows lines `kiosk run` did not print:\n" + "\n".join(
            missing
        )
        link = re.search(r"\s+\d+\s+\S+\s+ready\s+(http://\S+/c/\S+)", out.text())
        assert link, out.text()
        with urllib.request.urlopen(link.group(1), timeout=5) as r:  # a customer's page
            assert r.status == 200
            assert "B3" in r.read().decode()
        data_dir = re.search(r"Data directory \(deleted on exit\): (\S+)", out.text())
        assert data_dir
        assert proc.stdin is not None

        def ready_code() -> str:
            for line in reversed(out.lines):
                m = re.match(r"\s+(\d{9})#  \(all 8: \d{11}#\)  ready\s+slot B3", line)
                if m:
                    return m.group(1)
            raise AssertionError("no live code printed")

        proc.stdin.write(ready_code() + "#")
        proc.stdin.flush()
        wait_for(lambda: "[relay on" in out.text(), 30, "the relay")
        proc.stdin.write("oc")  # in and out of the door
        proc.stdin.flush()

        def archived() -> list[dict[str, object]]:
            req = urllib.request.Request(
                f"{api.group(1)}/sites/demo-site/events?since=0",
                headers={"Authorization": f"Bearer {api.group(2)}"},
            )
            with urllib.request.urlopen(req, timeout=5) as r:
                body = json.loads(r.read())
            items = body["events"] if isinstance(body, dict) else body
            return [e for e in items if e.get("type") == "order_collected"]

        wait_for(archived, 60, "the hub to archive the collection")
        # "the entry appears in Tonight": DEMO-0001 is 李少云's, masked as on the door
        with session.open(tonight, timeout=10) as r:
            assert "李*云" in r.read().decode()
        proc.stdin.write("q")
        proc.stdin.flush()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err.text()[-3000:]
    assert not Path(data_dir.group(1)).exists()  # the throwaway folder is gone
    # the broker and the hub stopped with it
    left = subprocess.run(
        ["pgrep", "-f", data_dir.group(1)], capture_output=True, text=True, check=False
    )
    assert left.stdout.strip() == ""
    assert "Traceback" not in err.text()
