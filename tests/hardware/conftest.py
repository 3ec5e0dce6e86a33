"""The voice prompts, synthesised once per test session (espeak-ng and sox from
Debian: scripts/test installs them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk import prompts


@pytest.fixture(scope="session")
def prompt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("voice")
    report = prompts.build(root)
    assert report.sox, "sox is needed to trim and measure the prompts (apt install sox)"
    return root
