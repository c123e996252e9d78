"""Crash the relay or a consumer between two steps: the read model still ends up exact."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import TopicPartition

from shared import places
from shared.consumer import EventConsumer
from shared.envelope import Envelope, utc_now
from shared.eventstore import PendingEvent, append
from shared.projection import Projection
from shared.relay import OutboxRelay
from shared.testing import Infra, eventually, unique
from tests.integration.helpers import append_next, publish_all


class Killed(Exception):
    """Stands for the process dying at this point."""


class RelayKilledBeforeCheckpoint(OutboxRelay):
    published = 0  # what reached Kafka before the crash

    async def record(self, conn: Any, rows: Any) -> None:
        self.published += len(rows)
        raise Killed


class ConsumerKilledBeforeKafkaCommit(EventConsumer):
    async def commit_kafka(self, tp: TopicPartition, next_offset: int) -> None:
        raise Killed


async def record_applied(conn: Any, events: Sequence[Envelope]) -> None:
    for e in events:
        await conn.execute(
            "INSERT INTO applied (stream_id, version) VALUES ($1, $2)", e.stream_id, e.version
        )


async def applied_rows(pool: Any) -> list[tuple[str, int]]:
    rows = await pool.fetch("SELECT stream_id, version FROM applied ORDER BY 1, 2")
    return [(r["stream_id"], r["version"]) for r in rows]


async def consume_through(pool: Any, offsets: int, *consumers: EventConsumer) -> None:
    """Start the consumers and poll them until the stored offsets add up to `offsets`."""
    for c in consumers:
        await c.start()
    try:

        async def done() -> bool:
            for c in consumers:
                await c.poll_once(timeout_ms=50)
            stored = await pool.fetchval("SELECT sum(next_offset) FROM consumer_offsets")
            return bool(stored == offsets)

        await eventually(done)
    finally:
        for c in consumers:
            await c.stop()


@pytest.fixture
async def applied_table(pool: Any) -> None:
    # no unique key on purpose: a double application must show up as a duplicate row
    await pool.execute("CREATE TABLE applied (stream_id text NOT NULL, version int NOT NULL)")


async def test_relay_killed_after_publish_before_checkpoint_applies_each_event_once(
    infra: Infra, pool: Any, topic: str, producer: Any, applied_table: None
) -> None:
    for stream in ("s-1", "s-1", "s-2", "s-3", "s-3"):
        await append_next(pool, stream)
    dying = RelayKilledBeforeCheckpoint(pool, producer, topic)

    async def killed_after_publishing() -> bool:
        try:
            await dying.step()  # publishes nothing while another writer holds xmin back
        except Killed:
            return True
        return False

    await eventually(killed_after_publishing)
    assert await publish_all(OutboxRelay(pool, producer, topic), 5) == 5  # published again

    consumer = EventConsumer(pool, infra.kafka_bootstrap, [topic], record_applied, name=unique("c"))
    # the dying relay may have sent only some events (others' transactions hold the xmin back)
    assert dying.published > 0
    await consume_through(pool, dying.published + 5, consumer)
    expected = [("s-1", 1), ("s-1", 2), ("s-2", 1), ("s-3", 1), ("s-3", 2)]
    assert await applied_rows(pool) == expected


async def test_consumer_killed_after_db_commit_before_kafka_commit_counts_nothing_twice(
    infra: Infra, pool: Any, topic: str, producer: Any, applied_table: None
) -> None:
    for i in range(30):
        await append_next(pool, f"s-{i % 6}")
    await publish_all(OutboxRelay(pool, producer, topic), 30)
    name = unique("c")

    crashing = ConsumerKilledBeforeKafkaCommit(
        pool, infra.kafka_bootstrap, [topic], record_applied, name=name
    )
    await crashing.start()
    try:

        async def died() -> bool:
            try:
                await crashing.poll_once(timeout_ms=100)
            except Killed:
                return True
            return False

        await eventually(died)
    finally:
        await crashing.stop()
    before = await applied_rows(pool)
    assert before, "the first consumer committed its batch to the database"

    restarted = EventConsumer(pool, infra.kafka_bootstrap, [topic], record_applied, name=name)
    await consume_through(pool, 30, restarted)
    rows = await applied_rows(pool)
    assert len(rows) == 30 and len(set(rows)) == 30


async def test_poison_events_are_parked_and_later_events_still_apply(
    infra: Infra, pool: Any, topic: str, producer: Any
) -> None:
    await pool.execute(places.PLACES_DDL)
    now = utc_now()

    def event(stream: str, type_: str, data: dict[str, Any]) -> PendingEvent:
        return PendingEvent(stream, "node", 1, None, now, type=type_, schema_version=1, data=data)

    good = {"parent_id": None, "kind": "district", "name": "金堂县"}
    async with pool.acquire() as conn, conn.transaction():
        await append(
            conn,
            [
                event("n-1", "NodeCreated", {"node_id": "n-1", "path": "n_1", **good}),
                event("n-2", "TotallyUnknownHappened", {"x": 1}),
                event("n-3", "NodeCreated", {"node_id": "n-3"}),  # required fields missing
                event("n-4", "NodeCreated", {"node_id": "n-4", "path": "n_4", **good}),
            ],
        )
    await publish_all(OutboxRelay(pool, producer, topic), 4)

    consumer = EventConsumer(
        pool, infra.kafka_bootstrap, [topic], Projection(places.HANDLERS), name=unique("c")
    )
    await consume_through(pool, 4, consumer)
    assert [r["id"] for r in await pool.fetch("SELECT id FROM places ORDER BY id")] == [
        "n-1",
        "n-4",
    ]
    parked = await pool.fetch("SELECT stream_id, error FROM dead_letters ORDER BY stream_id")
    assert [r["stream_id"] for r in parked] == ["n-2", "n-3"]
    assert "TotallyUnknownHappened" in parked[0]["error"]
    assert "path" in parked[1]["error"]


async def test_two_members_of_one_group_share_partitions_and_apply_each_event_once(
    infra: Infra, pool: Any, topic: str, producer: Any, applied_table: None
) -> None:
    for i in range(90):
        await append_next(pool, f"s-{i % 9}")
    await publish_all(OutboxRelay(pool, producer, topic), 90)
    name = unique("c")
    members = [
        EventConsumer(
            pool, infra.kafka_bootstrap, [topic], record_applied, name=name, max_records=7
        )
        for _ in range(2)
    ]
    await consume_through(pool, 90, *members)
    rows = await applied_rows(pool)
    assert len(rows) == 90 and len(set(rows)) == 90
