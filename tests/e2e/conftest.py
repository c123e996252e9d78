"""Services in-process over HTTP, on real PostgreSQL and Kafka, each test isolated by name
(its own schemas, topic prefix and consumer groups)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.checkpoint.config import CheckpointSettings
from services.checkpoint.main import create_app as checkpoint_app
from services.registry.config import RegistrySettings
from services.registry.main import create_app as registry_app
from services.reporting.config import ReportingSettings
from services.reporting.main import create_app as reporting_app
from services.screening.config import ScreeningSettings
from services.screening.main import create_app as screening_app
from shared.auth import ALL_NODES, issue_token
from shared.migrations import upgrade_async
from shared.settings import ServiceSettings
from shared.testing import Infra, delete_topics, drop_schema, unique

SERVICES: dict[str, tuple[type[ServiceSettings], Callable[[Any], FastAPI]]] = {
    "registry": (RegistrySettings, registry_app),
    "reporting": (ReportingSettings, reporting_app),
    "screening": (ScreeningSettings, screening_app),
    "checkpoint": (CheckpointSettings, checkpoint_app),
}


@dataclass
class Stack:
    settings: ServiceSettings
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    apps: dict[str, FastAPI] = field(default_factory=dict)

    @property
    def registry(self) -> httpx.AsyncClient:
        return self.clients["registry"]

    @property
    def reporting(self) -> httpx.AsyncClient:
        return self.clients["reporting"]

    @property
    def screening(self) -> httpx.AsyncClient:
        return self.clients["screening"]

    @property
    def checkpoint(self) -> httpx.AsyncClient:
        return self.clients["checkpoint"]

    @property
    def kafka_bootstrap(self) -> str:
        return self.settings.kafka_bootstrap

    def token(
        self,
        *roles: str,
        scope: list[str] | None = None,
        ttl: int = 600,
        secret: str | None = None,
        sub: str | None = None,
    ) -> dict[str, str]:
        settings = self.settings
        if secret is not None:
            settings = settings.model_copy(update={"jwt_secret": secret})
        token = issue_token(
            settings,
            sub=sub or f"{'-'.join(roles)}-user",
            roles=list(roles),
            scope=scope or [ALL_NODES],
            ttl_seconds=ttl,
        )
        return {"Authorization": f"Bearer {token}"}


async def start_stack(infra: Infra, names: list[str], **overrides: Any) -> AsyncIterator[Stack]:
    run = unique("e2e")
    common: dict[str, Any] = {
        "database_url": infra.pg_dsn,
        "kafka_bootstrap": infra.kafka_bootstrap,
        "topic_prefix": f"{run}.",
        "topic_partitions": 3,
        "relay_poll_interval": 0.01,
    }
    settings = {
        n: SERVICES[n][0](db_schema=f"{run}_{n}", **common, **overrides.get(n, {})) for n in names
    }
    assert {s.topic("registry.events") for s in settings.values()} == {f"{run}.registry.events"}
    for n, s in settings.items():
        await upgrade_async(n, infra.pg_dsn, s.schema_name)
    stack = Stack(settings[names[0]])
    try:
        async with AsyncExitStack() as exits:
            for n, s in settings.items():
                app = SERVICES[n][1](s)
                await exits.enter_async_context(app.router.lifespan_context(app))
                client = httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://test"
                )
                await exits.enter_async_context(client)
                stack.apps[n], stack.clients[n] = app, client
            yield stack
    finally:
        for s in settings.values():
            await drop_schema(infra.pg_dsn, s.schema_name)
        await delete_topics(infra.kafka_bootstrap, f"{run}.")


@pytest.fixture
async def stack(infra: Infra) -> AsyncIterator[Stack]:
    """Registry and reporting."""
    async for s in start_stack(infra, ["registry", "reporting"]):
        yield s


@pytest.fixture
async def screening_stack(infra: Infra) -> AsyncIterator[Stack]:
    """Registry and screening (screening builds its views from registry.events)."""
    async for s in start_stack(infra, ["registry", "screening"]):
        yield s


@pytest.fixture
async def gate_stack(infra: Infra) -> AsyncIterator[Stack]:
    """Registry, screening and checkpoint (each learning from the others' topics)."""
    async for s in start_stack(infra, ["registry", "screening", "checkpoint"]):
        yield s


@pytest.fixture
async def full_stack(infra: Infra) -> AsyncIterator[Stack]:
    """All four services."""
    async for s in start_stack(infra, ["registry", "screening", "checkpoint", "reporting"]):
        yield s
