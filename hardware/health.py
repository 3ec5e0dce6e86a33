"""Health checks of the board and the display (registered with ``kiosk.health``)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from kiosk.config import Config
from kiosk.health import Result, check, user_groups
from kiosk.health import fail as _fail
from kiosk.health import ok as _ok
from kiosk.health import warn as _warn

# Where things are on a Raspberry Pi; tests point these elsewhere.
GPIOCHIP = Path("/dev/gpiochip0")
DRI_GLOB = "/dev/dri/card*"
FALLBACK_FONTS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
)
SDL_DRIVERS = ("kmsdrm", "x11", "wayland", "dummy", "offscreen")
_user_groups = user_groups


@check("gpio", 40)
def check_gpio(cfg: Config) -> list[Result]:
    name = "gpio"
    if cfg.hardware.board == "sim":
        return [_ok(name, 'simulated board (board = "sim")')]
    if not GPIOCHIP.exists():
        return [
            _fail(
                name,
                f"{GPIOCHIP} does not exist: no GPIO character device here",
                "on a Raspberry Pi, update Raspberry Pi OS; on a bench machine set "
                '[hardware] board = "sim"',
            )
        ]
    results: list[Result] = []
    user, groups = _user_groups()
    if not os.access(GPIOCHIP, os.R_OK | os.W_OK):
        results.append(
            _fail(
                name,
                f"{GPIOCHIP} is not readable and writable by {user}",
                f"sudo usermod -aG gpio {user}, then log in again (the service gets the "
                "group from its unit)",
            )
        )
    elif user != "root" and "gpio" not in groups:
        results.append(
            _warn(
                name,
                f"{user} can open {GPIOCHIP} but is not in group gpio",
                f"sudo usermod -aG gpio {user}",
            )
        )
    else:
        results.append(_ok(name, f"{GPIOCHIP} opens read-write for {user}"))
    lg_wd = os.environ.get("LG_WD", "")
    if not lg_wd:
        results.append(
            _ok(
                "gpio work dir",
                "LG_WD not set here; the door unit sets LG_WD=/run/pickup-kiosk",
            )
        )
    elif os.path.isdir(lg_wd) and os.access(lg_wd, os.W_OK | os.X_OK):
        results.append(_ok("gpio work dir", f"LG_WD={lg_wd} is writable"))
    else:
        results.append(
            _fail(
                "gpio work dir",
                f"LG_WD={lg_wd} is not a writable folder (lgpio keeps its pipes there)",
                "keep RuntimeDirectory=pickup-kiosk and LG_WD=/run/pickup-kiosk in the door unit",
            )
        )
    return results


# ----- display -------------------------------------------------------------


def _find_font(explicit: str) -> Path | None:
    try:
        from hardware.fonts import find_cjk_font
    except ImportError:
        # hardware/ missing or pygame unusable: the usual files will do.
        wanted = [Path(explicit)] if explicit else []
        return next((p for p in (*wanted, *FALLBACK_FONTS) if p.is_file()), None)
    return find_cjk_font(explicit)


@check("display", 50)
def check_display(cfg: Config) -> list[Result]:
    if not cfg.display.enabled:
        return [_ok("display", "display disabled ([display] enabled = false)")]
    results: list[Result] = []
    explicit = cfg.display.font
    font = _find_font(explicit)
    install = "sudo apt-get install fonts-wqy-microhei (or fonts-noto-cjk)"
    if font is None:
        what = f"{explicit} does not draw Chinese, nor" if explicit else "no"
        results.append(
            _fail(
                "display font",
                f"{what} any CJK font found: screens would show empty boxes",
                f"{install}, or set [display] font to a CJK font file",
            )
        )
    elif explicit and font != Path(explicit):
        results.append(
            _warn(
                "display font",
                f"[display] font = {explicit!r} does not draw Chinese; using {font}",
                "point [display] font at a CJK font file, or leave it empty",
            )
        )
    else:
        results.append(_ok("display font", str(font)))
    results.append(_check_driver(cfg))
    return results


def _check_driver(cfg: Config) -> Result:
    name = "display driver"
    driver = cfg.display.driver or os.environ.get("SDL_VIDEODRIVER", "")
    source = "[display] driver" if cfg.display.driver else "SDL_VIDEODRIVER"
    if not driver:
        return _ok(name, "automatic here; the door unit sets SDL_VIDEODRIVER=kmsdrm")
    if driver not in SDL_DRIVERS:
        return _fail(
            name,
            f"{source} = {driver!r} is not an SDL video driver this kiosk uses",
            f"use one of {', '.join(SDL_DRIVERS)} (kmsdrm on the Pi's console)",
        )
    if driver in ("dummy", "offscreen"):
        if cfg.hardware.board == "gpio":
            return _warn(
                name,
                f"{source} = {driver!r}: nothing is drawn on the screen",
                "use kmsdrm on the kiosk (set by the door unit), or disable the display",
            )
        return _ok(name, f"{driver} (headless, fine for a simulated board)")
    if driver == "kmsdrm":
        cards = sorted(glob.glob(DRI_GLOB))
        if not cards:
            return _fail(
                name,
                "kmsdrm needs /dev/dri/card*, and there is none",
                "enable the KMS driver: dtoverlay=vc4-kms-v3d in /boot/firmware/config.txt "
                "(the Bookworm default), then reboot",
            )
        user, _groups = _user_groups()
        if not any(os.access(c, os.R_OK | os.W_OK) for c in cards):
            return _fail(
                name,
                f"{user} cannot open {', '.join(cards)}",
                f"sudo usermod -aG video,render {user}",
            )
        return _ok(name, f"kmsdrm on {', '.join(cards)}")
    env = "DISPLAY" if driver == "x11" else "WAYLAND_DISPLAY"
    if not os.environ.get(env):
        return _warn(
            name,
            f"{driver} needs a desktop session and {env} is not set here",
            "on the kiosk use kmsdrm (Raspberry Pi OS Lite, no desktop)",
        )
    return _ok(name, f"{driver} on {os.environ[env]}")


SPIDEV = Path("/dev/spidev0.0")


@check("voice", 55)
def check_voice(cfg: Config) -> list[Result]:
    """The prompt files are there (an optional feature: a warning, never a failure)."""
    from kiosk import prompts

    name = "voice"
    if not cfg.voice.enabled:
        return [_ok(name, "off ([voice] enabled = false)")]
    root = Path(cfg.voice.dir)
    missing = prompts.missing(root)
    total = len(prompts.prompt_names()) * 2
    fix = f"sudo kiosk voice build {root}"
    if len(missing) == total:
        return [_warn(name, f"no prompt files in {root}: the door is silent", fix)]
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        return [_warn(name, f"{len(missing)} of {total} prompt files missing: {shown}", fix)]
    return [_ok(name, f"{total} prompt files in {root}")]


@check("slot light", 56)
def check_slot_light(cfg: Config) -> list[Result]:
    name = "slot light"
    slots = cfg.slot_leds()
    if not slots:
        return [_ok(name, "off (no [slots])")]
    if cfg.hardware.board == "sim":
        return [_ok(name, f"{len(slots)} slots on the simulated board")]
    if not SPIDEV.exists():
        return [
            _warn(
                name,
                f"{SPIDEV} does not exist: SPI is off, the LED strip stays dark",
                "sudo raspi-config nonint do_spi 0, then reboot (docs/wiring.md, LED strip)",
            )
        ]
    return [_ok(name, f"{len(slots)} slots on {cfg.strip_length()} LEDs, {SPIDEV}")]
