"""Per-node, per-day figures over HTTP with all four services on real PostgreSQL and Kafka:
exact flows and stocks at grid, community and district level, the children drill-down, a
trend, a moved grid taking its figures along, voids, re-published events, jurisdiction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiokafka import TopicPartition

from services.reporting.projections_figures import FIGURES, FiguresProjection
from shared.consumer import EventConsumer
from shared.db import create_pool
from shared.envelope import Envelope
from shared.eventstore import COLUMNS, row_to_envelope
from shared.identity import resident_id_check_digit
from shared.migrations import upgrade_async
from shared.testing import Infra, drop_schema, eventually, unique
from tests.e2e.conftest import Stack
from tests.e2e.test_places import grow

SHANGHAI = ZoneInfo("Asia/Shanghai")
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
]
HOUSEHOLDS = {"h1": "b1", "h2": "b1", "h3": "b2"}


def national_id(n: int) -> str:
    first17 = f"11010519900101{n:03d}"
    return first17 + resident_id_check_digit(first17)


PERSONS = [  # id, household, tags
    ("p1", "h1", []),
    ("p2", "h1", ["低保"]),
    ("p3", "h3", []),
    ("p4", "h2", []),  # voided below
]


async def summary(stack: Stack, node_id: str, day: str, token: Any = None) -> Any:
    r = await stack.reporting.get(
        f"/v1/nodes/{node_id}/summary",
        params={"date": day},
        headers=token or stack.token("command"),
    )
    assert r.status_code == 200, r.text
    return r.json()


def stocks(**values: int) -> dict[str, int]:
    core = dict.fromkeys(
        [
            "households",
            "persons",
            "vulnerable",
            "screened_households",
            "key_persons",
            "under_observation",
            "under_quarantine",
        ],
        0,
    )
    return dict(sorted({**core, **values}.items()))


async def settle(stack: Stack, node_id: str, day: str, expected: dict[str, Any]) -> Any:
    """Wait until reporting shows exactly `expected` (flows, stocks) for the node."""

    async def check() -> Any:
        got = await summary(stack, node_id, day)
        return got if {k: got[k] for k in expected} == expected else None

    try:
        return await eventually(check, timeout=30)
    except AssertionError:
        got = await summary(stack, node_id, day)
        assert {k: got[k] for k in expected} == expected  # show the difference
        raise


async def seed_world(s: Stack) -> None:
    admin = s.token("admin")
    await grow(s, TREE)
    for household_id, parent in HOUSEHOLDS.items():
        r = await s.registry.post(
            "/v1/households",
            headers=admin,
            json={"id": household_id, "parent_id": parent, "door_number": household_id[1:]},
        )
        assert r.status_code == 201, r.text
    for i, (person_id, household_id, tags) in enumerate(PERSONS, start=1):
        r = await s.registry.post(
            "/v1/persons",
            headers=admin,
            json={
                "id": person_id,
                "household_id": household_id,
                "name": f"居民{i}",
                "document_number": national_id(i),
                "tags": tags,
            },
        )
        assert r.status_code == 201, r.text
    r = await s.registry.post("/v1/persons/p4/void", headers=admin, json={"reason": "重复登记"})
    assert r.status_code == 200, r.text

    async def screening_knows() -> bool:
        for h in HOUSEHOLDS:
            got = await s.screening.get(f"/v1/households/{h}/visits", headers=admin)
            if got.status_code != 200:
                return False
        return (await s.screening.get("/v1/watch/p1", headers=admin)).status_code == 200

    await eventually(screening_knows, message="screening never learned the households")


def visit(visit_id: str, household_id: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "id": visit_id,
        "household_id": household_id,
        "method": "door",
        "outcome": "screened",
        "commitment_signed": True,
        "occurred_at": at.isoformat(),
        **extra,
    }


async def open_gate(s: Stack, opened_at: datetime) -> None:
    pool = s.apps["checkpoint"].state.pool
    await eventually(lambda: pool.fetchval("SELECT true FROM places WHERE id = 'g2'"))
    r = await s.checkpoint.post(
        "/v1/checkpoints",
        headers=s.token("admin"),
        json={
            "id": "g2-gate",
            "node_id": "g2",
            "name": "第二网格卡口",
            "level": "compound",
            "policy": {"residents_only": False, "health_code_colours": ["green"]},
            "opened_at": opened_at.isoformat(),
        },
    )
    assert r.status_code == 201, r.text


async def cross(s: Stack, number: str, health_code: str) -> str:
    r = await s.checkpoint.post(
        "/v1/crossings",
        headers=s.token("admin"),
        json={
            "checkpoint_id": "g2-gate",
            "direction": "in",
            "document_number": number,
            "health_code": health_code,
            "temperature": 36.5,
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["decision"])


class Replayer(EventConsumer):
    """The figures consumer's own name (offsets, per-stream versions), fed by hand."""

    async def commit_kafka(self, tp: TopicPartition, next_offset: int) -> None:
        return None


async def republish_everything(s: Stack) -> int:
    """What a relay that crashed after publishing does: every event again, at new offsets."""
    settings = s.apps["reporting"].state.settings
    pool = s.apps["reporting"].state.pool
    name = f"{settings.topic_prefix}{settings.schema_name}.figures"
    replayer = Replayer(pool, settings.kafka_bootstrap, [], FIGURES, name=name)
    count = 0
    for service in ("registry", "screening", "checkpoint"):
        rows = await s.apps[service].state.pool.fetch(
            f"SELECT {COLUMNS} FROM events ORDER BY position"
        )
        topic = settings.topic(f"{service}.events")
        stored = await pool.fetchval(
            "SELECT coalesce(max(next_offset), 0) FROM consumer_offsets"
            " WHERE consumer = $1 AND topic = $2",
            name,
            topic,
        )
        records = [
            SimpleNamespace(offset=stored + i, value=row_to_envelope(r).to_json())
            for i, r in enumerate(rows)
        ]
        await replayer.process(TopicPartition(topic, 99), records)
        count += len(records)
    return count


async def test_figures_per_node_and_day_at_every_level(full_stack: Stack) -> None:
    s = full_stack
    await seed_world(s)
    now = datetime.now(UTC)
    today = now.astimezone(SHANGHAI).date().isoformat()
    yesterday_at = now - timedelta(days=1)
    yesterday = yesterday_at.astimezone(SHANGHAI).date().isoformat()
    worker = s.token("grid_worker", scope=["comm"], sub="worker-1")

    # visits: h1 screened yesterday (signed), h2 absent by phone today, h3 screened today and
    # then voided; a quarantine for p1; two crossings at the gate on g2
    for body in [
        visit("v1", "h1", yesterday_at),
        visit("v2", "h2", now, method="phone", outcome="absent", commitment_signed=False),
        visit("v3", "h3", now),
    ]:
        r = await s.screening.post("/v1/visits", headers=worker, json=body)
        assert r.status_code == 201, r.text
    r = await s.screening.post(
        "/v1/quarantines",
        headers=s.token("medic", sub="medic-1"),
        json={
            "id": "q-p1",
            "subject_id": "p1",
            "type": "home",
            "planned_end": (now + timedelta(days=14)).astimezone(SHANGHAI).date().isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    r = await s.screening.post(
        "/v1/inquiries",
        headers=worker,
        json={
            "id": "inq-1",
            "person_id": "p3",
            "close_contact": True,
            "occurred_at": now.isoformat(),
        },
    )
    assert r.status_code == 201 and r.json()["flagged_reasons"] == ["close_contact"], r.text
    await open_gate(s, now - timedelta(days=2))
    assert await cross(s, national_id(3), "green") == "admit"
    assert await cross(s, national_id(9), "red") == "deny"

    g1_today = {
        "flows": {
            "quarantines.ordered": 1,
            "quarantines.ordered.home": 1,
            "visits": 1,
            "visits.outcome.absent": 1,
            "visits.phone": 1,
        },
        "stocks": stocks(
            households=2,
            persons=2,
            **{"persons.resident": 2},
            vulnerable=1,
            screened_households=1,
            under_quarantine=1,
            **{"under_quarantine.home": 1},
        ),
        "coverage_pct": 50.0,
    }
    await settle(s, "g1", today, g1_today)
    g2_before_void = {
        "flows": {
            "crossings": 2,
            "crossings.admit": 1,
            "crossings.deny": 1,
            "inquiries": 1,
            "key_persons.flagged": 1,
            "key_persons.flagged.close_contact": 1,
            "visits": 1,
            "visits.door": 1,
            "visits.outcome.screened": 1,
            "visits.signed": 1,
        },
        "stocks": stocks(
            households=1,
            persons=1,
            screened_households=1,
            key_persons=1,
            **{"persons.resident": 1, "key_persons.close_contact": 1},
        ),
        "coverage_pct": 100.0,
    }
    await settle(s, "g2", today, g2_before_void)

    # yesterday at g1: the signed door visit to h1; the stocks of yesterday's end
    await settle(
        s,
        "g1",
        yesterday,
        {
            "flows": {
                "visits": 1,
                "visits.door": 1,
                "visits.outcome.screened": 1,
                "visits.signed": 1,
            },
        },
    )

    # voiding v3 takes its visit and h3's screening back out of every level
    r = await s.screening.post(
        "/v1/visits/v3/void", headers=s.token("admin"), json={"reason": "录错户"}
    )
    assert r.status_code == 200, r.text
    g2_today = {
        "flows": {
            "crossings": 2,
            "crossings.admit": 1,
            "crossings.deny": 1,
            "inquiries": 1,
            "key_persons.flagged": 1,
            "key_persons.flagged.close_contact": 1,
        },
        "stocks": stocks(
            households=1,
            persons=1,
            key_persons=1,
            **{"persons.resident": 1, "key_persons.close_contact": 1},
        ),
        "coverage_pct": 0.0,
    }
    await settle(s, "g2", today, g2_today)
    comm_flows = {
        "crossings": 2,
        "crossings.admit": 1,
        "crossings.deny": 1,
        "inquiries": 1,
        "key_persons.flagged": 1,
        "key_persons.flagged.close_contact": 1,
        "quarantines.ordered": 1,
        "quarantines.ordered.home": 1,
        "visits": 1,
        "visits.outcome.absent": 1,
        "visits.phone": 1,
    }
    comm_today = {
        "flows": comm_flows,
        "stocks": stocks(
            households=3,
            persons=3,
            **{"persons.resident": 3},
            vulnerable=1,
            screened_households=1,
            key_persons=1,
            under_quarantine=1,
            **{"under_quarantine.home": 1, "key_persons.close_contact": 1},
        ),
        "coverage_pct": 33.33,
    }
    await settle(s, "comm", today, comm_today)
    district = await settle(s, "root", today, comm_today)
    assert district["kind"] == "district" and district["descendants_by_kind"]["household"] == 3
    assert (await summary(s, "street-b", today))["stocks"] == stocks()

    # the drill-down: one row per child
    r = await s.reporting.get(
        "/v1/nodes/comm/children/summary", params={"date": today}, headers=s.token("command")
    )
    assert r.status_code == 200, r.text
    rows = {c["id"]: c for c in r.json()["children"]}
    assert list(rows) == ["g1", "g2"]
    assert {k: rows["g1"][k] for k in g1_today} == g1_today
    assert {k: rows["g2"][k] for k in g2_today} == g2_today

    # a trend: screened households at each day's end, visits per day
    for metric, values in [("stock.screened_households", [1, 1]), ("visits", [1, 1])]:
        r = await s.reporting.get(
            "/v1/nodes/comm/trend",
            params={"metric": metric, "from": yesterday, "to": today},
            headers=s.token("command"),
        )
        assert r.status_code == 200, r.text
        assert [p["value"] for p in r.json()["points"]] == values
        assert [p["date"] for p in r.json()["points"]] == [yesterday, today]
    bad = await s.reporting.get(
        "/v1/nodes/comm/trend",
        params={"metric": "visits", "from": today, "to": yesterday},
        headers=s.token("command"),
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.to"

    # a grid moves to another community: its figures go with it
    r = await s.registry.post(
        "/v1/nodes/g2/move", json={"parent_id": "comm2"}, headers=s.token("admin")
    )
    assert r.status_code == 200, r.text
    await settle(s, "comm2", today, g2_today)
    await settle(s, "street-b", today, g2_today)
    await settle(s, "comm", today, g1_today)  # what is left under comm is g1
    await settle(s, "root", today, comm_today)

    # every event published again at new offsets: the figures stay exactly as they are
    before = {n: await summary(s, n, today) for n in ("g1", "g2", "comm", "comm2", "root")}
    assert await republish_everything(s) > 20
    after = {n: await summary(s, n, today) for n in ("g1", "g2", "comm", "comm2", "root")}
    assert after == before

    # jurisdiction: a community token sees its own community, not the other one
    own = s.token("command", scope=["comm"])
    assert (await summary(s, "g1", today, own))["stocks"]["persons"] == 2
    for url in ("/v1/nodes/comm2/summary", "/v1/nodes/comm2/children/summary"):
        r = await s.reporting.get(url, params={"date": today}, headers=own)
        assert r.status_code == 403, r.text
        assert r.headers["content-type"] == "application/problem+json"
    r = await s.reporting.get(
        "/v1/nodes/root/trend",
        params={"metric": "visits", "from": today, "to": today},
        headers=own,
    )
    assert r.status_code == 403
    missing = await s.reporting.get("/v1/nodes/nowhere/summary", headers=s.token("command"))
    assert missing.status_code == 404


# -- the handler on its own, on real PostgreSQL: orders the topics do not guarantee ---------

AT = datetime(2020, 2, 3, 2, tzinfo=UTC)  # 2020-02-03 10:00 in Shanghai
DAY = AT.astimezone(SHANGHAI).date()


def envelope(type_: str, stream: str, version: int = 1, **data: Any) -> Envelope:
    return Envelope(
        type=type_,
        schema_version=1,
        stream_id=stream,
        stream_type=stream.split("-", 1)[0],
        version=version,
        occurred_at=AT,
        recorded_at=AT,
        node_id=data.get("node_id") or data.get("household_id"),
        data=data,
    )


def created(node_id: str, parent: str | None, path: str, kind: str) -> Envelope:
    return envelope(
        "NodeCreated",
        f"node-{node_id}",
        node_id=node_id,
        parent_id=parent,
        kind=kind,
        name=node_id,
        path=path,
    )


async def figures_at(pool: Any, node_id: str) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT metric, sum(value)::bigint AS v FROM node_day_metrics"
        " WHERE node_id = $1 AND day <= $2 GROUP BY metric HAVING sum(value) <> 0",
        node_id,
        DAY,
    )
    return {r["metric"]: r["v"] for r in rows}


@pytest.fixture
async def figures_pool(infra: Infra) -> AsyncIterator[Any]:
    schema = unique("figures")
    await upgrade_async("reporting", infra.pg_dsn, schema)
    pool = await create_pool(infra.pg_dsn, schema)
    try:
        yield pool
    finally:
        await pool.close()
        await drop_schema(infra.pg_dsn, schema)


async def feed(pool: Any, *events: Envelope) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await FiguresProjection(SHANGHAI)(conn, list(events))


async def test_events_before_their_node_wait_and_watches_leave_where_they_started(
    figures_pool: Any,
) -> None:
    pool = figures_pool
    await feed(pool, created("d", None, "d", "district"), created("g", "d", "d.g", "grid"))
    # the screening partition runs ahead of the registry one: h1 is not known yet
    visited = envelope(
        "HouseholdVisited",
        "visit-v1",
        visit_id="v1",
        household_id="h1",
        method="door",
        outcome="screened",
        visitor="w",
    )
    await feed(pool, visited)
    assert await figures_at(pool, "d") == {}
    assert await pool.fetchval("SELECT sum(value) FROM fig_pending WHERE node_id = 'h1'") == 4
    # the household arrives (registered first, its node in a later batch)
    await feed(
        pool,
        envelope("HouseholdRegistered", "household-h1", household_id="h1", node_id="h1"),
    )
    await feed(pool, created("h1", "g", "d.g.h1", "household"))
    expected = {
        "stock.households": 1,
        "stock.screened_households": 1,
        "visits": 1,
        "visits.door": 1,
        "visits.outcome.screened": 1,
    }
    for node in ("h1", "g", "d"):
        assert await figures_at(pool, node) == expected
    assert await pool.fetchval("SELECT count(*) FROM fig_pending WHERE value <> 0") == 0

    # an `h:` subject (not registered) held at h1: observation, then quarantine, a missed
    # follow-up, release; the stocks come back to zero where they were added
    subject = "h:" + "ab" * 32
    await feed(
        pool,
        envelope(
            "ObservationStarted",
            f"watch-{subject}",
            subject_id=subject,
            node_id="h1",
            starts_at=AT.isoformat(),
        ),
        envelope(
            "QuarantineOrdered",
            f"watch-{subject}",
            2,
            quarantine_id="q1",
            subject_id=subject,
            node_id="h1",
            type="centralized",
            starts_at=AT.isoformat(),
            planned_end="2020-02-17",
        ),
    )
    assert (await figures_at(pool, "d"))["stock.under_quarantine.centralized"] == 1
    await feed(
        pool,
        envelope(
            "FollowUpMissed",
            f"watch-{subject}",
            3,
            subject_id=subject,
            node_id="h1",
            slot_day="2020-02-03",
            slot="08:00-10:00",
        ),
        envelope(
            "QuarantineReleased",
            f"watch-{subject}",
            4,
            quarantine_id="q1",
            subject_id=subject,
            released_at=AT.isoformat(),
            reason="期满",
        ),
    )
    assert await figures_at(pool, "d") == {
        **expected,
        "observations.started": 1,
        "quarantines.ordered": 1,
        "quarantines.ordered.centralized": 1,
        "followups.missed": 1,
        "quarantines.released": 1,
    }


def crossing(n: int, node_id: str, decision: str) -> Envelope:
    return envelope(
        "CrossingRecorded",
        f"crossing-{n}",
        crossing_id=f"x{n}",
        checkpoint_id="gate",
        node_id=node_id,
        kind="person",
        direction="in",
        decision=decision,
        reasons=[],
        recorded_by="gk",
    )


async def test_a_move_in_the_middle_of_a_batch_carries_what_came_before_it(
    figures_pool: Any,
) -> None:
    pool = figures_pool
    await feed(
        pool,
        created("d", None, "d", "district"),
        created("c1", "d", "d.c1", "community"),
        created("c2", "d", "d.c2", "community"),
        created("g", "c1", "d.c1.g", "grid"),
        created("b", "g", "d.c1.g.b", "building"),
    )
    moved = envelope(
        "NodeMoved",
        "node-g",
        2,
        node_id="g",
        old_parent_id="c1",
        new_parent_id="c2",
        old_path="d.c1.g",
        new_path="d.c2.g",
    )
    await feed(pool, crossing(1, "b", "admit"), moved, crossing(2, "b", "deny"))
    both = {"crossings": 2, "crossings.admit": 1, "crossings.deny": 1}
    assert await figures_at(pool, "c1") == {}
    for node in ("c2", "d", "g", "b"):
        assert await figures_at(pool, node) == both
    assert await pool.fetchval("SELECT path::text FROM fig_places WHERE id = 'b'") == "d.c2.g.b"


async def test_a_household_arriving_after_a_move_and_before_its_grid_follows_the_move(
    figures_pool: Any,
) -> None:
    pool = figures_pool
    await feed(
        pool,
        created("d", None, "d", "district"),
        created("a", "d", "d.a", "street"),
        created("b", "d", "d.b", "street"),
        created("comm", "a", "d.a.comm", "community"),
        envelope(
            "NodeMoved",
            "node-comm",
            2,
            node_id="comm",
            old_parent_id="a",
            new_parent_id="b",
            old_path="d.a.comm",
            new_path="d.b.comm",
        ),
    )
    # h was created under g before the move; its partition runs ahead of g's
    await feed(
        pool,
        created("h1", "g", "d.a.comm.g.h1", "household"),
        envelope("HouseholdRegistered", "household-h1", household_id="h1", node_id="h1"),
    )
    await feed(pool, created("g", "comm", "d.a.comm.g", "grid"))
    assert await pool.fetchval("SELECT path::text FROM fig_places WHERE id = 'h1'") == (
        "d.b.comm.g.h1"
    )
    expected = {"stock.households": 1}
    for node in ("h1", "g", "comm", "b", "d"):
        assert await figures_at(pool, node) == expected, node
    assert await figures_at(pool, "a") == {}


async def test_two_replicas_cannot_strand_a_person_waiting_for_a_household_created_meanwhile(
    figures_pool: Any,
) -> None:
    """Replica A counts a person of household h1 before it saw h1 (the person's partition ran
    ahead) while replica B creates h1 in a transaction of its own. Without the places' locks,
    B drained `fig_pending` before A's delta was committed, and the person never counted."""
    pool = figures_pool
    await feed(pool, created("d", None, "d", "district"))
    person = envelope(
        "PersonRegistered",
        "person-p1",
        person_id="p1",
        household_id="h1",
        residency="resident",
        document_type="resident_id",
        document_masked="110105********1234",
        name_masked="张*",
        id_hmac="0" * 64,
    )
    a = await pool.acquire()
    b = await pool.acquire()
    try:
        tx_a = a.transaction()
        await tx_a.start()
        await FiguresProjection(SHANGHAI)(a, [person])  # parks the person for h1
        creating = asyncio.create_task(_in_transaction(b, created("h1", "d", "d.h1", "household")))

        async def b_waits_for_a() -> bool:
            return bool(
                await pool.fetchval(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                    b.get_server_pid(),
                )
            ) or creating.done()

        await eventually(b_waits_for_a)
        await tx_a.commit()
        await creating
    finally:
        await pool.release(a)
        await pool.release(b)
    assert (await figures_at(pool, "d"))["stock.persons"] == 1
    assert await pool.fetchval("SELECT count(*) FROM fig_pending") == 0


async def _in_transaction(conn: Any, *events: Envelope) -> None:
    async with conn.transaction():
        await FiguresProjection(SHANGHAI)(conn, list(events))
