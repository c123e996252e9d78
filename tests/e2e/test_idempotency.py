"""`Idempotency-Key` over HTTP: a key belongs to (caller, method, route, key) and to the request
it was first used with. A retry answers what the first request answered and writes nothing;
another request under the same key is refused (422); a request whose key is held by one still
running is refused (409); the same key on another route or from another caller is another key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from shared.db import create_pool
from shared.idempotency import WRITE_METHODS
from shared.testing import Infra
from tests.e2e.conftest import Stack
from tests.e2e.test_places import grow
from tests.e2e.test_reporting_ledgers import until_created
from tests.e2e.test_screening_visits import count_events, item, seed


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


def refused_as_reused(r: httpx.Response) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "idempotency-key-reused"
    assert r.json()["errors"][0]["field"] == "header.Idempotency-Key"


async def registry_events(infra: Infra, stack: Stack) -> int:
    pool = await create_pool(infra.pg_dsn, stack.apps["registry"].state.settings.schema_name)
    try:
        return int(await pool.fetchval("SELECT count(*) FROM events"))
    finally:
        await pool.close()


async def test_a_retry_answers_the_first_answer_and_another_body_is_refused(
    stack: Stack, infra: Infra
) -> None:
    admin = keyed(stack.token("admin"), "create-district-1")
    body = {"parent_id": None, "kind": "district", "name": "东区"}
    first = await stack.registry.post("/v1/nodes", headers=admin, json=body)
    assert first.status_code == 201, first.text
    written = await registry_events(infra, stack)

    again = await stack.registry.post("/v1/nodes", headers=admin, json=body)
    assert (again.status_code, again.json(), again.headers["etag"]) == (
        201,
        first.json(),
        first.headers["etag"],
    )
    other = await stack.registry.post(
        "/v1/nodes", headers=admin, json={**body, "name": "西区"}
    )
    refused_as_reused(other)
    assert await registry_events(infra, stack) == written


async def test_a_key_on_another_route_is_another_key(stack: Stack) -> None:
    """Before, a node-create key reused on rename answered 500 (the create's result)."""
    admin = keyed(stack.token("admin"), "k-1")
    created = await stack.registry.post(
        "/v1/nodes", headers=admin, json={"id": "d1", "parent_id": None, "kind": "district",
                                           "name": "东区"})
    assert created.status_code == 201, created.text
    renamed = await stack.registry.post("/v1/nodes/d1/rename", headers=admin, json={"name": "新区"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "新区" and renamed.json()["version"] == 2
    # and the same key on the same route for another place is another request
    await stack.registry.post("/v1/nodes", headers=stack.token("admin"), json={
        "id": "d2", "parent_id": None, "kind": "district", "name": "西区"})
    other = await stack.registry.post("/v1/nodes/d2/rename", headers=admin, json={"name": "新区"})
    refused_as_reused(other)

    household = await stack.registry.post(
        "/v1/households", headers=admin, json={"id": "hh1", "parent_id": "d1", "door_number": "1"}
    )
    assert household.status_code == 201, household.text
    person = await stack.registry.post(
        "/v1/persons",
        headers=admin,
        json={"household_id": "hh1", "name": "王五", "document_type": "passport",
              "document_number": "E12345678"},
    )
    assert person.status_code == 201, person.text
    found = await stack.registry.get(
        f"/v1/persons/{person.json()['id']}", headers=stack.token("admin")
    )
    assert found.status_code == 200


async def test_another_caller_with_the_same_key_is_another_key(stack: Stack) -> None:
    body = {"parent_id": None, "kind": "district", "name": "东区"}
    one = await stack.registry.post(
        "/v1/nodes", headers=keyed(stack.token("admin", sub="ops-1"), "same"), json=body
    )
    two = await stack.registry.post(
        "/v1/nodes", headers=keyed(stack.token("admin", sub="ops-2"), "same"), json=body
    )
    assert one.status_code == two.status_code == 201
    assert one.json()["id"] != two.json()["id"]


async def test_a_key_held_by_a_running_request_is_refused_with_409(
    stack: Stack, infra: Infra
) -> None:
    admin = keyed(stack.token("admin", sub="ops-1"), "slow-1")
    lock = "idempotency ops-1 POST /v1/nodes slow-1"
    pool = await create_pool(infra.pg_dsn, stack.apps["registry"].state.settings.schema_name)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", lock)
            busy = await stack.registry.post(
                "/v1/nodes", headers=admin, json={"parent_id": None, "kind": "district",
                                                  "name": "东区"})
        assert busy.status_code == 409, busy.text
        assert busy.json()["code"] == "idempotency-key-in-flight"
        later = await stack.registry.post(
            "/v1/nodes", headers=admin, json={"parent_id": None, "kind": "district",
                                              "name": "东区"})
        assert later.status_code == 201, later.text
    finally:
        await pool.close()


async def test_visits_a_second_household_under_the_same_key_is_refused(
    screening_stack: Stack, infra: Infra
) -> None:
    """Before, a second visit to another household with the same key answered 201 with the
    first visit, and the key reused on another route answered 200 and applied nothing."""
    s = screening_stack
    await seed(s)
    worker = keyed(s.token("grid_worker"), "visit-1")
    now = datetime.now(UTC) - timedelta(minutes=5)
    first = await s.screening.post("/v1/visits", headers=worker, json=item("v1", "h1", now))
    assert first.status_code == 201, first.text
    second = await s.screening.post("/v1/visits", headers=worker, json=item("v2", "h2", now))
    refused_as_reused(second)
    assert await count_events(infra, s, "HouseholdVisited") == 1

    # the same key on another route is another key: the campaign is started
    campaign = await s.screening.post(
        "/v1/campaigns",
        headers=worker,
        json={"node_id": "comm", "name": "第一轮", "starts_on": now.date().isoformat(),
              "due_on": (now + timedelta(days=3)).date().isoformat()},
    )
    assert campaign.status_code == 201, campaign.text
    assert campaign.json()["id"] != "v1" and campaign.json()["name"] == "第一轮"


async def test_an_upload_under_a_key_answers_its_first_answer_byte_for_byte(
    screening_stack: Stack, infra: Infra
) -> None:
    s = screening_stack
    await seed(s)
    worker = keyed(s.token("grid_worker"), "upload-1")
    now = datetime.now(UTC) - timedelta(minutes=5)
    upload = {"items": [item("v1", "h1", now), item("v2", "h2", now), item("v3", "nope", now)]}
    first = await s.screening.post("/v1/visits:batch", headers=worker, json=upload)
    assert first.status_code == 200, first.text
    assert first.json()["created"] == 2
    again = await s.screening.post("/v1/visits:batch", headers=worker, json=upload)
    assert again.status_code == 200 and again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    other = await s.screening.post(
        "/v1/visits:batch", headers=worker, json={"items": [item("v4", "h3", now)]}
    )
    refused_as_reused(other)
    assert await count_events(infra, s, "HouseholdVisited") == 2
    # without a key the items' own ids are the upload's idempotency
    plain = await s.screening.post("/v1/visits:batch", headers=s.token("grid_worker"), json=upload)
    assert plain.json()["unchanged"] == 2


async def test_no_write_route_answers_500_for_a_key_reused_with_any_body(
    full_stack: Stack,
) -> None:
    """Every write route of the four services, one key for all, two bodies each: never a
    500, and never an answer that is another route's."""
    s = full_stack
    await grow(s)
    admin = keyed(s.token("admin"), "one-key-for-everything")
    created = await s.registry.post(
        "/v1/nodes", headers=admin, json={"id": "x1", "parent_id": "root", "kind": "street",
                                           "name": "丙街道"})
    assert created.status_code == 201, created.text
    swept = 0
    for name, client in s.clients.items():
        for route, operations in s.apps[name].openapi()["paths"].items():
            for method in {m.upper() for m in operations} & WRITE_METHODS:
                path = route.replace("{", "").replace("}", "")  # ids named by their slot
                for body in ({}, {"name": "丙街道", "items": []}):
                    r = await client.request(method, path, headers=admin, json=body)
                    swept += 1
                    assert r.status_code < 500, (name, method, route, r.text)
                    if r.headers.get("content-type", "").startswith("application/json"):
                        assert r.json() != created.json(), (name, method, route)
    assert swept > 100


async def test_a_crossing_under_a_used_key_with_another_body_is_refused(gate_stack: Stack) -> None:
    """A single crossing is recorded by the upload pipeline: its key still scopes the request
    (before, another crossing under the same key was answered as the first crossing's id)."""
    s = gate_stack
    await grow(s)
    admin = s.token("admin")
    now = datetime.now(UTC) - timedelta(minutes=5)
    await until_created(lambda: s.checkpoint.post("/v1/checkpoints", headers=admin, json={
        "id": "gate", "node_id": "comm", "name": "北门", "level": "compound",
        "policy": {"residents_only": False, "health_code_colours": ["green"]},
        "opened_at": (now - timedelta(days=1)).isoformat()}))  # fmt: skip
    crossing = {"checkpoint_id": "gate", "direction": "in", "document_type": "passport",
                "document_number": "E12345678", "health_code": "green", "temperature": 36.5,
                "occurred_at": now.isoformat()}  # fmt: skip
    gatekeeper = keyed(admin, "gate-scan-1")
    first = await s.checkpoint.post("/v1/crossings", headers=gatekeeper, json=crossing)
    assert first.status_code == 201, first.text
    again = await s.checkpoint.post("/v1/crossings", headers=gatekeeper, json=crossing)
    assert (again.status_code, again.content) == (201, first.content)
    assert again.headers["location"] == first.headers["location"]
    other = await s.checkpoint.post(
        "/v1/crossings", headers=gatekeeper, json={**crossing, "document_number": "E87654321"}
    )
    refused_as_reused(other)
