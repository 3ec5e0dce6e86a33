"""Home Assistant, optional: MQTT discovery for each site, state under the hub's prefix.

With ``[homeassistant] enabled = true`` the hub publishes, retained, for
each site (``{discovery_prefix}/{component}/pickup_{site}/{object}/config``):

- ``binary_sensor`` ``door`` (``device_class: door``: on = open),
- ``binary_sensor`` ``lock`` (``device_class: lock``: on = unlocked),
- ``binary_sensor`` ``alarm`` (``device_class: problem``: any active alert),
- ``sensor`` ``alerts`` (how many alerts are active, their kinds as attributes),
- ``sensor`` ``mode`` and ``sensor`` ``last_seq``,

all reading one JSON state topic, ``{state_prefix}/{site}/state``, with
availability on ``{state_prefix}/{site}/availability`` (``online`` /
``offline``, from the kiosk's retained status). It republishes discovery
when Home Assistant announces itself (``{discovery_prefix}/status`` =
``online``).

Home Assistant never gets a way to command a kiosk: no entity has a
``command_topic``, nothing is published under ``pickup/v1/``, and the hub
reads nothing from Home Assistant but its birth message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from hub.config import Config, SiteSection

Publication = tuple[str, bytes, bool]  # topic, payload, retain


def birth_topic(cfg: Config) -> str:
    return f"{cfg.homeassistant.discovery_prefix}/status"


def _state_topic(cfg: Config, site: str) -> str:
    return f"{cfg.homeassistant.state_prefix}/{site}/state"


def _availability_topic(cfg: Config, site: str) -> str:
    return f"{cfg.homeassistant.state_prefix}/{site}/availability"


def _entities(site: SiteSection) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (
            "binary_sensor",
            "door",
            {
                "name": "Door",
                "device_class": "door",
                "value_template": "{{ 'ON' if value_json.door == 'open' else 'OFF' }}",
            },
        ),
        (
            "binary_sensor",
            "lock",
            {
                "name": "Lock",
                "device_class": "lock",
                "value_template": "{{ 'ON' if value_json.lock == 'unlocked' else 'OFF' }}",
            },
        ),
        (
            "binary_sensor",
            "alarm",
            {
                "name": "Alarm",
                "device_class": "problem",
                "value_template": "{{ 'ON' if value_json.alerts | length > 0 else 'OFF' }}",
            },
        ),
        (
            "sensor",
            "alerts",
            {
                "name": "Active alerts",
                "value_template": "{{ value_json.alerts | length }}",
                "json_attributes_topic": "",
                "json_attributes_template": "{{ {'kinds': value_json.alerts} | tojson }}",
            },
        ),
        ("sensor", "mode", {"name": "Mode", "value_template": "{{ value_json.mode }}"}),
        (
            "sensor",
            "last_seq",
            {"name": "Last event", "value_template": "{{ value_json.last_seq }}"},
        ),
    ]


def discovery(cfg: Config) -> list[Publication]:
    """Every site's discovery documents (retained)."""
    out: list[Publication] = []
    prefix = cfg.homeassistant.discovery_prefix
    for site in cfg.sites:
        node = f"pickup_{site.id.replace('-', '_')}"
        device = {
            "identifiers": [f"pickup-kiosk-{site.id}"],
            "name": site.name or site.id,
            "manufacturer": "pickup-kiosk",
            "model": "pickup door",
        }
        for component, obj, extra in _entities(site):
            doc: dict[str, Any] = {
                "unique_id": f"{node}_{obj}",
                "object_id": f"{node}_{obj}",
                "state_topic": _state_topic(cfg, site.id),
                "availability_topic": _availability_topic(cfg, site.id),
                "device": device,
                **extra,
            }
            if doc.get("json_attributes_topic") == "":
                doc["json_attributes_topic"] = _state_topic(cfg, site.id)
            topic = f"{prefix}/{component}/{node}/{obj}/config"
            out.append((topic, json.dumps(doc, ensure_ascii=False).encode("utf-8"), True))
    return out


def state(
    cfg: Config, site: str, status: Mapping[str, Any] | None, alerts: Iterable[str]
) -> list[Publication]:
    """One site's state and availability (retained)."""
    status = status or {}
    body = {
        "online": status.get("online") is True,
        "door": status.get("door"),
        "lock": status.get("lock"),
        "mode": status.get("mode"),
        "clock": status.get("clock"),
        "last_seq": status.get("last_seq"),
        "alerts": sorted(set(alerts)),
    }
    avail = b"online" if body["online"] else b"offline"
    return [
        (_state_topic(cfg, site), json.dumps(body).encode("utf-8"), True),
        (_availability_topic(cfg, site), avail, True),
    ]
