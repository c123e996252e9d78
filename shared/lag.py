"""How far each read model's consumer is behind its topics, and what it parked.

Per consumer, topic and partition: the offset stored in Postgres with the read model (what is
applied), the partition's high watermark in Kafka (what exists), the difference, and the
events parked in `dead_letters`. `LagWatch.measure()` answers `GET /v1/lag` and sets the
Prometheus gauges; `lag_watch()` also refreshes the gauges in the background so that /metrics
shows them between calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from pydantic import BaseModel, Field

from shared.http import Part
from shared.metrics import COMMITTED, DEAD_LETTERED, HIGH_WATERMARK, OFFSET_LAG

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Watched:
    """A consumer to watch: its name (key of its stored offsets) and its topics."""

    name: str
    topics: tuple[str, ...]


class PartitionLag(BaseModel):
    topic: str
    partition: int
    committed: int = Field(description="next offset to apply (0: nothing applied yet)")
    high_watermark: int = Field(description="offset after the partition's last record")
    lag: int = Field(description="records not applied yet")
    dead_letters: int = Field(description="records of this partition parked by the consumer")


class ConsumerLag(BaseModel):
    consumer: str
    lag: int
    dead_letters: int
    partitions: list[PartitionLag]


class LagReport(BaseModel):
    measured_at: datetime
    lag: int = Field(description="records not applied yet, all consumers")
    dead_letters: int
    consumers: list[ConsumerLag]


async def partitions_of(bootstrap: str, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of the existing `topics`, from the cluster's metadata."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        described = await admin.describe_topics(sorted(set(topics)))
    finally:
        await admin.close()
    return sorted(
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if t["error_code"] == 0
        for p in t["partitions"]
    )


class Watermarks:
    """High watermarks from Kafka through one long-lived client without a group."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._kafka: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _client(self) -> AIOKafkaConsumer:
        if self._kafka is None:
            kafka = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
                request_timeout_ms=10000,
            )
            await kafka.start()
            self._kafka = kafka
        return self._kafka

    async def of(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        partitions = await partitions_of(self.bootstrap, topics)
        if not partitions:
            return {}
        async with self._lock:
            kafka = await self._client()
            ends = await kafka.end_offsets(partitions)
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def close(self) -> None:
        if self._kafka is not None:
            await self._kafka.stop()
            self._kafka = None


class LagWatch:
    def __init__(self, pool: Any, watermarks: Watermarks, consumers: Sequence[Watched]) -> None:
        self.pool = pool
        self.watermarks = watermarks
        self.consumers = list(consumers)

    async def measure(self) -> LagReport:
        names = [c.name for c in self.consumers]
        ends = await self.watermarks.of([t for c in self.consumers for t in c.topics])
        async with self.pool.acquire() as conn:
            stored = await conn.fetch(
                "SELECT consumer, topic, partition, next_offset FROM consumer_offsets"
                " WHERE consumer = ANY($1::text[])",
                names,
            )
            parked = await conn.fetch(
                "SELECT consumer, topic, partition, count(*) AS n FROM dead_letters"
                " WHERE consumer = ANY($1::text[]) GROUP BY 1, 2, 3",
                names,
            )
        offsets = {(r["consumer"], r["topic"], r["partition"]): r["next_offset"] for r in stored}
        dead = {(r["consumer"], r["topic"], r["partition"]): r["n"] for r in parked}
        report = LagReport(
            measured_at=datetime.now(UTC),
            lag=0,
            dead_letters=sum(dead.values()),
            consumers=[self._consumer(c, ends, offsets, dead) for c in self.consumers],
        )
        report.lag = sum(c.lag for c in report.consumers)
        self._publish(report)
        return report

    @staticmethod
    def _consumer(
        consumer: Watched,
        ends: dict[tuple[str, int], int],
        offsets: dict[tuple[str, str, int], int],
        dead: dict[tuple[str, str, int], int],
    ) -> ConsumerLag:
        partitions = []
        for (topic, partition), end in sorted(ends.items()):
            if topic not in consumer.topics:
                continue
            committed = offsets.get((consumer.name, topic, partition), 0)
            partitions.append(
                PartitionLag(
                    topic=topic,
                    partition=partition,
                    committed=committed,
                    high_watermark=end,
                    lag=max(0, end - committed),
                    dead_letters=dead.get((consumer.name, topic, partition), 0),
                )
            )
        return ConsumerLag(
            consumer=consumer.name,
            lag=sum(p.lag for p in partitions),
            dead_letters=sum(n for (name, _, _), n in dead.items() if name == consumer.name),
            partitions=partitions,
        )

    @staticmethod
    def _publish(report: LagReport) -> None:
        for c in report.consumers:
            DEAD_LETTERED.labels(c.consumer).set(c.dead_letters)
            for p in c.partitions:
                labels = (c.consumer, p.topic, str(p.partition))
                COMMITTED.labels(*labels).set(p.committed)
                OFFSET_LAG.labels(*labels).set(p.lag)
                HIGH_WATERMARK.labels(p.topic, str(p.partition)).set(p.high_watermark)

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        """Refresh the gauges every `interval` seconds until `stop`."""
        while not stop.is_set():
            try:
                await self.measure()
            except Exception as exc:  # noqa: BLE001 - a broker or DB hiccup must not end it
                log.warning("could not measure consumer lag: %s", exc)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


def lag_watch(bootstrap: str, consumers: Sequence[Watched], *, interval: float = 15.0) -> Part:
    """A lifespan part (after the pool's): `app.state.lag_watch`, gauges kept fresh."""

    @asynccontextmanager
    async def part(app: FastAPI) -> AsyncIterator[None]:
        watermarks = Watermarks(bootstrap)
        watch = LagWatch(app.state.pool, watermarks, consumers)
        app.state.lag_watch = watch
        stop = asyncio.Event()
        task = asyncio.create_task(watch.run(stop, interval), name="lag-watch")
        try:
            yield
        finally:
            stop.set()
            try:
                await asyncio.wait_for(task, 15)
            except TimeoutError:
                task.cancel()
            await watermarks.close()

    return part
