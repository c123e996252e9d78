"""Blind spots of responsibility chains (包保) in reporting, driven through the registry's chain
API and screening's key persons, with all four services on real PostgreSQL and Kafka.

The tree and the 4-level chain are test_chains' (普阳区 → 普阳街道 / 别的街道 → 一社区 → 阳光小区 →
3号楼 / 5号楼; a district leader for 普阳街道, ..., two parties for 3号楼 "多对一").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.registry.handlers.chains import ensure_builtin_templates
from services.reporting.projections_chains import CHAINS
from shared.db import create_pool
from shared.identity import resident_id_check_digit
from shared.testing import Infra, eventually
from tests.e2e.conftest import Stack, start_stack
from tests.e2e.test_chains import assignment, build
from tests.e2e.test_reporting_ledgers import replay

ZHAO = "11010519800202123" + resident_id_check_digit("11010519800202123")


@pytest.fixture
async def full_stack(infra: Infra) -> AsyncIterator[Stack]:
    """All four services, with a fact horizon wide enough for the story's 2020 days."""
    wide = {"fact_horizon_days": 3650}
    services = ["registry", "screening", "checkpoint", "reporting"]
    async for s in start_stack(infra, services, screening=wide, checkpoint=wide):
        yield s


@pytest.fixture
async def chained(full_stack: Stack, infra: Infra) -> AsyncIterator[Stack]:
    """All four services, with the built-in templates defined as the registry's startup does."""
    pool = await create_pool(infra.pg_dsn, full_stack.settings.schema_name)
    try:
        await ensure_builtin_templates(pool)
    finally:
        await pool.close()
    yield full_stack


async def blind_spots(
    s: Stack, node_id: str, chain: str, day: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await s.reporting.get(
        "/v1/blind-spots",
        params={"node_id": node_id, "chain": chain, "date": day},
        headers=headers or s.token("command", scope=["puyang"]),
    )


def spots(r: httpx.Response) -> list[tuple[int, str]]:
    assert r.status_code == 200, r.text
    return [(i["level"], i["target_id"]) for i in r.json()["items"]]


async def settles(s: Stack, node_id: str, chain: str, day: str, expected: Any) -> Any:
    async def check() -> Any:
        r = await blind_spots(s, node_id, chain, day)
        return r.json() if r.status_code == 200 and spots(r) == expected else None

    return await eventually(check, message=f"blind spots never became {expected}")


async def test_blind_spots_appear_and_disappear_as_assignments_start_and_end(
    chained: Stack,
) -> None:
    s = chained
    await build(s)
    # 2020-01-28: 别的街道 has no district leader, 5号楼 nobody; 3号楼 has two parties (once)
    body = await settles(s, "puyang", "baobao-4", "2020-01-28", [(1, "other-st"), (4, "b-5")])
    assert [(t["level"], t["targets"], t["covered"], t["blind"]) for t in body["tiers"]] == [
        (1, 2, 1, 1),
        (2, 1, 1, 0),
        (3, 1, 1, 0),
        (4, 2, 1, 1),
    ]
    [b5] = [i for i in body["items"] if i["target_id"] == "b-5"]
    assert b5 == {
        "instance_id": "puyang-2020", "level": 4, "tier": "社区包楼栋", "target_type": "node",
        "target_id": "b-5", "kind": "building", "name": "5号楼", "place_id": "b-5",
    }  # fmt: skip
    # the day before the assignments start, every target is blind (in tree order); by instance
    # id too
    before = spots(await blind_spots(s, "puyang", "puyang-2020", "2020-01-27"))
    assert before == [(1, "other-st"), (1, "puyang-st"), (2, "c-1"), (3, "yangguang"),
                      (4, "b-3"), (4, "b-5")]  # fmt: skip
    # before the instance starts there is no chain to be blind in
    assert (await blind_spots(s, "puyang", "baobao-4", "2020-01-26")).json()["tiers"] == []
    # a community asks about its own subtree only
    mine = await blind_spots(s, "c-1", "baobao-4", "2020-01-28", s.token("command", scope=["c-1"]))
    assert spots(mine) == [(4, "b-5")]

    admin = s.token("admin")
    r = await s.registry.post(
        "/v1/assignments", headers=admin, json=assignment("a-6", 4, "p-community", "b-5")
    )
    assert r.status_code == 201, r.text
    r = await s.registry.post(
        "/v1/assignments/a-3/end", headers=admin, json={"valid_to": "2020-02-01", "reason": "调岗"}
    )
    assert r.status_code == 200, r.text
    await settles(s, "puyang", "baobao-4", "2020-01-28", [(1, "other-st")])
    await settles(s, "puyang", "baobao-4", "2020-02-02", [(1, "other-st"), (3, "yangguang")])
    assert spots(await blind_spots(s, "puyang", "baobao-4", "2020-02-01")) == [(1, "other-st")]
    # one of 3号楼's two parties leaves: 3号楼 is still covered
    r = await s.registry.post(
        "/v1/assignments/a-5/end", headers=admin, json={"valid_to": "2020-02-01", "reason": "调岗"}
    )
    assert r.status_code == 200, r.text
    r = await s.registry.post(
        "/v1/assignments/a-1/end", headers=admin, json={"valid_to": "2020-02-01", "reason": "调岗"}
    )
    assert r.status_code == 200, r.text
    await settles(
        s, "puyang", "baobao-4", "2020-02-02", [(1, "other-st"), (1, "puyang-st"), (3, "yangguang")]
    )

    # every registry event applied a second time changes nothing
    assert (await replay(s, CHAINS, "registry.events")).count("PartyAssigned") == 6
    after = [(2020, "01-28"), (2020, "02-01"), (2020, "02-02")]
    assert [spots(await blind_spots(s, "puyang", "baobao-4", f"{y}-{d}")) for y, d in after] == [
        [(1, "other-st")],
        [(1, "other-st")],
        [(1, "other-st"), (1, "puyang-st"), (3, "yangguang")],
    ]

    outsider = s.token("command", scope=["other-st"])
    denied = await blind_spots(s, "c-1", "baobao-4", "2020-01-28", outsider)
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
    unknown = await blind_spots(s, "puyang", "baobao-9", "2020-01-28")
    assert unknown.status_code == 200 and unknown.json()["tiers"] == []


async def test_a_key_person_without_a_medic_is_a_blind_spot_until_one_is_assigned(
    chained: Stack,
) -> None:
    s = chained
    await build(s, assignments=False)
    admin = s.token("admin")
    template = {
        "id": "baobao-2",
        "name": "两级包保",
        "tiers": [
            {"level": 1, "name": "社区包楼栋", "party_role": "community",
             "node_kinds": ["building"]},
            {"level": 2, "name": "医护人员包人", "party_role": "medic", "covers": "person"},
        ],
    }  # fmt: skip
    for path, body in (
        ("/v1/chain-templates", template),
        ("/v1/chain-instances", {"id": "c1-2020", "template_id": "baobao-2",
                                 "root_node_id": "c-1", "valid_from": "2020-01-27"}),
        ("/v1/parties", {"id": "p-medic", "kind": "person", "name": "王医生", "role": "medic",
                         "node_id": "c-1"}),
        ("/v1/households", {"id": "h-1", "parent_id": "b-3", "door_number": "301"}),
        ("/v1/persons", {"id": "per-1", "household_id": "h-1", "name": "赵六",
                         "document_number": ZHAO}),
    ):  # fmt: skip
        r = await s.registry.post(path, headers=admin, json=body)
        assert r.status_code == 201, r.text
    for level, target in ((1, "b-3"), (1, "b-5")):
        body = {**assignment(None, level, "p-community", target), "instance_id": "c1-2020"}
        r = await s.registry.post("/v1/assignments", headers=admin, json=body)
        assert r.status_code == 201, r.text

    async def flagged() -> bool:
        r = await s.screening.post(
            "/v1/inquiries",
            headers=s.token("grid_worker", scope=["c-1"], sub="worker-1"),
            json={"id": "inq-1", "person_id": "per-1", "close_contact": True,
                  "occurred_at": "2020-02-01T09:00:00+08:00"},
        )  # fmt: skip
        return r.status_code == 201

    await eventually(flagged, message="screening never accepted the inquiry")
    body = await settles(s, "c-1", "c1-2020", "2020-02-01", [(2, "per-1")])
    [person] = body["items"]
    assert person["target_type"] == "person" and person["place_id"] == "h-1"
    assert person["name"] == "赵*"
    assert spots(await blind_spots(s, "c-1", "c1-2020", "2020-01-31")) == []

    medic = {
        **assignment(None, 2, "p-medic", "per-1", target_type="person"),
        "instance_id": "c1-2020",
        "valid_from": "2020-02-02",
    }
    r = await s.registry.post("/v1/assignments", headers=admin, json=medic)
    assert r.status_code == 201, r.text
    await settles(s, "c-1", "baobao-2", "2020-02-02", [])
    assert spots(await blind_spots(s, "c-1", "baobao-2", "2020-02-01")) == [(2, "per-1")]

    # the key person moves to 5号楼: still a blind spot on 2020-02-01, now at the new home
    r = await s.registry.post(
        "/v1/households", headers=admin, json={"id": "h-2", "parent_id": "b-5", "door_number": "1"}
    )
    assert r.status_code == 201, r.text
    r = await s.registry.post("/v1/persons/per-1/move", headers=admin, json={"household_id": "h-2"})
    assert r.status_code == 200, r.text

    async def moved() -> bool:
        r = await blind_spots(s, "c-1", "c1-2020", "2020-02-01")
        return r.status_code == 200 and [i["place_id"] for i in r.json()["items"]] == ["h-2"]

    await eventually(moved, message="the key person's blind spot never moved")

    async def ledger_follows() -> bool:
        r = await s.reporting.get(
            "/v1/ledgers/key-persons.csv",
            params={"node_id": "b-5", "date": "2020-02-01"},
            headers=s.token("command", scope=["c-1"]),
        )
        assert r.status_code == 200, r.text
        return [row.split(",")[5] for row in r.text.splitlines()[1:]] == ["h-2"]

    await eventually(ledger_follows, message="the key-person ledger never followed the move")
