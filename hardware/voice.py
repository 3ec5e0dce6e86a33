"""The voice: plays each screen's spoken prompt through the Pi's audio output.

The door daemon calls :meth:`Voice.say` with every screen it renders and
:meth:`Voice.stop` at every key press (``kiosk.daemon.VoicePort``). A prompt
starts only when the screen's kind, refusal reason or language changes
(:func:`kiosk.prompts.prompt_key`), never on a countdown tick or one more
typed digit, and the next key cuts it short. The files were synthesised
beforehand by ``kiosk voice build`` (:mod:`kiosk.prompts`); nothing is
synthesised here.

Playback is pygame.mixer on one reserved channel (SDL's ``alsa`` driver on
the Pi, its ``dummy`` driver in tests). A missing or unreadable prompt file
is logged once and the prompt is left unsaid; an audio device that does not
open is logged once and tried again at most every minute (a USB speaker
plugged in later). Nothing here raises into the door: every public call
catches and logs.

Volume and quiet hours come from ``[voice]``; the local time of day is read
from the injected clock, so tests move it.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame
import pygame.mixer

from kiosk.clock import Clock
from kiosk.config import VoiceConfig
from kiosk.prompts import RATE, Clip, clips, path_for, prompt_key
from kiosk.screens import Screen

log = logging.getLogger(__name__)

#: Decoded prompts kept in memory: the slot letters and the common screens.
CACHE_SIZE = 24
#: How long after a failed audio start to try again.
RETRY_S = 60.0
CHANNEL = 0


def _minutes(hhmm: str) -> int:
    hh, mm = (int(x) for x in hhmm.split(":"))
    return hh * 60 + mm


def in_quiet_hours(cfg: VoiceConfig, minute_of_day: int) -> bool:
    """True inside [quiet_start, quiet_end); equal ends mean no quiet hours."""
    start, end = _minutes(cfg.quiet_start) % 1440, _minutes(cfg.quiet_end) % 1440
    if start == end:
        return False
    if start < end:
        return start <= minute_of_day < end
    return minute_of_day >= start or minute_of_day < end  # spans midnight


class Voice:
    """Spoken prompts from the files under ``cfg.dir``.

    ``started`` lists, for each prompt begun, the files it is made of
    ("zh/reason-not_paid"), oldest first (the simulator prints them through
    ``on_activity``; tests read them).
    """

    def __init__(self, cfg: VoiceConfig, *, clock: Clock, tz: ZoneInfo | None = None) -> None:
        self.cfg = cfg
        self.root = Path(cfg.dir)
        self.clock = clock
        self.tz = tz
        self.on_activity: Callable[[str], None] | None = None
        self.started: list[tuple[str, ...]] = []
        self._key: tuple[str, ...] | None = None
        self._cache: OrderedDict[Clip, pygame.mixer.Sound] = OrderedDict()
        self._warned: set[Clip] = set()
        self._channel: pygame.mixer.Channel | None = None
        self._next_try = 0.0
        self._audio_warned = False
        self._open()

    # ----- the audio device ------------------------------------------------------

    def _open(self) -> bool:
        if self._channel is not None:
            return True
        now = self.clock.monotonic()
        if now < self._next_try:
            return False
        if not _sound_card_present():
            # Without a card, opening ALSA only fills stderr with libasound's
            # complaints every minute: wait for a card to appear instead.
            self._next_try = now + RETRY_S
            if not self._audio_warned:
                self._audio_warned = True
                log.error(
                    "voice: no sound card (no /dev/snd/pcm*); the prompts stay silent. On a Pi: "
                    "a USB speaker or an I2S amplifier, see docs/wiring.md"
                )
            return False
        try:
            # The files' own format, and no format changes allowed: SDL converts
            # while it plays, so every decoded prompt stays 16-bit mono 16 kHz
            # in memory instead of growing six-fold to the card's 48 kHz stereo.
            pygame.mixer.init(frequency=RATE, size=-16, channels=1, buffer=1024, allowedchanges=0)
            pygame.mixer.set_reserved(1)
            self._channel = pygame.mixer.Channel(CHANNEL)
        except pygame.error as exc:
            self._next_try = now + RETRY_S
            if not self._audio_warned:  # once: it is retried every minute
                self._audio_warned = True
                log.error(
                    "voice: no audio output (%s); the prompts stay silent. On a Pi: a USB "
                    "speaker or an I2S amplifier, see docs/wiring.md",
                    exc,
                )
            return False
        log.info("voice: audio %s, prompts from %s", pygame.mixer.get_init(), self.root)
        return True

    # ----- the port ----------------------------------------------------------------

    def say(self, screen: Screen) -> None:
        """Start the prompt of ``screen`` if it is a new one; never raises."""
        try:
            self._say(screen)
        except Exception:
            log.exception("voice: the %s prompt failed", screen.kind)

    def stop(self) -> None:
        """Cut the prompt short (the next key was pressed); never raises."""
        try:
            if self._channel is not None:
                self._channel.stop()
        except Exception:
            log.exception("voice: stopping the prompt failed")

    def close(self) -> None:
        self.stop()
        self._cache.clear()
        if self._channel is not None:
            self._channel = None
            pygame.mixer.quit()

    @property
    def busy(self) -> bool:
        """A prompt is playing now."""
        return self._channel is not None and bool(self._channel.get_busy())

    def volume_now(self) -> float:
        """``volume``, or ``quiet_volume`` inside the quiet hours (local time)."""
        wall = self.clock.wall()
        local = datetime.fromtimestamp(wall, self.tz) if self.tz else datetime.fromtimestamp(wall)
        quiet = in_quiet_hours(self.cfg, local.hour * 60 + local.minute)
        return self.cfg.quiet_volume if quiet else self.cfg.volume

    # ----- inside ------------------------------------------------------------------

    def _say(self, screen: Screen) -> None:
        key = prompt_key(screen)
        if key == self._key:
            return  # a countdown tick or one more digit: the prompt goes on
        self._key = key
        if not self._open():
            return
        assert self._channel is not None
        self._channel.stop()  # the old screen's words end with it
        volume = self.volume_now()
        if volume <= 0:
            return
        wanted = clips(screen)
        parts = [(clip, s) for clip in wanted if (s := self._sound(clip)) is not None]
        if not parts:
            return
        if len(parts) == 1:
            sound = parts[0][1]
        else:
            # One sound from the parts' samples (same format: the mixer's), so
            # "your bag is in slot" + "B" + "3" plays without gaps and stops at once.
            sound = pygame.mixer.Sound(buffer=b"".join(s.get_raw() for _, s in parts))
        sound.set_volume(volume)
        self._channel.play(sound)
        names = tuple(f"{lang}/{name}" for (lang, name), _ in parts)
        self.started.append(names)
        if len(self.started) > 100:
            del self.started[:50]
        hook = self.on_activity
        if hook is not None:
            hook("voice " + " + ".join(names))

    def _sound(self, clip: Clip) -> pygame.mixer.Sound | None:
        cached = self._cache.get(clip)
        if cached is not None:
            self._cache.move_to_end(clip)
            return cached
        path = path_for(self.root, *clip)
        if not self.root.is_dir():
            if ("", "") not in self._warned:  # one line, not one per prompt
                self._warned.add(("", ""))
                log.warning(
                    "voice: no prompts in %s: run `kiosk voice build %s` ([voice] dir)",
                    self.root,
                    self.root,
                )
            return None
        try:
            sound = pygame.mixer.Sound(str(path))
            if sound.get_length() <= 0:
                raise pygame.error("no samples")
        except (pygame.error, OSError, FileNotFoundError) as exc:
            if clip not in self._warned:  # once per file: a prompt repeats all night
                self._warned.add(clip)
                log.warning(
                    "voice: cannot play %s (%s); run `kiosk voice build %s`", path, exc, self.root
                )
            return None
        self._cache[clip] = sound
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return sound


def open_voice(cfg: VoiceConfig, *, clock: Clock, tz: ZoneInfo | None = None) -> Voice | None:
    """The voice as configured, or None when ``[voice] enabled = false``."""
    if not cfg.enabled:
        log.info("voice: off ([voice] enabled = false)")
        return None
    return Voice(cfg, clock=clock, tz=tz)


def _sound_card_present() -> bool:
    """A playback device exists, or SDL was told to use another driver (tests: dummy)."""
    driver = os.environ.get("SDL_AUDIODRIVER", "")
    if driver and driver != "alsa":
        return True
    return any(Path("/dev/snd").glob("pcm*p"))
