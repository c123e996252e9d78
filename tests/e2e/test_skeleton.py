"""The walking skeleton: a place created on registry shows up in reporting via Kafka."""

from __future__ import annotations

import httpx

from shared.testing import eventually
from tests.e2e.conftest import Stack


async def test_node_created_on_registry_is_summarised_by_reporting(stack: Stack) -> None:
    admin = stack.token("admin")
    root = await stack.registry.post(
        "/v1/nodes",
        json={"id": "jintang", "parent_id": None, "kind": "district", "name": "金堂县"},
        headers=admin,
    )
    assert root.status_code == 201, root.text
    assert root.json() == {"id": "jintang", "parent_id": None, "kind": "district",
                           "name": "金堂县", "path": "jintang", "version": 1, "retired": False}
    assert root.headers["etag"] == '"1"'
    child = await stack.registry.post(
        "/v1/nodes",
        json={"parent_id": "jintang", "kind": "township", "name": "三溪镇"},
        headers=admin,
    )
    assert child.status_code == 201, child.text
    assert child.json()["path"].startswith("jintang.")

    async def summarised() -> httpx.Response | None:
        r = await stack.reporting.get("/v1/nodes/jintang/summary", headers=stack.token("command"))
        return r if r.status_code == 200 and r.json()["children"] == 1 else None

    summary = (await eventually(summarised, message="reporting never saw both nodes")).json()
    assert summary["name"] == "金堂县"
    assert summary["descendants_by_kind"] == {"township": 1}


async def test_retrying_a_create_with_the_same_idempotency_key_creates_one_node(
    stack: Stack,
) -> None:
    admin = {**stack.token("admin"), "Idempotency-Key": "upload-42"}
    body = {"parent_id": None, "kind": "district", "name": "金堂县"}
    first = await stack.registry.post("/v1/nodes", json=body, headers=admin)
    again = await stack.registry.post("/v1/nodes", json=body, headers=admin)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()


async def test_creating_an_existing_id_with_other_content_is_a_conflict(stack: Stack) -> None:
    admin = stack.token("admin")
    body = {"id": "d1", "parent_id": None, "kind": "district", "name": "A"}
    assert (await stack.registry.post("/v1/nodes", json=body, headers=admin)).status_code == 201
    same = await stack.registry.post("/v1/nodes", json=body, headers=admin)
    assert same.status_code == 201 and same.json()["version"] == 1
    other = await stack.registry.post("/v1/nodes", json={**body, "name": "B"}, headers=admin)
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
