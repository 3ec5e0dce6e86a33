"""kioskctl's memory of sent commands (hub.ctl.state): private, bounded, keeps open ones."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hub.ctl.state import CLOCK_MARGIN_S, KEEP_S, MAX_ENTRIES, CommandLog, Sent

NOW = 1_800_000_000.0


def sent(n: int, *, site: str = "shop-1", cmd: str = "unlock", ttl: float = 60) -> Sent:
    return Sent(f"unlock-{n}-aaaaaaaaaaaa", site, cmd, NOW + n, NOW + n + ttl, "why")


def test_file_and_directory_are_private(tmp_path: Path) -> None:
    log = CommandLog(tmp_path / "a" / "kioskctl")
    assert log.add(sent(1), NOW)
    assert stat.S_IMODE(log.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    assert log.get(sent(1).cmd_id) == sent(1)


def test_open_unlocks_are_this_sites_unanswered_and_still_valid(tmp_path: Path) -> None:
    log = CommandLog(tmp_path)
    for entry in (sent(1), sent(2, site="shop-2"), sent(3, cmd="logs"), sent(4)):
        log.add(entry, NOW)
    log.set_state(sent(4).cmd_id, "done", NOW)
    assert log.open_unlocks("shop-1", NOW) == [sent(1)]
    # still counted a little after its expiry: the kiosk's clock may be behind
    assert log.open_unlocks("shop-1", NOW + 61 + CLOCK_MARGIN_S - 1) == [sent(1)]
    assert log.open_unlocks("shop-1", NOW + 61 + CLOCK_MARGIN_S) == []


def test_an_outcome_is_never_moved_back_to_sent(tmp_path: Path) -> None:
    log = CommandLog(tmp_path)
    log.add(sent(1), NOW)
    log.set_state(sent(1).cmd_id, "cancelled", NOW)
    log.set_state(sent(1).cmd_id, "sent", NOW)
    entry = log.get(sent(1).cmd_id)
    assert entry is not None and entry.state == "cancelled"


def test_old_and_surplus_entries_are_dropped(tmp_path: Path) -> None:
    log = CommandLog(tmp_path)
    log.add(sent(0), NOW)
    later = [sent(n) for n in range(1000, 1000 + MAX_ENTRIES + 4)]
    for entry in later:
        log.add(entry, NOW + KEEP_S + 500)  # sent(0) expired more than a week ago
    assert log.get(sent(0).cmd_id) is None
    assert log.get(later[3].cmd_id) is None  # the oldest beyond MAX_ENTRIES
    assert log.get(later[4].cmd_id) == later[4]
    assert log.get(later[-1].cmd_id) == later[-1]


def test_an_unwritable_directory_warns_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = CommandLog(blocker / "kioskctl")
    assert log.add(sent(1), NOW) is False
    assert log.get(sent(1).cmd_id) is None
    assert "will not remember this command" in capsys.readouterr().err
