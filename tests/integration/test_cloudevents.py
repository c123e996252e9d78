"""Every record the relay publishes is a CloudEvents 1.0 event in Kafka binary mode."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event

from shared.contracts.records import CONTRACTS_URI
from shared.envelope import Envelope
from shared.eventstore import PendingEvent, append
from shared.kafka import ensure_topics
from shared.relay import OutboxRelay
from shared.testing import Infra, delete_topics, unique
from tests.integration.helpers import publish_all, read_records

CONTRACTS = Path(__file__).resolve().parents[2] / "docs" / "contracts"
OCCURRED = datetime(2026, 1, 29, 8, 30, 15, 250000, tzinfo=UTC)

NODE = {"node_id": "n1", "parent_id": None, "kind": "district", "name": "金堂县", "path": "n1"}
PERSON_V1 = {
    "person_id": "p1",
    "household_id": "h1",
    "residency": "resident",
    "document_type": "passport",
    "document_masked": "E1****78",
    "name_masked": "张*",
    "id_hmac": "ab" * 32,
    "birth_year": 1980,
}


def _event(stream_id: str, type_: str, schema_version: int, data: dict[str, Any]) -> PendingEvent:
    return PendingEvent(
        stream_id=stream_id,
        stream_type=stream_id.partition(":")[0],
        version=1,
        payload=None,
        occurred_at=OCCURRED,
        type=type_,
        schema_version=schema_version,
        data=data,
    )


@pytest.fixture
async def registry_topic(infra: Infra) -> Any:
    prefix = unique("ce") + "."
    name = prefix + "registry.events"
    await ensure_topics(infra.kafka_bootstrap, [name], partitions=3)
    yield name
    await delete_topics(infra.kafka_bootstrap, prefix)


async def test_records_decode_with_the_cloudevents_kafka_binding(
    infra: Infra, pool: Any, registry_topic: str, producer: Any
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await append(
            conn,
            [
                _event("node:n1", "NodeCreated", 1, NODE),
                _event("person:p1", "PersonRegistered", 1, PERSON_V1),  # an earlier version
            ],
        )
    assert await publish_all(OutboxRelay(pool, producer, registry_topic), 2) == 2

    records = await read_records(infra.kafka_bootstrap, registry_topic, expected=2)
    assert len(records) == 2
    for record in records:
        message = KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)
        event = from_binary_event(message)
        envelope = Envelope.from_json(record.value)
        assert event.get_specversion() == "1.0"
        assert event.get_id() == str(envelope.event_id)
        assert event.get_source() == "/grid-epi/registry"
        assert event.get_type() == f"grid-epi.registry.{envelope.type}.v{envelope.schema_version}"
        assert event.get_time() == envelope.occurred_at == OCCURRED
        assert event.get_subject() == envelope.stream_id
        assert event.get_datacontenttype() == "application/json"
        assert event.get_data() == orjson.loads(record.value)  # the value is the envelope
        schema_uri = event.get_dataschema()
        assert schema_uri == (
            f"{CONTRACTS_URI}registry.events/{envelope.type}.v{envelope.schema_version}.json"
        )
        schema = json.loads((CONTRACTS / schema_uri.removeprefix(CONTRACTS_URI)).read_text())
        assert schema["$id"] == schema_uri
        jsonschema_rs.validate(schema, orjson.loads(record.value))
        headers = dict(record.headers)  # the relay's own headers stay
        assert {"type", "grid-relay-epoch", "grid-relay-position"} <= set(headers)
    assert sorted(dict(r.headers)["ce_type"] for r in records) == [
        b"grid-epi.registry.NodeCreated.v1",
        b"grid-epi.registry.PersonRegistered.v1",
    ]
