"""Each OpenAPI document declares every error its operations answer, as a problem."""

from __future__ import annotations

from typing import Any

import pytest

from shared.problems import PROBLEM_JSON
from tests.e2e.conftest import SERVICES

PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
OPEN = {"/healthz", "/readyz", "/metrics"}


def _document(service: str) -> dict[str, Any]:
    settings, create = SERVICES[service]
    return create(settings()).openapi()


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, ops in doc["paths"].items() for m, op in ops.items()]


@pytest.mark.parametrize("service", SERVICES)
def test_every_error_response_is_a_problem(service: str) -> None:
    doc = _document(service)
    errors = {
        (method, path, status): response.get("content")
        for method, path, op in _operations(doc)
        for status, response in op["responses"].items()
        if int(status) >= 400
    }
    assert errors
    assert {k: v for k, v in errors.items() if v != PROBLEM} == {}
    assert "Problem" in doc["components"]["schemas"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]


@pytest.mark.parametrize("service", SERVICES)
def test_each_operation_declares_what_its_layers_answer(service: str) -> None:
    missing = {}
    for method, path, op in _operations(_document(service)):
        if path in OPEN:
            continue
        expected = {"401", "403", "503"}
        if method in {"POST", "PUT"}:
            expected |= {"400", "409", "412", "413", "422"}
        if "{" in path or op.get("parameters") or "requestBody" in op:
            expected |= {"404", "422"}
        if gaps := expected - set(op["responses"]):
            missing[method, path] = sorted(gaps)
    assert missing == {}


@pytest.mark.parametrize("service", SERVICES)
def test_ops_routes_answer_as_declared(service: str) -> None:
    paths = _document(service)["paths"]
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    for route in ("/healthz", "/readyz"):
        assert paths[route]["get"]["responses"]["503"]["content"] == PROBLEM
