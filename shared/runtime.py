"""Lifespan parts shared by the services: the pool, the outbox relay, the consumers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from shared.consumer import EventConsumer, Handler, gate_key
from shared.db import create_pool
from shared.http import Part, background
from shared.kafka import ensure_topics
from shared.relay import FencedRelay, RelayConfig
from shared.settings import ServiceSettings
from shared.supervisor import Beat


def database(settings: ServiceSettings) -> Part:
    @asynccontextmanager
    async def part(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(
            settings.database_url,
            settings.schema_name,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    return part


def relay(settings: ServiceSettings, topic: str) -> Part:
    """Publish this service's events to its topic while this process holds the store's
    lease; stand by while another replica does (shared/relay.py)."""
    config = RelayConfig(
        bootstrap=settings.kafka,
        topic=topic,
        name=f"{settings.schema_name}.relay",
        replica=settings.replica_id,
        lease_seconds=settings.relay_lease_seconds,
        batch_size=settings.relay_batch_size,
        poll_interval=settings.relay_poll_interval,
        standby_poll=settings.relay_standby_poll,
    )

    async def run(app: FastAPI, stop: asyncio.Event, beat: Beat) -> None:
        await ensure_topics(
            settings.kafka,
            [topic],
            settings.topic_partitions,
            client_id=settings.client_id("admin"),
        )
        await FencedRelay(app.state.pool, config).run(stop, beat)

    return background(f"{settings.service}-relay", run)


@dataclass(frozen=True)
class WithPool:
    """A handler that runs commands of its own (a reaction, not a read model): it is built
    with the service's pool when the service starts, and uses it for those commands."""

    build: Callable[[Any], Handler]


def consumer_name(settings: ServiceSettings, name: str) -> str:
    """The Kafka group and the key of the stored offsets of the read model `name`."""
    return f"{settings.topic_prefix}{settings.schema_name}.{name}"


def consumer(
    settings: ServiceSettings,
    name: str,
    topics: Sequence[str],
    handler: Handler | WithPool,
    *,
    coalesce: bool = False,
) -> Part:
    """Feed a read model from `topics`; the group and stored offsets are named `name`.

    Its batches pass the schema's gate, which a rebuild closes while it swaps tables in.
    `coalesce`: the handler's runs of one statement go as one `executemany` (shared/coalesce.py;
    only for handlers that never read `execute`'s status).
    """

    async def run(app: FastAPI, stop: asyncio.Event, beat: Beat) -> None:
        await ensure_topics(
            settings.kafka,
            topics,
            settings.topic_partitions,
            client_id=settings.client_id("admin"),
        )
        await EventConsumer(
            app.state.pool,
            settings.kafka,
            topics,
            handler.build(app.state.pool) if isinstance(handler, WithPool) else handler,
            name=consumer_name(settings, name),
            gate=gate_key(settings.schema_name),
            coalesce=coalesce,
            client_id=settings.client_id(f"consumer:{name}"),
            session_timeout_ms=settings.consumer_session_timeout_ms,
            heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
        ).run(stop, beat)

    return background(f"{settings.service}-{name}", run)


def service_parts(
    settings: ServiceSettings,
    *,
    publishes: str | None,
    consumes: Sequence[tuple[str, Sequence[str], Handler | WithPool]] = (),
    coalesce: bool = False,
) -> list[Part]:
    """The lifespan of a service: its pool, its relay if it publishes, its consumers.

    `publishes` and the topics in `consumes` are contract topic names; the settings add the
    deployment's prefix. `coalesce` applies to every consumer (see `consumer`).
    """
    parts = [database(settings)]
    if publishes and settings.run_relay:
        parts.append(relay(settings, settings.topic(publishes)))
    if settings.run_consumers:
        for name, topics, handler in consumes:
            deployed = [settings.topic(t) for t in topics]
            parts.append(consumer(settings, name, deployed, handler, coalesce=coalesce))
    return parts
