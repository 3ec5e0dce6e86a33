"""The demo hub that scripts/run starts: config, keys, token, sample orders via the API."""

from __future__ import annotations

from pathlib import Path

import httpx2 as httpx
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
        # the console's address, a demo login that works, a customer link per order
        text = demo.announce(d, demo.orders(d, "demo-site"))
        assert d.console in text and "demo / pickup-demo" in text
        assert all(o["customer_url"] in text for o in made)
        with httpx.Client(base_url=d.console.removesuffix("/console/"), follow_redirects=True) as c:
            page = c.get("/console/login")
            token = page.text.split('name="csrf" value="')[1].split('"')[0]
            r = c.post(
                "/console/login",
                data={"name": "demo", "password": "pickup-demo", "csrf": token},
            )
            assert r.status_code == 200 and 'id="site-demo-site"' in r.text  # the sites page
        link = httpx.get(made[0]["customer_url"])
        assert link.status_code == 200 and made[0]["pickup_no"] in link.text
        again = demo.prepare(tmp_path / "hub", "demo-site", broker.url, d.api.split("/")[2])
        assert again.trust == d.trust  # keys kept across runs
    finally:
        proc.terminate()
        proc.wait(20)
