"""Bad input gets a clear problem document, never a 500."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Stack


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"parent_id": None, "kind": "district"}, "body.name"),
        ({"parent_id": None, "kind": "district", "name": ""}, "body.name"),
        ({"id": "has space", "parent_id": None, "kind": "district", "name": "x"}, "body.id"),
        ({"parent_id": None, "kind": "planet", "name": "x"}, "body.kind"),
        ({"parent_id": "nowhere", "kind": "grid", "name": "x"}, "body.parent_id"),
    ],
)
async def test_invalid_node_is_a_422_naming_the_field(
    stack: Stack, body: dict[str, object], field: str
) -> None:
    r = await stack.registry.post("/v1/nodes", json=body, headers=stack.token("admin"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"].startswith("https://")
    assert field in problem["detail"]
    assert any(e["field"] == field for e in problem["errors"])


async def test_malformed_json_is_a_422(stack: Stack) -> None:
    r = await stack.registry.post(
        "/v1/nodes",
        content=b"{not json",
        headers={**stack.token("admin"), "content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


async def test_oversized_body_is_a_413_and_stores_nothing(stack: Stack) -> None:
    huge = {"parent_id": None, "kind": "district", "name": "x" * (6 * 1024 * 1024)}
    r = await stack.registry.post("/v1/nodes", json=huge, headers=stack.token("admin"))
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"


async def test_unknown_node_is_a_404(stack: Stack) -> None:
    r = await stack.registry.get("/v1/nodes/nowhere", headers=stack.token("admin"))
    assert r.status_code == 404
    assert r.json()["status"] == 404


async def test_health_readiness_and_metrics(stack: Stack) -> None:
    assert (await stack.registry.get("/healthz")).json()["status"] == "ok"
    ready = await stack.registry.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"postgres": True}  # Kafka is not needed to serve
    metrics = await stack.registry.get("/metrics")
    assert "grid_http_requests_total" in metrics.text
