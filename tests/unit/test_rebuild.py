"""The rebuild's shared decoding and its gate key."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from shared.consumer import gate_key
from shared.envelope import Envelope
from shared.rebuild import DecodedOnce


def record(offset: int, value: bytes, topic: str = "t") -> Any:
    return SimpleNamespace(topic=topic, partition=0, offset=offset, value=value)


def envelope(n: int) -> bytes:
    at = datetime(2022, 4, 1, tzinfo=UTC)
    return Envelope(
        type="NodeCreated", schema_version=1, stream_id=f"node-{n}", stream_type="node",
        version=1, occurred_at=at, recorded_at=at,
    ).to_json()  # fmt: skip


def test_each_record_is_decoded_once_for_all_readers_of_its_topic() -> None:
    decoded = DecodedOnce({"t": 3})
    raw = envelope(0)
    first = decoded.envelope_of(record(0, raw))
    assert decoded.envelope_of(record(0, raw)) is first
    assert len(decoded.entries) == 1
    assert decoded.envelope_of(record(0, raw)) is first
    assert decoded.entries == {}  # the last reader took it


def test_an_undecodable_record_fails_for_every_reader() -> None:
    decoded = DecodedOnce({"t": 2})
    for _ in range(2):
        with pytest.raises(ValueError):
            decoded.envelope_of(record(5, b"{not json"))
    assert decoded.entries == {}


def test_beyond_the_limit_records_are_decoded_without_being_kept() -> None:
    decoded = DecodedOnce({"t": 2}, limit=1)
    zero, one = envelope(0), envelope(1)
    a = decoded.envelope_of(record(0, zero))
    b = decoded.envelope_of(record(1, one))
    assert list(decoded.entries) == [("t", 0, 0)]
    assert decoded.envelope_of(record(1, one)) == b
    assert decoded.envelope_of(record(0, zero)) is a


def test_the_gate_key_is_a_stable_bigint_per_schema() -> None:
    assert gate_key("reporting") == gate_key("reporting")
    assert gate_key("reporting") != gate_key("e2e_x_reporting")
    assert -(2**63) <= gate_key("reporting") < 2**63
