"""What a person sees running ``kiosk door`` on the simulated board, as real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.otp import pickup_code
from tests.support.polling import wait_for
from tests.support.procs import env, events, kiosk, signed_orders, write_config

pytestmark = pytest.mark.slow


def start(cfg: Path, *, prelude: str = "") -> subprocess.Popen[str]:
    e = env()
    e.pop("XDG_RUNTIME_DIR", None)  # as under systemd or a bare ssh session
    code = f"{prelude}\nimport sys\nfrom kiosk.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, "--config", str(cfg), "door"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=e,
    )


def pickup(tmp_path: Path, prelude: str = "") -> tuple[str, str, list[dict]]:
    hub = Ed25519PrivateKey.generate()
    cfg = write_config(tmp_path, hub, extra='[display]\nenabled = true\ndriver = "dummy"\n')
    cfg.write_text(cfg.read_text().replace("[display]\nenabled = false\n", ""))
    doc = signed_orders(hub, 1)[0]
    (tmp_path / "o.json").write_text(json.dumps(doc))
    assert kiosk("orders", "import", str(tmp_path / "o.json"), config=cfg).returncode == 0
    proc = start(cfg, prelude=prelude)
    try:
        wait_for(lambda: any(e["type"] == "boot" for e in events(cfg)), 30)
        assert proc.stdin is not None
        code = pickup_code(doc["pickup_no"], doc["otp"]["secret"], __import__("time").time())
        proc.stdin.write(code + "#")
        proc.stdin.flush()
        wait_for(lambda: any(e["type"] == "door_unlocked" for e in events(cfg)))
        proc.stdin.write("o")
        proc.stdin.flush()
        wait_for(lambda: any(e["type"] == "door_opened" for e in events(cfg)))
        proc.stdin.write("c")
        proc.stdin.flush()
        wait_for(lambda: any(e["type"] == "order_collected" for e in events(cfg)))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out, err, events(cfg)


def test_kiosk_door_on_the_sim_board_says_what_happens_without_sdl_noise(tmp_path: Path) -> None:
    out, err, _ = pickup(tmp_path)
    # the screens as text, following the door, and the devices as they change
    assert "门已解锁" in out and "取好货后，请随手关门" in out
    assert "[relay on" in out and "[led unlocked]" in out
    assert "[buzzer accepted]" in out and "[buzzer off]" in out
    assert "XDG_RUNTIME_DIR" not in out + err
    assert "Traceback" not in err


def test_without_a_cjk_font_the_door_still_opens_in_english(tmp_path: Path) -> None:
    prelude = (
        "import hardware.fonts as f, hardware.display as d\n"
        "f.find_cjk_font = d.find_cjk_font = lambda *a, **k: None"
    )
    out, err, evs = pickup(tmp_path, prelude)
    assert "pull to open" in out and "门" not in out
    degraded = [e for e in evs if e["type"] == "display_degraded"]
    assert degraded and degraded[0]["detail"]["problem"] == "no_cjk_font"
    assert "fonts-wqy-microhei" in err  # the log says how to fix it
