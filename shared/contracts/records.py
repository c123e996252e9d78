"""What a record on a topic holds: the envelope with one type's payload, and its CloudEvents
attributes.

Every record's value is an envelope (`shared/envelope.py`) whose `data` is the payload of its
`type` at its `schema_version`. A consumer in any language validates a record against the
schema of exactly that type and version, `docs/contracts/<topic>/<Type>.v<N>.json`; the file's
`$id` is the record's CloudEvents `dataschema`, so a record names the schema it follows. The
same file layout holds every version ever published, so history decodes too.

CloudEvents 1.0 binary mode (Kafka protocol binding): the attributes travel as `ce_*` headers
beside the unchanged envelope, `content-type` is the value's media type.
"""

from __future__ import annotations

from collections.abc import Iterator
from copy import deepcopy
from functools import cache
from typing import Any

from shared.contracts import Catalog, EventPayload
from shared.envelope import Envelope

CONTRACTS_URI = "urn:grid-epi:contracts:"
"""`ce_dataschema` and each schema's `$id` are this plus the file's path under docs/contracts."""

JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"
SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"


def service_of(topic: str) -> str:
    """`registry.events` (or `<prefix>registry.events`) is published by `registry`."""
    return topic.removesuffix(".events").rsplit(".", 1)[-1]


def ce_source(service: str) -> str:
    return f"/grid-epi/{service}"


def ce_type(service: str, event_type: str, schema_version: int) -> str:
    return f"grid-epi.{service}.{event_type}.v{schema_version}"


def schema_path(topic: str, event_type: str, schema_version: int) -> str:
    """Where the record schema lives under docs/contracts/."""
    return f"{topic}/{event_type}.v{schema_version}.json"


def dataschema(topic: str, event_type: str, schema_version: int) -> str:
    return CONTRACTS_URI + schema_path(topic, event_type, schema_version)


def every_version(catalog: Catalog) -> Iterator[type[EventPayload]]:
    """Every payload model the topic has ever published, by type then version."""
    for name, cls in sorted(catalog.events.items()):
        yield from catalog.earlier.get(name, [])
        yield cls


@cache
def envelope_schema() -> dict[str, Any]:
    return Envelope.model_json_schema()


def record_schema(catalog: Catalog, cls: type[EventPayload]) -> dict[str, Any]:
    """The JSON Schema of a record's value: the envelope, with `type` and `schema_version`
    fixed and `data` the payload's schema (its definitions lifted to the top). The relay
    writes every envelope field, null where a fact is missing, so all are required."""
    payload = cls.model_json_schema()
    defs = payload.pop("$defs", {})
    schema = deepcopy(envelope_schema())
    props = schema["properties"]
    props["type"] = {**props["type"], "const": cls.event_type}
    props["schema_version"] = {**props["schema_version"], "const": cls.schema_version}
    props["data"] = payload
    schema["required"] = list(props)
    schema.pop("title", None)
    head: dict[str, Any] = {
        "$schema": JSON_SCHEMA,
        "$id": dataschema(catalog.topic, cls.event_type, cls.schema_version),
        "title": f"{cls.event_type} v{cls.schema_version} on {catalog.topic}",
    }
    if defs:
        schema["$defs"] = defs
    return head | schema
