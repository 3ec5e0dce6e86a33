"""Pure parts of the protocol: payload decoding, command checks, backoff."""

from __future__ import annotations

import json
import random

import pytest

from kiosk.errors import ValidationError
from protocol.backoff import Backoff
from protocol.canonical import MAX_PAYLOAD, decode_json_object
from protocol.commands import CommandRefused, check_args, check_command, check_times
from protocol.keys import Keyring
from sync.connection import Settings
from tests.support.sync import HUB, OWNER, SITE, T0, as_bytes, command, pub

KEYRING = Keyring([pub(HUB)], [pub(OWNER)])


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xc3\x28", "not_utf8"),
        (b"{", "malformed"),
        (b"NaN", "not_object"),
        (b'{"a": NaN}', "bad_number"),
        (b'{"a": 1e999}', "bad_number"),
        (b'{"a": ' + b"9" * 400 + b"}", "bad_number"),
        (b'{"a": "\\ud800"}', "bad_text"),
        (b'{"a": 1, "a": 2}', "duplicate_key"),
        (b'{"a": [{"b": 1, "c": {"d": 1, "d": 1}}]}', "duplicate_key"),
        (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "too_deep"),
        (b"[]", "not_object"),
        (b'"text"', "not_object"),
        (b"{}" + b" " * MAX_PAYLOAD, "too_large"),
    ],
)
def test_decode_refuses(payload: bytes, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        decode_json_object(payload)
    assert info.value.reason == reason
    assert payload.decode("utf-8", "replace")[:20] not in str(info.value) or reason == "malformed"


def test_decode_accepts_an_object_at_the_limit() -> None:
    body = b'{"a":"' + b"x" * (MAX_PAYLOAD - 8) + b'"}'
    assert len(body) == MAX_PAYLOAD
    assert decode_json_object(body)["a"].startswith("x")


def test_check_command_and_times() -> None:
    cmd = check_command(as_bytes(command("K-1")), topic_cmd_id="K-1", site=SITE, keyring=KEYRING)
    assert cmd.cmd == "unlock" and cmd.expires_at == T0 + 120
    check_times(cmd, T0)
    with pytest.raises(CommandRefused) as info:
        check_times(cmd, T0 + 120)  # expires_at <= now
    assert info.value.reason == "expired"
    with pytest.raises(CommandRefused) as info:
        check_times(cmd, T0 - 301)
    assert info.value.reason == "issued_in_future"
    check_times(cmd, T0 - 299)


def test_check_command_refusals_in_order() -> None:
    def reason(payload: bytes, topic_id: str = "K-2") -> str:
        with pytest.raises(CommandRefused) as info:
            check_command(payload, topic_cmd_id=topic_id, site=SITE, keyring=KEYRING)
        return info.value.reason

    assert reason(json.dumps({**command("K-2"), "v": 2}).encode()) == "bad_version"
    assert reason(as_bytes(command("K-2", key=HUB))) == "wrong_role"
    assert reason(as_bytes(command("K-2", key=None))) == "unsigned"
    assert reason(as_bytes(dict(command("K-2"), sig="!!"))) == "bad_signature"
    assert reason(as_bytes(command("K-3"))) == "cmd_id_mismatch"
    bad_time = command("K-2")
    bad_time = {k: v for k, v in bad_time.items() if k != "sig"}
    bad_time["issued_at"] = "yesterday"
    from protocol.keys import sign_document

    assert reason(as_bytes(sign_document(bad_time, OWNER))) == "bad_time"


def test_check_args() -> None:
    logs = check_command(
        as_bytes(command("K-4", "logs", args={"since_seq": 5})),
        topic_cmd_id="K-4",
        site=SITE,
        keyring=KEYRING,
    )
    assert check_args(logs) == {"since_seq": 5, "since_log_seq": 0}
    for bad in ({"since_seq": True}, {"since_log_seq": -3}, {"since_seq": "1"}):
        c = check_command(
            as_bytes(command("K-5", "logs", args=bad)),
            topic_cmd_id="K-5",
            site=SITE,
            keyring=KEYRING,
        )
        with pytest.raises(CommandRefused):
            check_args(c)


def test_backoff_is_capped_full_jitter_and_resets() -> None:
    rng = random.Random(7)
    expected_rng = random.Random(7)
    b = Backoff(rng, base=1.0, cap=8.0)
    ceilings = [1, 2, 4, 8, 8, 8]
    for ceiling in ceilings:
        assert b.next_delay() == expected_rng.uniform(0.0, ceiling)
    b.reset()
    assert b.next_delay() == expected_rng.uniform(0.0, 1.0)


def test_settings_from_url_and_repr_hides_the_password() -> None:
    s = Settings.from_url("mqtts://broker.example", client_id="k", password="s3cret")
    assert (s.host, s.port, s.tls) == ("broker.example", 8883, True)
    assert Settings.from_url("mqtt://h:1884", client_id="k").port == 1884
    assert "s3cret" not in repr(s)
    with pytest.raises(ValueError):
        Settings.from_url("http://h", client_id="k")


@pytest.mark.parametrize(
    "value", ["garbage", "9999-12-31T23:59:59Z", "2019-01-01T00:00:00Z", 1778642612, None, [], ""]
)
def test_a_time_commands_lower_from_must_be_a_plausible_time(value: object) -> None:
    """``args.lower_from`` names the floor a ``time`` repairs; anything but an
    RFC 3339 time in 2020..2100 is ``bad_args`` (never an exception), and
    lower_from() reads it as no floor at all."""
    from protocol.commands import Command, lower_from
    from protocol.keys import Role, Signer

    signer = Signer(Role.OWNER, "k")
    bad = Command("T-1", "time", T0, T0 + 60, signer, {"lower_from": value})
    assert lower_from(bad) is None
    with pytest.raises(CommandRefused) as err:
        check_args(bad)
    assert err.value.reason == "bad_args"
    good = Command("T-2", "time", T0, T0 + 60, signer, {"lower_from": "2031-05-12T01:12:09Z"})
    assert check_args(good) == {"lower_from": lower_from(good)} and lower_from(good) > T0
    assert check_args(Command("T-3", "time", T0, T0 + 60, signer, {})) == {}
