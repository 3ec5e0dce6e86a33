"""The screenshot script (docs/console/) still runs: every page, both languages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.console_shots import take

pytestmark = [pytest.mark.slow, pytest.mark.broker]


def test_screenshots_of_every_page_in_both_languages(tmp_path: Path) -> None:
    shots = take(tmp_path)
    names = {p.name for p in shots}
    for page in (
        "sites",
        "tonight",
        "alerts",
        "unlock",
        "unlock-confirm",
        "orders",
        "import-preview",
    ):
        assert {f"{page}-zh.png", f"{page}-en.png"} <= names, page
    for status in (
        "ready",
        "pending_payment",
        "paid",
        "collected",
        "cancelled",
        "expired",
        "invalid",
    ):
        assert f"customer-{status}-zh.png" in names
    for p in shots:
        data = p.read_bytes()
        assert data.startswith(b"\x89PNG") and int.from_bytes(data[16:20], "big") == 390
    docs = Path(__file__).resolve().parents[2] / "docs" / "console"
    assert {p.name for p in docs.glob("*.png")} == names  # the committed set is this one
