"""Small builders shared by the integration tests."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from shared.envelope import Envelope, utc_now
from shared.eventstore import (
    CommandContext,
    ConcurrencyError,
    PendingEvent,
    append,
    stream_version,
)


def raw_event(stream_id: str, version: int, type_: str = "Noted", **data: Any) -> PendingEvent:
    return PendingEvent(
        stream_id=stream_id,
        stream_type="test",
        version=version,
        payload=None,
        occurred_at=utc_now(),
        type=type_,
        schema_version=1,
        data={"n": version, **data},
    )


async def append_next(pool: Any, stream_id: str, ctx: CommandContext | None = None) -> int:
    """Append one event at the stream's next version, retrying on conflict like a writer."""
    while True:
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    version = await stream_version(conn, stream_id) + 1
                    await append(conn, [raw_event(stream_id, version)], ctx or CommandContext())
                    return version
            except ConcurrencyError:
                await asyncio.sleep(0)


async def read_records(
    bootstrap: str, topic: str, expected: int, timeout: float = 30
) -> list[ConsumerRecord[Any, Any]]:
    """Every record a read-committed reader sees, once at least `expected` have arrived."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",
    )
    await consumer.start()
    out: list[ConsumerRecord[Any, Any]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(out) < expected and loop.time() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(records)
        # anything else already on the topic (duplicates) arrives without waiting long
        while batches := await consumer.getmany(timeout_ms=300):
            for records in batches.values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


async def read_topic(
    bootstrap: str, topic: str, expected: int, timeout: float = 30
) -> list[Envelope]:
    """Every envelope on the topic, once at least `expected` have arrived."""
    records = await read_records(bootstrap, topic, expected, timeout)
    return [Envelope.from_json(r.value) for r in records]


async def publish_all(relay: Any, expected: int, timeout: float = 30) -> int:
    """Drain the relay until `expected` events went out. A write transaction elsewhere in the
    cluster holds the xmin watermark back for a moment; waiting it out is the relay's job."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    published = 0
    while published < expected and loop.time() < deadline:
        published += await relay.drain()
        if published < expected:
            await asyncio.sleep(0.05)
    return published
