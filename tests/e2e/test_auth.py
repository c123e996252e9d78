"""Deny by default: every endpoint checks the token, the role and the jurisdiction.

The role x endpoint table below is the one in docs/access.md.
"""

from __future__ import annotations

import pytest

from shared.auth import Role
from tests.e2e.conftest import Stack

EVERYONE = set(Role)
ACCESS = {
    # (service, method, path): roles allowed
    ("registry", "POST", "/v1/nodes"): {Role.ADMIN, Role.REGISTRAR},
    ("registry", "GET", "/v1/nodes/{root}"): EVERYONE,
    ("reporting", "GET", "/v1/nodes/{root}/summary"): EVERYONE,
}


async def _seed_tree(stack: Stack) -> None:
    admin = stack.token("admin")
    for body in (
        {"id": "root", "parent_id": None, "kind": "district", "name": "区"},
        {"id": "street-a", "parent_id": "root", "kind": "street", "name": "甲街道"},
        {"id": "street-b", "parent_id": "root", "kind": "street", "name": "乙街道"},
    ):
        r = await stack.registry.post("/v1/nodes", json=body, headers=admin)
        assert r.status_code == 201, r.text


async def _call(stack: Stack, service: str, method: str, path: str, headers: dict[str, str]) -> int:
    client = stack.registry if service == "registry" else stack.reporting
    body = {"parent_id": "root", "kind": "grid", "name": "网格"} if method == "POST" else None
    r = await client.request(method, path.format(root="root"), json=body, headers=headers)
    return r.status_code


@pytest.mark.parametrize("endpoint", list(ACCESS), ids=lambda e: " ".join(e))
async def test_role_table(stack: Stack, endpoint: tuple[str, str, str]) -> None:
    await _seed_tree(stack)
    from shared.testing import eventually

    async def reporting_knows_root() -> bool:
        r = await stack.reporting.get("/v1/nodes/root/summary", headers=stack.token("admin"))
        return r.status_code == 200

    await eventually(reporting_knows_root)
    for role in Role:
        status = await _call(stack, *endpoint, headers=stack.token(role.value))
        if role in ACCESS[endpoint]:
            assert status in (200, 201), (role, status)
        else:
            assert status == 403, (role, status)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic abc"}, 401),
        ({"Authorization": "Bearer not-a-jwt"}, 401),
    ],
)
async def test_missing_or_malformed_token_is_401(
    stack: Stack, headers: dict[str, str], status: int
) -> None:
    r = await stack.registry.get("/v1/nodes/root", headers=headers)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"


async def test_token_with_a_bad_signature_is_401(stack: Stack) -> None:
    forged = stack.token("admin", secret="someone-elses-secret-0123456789abcdef")
    assert (await stack.registry.get("/v1/nodes/root", headers=forged)).status_code == 401


async def test_expired_token_is_401(stack: Stack) -> None:
    expired = stack.token("admin", ttl=-60)
    r = await stack.registry.get("/v1/nodes/root", headers=expired)
    assert r.status_code == 401
    assert r.json()["type"].endswith("/token-expired")


async def test_nodes_outside_the_callers_scope_are_403(stack: Stack) -> None:
    await _seed_tree(stack)
    clerk = stack.token("registrar", scope=["street-a"])
    inside = await stack.registry.post(
        "/v1/nodes",
        json={"parent_id": "street-a", "kind": "community", "name": "一社区"},
        headers=clerk,
    )
    assert inside.status_code == 201
    outside = await stack.registry.post(
        "/v1/nodes",
        json={"parent_id": "street-b", "kind": "community", "name": "二社区"},
        headers=clerk,
    )
    assert outside.status_code == 403
    assert (await stack.registry.get("/v1/nodes/street-b", headers=clerk)).status_code == 403
    assert (await stack.registry.get("/v1/nodes/root", headers=clerk)).status_code == 403
    assert (await stack.registry.get("/v1/nodes/street-a", headers=clerk)).status_code == 200


async def test_only_admin_creates_a_root(stack: Stack) -> None:
    r = await stack.registry.post(
        "/v1/nodes",
        json={"parent_id": None, "kind": "district", "name": "x"},
        headers=stack.token("registrar"),
    )
    assert r.status_code == 403
