"""The AsyncAPI document and the record schemas describe what the relay publishes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from shared.contracts import Catalog, EventPayload
from shared.contracts.export import asyncapi_yaml
from shared.contracts.published import CATALOGS
from shared.contracts.records import CONTRACTS_URI, every_version

DOCS = Path(__file__).resolve().parents[2] / "docs"
ASYNCAPI_SCHEMA = Path(__file__).parent / "data" / "asyncapi-3.0.0.schema.json"
VERSIONS = [(c, cls) for c in CATALOGS for cls in every_version(c)]
IDS = [f"{c.topic}:{cls.event_type}.v{cls.schema_version}" for c, cls in VERSIONS]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return yaml.safe_load((DOCS / "asyncapi.yaml").read_text())


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_the_committed_asyncapi_document_is_current() -> None:
    """`make contracts` regenerates it; a changed contract must be re-exported."""
    assert (DOCS / "asyncapi.yaml").read_text() == asyncapi_yaml()


def test_it_is_valid_against_the_asyncapi_3_schema(document: dict[str, Any]) -> None:
    validator = jsonschema_rs.validator_for(json.loads(ASYNCAPI_SCHEMA.read_text()))
    assert [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(document)] == []


def test_it_is_an_asyncapi_3_document_of_the_three_topics(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert {"title", "version"} <= set(document["info"])
    assert set(document["channels"]) == {"registry.events", "screening.events", "checkpoint.events"}
    for name, channel in document["channels"].items():
        assert channel["address"] == name
        assert channel["bindings"]["kafka"]["topic"] == name
    for operation in document["operations"].values():
        assert operation["action"] in ("send", "receive")
        channel = _resolve(document, operation["channel"]["$ref"])
        for message in operation["messages"]:
            assert message["$ref"].startswith(operation["channel"]["$ref"] + "/messages/")
            assert _resolve(document, message["$ref"]) in channel["messages"].values()
    assert {"schemas", "messages"} <= set(document["components"])
    for ref in _refs(document):
        _resolve(document, ref)  # every reference points at something


def test_every_published_version_of_every_type_is_a_message(document: dict[str, Any]) -> None:
    for catalog, cls in VERSIONS:
        name = f"{cls.event_type}.v{cls.schema_version}"
        assert name in document["channels"][catalog.topic]["messages"], name
        message = document["components"]["messages"][name]
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        assert message["payload"]["allOf"][0] == {"$ref": "#/components/schemas/Envelope"}
    messages = sum(len(c["messages"]) for c in document["channels"].values())
    assert messages == len(VERSIONS)


def _inline(document: dict[str, Any], node: Any) -> Any:
    """The schema with every document reference replaced by its target (no cycles here)."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            return _inline(document, _resolve(document, node["$ref"]))
        return {k: _inline(document, v) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(document, v) for v in node]
    return node


@pytest.mark.parametrize(("catalog", "cls"), VERSIONS, ids=IDS)
def test_each_example_is_valid_for_its_message_and_its_model(
    document: dict[str, Any], catalog: Catalog, cls: type[EventPayload]
) -> None:
    name = f"{cls.event_type}.v{cls.schema_version}"
    message = document["components"]["messages"][name]
    payload_schema = _inline(document, message["payload"])
    headers_schema = _inline(document, message["headers"])
    for ex in message["examples"]:
        jsonschema_rs.validate(payload_schema, ex["payload"])
        jsonschema_rs.validate(headers_schema, ex["headers"])
        cls.model_validate(ex["payload"]["data"])
        record = json.loads(
            (
                DOCS / "contracts" / ex["headers"]["ce_dataschema"].removeprefix(CONTRACTS_URI)
            ).read_text()
        )
        jsonschema_rs.validate(record, ex["payload"])


def test_a_record_schema_refuses_another_type_or_version() -> None:
    catalog, cls = next((c, e) for c, e in VERSIONS if e.event_type == "NodeCreated")
    record = json.loads((DOCS / "contracts" / catalog.topic / "NodeCreated.v1.json").read_text())
    good = {
        "event_id": "0b6f5a9e-3c1d-4e2f-8a7b-9c0d1e2f3a4b",
        "type": "NodeCreated",
        "schema_version": 1,
        "stream_id": "node:n1",
        "stream_type": "node",
        "version": 1,
        "occurred_at": "2026-01-29T08:00:00+08:00",
        "recorded_at": "2026-01-29T08:00:01+08:00",
        "node_id": "n1",
        "actor": None,
        "correlation_id": None,
        "causation_id": None,
        "data": {
            "node_id": "n1",
            "parent_id": None,
            "kind": "district",
            "name": "金堂县",
            "path": "n1",
        },  # fmt: skip
    }
    assert jsonschema_rs.is_valid(record, good)
    assert not jsonschema_rs.is_valid(record, {**good, "type": "NodeRenamed"})
    assert not jsonschema_rs.is_valid(record, {**good, "schema_version": 2})
    assert not jsonschema_rs.is_valid(record, {**good, "data": {"node_id": "n1"}})
