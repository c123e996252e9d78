"""Health that tells the truth, and background tasks that outlive their database sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from services.registry.config import RegistrySettings
from services.registry.main import create_app as registry_app
from shared.migrations import upgrade_async
from shared.testing import Infra, drop_schema, eventually, unique
from tests.e2e.conftest import Stack

CLOSED_PORT = "127.0.0.1:9"  # nothing listens there: Kafka is "down"


@asynccontextmanager
async def registry(
    infra: Infra, **settings: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    schema = unique("heal")
    values: dict[str, Any] = {
        "database_url": infra.pg_dsn,
        "kafka_bootstrap": infra.kafka_bootstrap,
        "db_schema": schema,
        "topic_prefix": f"{schema}.",
    }
    values.update(settings)
    await upgrade_async("registry", infra.pg_dsn, schema)
    app = registry_app(RegistrySettings(**values))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield app, client
    finally:
        await drop_schema(infra.pg_dsn, schema)


async def terminate_sessions(infra: Infra, *schemas: str) -> int:
    """What a PostgreSQL restart does to a service: every one of its sessions is gone."""
    import asyncpg

    conn = await asyncpg.connect(infra.pg_dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = ANY($1::text[])",
                list(schemas),
            )
        )
    finally:
        await conn.close()


async def test_readiness_needs_postgres_but_not_kafka(infra: Infra) -> None:
    """A broker outage took every replica out of rotation although writes kept succeeding."""
    async with registry(
        infra, kafka_bootstrap=CLOSED_PORT, run_relay=False, run_consumers=False
    ) as (_, client):
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"postgres": True}


async def test_liveness_fails_when_a_background_task_stays_down(infra: Infra) -> None:
    """Its relay cannot reach Kafka: after `task_stale_seconds` without success /healthz
    answers 503 naming the task, so an orchestrator restarts the process."""
    async with registry(
        infra, kafka_bootstrap=CLOSED_PORT, task_stale_seconds=1.0, task_backoff_max=0.2
    ) as (_, client):

        async def unhealthy() -> httpx.Response | None:
            r = await client.get("/healthz")
            return r if r.status_code == 503 else None

        failing = await eventually(unhealthy, timeout=60, message="healthz kept saying ok")
        tasks = failing.json()["tasks"]
        assert tasks["registry-relay"]["stale"] is True
        assert failing.headers["content-type"] == "application/problem+json"


async def test_liveness_lists_each_supervised_task_while_healthy(infra: Infra) -> None:
    async with registry(infra) as (_, client):

        async def relay_working() -> dict[str, Any] | None:
            body = (await client.get("/healthz")).json()
            relay = body.get("tasks", {}).get("registry-relay")
            return body if relay and relay["up"] and relay["seconds_since_success"] < 5 else None

        body = await eventually(relay_working)
        assert body["status"] == "ok"


async def test_shutdown_succeeds_after_the_database_sessions_died(infra: Infra) -> None:
    """Shutdown re-raised what a dead task had ended with ("Application shutdown failed")."""
    async with registry(infra, relay_lease_seconds=2.0) as (app, client):
        admin_headers = {"Authorization": "Bearer " + _token(app)}
        created = await client.post(
            "/v1/nodes",
            json={"parent_id": None, "kind": "district", "name": "金堂县"},
            headers=admin_headers,
        )
        assert created.status_code == 201
        schema = app.state.settings.schema_name
        await eventually(lambda: _relay_holds(app))
        assert await terminate_sessions(infra, schema) > 0
    # leaving the block ran the lifespan's shutdown: reaching this line is the assertion


async def _relay_holds(app: FastAPI) -> bool:
    holder = await app.state.pool.fetchval("SELECT holder FROM relay_leases")
    return holder is not None


def _token(app: FastAPI) -> str:
    from shared.auth import ALL_NODES, issue_token

    return issue_token(
        app.state.settings, sub="admin", roles=["admin"], scope=[ALL_NODES], ttl_seconds=600
    )


async def test_a_write_after_every_session_was_killed_still_reaches_reporting(
    stack: Stack,
) -> None:
    admin = stack.token("admin")
    body = {"id": "jintang", "parent_id": None, "kind": "district", "name": "金堂县"}
    assert (await stack.registry.post("/v1/nodes", json=body, headers=admin)).status_code == 201

    async def summary_children(n: int) -> bool:
        r = await stack.reporting.get("/v1/nodes/jintang/summary", headers=stack.token("command"))
        return r.status_code == 200 and r.json()["children"] == n

    await eventually(lambda: summary_children(0))
    schemas = [a.state.settings.schema_name for a in stack.apps.values()]
    infra = Infra(stack.settings.database_url, stack.kafka_bootstrap)
    assert await terminate_sessions(infra, *schemas) > 0
    child = {"parent_id": "jintang", "kind": "township", "name": "三溪镇"}
    keyed = {**admin, "Idempotency-Key": "sanxi-1"}

    async def created() -> bool:
        # a pooled connection the restart killed answers 503 (Retry-After) once; a field app
        # retries with the same key
        r = await stack.registry.post("/v1/nodes", json=child, headers=keyed)
        assert r.status_code in (201, 503), r.text
        return r.status_code == 201

    await eventually(created, timeout=30)
    await eventually(lambda: summary_children(1), timeout=60)
