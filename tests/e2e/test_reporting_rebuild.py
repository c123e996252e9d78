"""Reporting operability on real PostgreSQL and Kafka: a rebuild from offset 0 swapped in
while queries answer gives the live figures and counts later events once; every replica
answers for every rebuild, and the history survives the swaps; the lag endpoint shows a
consumer behind, caught up, and what it dead-lettered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from shared.consumer import gate_key
from shared.rebuild import Phase, RebuildStatus
from shared.testing import Infra, eventually
from tests.e2e.conftest import Stack, start_stack
from tests.e2e.test_ops import replica
from tests.e2e.test_places import grow
from tests.e2e.test_reporting_figures import SHANGHAI, TREE, seed_world, visit

NODES = ("g1", "g2", "comm", "comm2", "root")


@pytest.fixture
async def ops_stack(infra: Infra) -> AsyncIterator[Stack]:
    async for s in start_stack(infra, ["registry", "screening", "reporting"]):
        yield s


async def lag(s: Stack, token: Any = None) -> Any:
    """Reporting's lag report (its consumers; reporting publishes nothing)."""
    r = await s.reporting.get("/v1/lag", headers=token or s.token("auditor"))
    assert r.status_code == 200, r.text
    return r.json()


async def caught_up(s: Stack) -> Any:
    """Wait until every publishing service's relay has published all it stored and every
    read model has applied everything on Kafka; the lag report then."""
    last: dict[str, Any] = {}

    async def check() -> Any:
        for service in ("registry", "screening", "checkpoint"):
            if service in s.clients:
                r = await s.clients[service].get("/v1/lag", headers=s.token("auditor"))
                assert r.status_code == 200, r.text
                relay = last[service] = r.json()["relay"]
                if relay["backlog"]:
                    return None
        report = last["reporting"] = await lag(s)
        return report if report["status"] == "ok" and report["lag"] == 0 else None

    try:
        return await eventually(check, timeout=60)
    except AssertionError as exc:
        raise AssertionError(f"reporting never caught up: {last}") from exc


async def answers(s: Stack, today: str, yesterday: str) -> dict[str, Any]:
    """What several endpoints answer, by URL."""
    token = s.token("command")
    got: dict[str, Any] = {}
    queries: list[tuple[str, dict[str, str]]] = [
        *((f"/v1/nodes/{n}/summary", {"date": d}) for n in NODES for d in (today, yesterday)),
        ("/v1/nodes/comm/children/summary", {"date": today}),
        ("/v1/nodes/root/trend", {"metric": "visits", "from": yesterday, "to": today}),
        ("/v1/ledgers/key-persons.csv", {"node_id": "root", "date": today}),
        ("/v1/ledgers/screening.csv", {"node_id": "root", "date": today}),
    ]
    for url, params in queries:
        r = await s.reporting.get(url, params=params, headers=token)
        assert r.status_code == 200, (url, r.text)
        key = f"{url}?{sorted(params.items())}"
        got[key] = r.json() if "json" in r.headers["content-type"] else r.text
    return got


async def visits_today(s: Stack, node_id: str, today: str) -> int:
    r = await s.reporting.get(
        f"/v1/nodes/{node_id}/summary", params={"date": today}, headers=s.token("command")
    )
    assert r.status_code == 200, r.text
    return int(r.json()["flows"].get("visits", 0))


async def schema_oid(s: Stack) -> int:
    schema = s.apps["reporting"].state.settings.schema_name
    oid: int = await s.apps["reporting"].state.pool.fetchval(
        "SELECT oid::int FROM pg_namespace WHERE nspname = $1", schema
    )
    return oid


async def test_rebuild_swaps_in_the_live_figures_while_queries_answer(ops_stack: Stack) -> None:
    s = ops_stack
    await seed_world(s)
    now = datetime.now(UTC)
    today = now.astimezone(SHANGHAI).date().isoformat()
    yesterday_at = now - timedelta(days=1)
    yesterday = yesterday_at.astimezone(SHANGHAI).date().isoformat()
    worker = s.token("grid_worker", scope=["comm"], sub="worker-1")
    for body in [
        visit("v1", "h1", yesterday_at),
        visit("v2", "h2", now, method="phone", outcome="absent", commitment_signed=False),
        visit("v3", "h3", now),
    ]:
        r = await s.screening.post("/v1/visits", headers=worker, json=body)
        assert r.status_code == 201, r.text
    r = await s.screening.post(
        "/v1/inquiries",
        headers=worker,
        json={"id": "inq-1", "person_id": "p3", "close_contact": True,
              "occurred_at": now.isoformat()},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    r = await s.screening.post(
        "/v1/visits/v3/void", headers=s.token("admin"), json={"reason": "录错"}
    )
    assert r.status_code == 200, r.text
    await caught_up(s)
    live = await answers(s, today, yesterday)
    assert live[f"/v1/nodes/root/summary?{[('date', today)]}"]["stocks"]["key_persons"] == 1
    g2_url = f"/v1/nodes/g2/summary?{[('date', today)]}"
    root_visits = await visits_today(s, "root", today)
    oid_before = await schema_oid(s)

    admin = s.token("admin")
    started = await s.reporting.post("/v1/admin/rebuild", headers=admin)
    assert started.status_code == 202, started.text
    rebuild_id = started.json()["id"]
    assert started.headers["location"] == f"/v1/admin/rebuild/{rebuild_id}"
    again = await s.reporting.post("/v1/admin/rebuild", headers=admin)
    assert again.status_code == 409, again.text
    assert again.headers["content-type"] == "application/problem+json"

    # visits recorded all through the rebuild and its swap: each counted once, whoever
    # applies it (the live consumers before the swap or the rebuild)
    stop, posted = asyncio.Event(), 0

    async def keep_visiting() -> None:
        nonlocal posted
        while not stop.is_set():
            body = visit(f"w{posted}", "h1", now, method="phone", outcome="absent",
                         commitment_signed=False)  # fmt: skip
            r = await s.screening.post("/v1/visits", headers=worker, json=body)
            assert r.status_code == 201, r.text
            posted += 1
            await asyncio.sleep(0.02)

    visiting = asyncio.create_task(keep_visiting())

    # queries keep answering meanwhile: g2 is untouched by the visits (all in g1)
    phases, answered = set(), 0

    async def rebuild_done() -> Any:
        nonlocal answered
        r = await s.reporting.get(f"/v1/admin/rebuild/{rebuild_id}", headers=admin)
        assert r.status_code == 200, r.text
        status = r.json()
        phases.add(status["phase"])
        g2 = await s.reporting.get(
            "/v1/nodes/g2/summary", params={"date": today}, headers=s.token("command")
        )
        assert g2.status_code == 200 and g2.json() == live[g2_url], g2.text
        assert root_visits <= await visits_today(s, "root", today) <= root_visits + posted
        answered += 1
        assert status["phase"] != "failed", status
        return status if status["phase"] == "done" else None

    try:
        status = await eventually(rebuild_done, timeout=120, interval=0.02)
    finally:
        stop.set()
        await visiting
    assert posted > 0
    assert answered > 1 and phases & {"migrating", "catching_up", "swapping"}, phases
    assert status["schema"] == s.apps["reporting"].state.settings.schema_name
    assert sum(status["records"].values()) > 0 and status["paused_seconds"] is not None
    assert await schema_oid(s) != oid_before, "the live schema was not swapped"
    leftovers = await s.apps["reporting"].state.pool.fetchval(
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1",
        status["schema"] + r"\_%",
    )
    assert leftovers == 0  # the old tables are dropped, nothing half-built is left

    # the rebuilt figures are the live ones, with the visits counted exactly once
    await caught_up(s)
    assert await visits_today(s, "root", today) == root_visits + posted
    rebuilt = await answers(s, today, yesterday)
    changed = {k for k in live if rebuilt[k] != live[k]}
    assert all("g1" in k or "comm" in k or "root" in k or "screening" in k for k in changed)
    assert rebuilt[g2_url] == live[g2_url]
    assert (
        rebuilt[f"/v1/nodes/g1/summary?{[('date', yesterday)]}"]
        == (live[f"/v1/nodes/g1/summary?{[('date', yesterday)]}"])
    )

    # live consumers continue on the rebuilt tables: a new event counts once, everywhere
    r = await s.screening.post("/v1/visits", headers=worker, json=visit("v4", "h2", now))
    assert r.status_code == 201, r.text
    await caught_up(s)
    for node in ("g1", "comm", "root"):
        assert await visits_today(s, node, today) == root_visits + posted + 1, node
    assert await visits_today(s, "g2", today) == live[g2_url]["flows"].get("visits", 0)

    # a second rebuild of the same history gives the same answers again
    second = await s.reporting.post("/v1/admin/rebuild", headers=admin)
    assert second.status_code == 202, second.text

    async def second_done() -> Any:
        r = await s.reporting.get("/v1/admin/rebuild/latest", headers=admin)
        status = r.json()
        assert status["phase"] != "failed", status
        return status["id"] == second.json()["id"] and status["phase"] == "done"

    before_second = await answers(s, today, yesterday)
    await eventually(second_done, timeout=120)
    await caught_up(s)
    assert await answers(s, today, yesterday) == before_second


async def test_lag_shows_a_consumer_behind_caught_up_and_dead_letters(stack: Stack) -> None:
    s = stack
    await grow(s, TREE[:4])
    report = await caught_up(s)
    settings = s.apps["reporting"].state.settings
    registry_topic = settings.topic("registry.events")
    places = f"{settings.topic_prefix}{settings.schema_name}.places"
    names = {c["consumer"] for c in report["consumers"]}
    assert {places, places.replace(".places", ".figures")} <= names
    assert report["dead_letters"] == 0
    first = next(c for c in report["consumers"] if c["consumer"] == places)
    assert {p["topic"] for p in first["partitions"]} == {registry_topic}
    assert len(first["partitions"]) == settings.topic_partitions
    # caught up: the relay's commit markers lie between the last record and the watermark
    assert all(p["lag"] == 0 for p in first["partitions"])
    assert all(p["committed"] <= p["high_watermark"] for p in first["partitions"])

    # the gate a rebuild closes for its swap holds the consumers back: the lag shows
    holder = await asyncpg.connect(settings.database_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", gate_key(settings.schema_name))
        r = await s.registry.post(
            "/v1/nodes",
            headers=s.token("admin"),
            json={"id": "g9", "parent_id": "comm", "kind": "grid", "name": "第九网格"},
        )
        assert r.status_code == 201, r.text

        async def behind() -> Any:
            report = await lag(s)
            mine = next(c for c in report["consumers"] if c["consumer"] == places)
            return mine if mine["lag"] > 0 else None

        mine = await eventually(behind, timeout=30)
        assert mine["lag"] == 1
        (late,) = [p for p in mine["partitions"] if p["lag"]]
        assert late["lag"] == 1 and late["high_watermark"] > late["committed"]
        metrics = (await s.reporting.get("/metrics")).text
        line = (
            f'grid_consumer_offset_lag{{consumer="{places}",partition="{late["partition"]}",'
            f'topic="{registry_topic}"}} 1.0'
        )
        assert line in metrics
    finally:
        await holder.close()
    await caught_up(s)

    # an undecodable record is parked by every read model reading the topic, and passed
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(registry_topic, b"{not an envelope", partition=0)
    finally:
        await producer.stop()
    report = await caught_up(s)
    readers = [c for c in report["consumers"] if registry_topic in {
        p["topic"] for p in c["partitions"]}]  # fmt: skip
    assert readers and all(c["dead_letters"] == 1 for c in readers)
    assert report["dead_letters"] == len(readers)
    for c in readers:
        (parked,) = [p for p in c["partitions"] if p["dead_letters"]]
        assert (parked["topic"], parked["partition"]) == (registry_topic, 0)
    metrics = (await s.reporting.get("/metrics")).text
    assert f'grid_consumer_dead_lettered_events{{consumer="{places}"}} 1.0' in metrics

    # who may ask
    assert (await s.reporting.get("/v1/lag", headers=s.token("command"))).status_code == 403
    scoped = s.token("admin", scope=["comm"])
    r = await s.reporting.get("/v1/lag", headers=scoped)
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    r = await s.reporting.post("/v1/admin/rebuild", headers=s.token("auditor"))
    assert r.status_code == 403
    r = await s.reporting.get("/v1/admin/rebuild/nope", headers=s.token("admin"))
    assert r.status_code == 404 and "rebuild_id" in r.json()["detail"]


async def published_everything(s: Stack) -> None:
    """Registry's relay has published every stored event."""

    async def drained() -> bool:
        r = await s.registry.get("/v1/lag", headers=s.token("auditor"))
        assert r.status_code == 200, r.text
        relay = r.json()["relay"]
        return relay["backlog"] == 0 and relay["published"] > 0

    await eventually(drained, timeout=30)


async def test_every_replica_answers_for_a_rebuild_and_its_history(stack: Stack) -> None:
    s = stack
    await grow(s, TREE[:4])
    await published_everything(s)
    settings = s.apps["reporting"].state.settings
    admin = s.token("admin")
    pool = s.apps["reporting"].state.pool
    # what a rebuild whose process ended before its swap left: the next one drops it
    leftover = f"{settings.schema_name}_rb_0badc0de"
    await pool.execute(f"CREATE SCHEMA {leftover}")
    # an operator's audited re-drive before the rebuild: the audit survives the swaps
    await pool.execute(
        "INSERT INTO dead_letter_retries (dead_letter_id, consumer, requested_by, reason)"
        " VALUES (7, 'figures', 'ops-admin', 'handler fixed in 1.4.2')"
    )
    # another replica of reporting on the same schema (serving the API only)
    async with replica("reporting", settings.model_copy(update={"run_consumers": False})) as other:
        started = await s.reporting.post("/v1/admin/rebuild", headers=admin)
        assert started.status_code == 202, started.text
        first = started.json()["id"]
        r = await other.get(f"/v1/admin/rebuild/{first}", headers=admin)
        assert r.status_code == 200, r.text  # stored before the 202
        assert r.json()["schema"] == settings.schema_name
        again = await other.post("/v1/admin/rebuild", headers=admin)
        assert again.status_code == 409, again.text

        async def done(client: Any, rebuild_id: str) -> Any:
            r = await client.get(f"/v1/admin/rebuild/{rebuild_id}", headers=admin)
            assert r.status_code == 200, r.text
            status = r.json()
            assert status["phase"] != "failed", status
            return status if status["phase"] == "done" else None

        status = await eventually(lambda: done(other, first), timeout=120)
        assert status["records"] and sum(status["records"].values()) > 0
        assert status["finished_at"] is not None and status["paused_seconds"] is not None
        assert set(status["seconds"]) >= {"migrating", "catching_up", "swapping"}
        latest = await other.get("/v1/admin/rebuild/latest", headers=admin)
        assert latest.json()["id"] == first
        assert not await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", leftover
        )

        # started through the other replica, followed through the first; the first rebuild's
        # status survives the second swap
        second = await other.post("/v1/admin/rebuild", headers=admin)
        assert second.status_code == 202, second.text
        await eventually(lambda: done(s.reporting, second.json()["id"]), timeout=120)
        assert (await done(s.reporting, first)) == status
        latest = await s.reporting.get("/v1/admin/rebuild/latest", headers=admin)
        assert latest.json()["id"] == second.json()["id"]
        audit = await pool.fetch("SELECT requested_by, reason FROM dead_letter_retries")
        assert [tuple(r) for r in audit] == [("ops-admin", "handler fixed in 1.4.2")]

    # a rebuild whose process ended half-way (no one holds its lock) shows as failed
    gone = RebuildStatus(id="gone0001", schema_name=settings.schema_name, phase=Phase.CATCHING_UP)
    await pool.execute(
        "INSERT INTO rebuild_runs (id, status, started_at) VALUES ($1, $2::text::jsonb, $3)",
        gone.id,
        gone.model_dump_json(),
        gone.started_at,
    )
    r = await s.reporting.get("/v1/admin/rebuild/latest", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == gone.id and r.json()["phase"] == "failed"
    assert "ended" in r.json()["error"] and r.json()["finished_at"] is not None
    stored = await pool.fetchval("SELECT status->>'phase' FROM rebuild_runs WHERE id = $1", gone.id)
    assert stored == "failed"
    assert (await s.reporting.get("/v1/admin/rebuild/nope1234", headers=admin)).status_code == 404
    r = await s.reporting.get("/v1/admin/rebuild/a%00b", headers=admin)
    assert r.status_code == 422, r.text
