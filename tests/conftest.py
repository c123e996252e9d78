from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from shared.kafka import ensure_topics, relay_producer
from shared.testing import (
    Infra,
    delete_topics,
    drop_schema,
    fresh_schema,
    provide_infra,
    schema_pool,
    unique,
)

# The suite runs the services on the built-in development secrets (set before any test module
# builds settings); the chaos suite gives its service processes generated keys instead.
os.environ["GRID_DEV_MODE"] = "1"


def pytest_report_header() -> str:
    return "GRID_DEV_MODE=1: services accept the built-in development secrets (never in production)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath) or "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    provided, stop = provide_infra()
    try:
        yield provided
    finally:
        stop()


@pytest.fixture
async def schema(infra: Infra) -> AsyncIterator[str]:
    """A fresh schema holding the kernel tables, dropped afterwards."""
    name = unique("t")
    await fresh_schema(infra.pg_dsn, name)
    yield name
    await drop_schema(infra.pg_dsn, name)


@pytest.fixture
async def pool(infra: Infra, schema: str) -> AsyncIterator[Any]:
    p = await schema_pool(infra.pg_dsn, schema)
    yield p
    await p.close()


@pytest.fixture
async def topic(infra: Infra) -> AsyncIterator[str]:
    name = unique("test") + ".events"
    await ensure_topics(infra.kafka_bootstrap, [name], partitions=3)
    yield name
    await delete_topics(infra.kafka_bootstrap, name)


@pytest.fixture
async def producer(infra: Infra) -> AsyncIterator[Any]:
    p = relay_producer(infra.kafka_bootstrap)
    await p.start()
    yield p
    await p.stop()
