import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.orders import parse_documents
from protocol.keys import sign_document
from tests.support.world import SITE, World


@pytest.fixture
def w(tmp_path: Path) -> World:
    return World(tmp_path / "k.db")


def test_signed_order_is_stored_with_unknown_fields_kept(w: World) -> None:
    doc = w.doc()
    doc.pop("sig")
    doc["gift_wrap"] = {"colour": "red"}
    doc = sign_document(doc, w.hub)
    assert w.intake.accept(doc, w.snap(), source="test").outcome == "stored"
    row = w.store.get_order("O-1")
    assert row is not None and row.doc["gift_wrap"] == {"colour": "red"}
    assert row.otp_secret == doc["otp"]["secret"]
    assert w.events("order_updated")[0]["order_id"] == "O-1"


def test_owner_key_may_sign_orders(w: World) -> None:
    doc = sign_document({k: v for k, v in w.doc().items() if k != "sig"}, w.owner)
    assert w.intake.accept(doc, w.snap(), source="test").outcome == "stored"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.pop("sig"), "unsigned"),
        (lambda d: d.update(sig="AAAA"), "bad_signature"),
        (lambda d: d.update(slot="Z9"), "bad_signature"),  # changed after signing
        (lambda d: d.update(site="other-site"), "wrong_site"),
        (lambda d: d.update(pickup_no="42"), "bad_pickup_no"),
        (lambda d: d.update(status="lost"), "bad_status"),
        (lambda d: d.update(version=0), "bad_version"),
        (lambda d: d.update(version=True), "bad_version"),
        (lambda d: d["otp"].update(digits=5), "bad_otp_digits"),
        (lambda d: d["otp"].update(period=10), "bad_otp_period"),
        (lambda d: d["otp"].update(secret="GEZDGNBV"), "bad_otp_secret"),
        (lambda d: d.update(issued_at="yesterday"), "bad_issued_at"),
        (lambda d: d.update(order_id="../etc"), "bad_order_id"),
    ],
)
def test_bad_documents_are_rejected_whole_with_an_event(w: World, mutate: Any, reason: str) -> None:
    doc = w.doc()
    secret = doc["otp"]["secret"]
    mutate(doc)
    res = w.intake.accept(doc, w.snap(), source="test")
    assert res.outcome == "rejected" and res.reason == reason
    assert w.store.count_orders() == 0
    ev = w.events("message_rejected")
    assert len(ev) == 1 and ev[0]["detail"]["reason"] == reason
    assert secret not in json.dumps(w.events())


def test_foreign_key_is_rejected(w: World) -> None:
    doc = sign_document(
        {k: v for k, v in w.doc().items() if k != "sig"}, Ed25519PrivateKey.generate()
    )
    assert w.intake.accept(doc, w.snap(), source="test").reason == "bad_signature"


def test_unsigned_accepted_only_when_configured(w: World) -> None:
    doc = w.doc()
    doc.pop("sig")
    w.intake.allow_unsigned = True
    assert w.intake.accept(doc, w.snap(), source="test").outcome == "stored"


def test_stale_and_duplicate_versions_are_ignored(w: World) -> None:
    v3 = w.doc(version=3, slot="C1")
    w.intake.accept(v3, w.snap(), source="test")
    secret = v3["otp"]["secret"]
    for v in (3, 2, 1):
        res = w.intake.accept(w.doc(version=v, slot="Z9", secret=secret), w.snap(), source="test")
        assert res.outcome == "ignored"
    assert w.store.get_order("O-1").slot == "C1"
    assert (
        w.intake.accept(w.doc(version=4, slot="D4", secret=secret), w.snap(), source="test").outcome
        == "stored"
    )
    assert w.store.get_order("O-1").slot == "D4"


def test_local_collection_survives_a_document_issued_before_it(w: World) -> None:
    from kiosk.store import OrderRow

    w.add(version=1)
    row = w.store.get_order("O-1")
    w.clock.advance(60)
    w.store.put_order(
        OrderRow(
            **{
                **row.__dict__,
                "status": "collected",
                "collected_at": w.clock.wall(),
                "collected_locally": True,
            }
        )
    )
    # the hub, not knowing yet, moves the slot with an older issued_at
    stale = w.doc(version=2, slot="A1", secret=row.otp_secret)
    stale.pop("sig")
    from protocol.times import format_time as rfc3339

    stale["issued_at"] = rfc3339(w.clock.wall() - 30)
    w.intake.accept(sign_document(stale, w.hub), w.snap(), source="test")
    got = w.store.get_order("O-1")
    assert got.status == "collected" and got.slot == "A1" and got.version == 2


def test_forget_removes_order_and_secret(w: World) -> None:
    w.add()
    assert w.intake.forget("O-1", w.snap()).outcome == "forgotten"
    assert w.store.get_order("O-1") is None
    assert w.events("order_forgotten")


def test_parse_documents_accepts_object_array_and_lines() -> None:
    assert parse_documents('{"a": 1}') == [{"a": 1}]
    assert parse_documents('[{"a": 1}, {"b": 2}]') == [{"a": 1}, {"b": 2}]
    assert parse_documents('{"a": 1}\n\n{"b": 2}\n') == [{"a": 1}, {"b": 2}]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


_FRESH = itertools.count()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from(
        [
            "v",
            "site",
            "order_id",
            "version",
            "issued_at",
            "status",
            "pickup_no",
            "slot",
            "customer",
            "items",
            "otp",
            "backup_code",
            "expires_at",
        ]
    ),
    value=json_values,
)
def test_no_malformed_document_is_stored(w: World, field: str, value: Any) -> None:
    oid = f"H-{next(_FRESH)}"  # a forgotten id keeps its tombstone: each example its own
    doc = w.doc(order_id=oid)
    doc.pop("sig")
    doc[field] = value
    w.intake.allow_unsigned = True  # isolate validation from signatures
    try:
        res = w.intake.accept(doc, w.snap(), source="test")
        if res.outcome == "stored":
            # only values the protocol allows may get in
            from kiosk.orders import validate_order

            validate_order(doc, site=SITE, width=3)
            w.store.delete_order(oid)
    finally:
        w.intake.allow_unsigned = False


def test_a_forgotten_collected_order_is_not_reopened_by_its_older_document(w: World) -> None:
    """An empty retained payload needs no key; the order's ``ready`` version is
    retained history. Replayed after the forget, it is ignored, so the
    customer's code does not open the door again; a newer version is taken."""
    ready = w.add("O-7", "077")
    w.intake.accept(w.doc("O-7", "077", version=2, status="collected"), w.snap(), source="t")
    assert w.intake.forget("O-7", w.snap()).outcome == "forgotten"
    res = w.intake.accept(ready, w.snap(), source="replay")
    assert (res.outcome, res.reason) == ("ignored", "stale_version")
    assert w.store.get_order("O-7") is None
    assert w.intake.accept(w.doc("O-7", "077", version=3), w.snap(), source="t").outcome == "stored"
