"""Operator routes every service has, on real PostgreSQL and Kafka: `GET /v1/lag` (relay
backlog and consumer lag from shared state, answered by any replica, honest when Kafka is
away) and the dead-letter routes (list, audited re-drive)."""

from __future__ import annotations

import math
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from services.reporting.main import CONSUMES as REPORTING_CONSUMES
from shared.kafka import ensure_topics
from shared.lag import KAFKA_TIMEOUT
from shared.runtime import consumer_name
from shared.settings import ServiceSettings
from shared.testing import Infra, eventually
from tests.e2e.conftest import SERVICES, Stack, start_stack
from tests.e2e.test_places import TREE, grow

# the consumers each service runs, by read-model name
CONSUMERS = {
    "registry": [],
    "screening": ["registry-views", "reactions", "checkpoint-referrals"],
    "checkpoint": ["registry-views", "screening-views"],
    "reporting": [name for name, _, _ in REPORTING_CONSUMES],
}
PUBLISHERS = {"registry", "screening", "checkpoint"}


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def lag(client: httpx.AsyncClient, headers: dict[str, str]) -> Any:
    r = await client.get("/v1/lag", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


@asynccontextmanager
async def running(infra: Infra, names: list[str], **overrides: Any) -> AsyncIterator[Stack]:
    """A stack of `names` (settings overridden per service), as the fixtures make them."""
    stacks = start_stack(infra, names, **overrides)
    stack = await anext(stacks)
    try:
        yield stack
    finally:
        with suppress(StopAsyncIteration):
            await anext(stacks)


@asynccontextmanager
async def replica(service: str, settings: ServiceSettings) -> AsyncIterator[httpx.AsyncClient]:
    """Another instance of `service` on the same schema and topics (another replica)."""
    create: Callable[[Any], FastAPI] = SERVICES[service][1]
    app = create(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def gauge(metrics: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the /metrics text (labels in any order)."""
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and dict(re.findall(r'(\w+)="([^"]*)"', match[1])) == labels:
            return float(match[2])
    return None


# -- lag -------------------------------------------------------------------------------------


async def test_every_service_reports_its_relay_and_consumers(full_stack: Stack) -> None:
    s = full_stack
    await grow(s, TREE[:3])
    auditor = s.token("auditor")

    async def settled() -> Any:
        reports = {name: await lag(client, auditor) for name, client in s.clients.items()}
        for report in reports.values():
            relay = report["relay"]
            if relay is not None and (relay["backlog"] or relay["lease"] is None):
                return None
            if report["status"] != "ok" or report["lag"] != 0:
                return None
        return reports if reports["registry"]["relay"]["published"] >= 3 else None  # the nodes

    reports = await eventually(settled, timeout=60)
    for service, report in reports.items():
        settings = s.apps[service].state.settings
        assert report["service"] == service
        assert report["dead_letters"] == 0 and report["held_streams"] == 0
        expected = {consumer_name(settings, name) for name in CONSUMERS[service]}
        assert {c["consumer"] for c in report["consumers"]} == expected, service
        for c in report["consumers"]:
            assert c["status"] == "ok" and c["lag"] == 0
            assert c["partitions"], c["consumer"]
            assert {p["topic"] for p in c["partitions"]} <= set(c["topics"])
            # a commit marker after the last record applied is no lag
            assert all(p["lag"] == 0 for p in c["partitions"])
            assert all(p["committed"] <= p["high_watermark"] for p in c["partitions"])
        if service in PUBLISHERS:
            relay = report["relay"]
            assert relay["relay"] == f"{settings.schema_name}.relay"
            assert relay["topic"] == settings.topic(f"{service}.events")
            assert relay["backlog"] == 0 and relay["oldest_unpublished_seconds"] is None
            assert relay["lease"]["holder"] and not relay["lease"]["expired"]
            assert relay["lease"]["epoch"] >= 1
        else:
            assert report["relay"] is None
    stored = await s.apps["registry"].state.pool.fetchval("SELECT count(*) FROM events")
    assert reports["registry"]["relay"]["published"] == stored

    # whole-system observers only
    for client in s.clients.values():
        assert (await client.get("/v1/lag", headers=s.token("command"))).status_code == 403
        r = await client.get("/v1/lag", headers=s.token("admin", scope=["root"]))
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
        assert (await client.get("/v1/lag")).status_code == 401


async def test_relay_backlog_counts_what_is_not_published(infra: Infra) -> None:
    """No relay runs: the events appended wait in the store, and every replica says so from
    PostgreSQL alone."""
    async with running(infra, ["registry"], registry={"run_relay": False}) as s:
        await grow(s, TREE[:3])
        auditor = s.token("auditor")
        settings = s.apps["registry"].state.settings
        name = f"{settings.schema_name}.relay"
        pool = s.apps["registry"].state.pool
        stored = await pool.fetchval("SELECT count(*) FROM events")
        assert stored >= 3  # the nodes, and the built-in chain templates
        report = await lag(s.registry, auditor)
        relay = report["relay"]
        assert relay["relay"] == name
        assert relay["backlog"] == stored and relay["published"] == 0
        assert relay["oldest_unpublished_at"] is not None
        assert 0 <= relay["oldest_unpublished_seconds"] < 60
        assert relay["checkpoint_updated_at"] is None and relay["lease"] is None
        assert report["consumers"] == [] and report["lag"] == 0
        metrics = (await s.registry.get("/metrics")).text
        assert gauge(metrics, "grid_relay_backlog_events", relay=name) == stored
        assert gauge(metrics, "grid_relay_oldest_unpublished_seconds", relay=name) >= 0

        # the checkpoint after the first event: one less; a lease run out by Postgres's clock
        first = await pool.fetchrow(
            "SELECT tx_id, position FROM events ORDER BY tx_id, position LIMIT 1"
        )
        await pool.execute(
            "INSERT INTO relay_checkpoints (relay, tx_id, position, published)"
            " VALUES ($1, $2, $3, 1)",
            name,
            first["tx_id"],
            first["position"],
        )
        await pool.execute(
            "INSERT INTO relay_leases (relay, holder, epoch, expires_at)"
            " VALUES ($1, 'gone-replica', 7, now() - interval '1 second')",
            name,
        )
        async with replica("registry", settings) as other:
            relay = (await lag(other, auditor))["relay"]
        assert relay["backlog"] == stored - 1 and relay["published"] == 1
        assert relay["checkpoint_updated_at"] is not None
        assert relay["lease"]["holder"] == "gone-replica" and relay["lease"]["epoch"] == 7
        assert relay["lease"]["expired"] is True
        await pool.execute(
            "UPDATE relay_leases SET expires_at = now() + interval '1 minute' WHERE relay = $1",
            name,
        )
        assert (await lag(s.registry, auditor))["relay"]["lease"]["expired"] is False


async def test_consumer_lag_is_unknown_not_zero_when_kafka_is_away(infra: Infra) -> None:
    """A replica whose Kafka is away (a closed port) still answers, from PostgreSQL, and says
    the consumer lag is unknown."""
    quiet = {"run_consumers": False, "run_relay": False, "lag_refresh_seconds": 3600}
    async with running(infra, ["checkpoint"], checkpoint=quiet) as s:
        settings = s.apps["checkpoint"].state.settings
        views = consumer_name(settings, "registry-views")
        topic = settings.topic("registry.events")
        pool = s.apps["checkpoint"].state.pool
        await pool.execute(
            "INSERT INTO consumer_offsets (consumer, topic, partition, next_offset)"
            " VALUES ($1, $2, 0, 5), ($1, $2, 1, 3)",
            views,
            topic,
        )
        # two dead letters, one of them re-driven already; a stream held behind the open one
        await pool.execute(
            'INSERT INTO dead_letters (consumer, topic, partition, "offset", stream_id,'
            " version, event_type, error, payload, resolved_at)"
            " VALUES ($1, $2, 0, 1, 'node:x', 1, 'NodeCreated', 'boom', '{}', NULL),"
            " ($1, $2, 1, 2, 'node:y', 1, 'NodeCreated', 'boom', '{}', now())",
            views,
            topic,
        )
        await pool.execute(
            "INSERT INTO consumer_streams (consumer, stream_id, version, held_from)"
            " VALUES ($1, 'node:x', 0, 1), ($1, 'node:z', 4, NULL)",
            views,
        )
        away = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{closed_port()}"})
        async with replica("checkpoint", away) as cut_off:
            started = time.monotonic()
            report = await lag(cut_off, s.token("admin"))
            assert time.monotonic() - started < KAFKA_TIMEOUT + 5
            metrics = (await cut_off.get("/metrics")).text
        assert report["status"] == "unknown" and report["lag"] is None
        assert report["kafka_error"]
        assert report["relay"]["backlog"] == 0  # PostgreSQL still answers for the relay
        assert report["dead_letters"] == 1 and report["held_streams"] == 1
        by_name = {c["consumer"]: c for c in report["consumers"]}
        assert set(by_name) == {views, consumer_name(settings, "screening-views")}
        assert all(c["status"] == "unknown" and c["lag"] is None for c in by_name.values())
        mine = by_name[views]
        assert (mine["dead_letters"], mine["held_streams"]) == (1, 1)
        assert [
            (p["partition"], p["committed"], p["high_watermark"], p["lag"], p["dead_letters"])
            for p in mine["partitions"]
        ] == [(0, 5, None, None, 1), (1, 3, None, None, 0)]
        assert gauge(metrics, "grid_consumer_lag_unknown", consumer=views) == 1
        assert gauge(metrics, "grid_consumer_held_streams", consumer=views) == 1
        assert gauge(metrics, "grid_consumer_dead_lettered_events", consumer=views) == 1
        offset_lag = gauge(
            metrics, "grid_consumer_offset_lag", consumer=views, topic=topic, partition="0"
        )
        assert offset_lag is not None and math.isnan(offset_lag)
        assert (
            gauge(
                metrics,
                "grid_consumer_committed_offset",
                consumer=views,
                topic=topic,
                partition="0",
            )
            == 5
        )


async def test_consumer_lag_counts_open_dead_letters_with_kafka(infra: Infra) -> None:
    service = "checkpoint"
    async with running(infra, [service], checkpoint={"run_consumers": False}) as s:
        settings = s.apps[service].state.settings
        views = consumer_name(settings, "registry-views")
        topic = settings.topic("registry.events")
        await s.apps[service].state.pool.execute(
            'INSERT INTO dead_letters (consumer, topic, partition, "offset", error, payload)'
            " VALUES ($1, $2, 0, 0, 'undecodable', 'x')",
            views,
            topic,
        )

        async def known() -> Any:
            report = await lag(s.clients[service], s.token("auditor"))
            return report if report["status"] == "ok" else None

        report = await eventually(known, timeout=30)
        mine = next(c for c in report["consumers"] if c["consumer"] == views)
        assert mine["status"] == "ok" and mine["dead_letters"] == 1 and mine["lag"] == 0
        assert report["dead_letters"] == 1


# -- dead letters ----------------------------------------------------------------------------


async def park(pool: Any, consumer: str, topic: str, offset: int, *, resolved: bool = False) -> int:
    dead_id: int = await pool.fetchval(
        'INSERT INTO dead_letters (consumer, topic, partition, "offset", stream_id, version,'
        " event_type, reason, error, payload, resolved_at)"
        " VALUES ($1, $2, 0, $3, $4, 1, 'NodeCreated', 'failed', 'KeyError: kind', '{}',"
        " CASE WHEN $5 THEN now() END) RETURNING id",
        consumer,
        topic,
        offset,
        f"node:n{offset}",
        resolved,
    )
    return dead_id


@pytest.mark.parametrize("service", ["registry", "screening", "checkpoint", "reporting"])
async def test_dead_letters_are_listed_and_re_driven_on_request(infra: Infra, service: str) -> None:
    quiet = {"run_consumers": False, "run_relay": False, "lag_refresh_seconds": 3600}
    async with running(infra, [service], **{service: quiet}) as s:
        client, pool = s.clients[service], s.apps[service].state.pool
        settings = s.apps[service].state.settings
        one, other = consumer_name(settings, "one"), consumer_name(settings, "other")
        topic = settings.topic("registry.events")
        ids = [await park(pool, one, topic, n) for n in range(3)]
        resolved = await park(pool, one, topic, 3, resolved=True)
        theirs = await park(pool, other, topic, 4)
        admin = s.token("admin", sub="ops-alice")
        url = "/v1/admin/dead-letters"

        r = await client.get(url, headers=admin)
        assert r.status_code == 200, r.text
        page = r.json()
        assert [d["id"] for d in page["items"]] == [*ids, theirs] and page["next_after"] is None
        first = page["items"][0]
        assert (first["consumer"], first["topic"], first["offset"]) == (one, topic, 0)
        assert first["reason"] == "failed" and first["error"] == "KeyError: kind"
        assert first["resolved_at"] is None and first["retry_requested_at"] is None
        assert "payload" not in first

        # one consumer's, two at a time, resolved ones too
        seen: list[int] = []
        after = 0
        while True:
            params = {"consumer": one, "include_resolved": "true", "limit": 2, "after": after}
            r = await client.get(url, headers=admin, params=params)
            assert r.status_code == 200, r.text
            seen += [d["id"] for d in r.json()["items"]]
            if (after := r.json()["next_after"]) is None:
                break
        assert seen == [*ids, resolved]
        for bad in ({"limit": 0}, {"limit": 501}, {"after": -1}, {"consumer": "a\x00b"}):
            r = await client.get(url, headers=admin, params=bad)
            assert r.status_code == 422, (bad, r.text)

        # the re-drive request: admin only, scoped to *, with a reason, audited
        retry = f"{url}/{ids[1]}/retry"
        body = {"reason": "handler fixed in 1.4.2"}
        for token in (s.token("auditor"), s.token("command"), s.token("admin", scope=["root"])):
            r = await client.post(retry, headers=token, json=body)
            assert r.status_code == 403, r.text
            assert (await client.get(url, headers=token)).status_code == 403
        for bad_body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501},
                         {"reason": "a\x00b"}):  # fmt: skip
            r = await client.post(retry, headers=admin, json=bad_body)
            assert r.status_code == 422, (bad_body, r.text)
        assert await pool.fetchval("SELECT count(*) FROM dead_letter_retries") == 0

        r = await client.post(retry, headers=admin, json=body)
        assert r.status_code == 202, r.text
        assert r.json()["id"] == ids[1] and r.json()["retry_requested_at"] is not None
        assert r.headers["location"] == f"{url}/{ids[1]}"
        audit = await pool.fetch("SELECT * FROM dead_letter_retries")
        assert [(a["dead_letter_id"], a["consumer"], a["requested_by"], a["reason"])
                for a in audit] == [(ids[1], one, "ops-alice", body["reason"])]  # fmt: skip
        r = await client.get(r.headers["location"], headers=admin)
        assert r.status_code == 200, r.text
        assert [(q["requested_by"], q["reason"], q["outcome"]) for q in r.json()["retries"]] == [
            ("ops-alice", body["reason"], None)
        ]

        r = await client.post(f"{url}/{resolved}/retry", headers=admin, json=body)
        assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
        r = await client.post(f"{url}/999999/retry", headers=admin, json=body)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
        assert (await client.get(f"{url}/999999", headers=admin)).status_code == 404
        r = await client.post(f"{url}/0/retry", headers=admin, json=body)
        assert r.status_code == 422, r.text
        assert await pool.fetchval("SELECT count(*) FROM dead_letter_retries") == 1


async def test_commit_markers_are_not_lag(infra: Infra) -> None:
    """Records published in Kafka transactions (as the relay does): each commit marker takes
    an offset, so a consumer that applied every record stores an offset short of the high
    watermark; that is no lag."""
    quiet = {"run_consumers": False, "run_relay": False, "lag_refresh_seconds": 3600}
    async with running(infra, ["checkpoint"], checkpoint=quiet) as s:
        settings = s.apps["checkpoint"].state.settings
        views = consumer_name(settings, "registry-views")
        topic = settings.topic("registry.events")
        await ensure_topics(infra.kafka_bootstrap, [topic], settings.topic_partitions)
        producer = AIOKafkaProducer(
            bootstrap_servers=infra.kafka_bootstrap, transactional_id=f"{topic}-test"
        )
        await producer.start()

        async def publish(n: int) -> None:
            async with producer.transaction():
                for _ in range(n):
                    await producer.send(topic, b"{}", partition=0)

        try:
            for n in (3, 2):  # offsets 0-2, marker 3, offsets 4-5, marker 6
                await publish(n)
            pool = s.apps["checkpoint"].state.pool
            await pool.execute(
                "INSERT INTO consumer_offsets (consumer, topic, partition, next_offset)"
                " VALUES ($1, $2, 0, 6)",
                views,
                topic,
            )

            async def partition_zero() -> Any:
                report = await lag(s.checkpoint, s.token("auditor"))
                mine = next(c for c in report["consumers"] if c["consumer"] == views)
                return next(p for p in mine["partitions"] if p["partition"] == 0)

            zero = await partition_zero()
            assert (zero["committed"], zero["high_watermark"], zero["lag"]) == (6, 7, 0)
            await pool.execute(
                "UPDATE consumer_offsets SET next_offset = 2 WHERE consumer = $1", views
            )
            assert (await partition_zero())["lag"] == 3  # offsets 2, 4 and 5
            await publish(4)  # offsets 7-10, marker 11
            zero = await partition_zero()
            assert (zero["high_watermark"], zero["lag"]) == (12, 7)
            await pool.execute(
                "UPDATE consumer_offsets SET next_offset = 11 WHERE consumer = $1", views
            )
            assert (await partition_zero())["lag"] == 0
        finally:
            await producer.stop()
