"""The demo hub that scripts/run starts: config, keys, token, sample orders via the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub import demo
from tests.support.broker import Broker, free_port

pytestmark = [pytest.mark.slow, pytest.mark.broker]


def test_demo_hub_creates_sample_orders_through_its_api(tmp_path: Path, broker: Broker) -> None:
    d = demo.prepare(tmp_path / "hub", "demo-site", broker.url, f"127.0.0.1:{free_port()}")
    assert d.trust.startswith("hub_keys = [") and "auditor_keys = [" in d.trust
    proc = demo.start(d, tmp_path / "hub.log")
    try:
        made = demo.create_samples(d, "demo-site")
        assert [o["order_id"] for o in made] == [s["order_id"] for s in demo.SAMPLES]
        assert len({o["pickup_no"] for o in made}) == len(made)
        assert all("/c/" in o["customer_url"] for o in made)
        assert demo.create_samples(d, "demo-site") == made  # idempotent: the same orders
        again = demo.prepare(tmp_path / "hub", "demo-site", broker.url, d.api.split("/")[2])
        assert again.trust == d.trust  # keys kept across runs
    finally:
        proc.terminate()
        proc.wait(20)
