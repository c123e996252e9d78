"""Mass testing (应检尽检) and vaccination coverage over HTTP, registry + screening +
reporting on real PostgreSQL and Kafka: exact due / sampled / resulted / positive at the
round's place, above it and below it; persons moving in, out and voided; the door-knocking
list shrinking as samples arrive, masked; vaccination by dose; jurisdiction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.reporting.projections_testing import TestingProjection
from shared.db import create_pool
from shared.envelope import Envelope
from shared.eventstore import COLUMNS, row_to_envelope
from shared.identity import resident_id_check_digit
from shared.migrations import upgrade_async
from shared.testing import Infra, drop_schema, eventually, unique
from tests.e2e.conftest import Stack, start_stack
from tests.e2e.test_places import grow

ZONE = ZoneInfo("Asia/Shanghai")
TREE = [
    ("root", None, "district", "区"),
    ("street-a", "root", "street", "甲街道"),
    ("street-b", "root", "street", "乙街道"),
    ("comm", "street-a", "community", "幸福社区"),
    ("comm2", "street-b", "community", "和平社区"),
    ("g1", "comm", "grid", "第一网格"),
    ("g2", "comm", "grid", "第二网格"),
    ("b1", "g1", "building", "1栋"),
    ("b2", "g2", "building", "2栋"),
    ("b3", "comm2", "building", "3栋"),
]
HOUSEHOLDS = {"h1": "b1", "h2": "b1", "h3": "b2", "h4": "b3"}
PERSONS = {"p1": "h1", "p2": "h1", "p3": "h2", "p4": "h3", "p5": "h4", "p6": "h3"}


def national_id(n: int) -> str:
    first17 = f"32010219800101{n:03d}"
    return first17 + resident_id_check_digit(first17)


@pytest.fixture
async def stack(infra: Infra) -> AsyncIterator[Stack]:
    async for s in start_stack(infra, ["registry", "screening", "reporting"]):
        yield s


async def seed(s: Stack) -> None:
    admin = s.token("admin")
    await grow(s, TREE)
    for household_id, parent in HOUSEHOLDS.items():
        r = await s.registry.post(
            "/v1/households",
            headers=admin,
            json={"id": household_id, "parent_id": parent, "door_number": f"{household_id}-101"},
        )
        assert r.status_code == 201, r.text
    for i, (person_id, household_id) in enumerate(PERSONS.items(), start=1):
        r = await s.registry.post(
            "/v1/persons",
            headers=admin,
            json={
                "id": person_id,
                "household_id": household_id,
                "name": f"居民{i}号",
                "document_number": national_id(i),
            },
        )
        assert r.status_code == 201, r.text

    async def screening_knows_everyone() -> bool:
        for person_id in PERSONS:
            if (await s.screening.get(f"/v1/watch/{person_id}", headers=admin)).status_code != 200:
                return False
        return True

    await eventually(screening_knows_everyone, message="screening never learned the persons")


async def coverage(s: Stack, node_id: str | None = None, token: Any = None) -> Any:
    params = {"node_id": node_id} if node_id else {}
    return await s.reporting.get(
        "/v1/testing-rounds/r1/coverage", params=params, headers=token or s.token("command")
    )


async def settle(s: Stack, expected: dict[str, dict[str, int]]) -> None:
    """Wait until reporting shows exactly `expected` (due, sampled, resulted, positive)."""

    async def got() -> dict[str, dict[str, int]]:
        out = {}
        for node_id, want in expected.items():
            r = await coverage(s, node_id)
            out[node_id] = {k: r.json().get(k) for k in want} if r.status_code == 200 else {}
        return out

    try:
        await eventually(lambda: _equal(got, expected), timeout=30)
    except AssertionError:
        assert await got() == expected  # show the difference
        raise


async def _equal(got: Any, expected: Any) -> bool:
    return bool(await got() == expected)


def figures(due: int, sampled: int = 0, resulted: int = 0, positive: int = 0) -> dict[str, int]:
    return {"due": due, "sampled": sampled, "resulted": resulted, "positive": positive}


async def unsampled(s: Stack, node_id: str, limit: int = 100) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"node_id": node_id, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        r = await s.reporting.get(
            "/v1/testing-rounds/r1/unsampled", params=params, headers=s.token("grid_worker")
        )
        assert r.status_code == 200, r.text
        for name in (f"居民{i}号" for i in range(1, len(PERSONS) + 1)):
            assert name not in r.text
        for i in range(1, len(PERSONS) + 1):
            assert national_id(i) not in r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items


async def sample(s: Stack, sample_id: str, person_id: str, result: str | None = None) -> None:
    medic = s.token("medic")
    r = await s.screening.post(
        "/v1/samples",
        headers=medic,
        json={"id": sample_id, "person_id": person_id, "round_id": "r1"},
    )
    assert r.status_code == 201, r.text
    if result is not None:
        r = await s.screening.post(
            f"/v1/samples/{sample_id}/result", headers=medic, json={"result": result}
        )
        assert r.status_code == 200, r.text


async def move_node(s: Stack, node_id: str, parent_id: str) -> None:
    r = await s.registry.post(
        f"/v1/nodes/{node_id}/move", headers=s.token("admin"), json={"parent_id": parent_id}
    )
    assert r.status_code == 200, r.text


async def move(s: Stack, person_id: str, household_id: str) -> None:
    r = await s.registry.post(
        f"/v1/persons/{person_id}/move",
        headers=s.token("admin"),
        json={"household_id": household_id},
    )
    assert r.status_code == 200, r.text


async def test_round_coverage_follows_people_samples_and_results(stack: Stack) -> None:
    s = stack
    await seed(s)
    today = datetime.now(ZONE).date()
    r = await s.screening.post(
        "/v1/test-rounds",
        headers=s.token("medic"),
        json={
            "id": "r1",
            "node_id": "comm",
            "number": 1,
            "starts_on": (today - timedelta(days=1)).isoformat(),
            "ends_on": (today + timedelta(days=1)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text

    # everyone living under the community when the round starts is due; comm2 is not in it
    await settle(
        s,
        {
            "comm": figures(5),
            "g1": figures(3),
            "g2": figures(2),
            "street-a": figures(5),
            "root": figures(5),
        },
    )
    r = await coverage(s)  # default: the round's place
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["node_id"], body["place_id"], body["number"]) == ("comm", "comm", 1)
    assert (body["not_sampled"], body["coverage_pct"]) == (5, 0.0)
    r = await coverage(s, "comm2")
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "query.node_id" in r.text

    # a voided person leaves; a person moving in while the round runs joins
    r = await s.registry.post(
        "/v1/persons/p6/void", headers=s.token("admin"), json={"reason": "重复"}
    )
    assert r.status_code == 200, r.text
    await move(s, "p5", "h2")
    await settle(s, {"comm": figures(5), "g1": figures(4), "g2": figures(1)})
    door_list = await unsampled(s, "g1", limit=1)
    assert [(p["household_id"], p["person_id"]) for p in door_list] == [
        ("h1", "p1"),
        ("h1", "p2"),
        ("h2", "p3"),
        ("h2", "p5"),
    ]
    assert door_list[0]["door_number"] == "h1-101"
    assert all("*" in p["name_masked"] and "*" in p["document_masked"] for p in door_list)

    # samples and results: the list shrinks as samples arrive
    await sample(s, "s1", "p1", "negative")
    await sample(s, "s2", "p2", "positive")
    await sample(s, "s4", "p4", "invalid")
    await settle(
        s,
        {
            "comm": figures(5, 3, 2, 1),
            "g1": figures(4, 2, 2, 1),
            "g2": figures(1, 1, 0, 0),
            "street-a": figures(5, 3, 2, 1),
        },
    )
    assert [p["person_id"] for p in await unsampled(s, "comm")] == ["p3", "p5"]
    assert await unsampled(s, "g2") == []
    r = await coverage(s, "comm")
    assert (r.json()["not_sampled"], r.json()["coverage_pct"]) == (2, 60.0)

    # a sampled person who moves away stays counted where sampled; an unsampled one leaves
    await move(s, "p1", "h4")
    await move(s, "p3", "h4")
    await settle(s, {"comm": figures(4, 3, 2, 1), "g1": figures(3, 2, 2, 1)})
    assert [p["person_id"] for p in await unsampled(s, "comm")] == ["p5"]

    # drill-down: children inside the round only
    r = await s.reporting.get(
        "/v1/testing-rounds/r1/children", params={"node_id": "comm"}, headers=s.token("command")
    )
    assert r.status_code == 200, r.text
    assert [
        (c["node_id"], c["due"], c["sampled"], c["positive"]) for c in r.json()["children"]
    ] == [("g1", 3, 2, 1), ("g2", 1, 1, 0)]
    r = await s.reporting.get(
        "/v1/testing-rounds/r1/children", params={"node_id": "root"}, headers=s.token("command")
    )
    assert [(c["node_id"], c["due"]) for c in r.json()["children"]] == [("street-a", 4)]

    # jurisdiction: a grid sees its own figures, never the community's or a sibling's
    g2_only = s.token("command", scope=["g2"])
    assert (await coverage(s, "g2", g2_only)).json()["due"] == 1
    for node_id in (None, "comm", "g1"):
        r = await coverage(s, node_id, g2_only)
        assert r.status_code == 403, (node_id, r.text)
    r = await s.reporting.get(
        "/v1/testing-rounds/r1/unsampled",
        params={"node_id": "g1"},
        headers=s.token("grid_worker", scope=["comm2"]),
    )
    assert r.status_code == 403, r.text
    r = await s.reporting.get("/v1/testing-rounds/nope/coverage", headers=s.token("command"))
    assert r.status_code == 404, r.text

    # a building moved to the other grid takes its persons' figures along
    await move_node(s, "b2", "g1")
    await settle(s, {"g1": figures(4, 3, 2, 1), "g2": figures(0), "comm": figures(4, 3, 2, 1)})

    await replays_agree(s)


FIGURE_TABLES = {
    "round_figures": "SELECT round_id, node_id, due, sampled, resulted, positive"
    " FROM round_figures WHERE (due, sampled, resulted, positive) <> (0, 0, 0, 0)"
    " ORDER BY round_id, node_id",
    "round_persons": "SELECT * FROM round_persons ORDER BY round_id, person_id",
    "vaccination_node_days": "SELECT node_id, day, metric, value FROM vaccination_node_days"
    " WHERE value <> 0 ORDER BY node_id, day, metric",
}


async def tables(pool: Any) -> dict[str, list[tuple[Any, ...]]]:
    return {name: [tuple(r) for r in await pool.fetch(sql)] for name, sql in FIGURE_TABLES.items()}


async def replays_agree(s: Stack) -> None:
    """Every event again, screening's before registry's, one by one and then all of them a
    second time (bypassing the consumer's dedupe): the same figures as the live ones."""
    events: dict[str, list[Envelope]] = {}
    for service in ("registry", "screening"):
        rows = await s.apps[service].state.pool.fetch(
            f"SELECT {COLUMNS} FROM events ORDER BY position"
        )
        events[service] = [row_to_envelope(r) for r in rows]
    live = await tables(s.apps["reporting"].state.pool)
    assert any(live.values())
    settings = s.apps["reporting"].state.settings
    schema = unique("testing_replay")
    await upgrade_async("reporting", settings.database_url, schema)
    pool = await create_pool(settings.database_url, schema)
    projection = TestingProjection(ZONE)
    try:
        for batch in [[e] for e in events["screening"] + events["registry"]] + [
            events["registry"] + events["screening"]
        ]:
            async with pool.acquire() as conn, conn.transaction():
                await projection(conn, batch)
        assert await tables(pool) == live
    finally:
        await pool.close()
        await drop_schema(settings.database_url, schema)


async def test_vaccination_by_dose(stack: Stack) -> None:
    s = stack
    await seed(s)
    medic = s.token("medic")
    doses = [("p2", 1), ("p2", 2), ("p2", 3), ("p4", 1), ("p4", 2), ("p3", 1)]
    for person_id, number in doses:
        r = await s.screening.post(
            "/v1/vaccinations",
            headers=medic,
            json={
                "id": f"d-{person_id}-{number}",
                "person_id": person_id,
                "dose_number": number,
                "vaccine": "新冠病毒灭活疫苗(Vero细胞)",
            },
        )
        assert r.status_code == 201, r.text
    await move(s, "p3", "h4")  # takes the dose along
    r = await s.registry.post(
        "/v1/persons/p6/void", headers=s.token("admin"), json={"reason": "重复"}
    )
    assert r.status_code == 200, r.text
    today = datetime.now(ZONE).date()

    async def vaccination(node_id: str, day: Any = today, token: Any = None) -> Any:
        r = await s.reporting.get(
            f"/v1/nodes/{node_id}/vaccination",
            params={"date": day.isoformat()},
            headers=token or s.token("command"),
        )
        assert r.status_code == 200, r.text
        body = r.json()
        return (body["persons"], body["dose_1"], body["dose_2"], body["booster"])

    expected = {"comm": (3, 2, 2, 1), "g1": (2, 1, 1, 1), "g2": (1, 1, 1, 0), "comm2": (2, 1, 0, 0)}

    async def settled() -> bool:
        return {n: await vaccination(n) for n in expected} == expected

    try:
        await eventually(settled, timeout=30)
    except AssertionError:
        assert {n: await vaccination(n) for n in expected} == expected
        raise
    assert await vaccination("root") == (5, 3, 2, 1)
    assert await vaccination("comm", today - timedelta(days=1)) == (0, 0, 0, 0)
    r = await s.reporting.get(
        "/v1/nodes/comm/vaccination", params={"date": today.isoformat()}, headers=medic
    )
    assert r.json()["coverage_pct"] == {"dose_1": 66.7, "dose_2": 66.7, "booster": 33.3}
    assert r.json()["by_dose"] == {"1": 2, "2": 2, "3": 1}
    r = await s.reporting.get(
        "/v1/nodes/comm/vaccination", headers=s.token("command", scope=["comm2"])
    )
    assert r.status_code == 403, r.text

    # a building moved into the community brings its persons and their doses
    await move_node(s, "b3", "g2")
    expected = {"comm": (5, 3, 2, 1), "g2": (3, 2, 1, 0), "comm2": (0, 0, 0, 0)}
    try:
        await eventually(settled, timeout=30)
    except AssertionError:
        assert {n: await vaccination(n) for n in expected} == expected
        raise
    await replays_agree(s)
