"""Responsible parties and chains (包保) through HTTP, on real PostgreSQL and Kafka.

普阳 district → 普阳街道 (and a sibling street) → 一社区 → 阳光小区 → 3号楼 / 5号楼. The 4-level
chain's first tier covers a street, so the chain is applied to the district.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.registry.handlers.chains import ensure_builtin_templates, person_facts
from shared.db import create_pool
from shared.testing import Infra
from tests.e2e.conftest import Stack

TREE = [
    ("puyang", None, "district", "普阳区"),
    ("puyang-st", "puyang", "street", "普阳街道"),
    ("other-st", "puyang", "street", "别的街道"),
    ("c-1", "puyang-st", "community", "一社区"),
    ("yangguang", "c-1", "compound", "阳光小区"),
    ("b-3", "yangguang", "building", "3号楼"),
    ("b-5", "yangguang", "building", "5号楼"),
]
PARTIES = [
    ("p-district", "person", "区委副书记", "district_leader", "puyang"),
    ("p-street", "unit", "街道班子", "street_cadre", "puyang-st"),
    ("p-section", "unit", "城管科", "section", "puyang-st"),
    ("p-community", "unit", "一社区居委会", "community", "c-1"),
    ("p-volunteer", "person", "楼栋长", "community", "c-1"),
]
CHAIN = [  # (assignment id, level, party, building block)
    ("a-1", 1, "p-district", "puyang-st"),
    ("a-2", 2, "p-street", "c-1"),
    ("a-3", 3, "p-section", "yangguang"),
    ("a-4", 4, "p-community", "b-3"),
    ("a-5", 4, "p-volunteer", "b-3"),  # 多对一: two parties answer for 3号楼
]


@pytest.fixture
async def chains(stack: Stack, infra: Infra) -> AsyncIterator[Stack]:
    """The stack with the built-in templates defined, as the registry's startup does."""
    pool = await create_pool(infra.pg_dsn, stack.settings.schema_name)
    try:
        await ensure_builtin_templates(pool)
    finally:
        await pool.close()
    yield stack


async def post(stack: Stack, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await stack.registry.post(path, json=body, headers={**stack.token("admin"), **headers})


async def build(stack: Stack, *, assignments: bool = True) -> None:
    for node_id, parent, kind, name in TREE:
        body = {"id": node_id, "parent_id": parent, "kind": kind, "name": name}
        assert (await post(stack, "/v1/nodes", body)).status_code == 201
    for party_id, kind, name, role, node in PARTIES:
        body = {"id": party_id, "kind": kind, "name": name, "role": role, "node_id": node}
        r = await post(stack, "/v1/parties", body)
        assert r.status_code == 201, r.text
    instance = {
        "id": "puyang-2020",
        "template_id": "baobao-4",
        "root_node_id": "puyang",
        "valid_from": "2020-01-27",
    }
    r = await post(stack, "/v1/chain-instances", instance)
    assert r.status_code == 201, r.text
    if assignments:
        for assignment_id, level, party_id, target in CHAIN:
            r = await post(
                stack, "/v1/assignments", assignment(assignment_id, level, party_id, target)
            )
            assert r.status_code == 201, r.text


def assignment(
    assignment_id: str | None, level: int, party_id: str, target: str, **extra: Any
) -> dict[str, Any]:
    body = {
        "instance_id": "puyang-2020",
        "level": level,
        "party_id": party_id,
        "target_type": "node",
        "target_id": target,
        "valid_from": "2020-01-28",
        **extra,
    }
    if assignment_id is not None:
        body["id"] = assignment_id
    return body


async def listing(stack: Stack, headers: dict[str, str] | None = None, **query: Any) -> Any:
    r = await stack.registry.get(
        "/v1/assignments", params=query, headers=headers or stack.token("command")
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_both_builtin_templates_are_listed_and_defined_once(
    chains: Stack, infra: Infra
) -> None:
    pool = await create_pool(infra.pg_dsn, chains.settings.schema_name)
    try:
        await ensure_builtin_templates(pool)  # a second start of the registry
        defined = await pool.fetch(
            "SELECT stream_id, command_id FROM events WHERE type = 'ChainTemplateDefined'"
            " ORDER BY stream_id"
        )
    finally:
        await pool.close()
    assert [tuple(r) for r in defined] == [
        ("chain_template:baobao-4", "builtin:baobao-4"),
        ("chain_template:baobao-6", "builtin:baobao-6"),
    ]
    r = await chains.registry.get("/v1/chain-templates", headers=chains.token("grid_worker"))
    assert r.status_code == 200
    page = r.json()
    assert [(t["id"], t["name"]) for t in page["items"]] == [
        ("baobao-4", "四级包保"),
        ("baobao-6", "六级包保"),
    ]
    assert page["next_cursor"] is None
    six = await chains.registry.get("/v1/chain-templates/baobao-6", headers=chains.token("medic"))
    assert six.headers["etag"] == '"1"'
    assert [t["party_role"] for t in six.json()["tiers"]] == [
        "leader",
        "resident_cadre",
        "police_station",
        "village",
        "group",
        "medic",
    ]
    assert six.json()["tiers"][5]["covers"] == "person"


async def test_a_district_defines_its_own_template(chains: Stack) -> None:
    body = {
        "id": "baobao-2",
        "name": "两级包保",
        "tiers": [
            {"level": 2, "name": "医护人员包人", "party_role": "medic", "covers": "person"},
            {
                "level": 1,
                "name": "社区包楼栋",
                "party_role": "community",
                "node_kinds": ["building"],
            },
        ],
    }
    r = await chains.registry.post(
        "/v1/chain-templates", json=body, headers=chains.token("registrar")
    )
    assert r.status_code == 201, r.text
    assert [t["level"] for t in r.json()["tiers"]] == [1, 2]
    gap = {**body, "id": "baobao-x", "tiers": body["tiers"][:1]}
    bad = await chains.registry.post("/v1/chain-templates", json=gap, headers=chains.token("admin"))
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "body.tiers"
    denied = await chains.registry.post(
        "/v1/chain-templates", json=body, headers=chains.token("grid_worker")
    )
    assert denied.status_code == 403


async def test_a_four_level_chain_covers_the_district_down_to_buildings(chains: Stack) -> None:
    await build(chains)
    instance = await chains.registry.get(
        "/v1/chain-instances/puyang-2020", headers=chains.token("command")
    )
    assert instance.status_code == 200 and instance.headers["etag"] == '"1"'
    assert instance.json()["ended"] is False and instance.json()["valid_to"] is None

    whole = await listing(chains, instance_id="puyang-2020")
    assert [(a["id"], a["level"], a["target_id"]) for a in whole["items"]] == [
        (a_id, level, target) for a_id, level, _, target in CHAIN
    ]
    building = await listing(chains, target_id="b-3")
    assert {a["party_id"] for a in building["items"]} == {"p-community", "p-volunteer"}
    assert (await listing(chains, party_id="p-section"))["items"][0]["target_id"] == "yangguang"

    party = await chains.registry.get("/v1/parties/p-district", headers=chains.token("auditor"))
    assert party.status_code == 200 and party.json()["role"] == "district_leader"
    one = await chains.registry.get("/v1/assignments/a-5", headers=chains.token("integrator"))
    assert one.status_code == 200 and one.headers["etag"] == '"1"'


async def test_the_same_binding_under_another_id_returns_the_first(chains: Stack) -> None:
    await build(chains)
    again = await post(chains, "/v1/assignments", assignment("a-9", 4, "p-community", "b-3"))
    assert again.status_code == 201 and again.json()["id"] == "a-4"
    later = assignment("a-10", 4, "p-community", "b-3", valid_from="2020-02-01")
    overlapping = await post(chains, "/v1/assignments", later)
    assert overlapping.status_code == 409
    assert overlapping.json()["code"] == "overlapping-assignment"
    assert len((await listing(chains, target_id="b-3"))["items"]) == 2


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        (assignment(None, 4, "p-community", "yangguang"), "body.target_id", "wrong-kind-for-tier"),
        (assignment(None, 5, "p-community", "b-3"), "body.level", "unknown-level"),
        (assignment(None, 4, "p-nobody", "b-3"), "body.party_id", "unknown-party"),
        (assignment(None, 4, "p-community", "b-404"), "body.target_id", "unknown-node"),
        (
            assignment(None, 4, "p-community", "b-3", valid_from="2019-12-31"),
            "body.valid_from",
            "outside-instance-period",
        ),
        (
            assignment(None, 4, "p-community", "b-3", target_type="person"),
            "body.target_type",
            "wrong-target-type",
        ),
        ({**assignment(None, 4, "p-community", "b-3"), "phone": "1"}, "body.phone", None),
        (assignment(None, 4, "p-community", "b-3", instance_id="nope"), "body.instance_id", None),
    ],
    ids=[
        "wrong kind",
        "no such level",
        "no such party",
        "no such node",
        "before the chain",
        "person at a node tier",
        "unknown field",
        "no such instance",
    ],
)
async def test_bad_assignments_are_422_naming_the_field(
    chains: Stack, body: dict[str, Any], field: str, code: str | None
) -> None:
    await build(chains, assignments=False)
    r = await post(chains, "/v1/assignments", body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == field
    if code is not None:
        assert r.json()["code"] == code


async def test_a_person_who_is_not_registered_cannot_be_covered(chains: Stack) -> None:
    """Person targets are checked against the people vertical's `persons` (422, never 500)."""
    await build(chains, assignments=False)
    six = {
        "id": "puyang-6",
        "template_id": "baobao-6",
        "root_node_id": "puyang",
        "valid_from": "2020-01-27",
    }
    assert (await post(chains, "/v1/chain-instances", six)).status_code == 201
    body = {
        **assignment(None, 6, "p-volunteer", "per-unknown", target_type="person"),
        "instance_id": "puyang-6",
    }
    r = await post(chains, "/v1/assignments", body)
    assert r.status_code == 422 and r.json()["code"] == "unknown-person"


async def test_a_registrar_of_another_street_is_kept_out(chains: Stack) -> None:
    await build(chains)
    outsider = chains.token("registrar", scope=["other-st"])
    insider = chains.token("registrar", scope=["puyang"])
    reg = chains.registry
    assert (await reg.get("/v1/chain-instances/puyang-2020", headers=outsider)).status_code == 403
    assert (await reg.get("/v1/parties/p-community", headers=outsider)).status_code == 403
    assert (await reg.get("/v1/assignments/a-4", headers=outsider)).status_code == 403
    body = assignment("a-6", 4, "p-community", "b-5")
    r = await reg.post("/v1/assignments", json=body, headers=outsider)
    assert r.status_code == 403 and r.json()["type"].endswith("/out-of-scope")
    end = {"valid_to": "2020-02-01", "reason": "x"}
    assert (
        await reg.post("/v1/assignments/a-4/end", json=end, headers=outsider)
    ).status_code == 403
    party = {"kind": "unit", "name": "x", "role": "section", "node_id": "puyang-st"}
    assert (await reg.post("/v1/parties", json=party, headers=outsider)).status_code == 403
    forbidden = await reg.get(
        "/v1/assignments", params={"instance_id": "puyang-2020"}, headers=outsider
    )
    assert forbidden.status_code == 403
    assert (await listing(chains, outsider, target_id="b-3"))["items"] == []
    assert (await reg.post("/v1/assignments", json=body, headers=insider)).status_code == 201
    assert len((await listing(chains, insider, target_id="b-5"))["items"]) == 1


async def test_readers_read_and_only_writers_write(chains: Stack) -> None:
    await build(chains, assignments=False)
    party = {"kind": "unit", "name": "x", "role": "section", "node_id": "c-1"}
    for role in ("grid_worker", "medic", "gatekeeper", "command", "auditor", "integrator"):
        headers = chains.token(role)
        assert (
            await chains.registry.get("/v1/parties/p-community", headers=headers)
        ).status_code == 200
        assert (
            await chains.registry.post("/v1/parties", json=party, headers=headers)
        ).status_code == 403


async def test_retrying_with_the_same_idempotency_key_returns_the_same_body(chains: Stack) -> None:
    await build(chains, assignments=False)
    body = assignment(None, 4, "p-community", "b-5")
    first = await post(chains, "/v1/assignments", body, **{"Idempotency-Key": "upload-7"})
    again = await post(chains, "/v1/assignments", body, **{"Idempotency-Key": "upload-7"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and first.headers["etag"] == again.headers["etag"]
    assert len((await listing(chains, target_id="b-5"))["items"]) == 1

    party = {"kind": "person", "name": "王医生", "role": "medic", "node_id": "c-1"}
    one = await post(chains, "/v1/parties", party, **{"Idempotency-Key": "medic-1"})
    two = await post(chains, "/v1/parties", party, **{"Idempotency-Key": "medic-1"})
    assert one.status_code == two.status_code == 201 and one.json() == two.json()


async def test_assignments_are_listed_in_pages(chains: Stack) -> None:
    await build(chains)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = {"instance_id": "puyang-2020", "limit": 2}
        page = await listing(chains, **(query | ({"cursor": cursor} if cursor else {})))
        seen += [a["id"] for a in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == [a_id for a_id, *_ in CHAIN]
    bad = await chains.registry.get(
        "/v1/assignments", params={"cursor": "not-a-cursor"}, headers=chains.token("command")
    )
    assert bad.status_code == 422
    too_many = await chains.registry.get(
        "/v1/assignments", params={"limit": 1001}, headers=chains.token("command")
    )
    assert too_many.status_code == 422


async def test_ending_is_conditional_and_idempotent(chains: Stack) -> None:
    await build(chains)
    end = {"valid_to": "2020-02-10", "reason": "调岗"}
    stale = await post(chains, "/v1/assignments/a-5/end", end, **{"If-Match": '"7"'})
    assert stale.status_code == 412
    ended = await post(chains, "/v1/assignments/a-5/end", end, **{"If-Match": '"1"'})
    assert ended.status_code == 200, ended.text
    assert ended.json()["ended"] is True and ended.json()["valid_to"] == "2020-02-10"
    assert ended.headers["etag"] == '"2"'
    again = await post(chains, "/v1/assignments/a-5/end", end)
    assert again.status_code == 200 and again.json()["version"] == 2
    other_day = await post(chains, "/v1/assignments/a-5/end", {**end, "valid_to": "2020-02-11"})
    assert other_day.status_code == 409
    before = await post(chains, "/v1/assignments/a-4/end", {**end, "valid_to": "2020-01-01"})
    assert before.status_code == 422 and before.json()["errors"][0]["field"] == "body.valid_to"

    # the volunteer may take 3号楼 again after the first period ended
    back = assignment("a-6", 4, "p-volunteer", "b-3", valid_from="2020-02-11")
    assert (await post(chains, "/v1/assignments", back)).status_code == 201

    closed = await post(chains, "/v1/chain-instances/puyang-2020/end", {**end, "reason": "解除"})
    assert closed.status_code == 200 and closed.json()["valid_to"] == "2020-02-10"
    late = assignment("a-7", 4, "p-community", "b-5", valid_from="2020-02-11")
    r = await post(chains, "/v1/assignments", late)
    assert r.status_code == 422 and r.json()["code"] == "outside-instance-period"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chain-templates/none",
        "/v1/chain-instances/none",
        "/v1/parties/none",
        "/v1/assignments/none",
    ],
)
async def test_unknown_ids_are_404(chains: Stack, path: str) -> None:
    r = await chains.registry.get(path, headers=chains.token("admin"))
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


async def test_concurrent_overlapping_assignments_leave_one(chains: Stack) -> None:
    """Two writers racing on one binding: the table's exclusion constraint stops the second,
    whose decision then runs again on what the first committed."""
    await build(chains, assignments=False)
    same = [assignment(f"r-{i}", 4, "p-community", "b-5") for i in range(4)]
    results = await asyncio.gather(*(post(chains, "/v1/assignments", b) for b in same))
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["id"] for r in results}) == 1
    shifted = [
        assignment(f"s-{i}", 4, "p-volunteer", "b-5", valid_from=f"2020-02-0{i + 1}")
        for i in range(4)
    ]
    results = await asyncio.gather(*(post(chains, "/v1/assignments", b) for b in shifted))
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409]
    assert len((await listing(chains, target_id="b-5"))["items"]) == 2


async def test_person_lookup_is_guarded_until_the_people_tables_exist(pool: Any) -> None:
    assert await person_facts(pool, "per-1") is None


async def test_a_partys_phone_is_kept_encrypted_and_only_masked_in_answers(stack: Stack) -> None:
    r = await stack.registry.post("/v1/parties", headers=stack.token("admin"), json={
        "kind": "person", "name": "王医生", "role": "medic", "phone": "13912345678"})
    assert r.status_code == 201, r.text
    assert r.json()["phone_masked"] == "139****5678" and "13912345678" not in r.text
    bad = await stack.registry.post("/v1/parties", headers=stack.token("admin"), json={
        "kind": "person", "name": "李医生", "role": "medic", "phone": "12345"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.phone"
