"""Every stream id names its aggregate type, and one append never gives a stream two types."""

from __future__ import annotations

from services.registry.domain import people, places
from services.registry.domain.imports import plan_chunk
from services.registry.domain.places import Parent
from shared.envelope import utc_now
from shared.eventstore import PendingEvent, mixed_stream
from tests.unit.test_registry_imports import row


def event(stream_id: str, stream_type: str, version: int = 1) -> PendingEvent:
    return PendingEvent(
        stream_id, stream_type, version, None, utc_now(), type="Noted", schema_version=1, data={}
    )


def test_node_person_and_vehicle_streams_are_prefixed_with_their_type() -> None:
    assert places.node_stream("b1") == "node:b1"
    assert people.person_stream("b1") == "person:b1"
    assert people.vehicle_stream("b1") == "vehicle:b1"
    # a client may give a node, a person and a vehicle the same id: three streams
    assert (
        len({places.node_stream("x"), people.person_stream("x"), people.vehicle_stream("x")}) == 3
    )


def test_an_import_names_each_new_stream_after_its_type() -> None:
    planned = plan_chunk(Parent("comm", "root.comm", retired=False), [row(3, "301", "h")], {}, {})
    assert [(s.split(":", 1)[0], t) for s, t, _ in planned.streams] == [
        ("node", "node"),
        ("node", "node"),
        ("person", "person"),
    ]


def test_events_of_one_stream_with_two_types_are_a_mixed_stream() -> None:
    assert mixed_stream([event("node:n1", "node"), event("node:n1", "node", 2)]) is None
    assert mixed_stream([event("node:n1", "node"), event("vehicle:n1", "vehicle")]) is None
    assert (
        mixed_stream([event("n1", "node"), event("x", "person"), event("n1", "vehicle", 2)]) == "n1"
    )
