"""What the voice says: one prompt per screen, synthesised once into files.

The words live in the message catalogs (``[voice]`` and ``[voice.reason]``
in ``kiosk/locale/{zh,en}.toml``). :func:`build` turns them into WAV files
offline, at install or build time (``kiosk voice build DIR``), with
espeak-ng (Debian's ``espeak-ng``: Mandarin and English voices, no network,
no model to download) and, when it is there, sox to trim the silence and
even out the loudness. Nothing is synthesised while the door runs:
``hardware.voice`` only plays these files.

:func:`clips` says which files make up the prompt of a screen (the
screen's own prompt; on idle screens the offer of the other language; after
an accepted code the slot, spelled out from one clip per letter and digit),
and :func:`prompt_key` what counts as a new prompt (kind, reason, language:
not a countdown tick or one more typed digit).

Pure apart from :func:`build`, which runs the two programs and writes files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kiosk.errors import KioskError
from kiosk.i18n import LANGS, messages, other_lang
from kiosk.screens import KINDS, REASONS, Screen

log = logging.getLogger(__name__)

#: Letters and digits of slot names, each a clip of its own ("B3": B, 3).
CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: Prompts beyond one per kind: what the screens' variants and the idle offer need.
EXTRA = ("toggle", "accepted_no_slot", "day_open_unlocked")
#: The longest a prompt file may be, in seconds (tests/hardware/test_voice.py measures).
MAX_PROMPT_S = 6.0
#: The longest one letter or digit of a slot may be.
MAX_CHAR_S = 1.0
#: espeak-ng voice and speed (words per minute) per language. Slower than
#: espeak's 175 for English: tired listeners, a small speaker, a noisy street.
VOICES = {"zh": ("cmn", 190), "en": ("en-us", 160)}
#: Sample rate of the files (sox resamples espeak's 22050 Hz): speech needs no
#: more, and the files take a quarter less room on the card.
RATE = 16000
MANIFEST = "manifest.json"
#: Bumped when the way files are made changes, so old files are remade.
RECIPE = 2

Runner = Callable[[Sequence[str]], None]


class VoiceBuildError(KioskError, OSError):
    """espeak-ng is missing or failed, or the prompt folder cannot be written."""


Clip = tuple[str, str]  # (language, prompt name)


def prompt_names() -> tuple[str, ...]:
    """Every prompt name: one per kind and reason, the extras, one per character."""
    reasons = tuple(f"reason-{r}" for r in REASONS)
    chars = tuple(f"char-{c}" for c in CHARS)
    return KINDS + EXTRA + reasons + chars


def prompt_texts(lang: str) -> dict[str, str]:
    """Prompt name -> the words to say in ``lang`` (from the catalog)."""
    cat = messages(lang)
    out: dict[str, str] = {}
    for name in (*KINDS, *EXTRA):
        out[name] = cat.text(f"voice.{name}")
    for reason in REASONS:
        out[f"reason-{reason}"] = cat.text(f"voice.reason.{reason}")
    for ch in CHARS:
        out[f"char-{ch}"] = ch
    return out


def prompt_key(screen: Screen) -> tuple[str, ...]:
    """What makes a screen's prompt new: a countdown tick or a typed digit does not."""
    key: tuple[str, ...] = (
        screen.kind,
        screen.lang,
        screen.reason if screen.kind == "refused" else "",
    )
    if screen.kind == "accepted":
        key += (screen.slot,)
    if screen.kind == "day_open":
        key += (screen.day_mode,)
    return key


def spell(slot: str) -> list[str]:
    """The character clips of a slot name; other characters are left unsaid."""
    return [f"char-{c}" for c in slot.upper() if c in CHARS]


def clips(screen: Screen) -> list[Clip]:
    """The files to play, in order, for ``screen``'s prompt."""
    lang = screen.lang if screen.lang in LANGS else LANGS[0]
    kind = screen.kind if screen.kind in KINDS else "idle"
    if kind == "refused":
        name = f"reason-{screen.reason}" if screen.reason in REASONS else "refused"
        return [(lang, name)]
    if kind == "accepted":
        letters = spell(screen.slot)
        if not letters:
            return [(lang, "accepted_no_slot")]
        return [(lang, "accepted"), *((lang, c) for c in letters)]
    if kind == "day_open" and screen.day_mode != "free_entry":
        return [(lang, "day_open_unlocked")]
    if kind == "idle":
        # The other language's offer in its own voice: for whoever cannot
        # follow the first sentence.
        return [(lang, "idle"), (other_lang(lang), "toggle")]
    return [(lang, kind)]


def path_for(root: Path, lang: str, name: str) -> Path:
    return root / lang / f"{name}.wav"


# ----- the build ----------------------------------------------------------------


@dataclass(frozen=True)
class BuildReport:
    written: int
    kept: int
    sox: bool
    engine: str


def _run(argv: Sequence[str]) -> None:
    try:
        subprocess.run(list(argv), check=True, capture_output=True, timeout=60)
    except FileNotFoundError:
        raise VoiceBuildError(
            f"{argv[0]} is not installed: sudo apt install espeak-ng sox"
        ) from None
    except subprocess.CalledProcessError as exc:
        err = exc.stderr.decode("utf-8", "replace").strip()[:300]
        raise VoiceBuildError(f"{argv[0]} failed (exit {exc.returncode}): {err}") from None
    except subprocess.TimeoutExpired:
        raise VoiceBuildError(f"{argv[0]} took longer than 60 s") from None


def engine_version() -> str:
    """espeak-ng's version line; raises VoiceBuildError when it is missing."""
    if shutil.which("espeak-ng") is None:
        raise VoiceBuildError(
            "espeak-ng is not installed: sudo apt install espeak-ng sox (the voice prompts "
            "are synthesised with it, offline)"
        )
    proc = subprocess.run(
        ["espeak-ng", "--version"], check=False, capture_output=True, text=True, timeout=30
    )
    return " ".join(proc.stdout.split()[:4]) or "espeak-ng"


def _recipe(lang: str, text: str, engine: str, sox: bool) -> str:
    voice, speed = VOICES[lang]
    blob = json.dumps([RECIPE, engine, voice, speed, sox, text], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _load_manifest(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {str(k): str(v) for k, v in files.items()}


def _synthesise(lang: str, text: str, dest: Path, sox: bool, run: Runner) -> None:
    voice, speed = VOICES[lang]
    # Write beside the target and rename: a half-written prompt never replaces a good one.
    fd, raw_name = tempfile.mkstemp(suffix=".wav", dir=dest.parent)
    os.close(fd)
    raw = Path(raw_name)
    try:
        run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), "--", text])
        if sox:
            fd, done_name = tempfile.mkstemp(suffix=".wav", dir=dest.parent)
            os.close(fd)
            done = Path(done_name)
            try:
                # Cut espeak's leading and trailing silence (the prompt starts at
                # once), add 0.1 s after it, resample, and bring every prompt to
                # the same peak so Chinese and English sound equally loud.
                run(
                    [
                        "sox", str(raw), "-b", "16", str(done),
                        "silence", "1", "0.02", "0.5%", "reverse",
                        "silence", "1", "0.02", "0.5%", "reverse",
                        "pad", "0", "0.1", "rate", str(RATE), "gain", "-n", "-1",
                    ]
                )  # fmt: skip
                done.replace(raw)
            finally:
                done.unlink(missing_ok=True)
        raw.replace(dest)
    finally:
        raw.unlink(missing_ok=True)


def build(
    out_dir: Path,
    *,
    langs: Iterable[str] = LANGS,
    force: bool = False,
    use_sox: bool | None = None,
    run: Runner = _run,
) -> BuildReport:
    """Write every prompt of ``langs`` into ``out_dir/{lang}/{name}.wav``.

    A prompt whose words, voice and recipe are unchanged and whose file is
    there is kept (re-running the installer costs nothing). ``use_sox``:
    None uses sox when it is installed. Raises VoiceBuildError.
    """
    engine = engine_version()
    sox = shutil.which("sox") is not None if use_sox is None else use_sox
    manifest_path = out_dir / MANIFEST
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        old = {} if force else _load_manifest(manifest_path)
        files: dict[str, str] = {}
        written = kept = 0
        for lang in langs:
            (out_dir / lang).mkdir(exist_ok=True)
            for name, text in prompt_texts(lang).items():
                dest = path_for(out_dir, lang, name)
                rel = f"{lang}/{name}.wav"
                recipe = _recipe(lang, text, engine, sox)
                if old.get(rel) == recipe and dest.is_file() and dest.stat().st_size > 44:
                    kept += 1
                else:
                    _synthesise(lang, text, dest, sox, run)
                    written += 1
                files[rel] = recipe
        tmp = manifest_path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"engine": engine, "sox": sox, "files": files}, indent=1, sort_keys=True),
            "utf-8",
        )
        tmp.replace(manifest_path)
    except OSError as exc:
        if isinstance(exc, VoiceBuildError):
            raise
        raise VoiceBuildError(f"cannot write the voice prompts to {out_dir}: {exc}") from None
    log.debug("voice prompts in %s: %d written, %d unchanged", out_dir, written, kept)
    return BuildReport(written, kept, sox, engine)


def missing(root: Path, langs: Iterable[str] = LANGS) -> list[str]:
    """Prompt files absent or empty under ``root`` ("zh/idle.wav", ...), for the doctor."""
    out = []
    for lang in langs:
        for name in prompt_names():
            path = path_for(root, lang, name)
            try:
                ok = path.stat().st_size > 44  # more than a WAV header
            except OSError:
                ok = False
            if not ok:
                out.append(f"{lang}/{name}.wav")
    return out
