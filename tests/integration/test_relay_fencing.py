"""One publisher per store, even when the database restarts under the relay or the holder
freezes: the lease's epoch and the transactional producer fence the old holder, and nothing
reaches a read-committed reader twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from shared.relay import (
    EPOCH_HEADER,
    POSITION_HEADER,
    FencedRelay,
    Lease,
    RelayConfig,
    transactional_producer,
)
from shared.supervisor import Backoff, Supervisor
from shared.testing import Infra, eventually, unique
from tests.integration.helpers import append_next, read_records


def header(record: Any, name: str) -> str:
    return dict(record.headers)[name].decode()


def assert_each_event_once(records: list[Any], expected: int) -> None:
    positions = Counter(header(r, POSITION_HEADER) for r in records)
    doubled = {
        p: [
            (r.partition, r.offset, header(r, EPOCH_HEADER))
            for r in records
            if header(r, POSITION_HEADER) == p
        ]
        for p, n in positions.items()
        if n > 1
    }
    assert not doubled, f"published twice: {doubled}"
    assert len(positions) == expected


def config(infra: Infra, topic: str, name: str, **options: Any) -> RelayConfig:
    values: dict[str, Any] = {
        "lease_seconds": 2.0,
        "poll_interval": 0.01,
        "standby_poll": 0.1,
        "batch_size": 20,
    }
    values.update(options)
    return RelayConfig(infra.kafka_bootstrap, topic, name, replica=unique("r"), **values)


async def checkpoint_published(pool: Any, name: str) -> int:
    n = await pool.fetchval("SELECT published FROM relay_checkpoints WHERE relay = $1", name)
    return int(n or 0)


async def unpublished(pool: Any, name: str) -> int:
    row = await pool.fetchrow(
        "SELECT tx_id, position FROM relay_checkpoints WHERE relay = $1", name
    )
    tx, pos = (int(row["tx_id"]), row["position"]) if row else (0, 0)
    n = await pool.fetchval(
        "SELECT count(*) FROM events WHERE (tx_id, position) > ($1::xid8, $2)", tx, pos
    )
    return int(n)


async def test_two_replicas_publish_each_event_once_through_one_holder(
    infra: Infra, pool: Any, topic: str
) -> None:
    name = unique("relay")
    relays = [FencedRelay(pool, config(infra, topic, name)) for _ in range(2)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in relays]
    try:
        for i in range(60):
            await append_next(pool, f"s-{i % 5}")
        await eventually(lambda: _zero(unpublished(pool, name)), message="relay lagging")
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    records = await read_records(infra.kafka_bootstrap, topic, 60)
    assert_each_event_once(records, 60)
    assert len({header(r, EPOCH_HEADER) for r in records}) == 1, "one holder published"
    assert await checkpoint_published(pool, name) == 60


async def _zero(count: Any) -> bool:
    return await count == 0


async def terminate_sessions(pool: Any) -> int:
    """What a PostgreSQL restart does to the relay: every session of the schema is gone."""
    schema = await pool.fetchval("SELECT current_schema()")
    async with pool.acquire() as conn:
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1 AND pid <> pg_backend_pid()",
                schema,
            )
        )


async def test_relays_survive_their_sessions_dying_and_never_publish_twice(
    infra: Infra, pool: Any, topic: str
) -> None:
    """Before fencing, a replica took the advisory lock freed by the dead session while the
    holder kept publishing (every event twice), and a relay whose idle-path query hit the
    dead connection ended for good."""
    name = unique("relay")
    supervisor = Supervisor(backoff=Backoff(0.05, 0.3))
    for i in range(2):
        relay = FencedRelay(pool, config(infra, topic, name))
        supervisor.spawn(f"relay-{i}", relay.run)
    written = terminated = 0
    try:
        for round_ in range(4):
            for i in range(40):
                await append_next(pool, f"s-{(round_ * 40 + i) % 7}")
                written += 1
            terminated += await terminate_sessions(pool)
        assert terminated > 0
        await eventually(
            lambda: _zero(unpublished(pool, name)), timeout=60, message="relay did not recover"
        )
    finally:
        for task in list(supervisor.tasks):
            await supervisor.stop(task)
    records = await read_records(infra.kafka_bootstrap, topic, written)
    assert_each_event_once(records, written)
    assert await checkpoint_published(pool, name) == written


class Freezable:
    """A producer wrapper whose commit hangs while `frozen` is set, as in a SIGSTOPped
    process: no lease renewal, no commit, until it is let go."""

    def __init__(self, inner: AIOKafkaProducer, frozen: asyncio.Event, thawed: asyncio.Event):
        self._inner = inner
        self._frozen = frozen
        self._thawed = thawed
        self.fenced: BaseException | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def commit_transaction(self) -> None:
        if self._frozen.is_set():
            await self._thawed.wait()
        try:
            await self._inner.commit_transaction()
        except BaseException as exc:
            self.fenced = exc
            raise


async def test_a_frozen_holder_is_fenced_and_the_standby_takes_over_within_the_lease(
    infra: Infra, pool: Any, topic: str
) -> None:
    name = unique("relay")
    frozen, thawed = asyncio.Event(), asyncio.Event()
    wrapped: list[Freezable] = []

    def freezable(cfg: RelayConfig) -> Any:
        wrapped.append(Freezable(transactional_producer(cfg), frozen, thawed))
        return wrapped[-1]

    holder_cfg = config(infra, topic, name)
    holder = FencedRelay(pool, holder_cfg, producer_factory=freezable)
    stop_holder, stop_standby = asyncio.Event(), asyncio.Event()
    holding = asyncio.create_task(holder.run(stop_holder))
    for i in range(20):
        await append_next(pool, f"s-{i % 3}")
    await eventually(lambda: _zero(unpublished(pool, name)))

    standby = FencedRelay(pool, config(infra, topic, name))
    standing_by = asyncio.create_task(standby.run(stop_standby))
    frozen.set()
    for i in range(20):
        await append_next(pool, f"t-{i % 3}")
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        await eventually(lambda: _zero(unpublished(pool, name)), timeout=30, message="no takeover")
        took_over = loop.time() - began
        thawed.set()  # the frozen holder wakes up and tries to commit its batch
        with pytest.raises(Exception):  # noqa: B017 - fenced, whatever the client calls it
            await asyncio.wait_for(holding, 30)
        assert wrapped[0].fenced is not None, "the old holder's commit was refused"
    finally:
        stop_holder.set()
        stop_standby.set()
        thawed.set()
        await asyncio.gather(holding, standing_by, return_exceptions=True)
    assert took_over < holder_cfg.lease_seconds + 5
    records = await read_records(infra.kafka_bootstrap, topic, 40)
    assert_each_event_once(records, 40)
    assert len({header(r, EPOCH_HEADER) for r in records}) == 2
    assert await checkpoint_published(pool, name) == 40


class Killed(Exception):
    """Stands for the process dying at this point."""


class DiesBeforeCheckpoint(Lease):
    async def advance(self, conn: Any, last: Any, published: int) -> None:
        raise Killed


async def test_a_batch_in_kafka_whose_checkpoint_was_never_stored_is_not_published_again(
    infra: Infra, pool: Any, topic: str
) -> None:
    name = unique("relay")
    dying = FencedRelay(pool, config(infra, topic, name))
    dying.lease = DiesBeforeCheckpoint(name, dying.lease.holder, 2.0)
    for i in range(15):
        await append_next(pool, f"s-{i % 4}")
    with pytest.raises(Killed):
        await dying.run(asyncio.Event())
    assert await checkpoint_published(pool, name) == 0

    stop = asyncio.Event()
    successor = asyncio.create_task(FencedRelay(pool, config(infra, topic, name)).run(stop))
    try:
        for i in range(5):
            await append_next(pool, f"s-{i % 4}")
        await eventually(lambda: _zero(unpublished(pool, name)))
    finally:
        stop.set()
        await successor
    records = await read_records(infra.kafka_bootstrap, topic, 20)
    assert_each_event_once(records, 20)
    assert await checkpoint_published(pool, name) == 20
