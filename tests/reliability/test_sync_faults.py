"""docs/design.md, rule 3 (nothing lost) and the IEC 60839-11-1 items on communication
failure, with real processes and a real Mosquitto (the campaigns are in
tests/support/scenarios.py; bench/campaign.py runs them at full size)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.scenarios import broker_outage_campaign, sync_kill_campaign

pytestmark = [pytest.mark.slow, pytest.mark.broker]

SEED = int(os.environ.get("KIOSK_CAMPAIGN_SEED", "8008"))


def test_sync_sigkill_during_drain_while_the_door_works(tmp_path: Path) -> None:
    sync_kill_campaign(tmp_path, kills=12, seed=SEED)


def test_broker_down_restarted_empty_and_frozen_door_keeps_opening(tmp_path: Path) -> None:
    broker_outage_campaign(tmp_path, down_s=2.5, frozen_s=1.5, seed=SEED)
