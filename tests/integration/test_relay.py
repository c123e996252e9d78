"""The outbox relay publishes every committed event, in version order per stream."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

from shared.eventstore import append
from shared.relay import FencedRelay, OutboxRelay, RelayConfig
from shared.testing import Infra, eventually, unique
from tests.integration.helpers import append_next, publish_all, raw_event, read_topic


class PositionRelay(OutboxRelay):
    """The naive relay: everything after the last published position."""

    fetch_sql = """
        SELECT position, tx_id, event_id, stream_id, stream_type, version, type,
               schema_version, occurred_at, recorded_at, node_id, actor, correlation_id,
               causation_id, data
        FROM events WHERE $1::xid8 IS NOT NULL AND position > $2 ORDER BY position LIMIT $3
    """


async def _late_commit_scenario(pool: Any, relay: OutboxRelay) -> None:
    """Transaction A takes the lower position but commits after B; the relay runs between."""
    conn_a = await pool.acquire()
    try:
        tx_a = conn_a.transaction()
        await tx_a.start()
        await append(conn_a, [raw_event("stream-a", 1)])
        async with pool.acquire() as conn_b, conn_b.transaction():
            await append(conn_b, [raw_event("stream-b", 1)])
        await relay.step()
        await tx_a.commit()
    finally:
        await pool.release(conn_a)

    async def caught_up() -> bool:
        # another transaction anywhere in the database may hold the xmin back a while
        await relay.step()
        return await relay.backlog() == 0

    await eventually(caught_up, message="relay did not catch up")


async def test_event_committed_late_with_a_lower_position_is_still_published(
    infra: Infra, pool: Any, topic: str, producer: Any
) -> None:
    await _late_commit_scenario(pool, OutboxRelay(pool, producer, topic))
    published = await read_topic(infra.kafka_bootstrap, topic, expected=2)
    assert sorted(e.stream_id for e in published) == ["stream-a", "stream-b"]


async def test_the_same_scenario_loses_the_event_with_a_naive_position_relay(
    infra: Infra, pool: Any, topic: str, producer: Any
) -> None:
    """Guards the test above: it detects the skip it is meant to prevent."""
    await _late_commit_scenario(pool, PositionRelay(pool, producer, topic))
    published = await read_topic(infra.kafka_bootstrap, topic, expected=2, timeout=3)
    assert [e.stream_id for e in published] == ["stream-b"]


async def test_concurrent_writers_streams_arrive_complete_and_in_version_order(
    infra: Infra, pool: Any, topic: str, producer: Any
) -> None:
    streams = [f"s-{i}" for i in range(8)]
    rng = random.Random(7)
    relay = OutboxRelay(pool, producer, topic, name=unique("relay"))
    fenced = FencedRelay(
        pool,
        RelayConfig(
            infra.kafka_bootstrap, topic, relay.name, "r", batch_size=17, poll_interval=0.005
        ),
    )
    stop = asyncio.Event()
    relaying = asyncio.create_task(fenced.run(stop))

    async def writer() -> None:
        for _ in range(25):
            await append_next(pool, rng.choice(streams))

    await asyncio.gather(*(writer() for _ in range(8)))

    async def all_published() -> bool:
        return await relay.backlog() == 0

    await eventually(all_published, message="relay did not catch up")
    stop.set()
    await relaying

    published = await read_topic(infra.kafka_bootstrap, topic, expected=200)
    assert len({e.event_id for e in published}) == 200
    by_stream: dict[str, list[int]] = defaultdict(list)
    for e in published:
        if e.version not in by_stream[e.stream_id]:
            by_stream[e.stream_id].append(e.version)
    for stream, versions in by_stream.items():
        assert versions == list(range(1, len(versions) + 1)), stream


async def test_relay_resumes_from_its_checkpoint(
    infra: Infra, pool: Any, topic: str, producer: Any
) -> None:
    for _ in range(3):
        await append_next(pool, "s-1")
    assert await publish_all(OutboxRelay(pool, producer, topic), 3) == 3
    await append_next(pool, "s-1")
    assert await publish_all(OutboxRelay(pool, producer, topic), 1) == 1
    published = await read_topic(infra.kafka_bootstrap, topic, expected=4)
    assert [e.version for e in published] == [1, 2, 3, 4]
