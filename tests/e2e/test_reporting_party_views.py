"""Responsibility-chain views per party (包保) in reporting, driven through the registry's and
screening's APIs with all four services on real PostgreSQL and Kafka: a party's exact figures
in a 4-level and a 6-level chain, 多对一 and nested covers counted once, moves and ended
assignments, the chain tree, jurisdiction.

The 4-level chain is test_chains' (普阳区 → 普阳街道 / 别的街道 → 一社区 → 阳光小区 → 3号楼 /
5号楼; 3号楼 has two parties at tier 4: 一社区居委会 and 楼栋长).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.registry.handlers.chains import ensure_builtin_templates
from shared.db import create_pool
from shared.identity import resident_id_check_digit
from shared.testing import Infra, eventually
from tests.e2e.conftest import Stack
from tests.e2e.test_chains import assignment, build
from tests.e2e.test_places import grow

SHANGHAI = ZoneInfo("Asia/Shanghai")
CORE = ("households", "persons", "vulnerable", "screened_households", "key_persons",
        "under_observation", "under_quarantine")  # fmt: skip


def national_id(n: int) -> str:
    first17 = f"32010219850101{n:03d}"
    return first17 + resident_id_check_digit(first17)


def stocks(**values: int) -> dict[str, int]:
    return dict(sorted({**dict.fromkeys(CORE, 0), **values}.items()))


@pytest.fixture
async def chained(full_stack: Stack, infra: Infra) -> AsyncIterator[Stack]:
    """All four services, with the built-in templates defined as the registry's startup does."""
    pool = await create_pool(infra.pg_dsn, full_stack.settings.schema_name)
    try:
        await ensure_builtin_templates(pool)
    finally:
        await pool.close()
    yield full_stack


def today() -> str:
    return datetime.now(UTC).astimezone(SHANGHAI).date().isoformat()


def yesterday() -> str:
    return (datetime.now(UTC) - timedelta(days=1)).astimezone(SHANGHAI).date().isoformat()


async def post(s: Stack, client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
    r = await client.post(path, headers=s.token("admin"), json=body)
    assert r.status_code in (200, 201), (path, r.text)
    return r.json()


async def settle_households(s: Stack, households: dict[str, str], persons: list[Any]) -> None:
    """Register households (id → parent) and persons (id, household, tags), and wait until
    screening knows the households."""
    for household_id, parent in households.items():
        body = {"id": household_id, "parent_id": parent, "door_number": household_id}
        await post(s, s.registry, "/v1/households", body)
    for n, (person_id, household_id, tags) in enumerate(persons, start=1):
        body = {"id": person_id, "household_id": household_id, "name": f"居民{n}",
                "document_number": national_id(n), "tags": tags}  # fmt: skip
        await post(s, s.registry, "/v1/persons", body)

    async def screening_knows() -> bool:
        for h in households:
            r = await s.screening.get(f"/v1/households/{h}/visits", headers=s.token("admin"))
            if r.status_code != 200:
                return False
        return True

    await eventually(screening_knows, message="screening never learned the households")


async def visit(s: Stack, visit_id: str, household_id: str, **extra: Any) -> None:
    body = {"id": visit_id, "household_id": household_id, "method": "door",
            "outcome": "screened", "commitment_signed": True,
            "occurred_at": datetime.now(UTC).isoformat(), **extra}  # fmt: skip
    await post(s, s.screening, "/v1/visits", body)


async def party(
    s: Stack, chain: str, party_id: str, day: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await s.reporting.get(
        f"/v1/chains/{chain}/parties/{party_id}/summary",
        params={"date": day},
        headers=headers or s.token("command", scope=["puyang"]),
    )


async def tree(
    s: Stack, chain: str, node_id: str, day: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await s.reporting.get(
        f"/v1/chains/{chain}/tree",
        params={"node_id": node_id, "date": day},
        headers=headers or s.token("command"),
    )


def view(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in ("counted", "flows", "stocks", "coverage_pct", "people")}


async def settles(s: Stack, chain: str, party_id: str, day: str, expected: dict[str, Any]) -> Any:
    """Wait until the party's summary shows exactly `expected` (see `view`)."""

    async def check() -> Any:
        r = await party(s, chain, party_id, day, s.token("command"))
        return r.json() if r.status_code == 200 and view(r.json()) == expected else None

    try:
        return await eventually(check, timeout=30)
    except AssertionError:
        r = await party(s, chain, party_id, day, s.token("command"))
        assert r.status_code == 200 and view(r.json()) == expected, r.text
        raise


def figures(
    counted: list[str],
    flows: dict[str, int],
    stocks: dict[str, int],
    coverage: float | None,
    persons: int = 0,
    key_persons: int = 0,
) -> dict[str, Any]:
    """What `view` shows of a party's summary."""
    return {"counted": counted, "flows": flows, "stocks": stocks, "coverage_pct": coverage,
            "people": {"persons": persons, "key_persons": key_persons}}  # fmt: skip


B3_FLOWS = {"visits": 2, "visits.door": 1, "visits.phone": 1, "visits.outcome.absent": 1,
            "visits.outcome.screened": 1, "visits.signed": 1}  # fmt: skip
B3 = figures(["b-3"], B3_FLOWS,
             stocks(households=2, persons=3, vulnerable=1, screened_households=1,
                    **{"persons.resident": 3}), 50.0)  # fmt: skip
B3_AND_B5 = figures(
    ["b-3", "b-5"],
    {"visits": 3, "visits.door": 2, "visits.phone": 1, "visits.outcome.absent": 1,
     "visits.outcome.screened": 2, "visits.signed": 2},
    stocks(households=3, persons=4, vulnerable=1, screened_households=2,
           **{"persons.resident": 4}),
    66.67,
)  # fmt: skip


async def test_a_party_in_the_four_level_chain(chained: Stack) -> None:
    s = chained
    day = today()
    await build(s)
    await settle_households(
        s,
        {"h-31": "b-3", "h-32": "b-3", "h-51": "b-5"},
        [("per-1", "h-31", ["低保"]), ("per-2", "h-31", []), ("per-3", "h-32", []),
         ("per-4", "h-51", [])],
    )  # fmt: skip
    await visit(s, "v-1", "h-31")
    await visit(s, "v-2", "h-32", method="phone", outcome="absent", commitment_signed=False)
    await visit(s, "v-3", "h-51")

    # 楼栋长 answers for 3号楼: its figures are exactly 3号楼's node summary
    body = await settles(s, "baobao-4", "p-volunteer", day, B3)
    assert body["party"] == {"party_id": "p-volunteer", "kind": "person", "name": "楼栋长",
                             "role": "community", "node_id": "c-1"}  # fmt: skip
    assert body["chain"] == "baobao-4" and body["date"] == day
    assert [(c["instance_id"], c["level"], c["tier"], c["target_id"], c["kind"], c["name"])
            for c in body["covers"]] == [
        ("puyang-2020", 4, "社区包楼栋", "b-3", "building", "3号楼")]  # fmt: skip
    node = await s.reporting.get(
        "/v1/nodes/b-3/summary", params={"date": day}, headers=s.token("command")
    )
    assert {k: node.json()[k] for k in ("flows", "stocks", "coverage_pct")} == {
        k: B3[k] for k in ("flows", "stocks", "coverage_pct")
    }
    # by instance id too
    assert view((await party(s, "puyang-2020", "p-volunteer", day)).json()) == B3

    # 一社区居委会 also takes 5号楼, then the whole community at tier 2: the buildings under
    # the community count once, inside it
    await post(s, s.registry, "/v1/assignments", assignment("a-6", 4, "p-community", "b-5"))
    await settles(s, "baobao-4", "p-community", day, B3_AND_B5)
    await post(s, s.registry, "/v1/assignments", assignment("a-7", 2, "p-community", "c-1"))
    whole = await settles(s, "baobao-4", "p-community", day, {**B3_AND_B5, "counted": ["c-1"]})
    assert [(c["level"], c["target_id"]) for c in whole["covers"]] == [
        (2, "c-1"), (4, "b-3"), (4, "b-5")]  # fmt: skip

    # the tree from the top tier down; at tier 4 3号楼 has two parties (多对一): the tier's
    # total counts it once (3 households, not 2 + 3)
    r = await tree(s, "baobao-4", "puyang", day)
    assert r.status_code == 200, r.text
    [instance] = r.json()["instances"]
    assert instance["instance_id"] == "puyang-2020" and instance["root_node_id"] == "puyang"
    shape = [(t["level"], t["name"], [p["party"]["party_id"] for p in t["parties"]], t["counted"])
             for t in instance["tiers"]]  # fmt: skip
    assert shape == [
        (1, "区级包街道", ["p-district"], ["puyang-st"]),
        (2, "班子和部门包社区", ["p-community", "p-street"], ["c-1"]),
        (3, "科室包小区", ["p-section"], ["yangguang"]),
        (4, "社区包楼栋", ["p-community", "p-volunteer"], ["b-3", "b-5"]),
    ]
    tier4 = instance["tiers"][3]
    assert [p["headline"]["households"] for p in tier4["parties"]] == [3, 2]
    assert tier4["total"] == {
        "households": 3, "persons": 4, "screened_households": 2, "coverage_pct": 66.67,
        "key_persons": 0, "under_observation": 0, "under_quarantine": 0, "visits": 3,
        "people": {"persons": 0, "key_persons": 0},
    }  # fmt: skip
    assert [t["total"]["households"] for t in instance["tiers"]] == [3, 3, 3, 3]

    # a community's tree: the chain as it bears on the community, figures within it (the
    # district leader, who answers for the street, counts the community only)
    r = await tree(s, "baobao-4", "c-1", day, s.token("command", scope=["c-1"]))
    assert r.status_code == 200, r.text
    [mine] = r.json()["instances"]
    top = mine["tiers"][0]
    assert [(p["party"]["party_id"], p["counted"], p["covers"][0]["target_id"])
            for p in top["parties"]] == [("p-district", ["c-1"], "puyang-st")]  # fmt: skip
    assert top["total"]["households"] == 3
    # a building's tree leaves out 5号楼 and its figures
    r = await tree(s, "baobao-4", "b-3", day, s.token("command", scope=["b-3"]))
    assert r.json()["instances"][0]["tiers"][3]["counted"] == ["b-3"]
    assert r.json()["instances"][0]["tiers"][3]["total"]["households"] == 2

    # a household moves from 3号楼 to 5号楼: 楼栋长's figures lose it
    await post(s, s.registry, "/v1/nodes/h-32/move", {"parent_id": "b-5"})
    moved = figures(
        ["b-3"],
        {"visits": 1, "visits.door": 1, "visits.outcome.screened": 1, "visits.signed": 1},
        stocks(households=1, persons=2, vulnerable=1, screened_households=1,
               **{"persons.resident": 2}),
        100.0,
    )  # fmt: skip
    await settles(s, "baobao-4", "p-volunteer", day, moved)

    # 楼栋长's assignment ends yesterday: today it covers nothing, yesterday still 3号楼
    await post(
        s, s.registry, "/v1/assignments/a-5/end", {"valid_to": yesterday(), "reason": "调岗"}
    )
    await settles(s, "baobao-4", "p-volunteer", day, figures([], {}, stocks(), None))
    before = (await party(s, "baobao-4", "p-volunteer", yesterday())).json()
    assert before["counted"] == ["b-3"]
    r = await tree(s, "baobao-4", "puyang", day)
    tier4 = r.json()["instances"][0]["tiers"][3]
    assert [p["party"]["party_id"] for p in tier4["parties"]] == ["p-community"]

    # jurisdiction: a community sees its own building's party, not the district leader
    # (who answers for the whole street); unknown parties and chains are 404
    community = s.token("command", scope=["c-1"])
    assert (await party(s, "baobao-4", "p-community", day, community)).status_code == 200
    denied = await party(s, "baobao-4", "p-district", day, community)
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
    outsider = s.token("command", scope=["other-st"])
    assert (await party(s, "baobao-4", "p-community", day, outsider)).status_code == 403
    assert (await tree(s, "baobao-4", "c-1", day, outsider)).status_code == 403
    # a party covering nothing on the day is seen from where it belongs
    assert (await party(s, "baobao-4", "p-volunteer", day, community)).status_code == 200
    assert (await party(s, "baobao-4", "p-volunteer", day, outsider)).status_code == 403
    unknown = await party(s, "baobao-4", "p-nobody", day)
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["field"] == "path.party_id"
    unknown = await party(s, "baobao-9", "p-volunteer", day)
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["field"] == "path.template"
    assert (await tree(s, "baobao-9", "puyang", day)).status_code == 404
    # before the instance starts there is no chain over the place
    assert (await tree(s, "baobao-4", "puyang", "2020-01-26")).json()["instances"] == []


GUANCANG = [
    ("guancang", None, "street", "官仓街道"),
    ("gc-area", "guancang", "area", "东片"),
    ("gc-v", "gc-area", "village", "东村"),
    ("gc-seg", "gc-v", "segment", "一段"),
    ("gc-g1", "gc-seg", "villager_group", "一组"),
    ("gc-g2", "gc-seg", "villager_group", "二组"),
]
GC_PARTIES = [  # id, kind, name, role, home
    ("g-leader", "person", "街道领导", "leader", "guancang"),
    ("g-cadre", "person", "驻村干部", "resident_cadre", "gc-v"),
    ("g-police", "unit", "官仓派出所", "police_station", "guancang"),
    ("g-village", "unit", "东村村委", "village", "gc-v"),
    ("g-group", "person", "一组组长", "group", "gc-g1"),
    ("g-medic", "person", "村医", "medic", "gc-v"),
    ("g-medic2", "person", "乡镇医生", "medic", "guancang"),
]
GC_CHAIN = [  # level, party, target type, target
    (1, "g-leader", "node", "gc-area"),
    (2, "g-cadre", "node", "gc-v"),
    (3, "g-police", "node", "gc-seg"),
    (4, "g-village", "node", "gc-g1"),
    (4, "g-village", "node", "gc-g2"),
    (5, "g-group", "node", "gh-1"),
    (5, "g-group", "node", "gh-2"),
    (6, "g-medic", "person", "gp-1"),
    (6, "g-medic", "person", "gp-3"),
    (6, "g-medic2", "person", "gp-3"),  # 多对一: two medics for one person
]


async def test_a_party_in_the_six_level_chain(chained: Stack) -> None:
    s = chained
    day = today()
    await grow(s, GUANCANG)
    for party_id, kind, name, role, home in GC_PARTIES:
        body = {"id": party_id, "kind": kind, "name": name, "role": role, "node_id": home}
        await post(s, s.registry, "/v1/parties", body)
    await post(s, s.registry, "/v1/chain-instances", {
        "id": "guancang-2020", "template_id": "baobao-6", "root_node_id": "guancang",
        "valid_from": "2020-01-27"})  # fmt: skip
    await settle_households(
        s,
        {"gh-1": "gc-g1", "gh-2": "gc-g1", "gh-3": "gc-g2"},
        [("gp-1", "gh-1", []), ("gp-2", "gh-1", ["残疾"]), ("gp-3", "gh-2", []),
         ("gp-4", "gh-3", [])],
    )  # fmt: skip
    for level, party_id, target_type, target in GC_CHAIN:
        body = {**assignment(None, level, party_id, target, target_type=target_type),
                "instance_id": "guancang-2020"}  # fmt: skip
        await post(s, s.registry, "/v1/assignments", body)
    await visit(s, "gv-1", "gh-1")
    await visit(s, "gv-2", "gh-3")

    async def flagged() -> bool:
        r = await s.screening.post("/v1/inquiries", headers=s.token("admin"), json={
            "id": "ginq-1", "person_id": "gp-3", "close_contact": True,
            "occurred_at": datetime.now(UTC).isoformat()})  # fmt: skip
        return r.status_code == 201

    await eventually(flagged, message="screening never accepted the inquiry")

    # 组包户: the group leader answers for two households of 一组
    group = figures(
        ["gh-1", "gh-2"],
        {"inquiries": 1, "key_persons.flagged": 1, "key_persons.flagged.close_contact": 1,
         "visits": 1, "visits.door": 1, "visits.outcome.screened": 1, "visits.signed": 1},
        stocks(households=2, persons=3, vulnerable=1, screened_households=1, key_persons=1,
               **{"persons.resident": 3, "key_persons.close_contact": 1}),
        50.0,
    )  # fmt: skip
    await settles(s, "baobao-6", "g-group", day, group)
    # 医护人员包人: the village medic answers for two persons, one of them a key person; the
    # households' figures are not theirs
    await settles(s, "baobao-6", "g-medic", day,
                  figures([], {}, stocks(), None, persons=2, key_persons=1))  # fmt: skip
    # voiding a person takes them out of the medic's count
    await post(s, s.registry, "/v1/persons/gp-1/void", {"reason": "重复登记"})
    await settles(s, "baobao-6", "g-medic", day,
                  figures([], {}, stocks(), None, persons=1, key_persons=1))  # fmt: skip

    r = await tree(s, "baobao-6", "gc-v", day)
    assert r.status_code == 200, r.text
    [instance] = r.json()["instances"]
    shape = [(t["level"], t["name"], t["covers"], [p["party"]["party_id"] for p in t["parties"]],
              t["counted"]) for t in instance["tiers"]]  # fmt: skip
    assert shape == [
        (1, "领导包片", "node", ["g-leader"], ["gc-v"]),
        (2, "驻村干部包村", "node", ["g-cadre"], ["gc-v"]),
        (3, "派出所包段", "node", ["g-police"], ["gc-seg"]),
        (4, "村包组", "node", ["g-village"], ["gc-g1", "gc-g2"]),
        (5, "组包户", "node", ["g-group"], ["gh-1", "gh-2"]),
        (6, "医护人员包人", "person", ["g-medic", "g-medic2"], []),
    ]
    village = [t["total"]["households"] for t in instance["tiers"]]
    assert village == [3, 3, 3, 3, 2, 0]
    tier6 = instance["tiers"][5]
    assert [p["headline"]["people"] for p in tier6["parties"]] == [
        {"persons": 1, "key_persons": 1}, {"persons": 1, "key_persons": 1}]  # fmt: skip
    # gp-3 has two medics: the tier counts them once
    assert tier6["total"]["people"] == {"persons": 1, "key_persons": 1}
    assert [c["place_id"] for c in tier6["parties"][0]["covers"]] == ["gh-2"]
    # the group's own tree: 二组 and its household are not in it
    r = await tree(s, "baobao-6", "gc-g1", day, s.token("command", scope=["gc-g1"]))
    tiers = r.json()["instances"][0]["tiers"]
    assert [t["counted"] for t in tiers[:5]] == [["gc-g1"]] * 4 + [["gh-1", "gh-2"]]
    assert [p["party"]["party_id"] for p in tiers[3]["parties"]] == ["g-village"]
    assert tiers[3]["parties"][0]["headline"]["households"] == 2
    # the medic answers for a person living in 一组: a group-scoped caller may see the medic
    mine = s.token("command", scope=["gc-g1"])
    assert (await party(s, "baobao-6", "g-medic", day, mine)).status_code == 200
    assert (await party(s, "baobao-6", "g-village", day, mine)).status_code == 403
