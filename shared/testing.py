"""Test fixtures' building blocks: real PostgreSQL and Kafka, isolated per test.

Where the servers come from, in order: `TEST_PG_DSN` / `TEST_KAFKA_BOOTSTRAP`; containers if
a container engine answers; else the project's local servers (`deploy/local/infra.sh up`).
Each test gets its own schema and topic names, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from shared.db import create_pool
from shared.kafka import kafka_admin
from shared.kernel_schema import KERNEL_DDL, statements

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Infra:
    pg_dsn: str
    kafka_bootstrap: str


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _local_infra() -> Infra:
    script = ROOT / "deploy" / "local" / "infra.sh"
    subprocess.run(["bash", str(script), "up"], check=True)
    exports = subprocess.run(
        ["bash", str(script), "env"], check=True, capture_output=True, text=True
    ).stdout
    env = dict(
        line.removeprefix("export ").split("=", 1) for line in exports.splitlines() if "=" in line
    )
    return Infra(env["GRID_PG_DSN"], env["GRID_KAFKA_BOOTSTRAP"])


def _container_infra() -> tuple[Infra, Callable[[], None]]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    pg = PostgresContainer("postgres:15", driver=None).start()
    kafka = (
        KafkaContainer("confluentinc/cp-kafka:7.7.1")
        .with_kraft()
        .with_env("KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS", "3000")
        .start()
    )

    def stop() -> None:
        kafka.stop()
        pg.stop()

    return Infra(pg.get_connection_url(), kafka.get_bootstrap_server()), stop


def provide_infra() -> tuple[Infra, Callable[[], None]]:
    dsn, bootstrap = os.environ.get("TEST_PG_DSN"), os.environ.get("TEST_KAFKA_BOOTSTRAP")
    if dsn and bootstrap:
        return Infra(dsn, bootstrap), lambda: None
    if os.environ.get("GRID_INFRA") == "docker" and _docker_engine_answers():
        return _container_infra()
    return _local_infra(), lambda: None


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def fresh_schema(dsn: str, name: str, *ddl: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS ltree")
        await conn.execute(f"CREATE SCHEMA {name}")
        await conn.execute(f"SET search_path TO {name}, public")
        for sql in statements(KERNEL_DDL) + [s for d in ddl for s in statements(d)]:
            await conn.execute(sql)
    finally:
        await conn.close()


async def drop_schema(dsn: str, name: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    finally:
        await conn.close()


async def delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete the topics a test created (all named `prefix...`).

    Topics are kept forever by design, so without this every test run would leave its partitions
    on the broker, which loads all of them at each start.
    """
    admin = kafka_admin(bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


async def schema_pool(dsn: str, name: str, max_size: int = 30) -> Any:
    return await create_pool(dsn, name, min_size=1, max_size=max_size)


async def eventually(
    check: Callable[[], Awaitable[Any]],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "condition not reached",
) -> Any:
    """Poll `check` until it returns something truthy, or fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{message} within {timeout}s (last: {last!r})")
