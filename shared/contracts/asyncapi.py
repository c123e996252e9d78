"""The AsyncAPI 3.0 document of the three topics, made from the contracts.

One channel per topic, one message per published (type, schema_version), current and
earlier, so a consumer in any language can decode every record a topic may still hold. A
message's payload is the envelope with that type's payload in `data`; its headers are the
CloudEvents attributes the relay writes; its Kafka key is the stream id. Nothing here is
written by hand: a changed contract changes the document (`make contracts`), and a test
fails while the committed one is stale.
"""

from __future__ import annotations

from typing import Any

from shared.contracts import Catalog, EventPayload
from shared.contracts.examples import EXAMPLE_TIME, EXAMPLE_UUID, example
from shared.contracts.published import CATALOGS
from shared.contracts.records import (
    CONTENT_TYPE,
    SPECVERSION,
    ce_source,
    ce_type,
    dataschema,
    envelope_schema,
    every_version,
    service_of,
)

ASYNCAPI = "3.0.0"
KAFKA_BINDING = "0.5.0"
DEFAULT_PARTITIONS = 6
EPOCH_HEADER = "grid-relay-epoch"  # the names the relay writes (shared/relay.py)
POSITION_HEADER = "grid-relay-position"

DESCRIPTION = """\
Every event the registry, screening and checkpoint services store is published on their
topic by the outbox relay, once committed. Each record's value is the event envelope with
the payload of its type in `data`; its key is `stream_id`; its headers carry the CloudEvents
1.0 attributes in binary mode (`ce_*`, `content-type`).

Ordering holds per stream only: a stream's events share a key, hence a partition, and arrive
in version order; there is no order across streams or topics. Delivery is at least once: a
record may be published again (with a new offset), so dedupe by (`stream_id`, `version`).
Every `schema_version` ever published is listed; docs/integrators.md says how to upcast."""

CHANNEL_DESCRIPTIONS = {
    "registry": "Places, households, people, vehicles, responsible parties and chains.",
    "screening": "Risk areas, campaigns, visits, inquiries, key persons, watch and quarantine, "
    "follow-ups, care, tests and vaccinations.",
    "checkpoint": "Checkpoints, their policies and duty shifts, the crossing ledger, breaches.",
}


def document() -> dict[str, Any]:
    components: dict[str, Any] = {
        "schemas": {"Envelope": _envelope(), "CloudEventsHeaders": _headers()},
        "messages": {},
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for catalog in CATALOGS:
        names = []
        for cls in every_version(catalog):
            name = f"{cls.event_type}.v{cls.schema_version}"
            components["schemas"][name] = _lift(
                cls.model_json_schema(), components["schemas"], name
            )
            components["messages"][name] = _message(catalog, cls, name)
            names.append(name)
        channels[catalog.topic] = _channel(catalog, names)
        operations[f"{catalog.topic}.publish"] = {
            "action": "send",
            "title": f"The {service_of(catalog.topic)} relay publishes",
            "channel": {"$ref": f"#/channels/{catalog.topic}"},
            "messages": [{"$ref": f"#/channels/{catalog.topic}/messages/{n}"} for n in names],
        }
    return {
        "asyncapi": ASYNCAPI,
        "info": {
            "title": "Grid epidemic control: event streams",
            "version": "1.0.0",
            "description": DESCRIPTION,
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:59092",
                "protocol": "kafka",
                "description": "The development broker `make up` starts; topics may carry "
                "a deployment's `GRID_TOPIC_PREFIX`",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": components,
    }


def _channel(catalog: Catalog, names: list[str]) -> dict[str, Any]:
    service = service_of(catalog.topic)
    return {
        "address": catalog.topic,
        "title": catalog.topic,
        "description": CHANNEL_DESCRIPTIONS.get(service, ""),
        "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
        "bindings": {
            "kafka": {
                "topic": catalog.topic,
                "partitions": DEFAULT_PARTITIONS,
                "topicConfiguration": {"cleanup.policy": ["delete"], "retention.ms": -1},
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _message(catalog: Catalog, cls: type[EventPayload], name: str) -> dict[str, Any]:
    service = service_of(catalog.topic)
    fixed = {
        "type": cls.event_type,
        "ce_source": ce_source(service),
        "ce_type": ce_type(service, cls.event_type, cls.schema_version),
        "ce_dataschema": dataschema(catalog.topic, cls.event_type, cls.schema_version),
    }
    summary = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    return {
        "name": cls.event_type,
        "title": f"{cls.event_type} v{cls.schema_version}",
        **({"summary": summary} if summary else {}),
        "contentType": CONTENT_TYPE,
        "headers": {
            "allOf": [
                {"$ref": "#/components/schemas/CloudEventsHeaders"},
                {"type": "object", "properties": {k: {"const": v} for k, v in fixed.items()}},
            ]
        },
        "payload": {
            "allOf": [
                {"$ref": "#/components/schemas/Envelope"},
                {
                    "type": "object",
                    "properties": {
                        "type": {"const": cls.event_type},
                        "schema_version": {"const": cls.schema_version},
                        "data": {"$ref": f"#/components/schemas/{name}"},
                    },
                },
            ]
        },
        "correlationId": {"location": "$message.payload#/correlation_id"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "the stream id"},
                "bindingVersion": KAFKA_BINDING,
            }
        },
        "examples": [_example(cls, fixed)],
    }


def _example(cls: type[EventPayload], fixed: dict[str, str]) -> dict[str, Any]:
    schema = cls.model_json_schema()
    data = example(schema, schema.get("$defs", {}))
    stream_id = "stream-1"
    headers = {
        "ce_specversion": SPECVERSION,
        "ce_id": EXAMPLE_UUID,
        "ce_source": fixed["ce_source"],
        "ce_type": fixed["ce_type"],
        "ce_time": EXAMPLE_TIME,
        "ce_subject": stream_id,
        "ce_dataschema": fixed["ce_dataschema"],
        "content-type": CONTENT_TYPE,
        "type": cls.event_type,
        EPOCH_HEADER: "1",
        POSITION_HEADER: "1042:7",
    }
    payload = {
        "event_id": EXAMPLE_UUID,
        "type": cls.event_type,
        "schema_version": cls.schema_version,
        "stream_id": stream_id,
        "stream_type": "stream",
        "version": 1,
        "occurred_at": EXAMPLE_TIME,
        "recorded_at": EXAMPLE_TIME,
        "node_id": "node-1",
        "actor": "user-1",
        "correlation_id": EXAMPLE_UUID,
        "causation_id": EXAMPLE_UUID,
        "data": data,
    }
    return {"name": f"{cls.event_type}.v{cls.schema_version}", "headers": headers,
            "payload": payload}  # fmt: skip


def _envelope() -> dict[str, Any]:
    schema = dict(envelope_schema())
    schema["required"] = list(schema["properties"])
    schema["description"] = (
        "The value of every record (shared/envelope.py). `data` is the payload of `type` at "
        "`schema_version`; `version` is the event's place in its stream, gapless from 1."
    )
    return schema


def _headers() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "type": "object",
        "description": "CloudEvents 1.0 attributes in Kafka binary mode, and the relay's own",
        "required": [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_time",
            "ce_subject",
            "content-type",
            "type",
            EPOCH_HEADER,
            POSITION_HEADER,
        ],  # fmt: skip
        "properties": {
            "ce_specversion": {"const": SPECVERSION},
            "ce_id": {**text, "format": "uuid", "description": "= event_id"},
            "ce_source": {**text, "description": "`/grid-epi/<service>`"},
            "ce_type": {**text, "description": "`grid-epi.<service>.<type>.v<schema_version>`"},
            "ce_time": {**text, "format": "date-time", "description": "= occurred_at"},
            "ce_subject": {**text, "description": "= stream_id"},
            "ce_dataschema": {
                **text,
                "format": "uri",
                "description": "the JSON Schema of the value: `urn:grid-epi:contracts:<path>` "
                "is docs/contracts/<path>",
            },
            "content-type": {"const": CONTENT_TYPE},
            "type": {**text, "description": "= the envelope's type"},
            EPOCH_HEADER: {**text, "description": "the relay lease's epoch that published it"},
            POSITION_HEADER: {
                **text,
                "description": "`<tx_id>:<position>` in the store: the relay's order",
            },
        },
    }


def _lift(schema: dict[str, Any], shared: dict[str, Any], name: str) -> dict[str, Any]:
    """Move a payload's `$defs` into the document's schemas and point its refs there; when
    another payload defines one of those names differently, this one's are named
    `<message>.<name>`."""
    schema = dict(schema)
    defs = schema.pop("$defs", {})
    renamed = {d: d for d in defs}
    if any(shared.get(d, v) != v for d, v in _point(defs, renamed).items()):
        renamed = {d: f"{name}.{d}" for d in defs}
    shared.update({renamed[d]: v for d, v in _point(defs, renamed).items()})
    return _point(schema, renamed)  # type: ignore[no-any-return]


def _point(node: Any, renamed: dict[str, str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return {**node, "$ref": f"#/components/schemas/{renamed[ref.removeprefix('#/$defs/')]}"}
        return {k: _point(v, renamed) for k, v in node.items()}
    if isinstance(node, list):
        return [_point(v, renamed) for v in node]
    return node
