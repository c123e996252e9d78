"""The committed OpenAPI documents are the services' own, and what they show is true."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from services.openapi import documents, render

DOCS = Path(__file__).resolve().parents[2] / "docs" / "openapi"
DOCUMENTS = documents()


@pytest.mark.parametrize("service", DOCUMENTS)
def test_the_committed_document_is_current(service: str) -> None:
    """`make contracts` rewrites docs/openapi/; a changed route must be re-exported."""
    assert (DOCS / f"{service}.json").read_text() == render(DOCUMENTS[service])


def _examples(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(where, schema, example) for every example a media type, a parameter or a schema
    shows."""
    if isinstance(node, dict):
        if isinstance(node.get("schema"), dict):  # a media type or a parameter
            if "example" in node:
                yield f"{where}/example", node["schema"], node["example"]
            for name, shown in (node.get("examples") or {}).items():
                if "value" in shown:
                    yield f"{where}/examples/{name}", node["schema"], shown["value"]
        elif isinstance(node.get("examples"), list):  # a schema's own
            for i, value in enumerate(node["examples"]):
                yield f"{where}/examples/{i}", node, value
        for key, value in node.items():
            yield from _examples(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _examples(value, f"{where}/{i}")


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    """`schema` judged with the document's components, which its references name."""
    root = {"components": document.get("components", {}), "allOf": [schema]}
    return jsonschema_rs.Draft202012Validator(root)


@pytest.mark.parametrize("service", DOCUMENTS)
def test_every_example_is_valid_against_its_schema(service: str) -> None:
    document = DOCUMENTS[service]
    found = list(_examples(document["paths"], "#/paths"))
    found += _examples(document.get("components", {}), "#/components")
    assert found
    wrong = {
        where: [e.message for e in _validator(document, schema).iter_errors(example)]
        for where, schema, example in found
        if not _validator(document, schema).is_valid(example)
    }
    assert wrong == {}


BATCH_ROUTES = [
    (service, path)
    for service, document in DOCUMENTS.items()
    for path in document["paths"]
    if path.endswith(":batch")
]


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


@pytest.mark.parametrize(("service", "path"), BATCH_ROUTES)
def test_a_batch_route_documents_the_result_of_each_item(service: str, path: str) -> None:
    document = DOCUMENTS[service]
    ok = document["paths"][path]["post"]["responses"]["200"]
    answer = _resolve(document, ok["content"]["application/json"]["schema"])
    item = _resolve(document, answer["properties"]["results"]["items"])
    assert {"index", "status"} <= set(item["properties"]), path
    assert set(item["properties"]["status"]["enum"]) == {"created", "unchanged", "error"}


def test_there_are_batch_routes() -> None:
    assert len(BATCH_ROUTES) >= 6


def test_the_files_are_json() -> None:
    for path in DOCS.glob("*.json"):
        assert json.loads(path.read_text())["openapi"].startswith("3.")
