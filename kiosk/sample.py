"""Sample orders for the simulator, the tests and the benchmarks.

They are signed with a throwaway hub key like real ones, so they take the
same path through validation and signatures as documents from the hub.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.keys import sign_document
from protocol.otp import document_backup_code, document_code, new_secret
from protocol.times import format_time as rfc3339

DEMO = (
    # pickup_no, status, slot, name, items
    (
        "042",
        "ready",
        "B3",
        "李少云",
        [{"name": "红提", "qty": 1, "unit": "盒"}, {"name": "牛奶", "qty": 2, "unit": "瓶"}],
    ),
    ("117", "ready", "A1", "Wang Fang", [{"name": "Apples", "qty": 6, "unit": ""}]),
    ("256", "pending_payment", None, "张伟", [{"name": "大米", "qty": 1, "unit": "袋"}]),
    ("301", "paid", None, "Chen Jing", [{"name": "Eggs", "qty": 12, "unit": ""}]),
    ("388", "cancelled", "C2", "刘洋", [{"name": "面包", "qty": 1, "unit": "个"}]),
)


def order_doc(
    site: str,
    order_id: str,
    pickup_no: str,
    *,
    now: float,
    status: str = "ready",
    slot: str | None = "B3",
    name: str = "李少云",
    items: list[dict[str, Any]] | None = None,
    secret: str | None = None,
    digits: int = 6,
    period: int = 30,
    version: int = 1,
    backup_code: bool = False,
    expires_in: float = 2 * 86400,
) -> dict[str, Any]:
    return {
        "v": 1,
        "site": site,
        "order_id": order_id,
        "version": version,
        "issued_at": rfc3339(now),
        "status": status,
        "pickup_no": pickup_no,
        "slot": slot,
        "customer": {"name": name, "phone_tail": "1234"},
        "items": items if items is not None else [{"name": "红提", "qty": 1, "unit": "盒"}],
        "otp": {"secret": secret or new_secret(), "digits": digits, "period": period},
        "backup_code": backup_code,
        "expires_at": rfc3339(now + expires_in),
    }


def demo_orders(site: str, key: Ed25519PrivateKey, now: float) -> list[dict[str, Any]]:
    docs = []
    for i, (no, status, slot, name, items) in enumerate(DEMO, 1):
        doc = order_doc(
            site,
            f"DEMO-{i:04d}",
            no,
            now=now,
            status=status,
            slot=slot,
            name=name,
            items=items,
            backup_code=(i == 1),
        )
        docs.append(sign_document(doc, key))
    return docs


current_code = document_code
backup_code = document_backup_code
