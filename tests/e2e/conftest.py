from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.registry.config import RegistrySettings
from services.registry.main import create_app as registry_app
from services.reporting.config import ReportingSettings
from services.reporting.main import create_app as reporting_app
from shared.auth import ALL_NODES, issue_token
from shared.migrations import upgrade_async
from shared.settings import ServiceSettings
from shared.testing import Infra, drop_schema, unique


@dataclass
class Stack:
    registry: httpx.AsyncClient
    reporting: httpx.AsyncClient
    settings: ServiceSettings

    @property
    def kafka_bootstrap(self) -> str:
        return self.settings.kafka_bootstrap

    def token(
        self, *roles: str, scope: list[str] | None = None, ttl: int = 600, secret: str | None = None
    ) -> dict[str, str]:
        settings = self.settings
        if secret is not None:
            settings = settings.model_copy(update={"jwt_secret": secret})
        token = issue_token(
            settings,
            sub=f"{'-'.join(roles)}-user",
            roles=list(roles),
            scope=scope or [ALL_NODES],
            ttl_seconds=ttl,
        )
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def stack(infra: Infra) -> AsyncIterator[Stack]:
    """Registry and reporting in-process, on real PostgreSQL and Kafka, isolated by name."""
    run = unique("e2e")
    common: dict[str, Any] = {
        "database_url": infra.pg_dsn,
        "kafka_bootstrap": infra.kafka_bootstrap,
        "topic_prefix": f"{run}.",
        "topic_partitions": 3,
        "relay_poll_interval": 0.01,
    }
    reg = RegistrySettings(db_schema=f"{run}_registry", **common)
    rep = ReportingSettings(db_schema=f"{run}_reporting", **common)
    assert reg.topic("registry.events") == rep.topic("registry.events") == f"{run}.registry.events"
    await upgrade_async("registry", infra.pg_dsn, reg.schema_name)
    await upgrade_async("reporting", infra.pg_dsn, rep.schema_name)
    apps = [registry_app(reg), reporting_app(rep)]
    try:
        async with (
            apps[0].router.lifespan_context(apps[0]),
            apps[1].router.lifespan_context(apps[1]),
        ):
            clients = [
                httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://test")
                for a in apps
            ]
            async with clients[0], clients[1]:
                yield Stack(clients[0], clients[1], reg)
    finally:
        for s in (reg, rep):
            await drop_schema(infra.pg_dsn, s.schema_name)
