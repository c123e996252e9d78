"""Outbox relay: publish committed events to `<service>.events`, never skipping one.

Positions (identity values) are handed out at insert, not at commit, so a reader that moves
past a lower position still in flight loses it (DESIGN.md §3, trap 1). The relay therefore
reads in (tx_id, position) order and only rows whose transaction id is below the current
snapshot's xmin: every transaction under xmin has finished, so no row can later appear
behind the relay's checkpoint. Appends are the first write of their transaction (the event
store checks), so a stream's later version always carries a higher tx_id (trap 2).

The checkpoint is written after Kafka acknowledged the batch. A crash in between re-publishes
that batch; consumers dedupe by (stream_id, version).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from shared.db import advisory_key
from shared.eventstore import COLUMNS
from shared.metrics import RELAY_BACKLOG, RELAY_LAG, RELAY_PUBLISHED

log = logging.getLogger(__name__)

# `data` stays text: it is embedded in the message as is, never parsed and re-encoded.
RELAY_COLUMNS = COLUMNS.replace(", data", ", data::text AS data")

FETCH_VISIBLE = f"""
SELECT {RELAY_COLUMNS} FROM events
WHERE (tx_id, position) > ($1::xid8, $2::bigint)
  AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY tx_id, position
LIMIT $3
"""


def message_value(row: asyncpg.Record) -> bytes:
    """The envelope's JSON form, straight from the stored row."""
    data = row["data"]
    return orjson.dumps(
        {
            "event_id": row["event_id"],
            "type": row["type"],
            "schema_version": row["schema_version"],
            "stream_id": row["stream_id"],
            "stream_type": row["stream_type"],
            "version": row["version"],
            "occurred_at": row["occurred_at"],
            "recorded_at": row["recorded_at"],
            "node_id": row["node_id"],
            "actor": row["actor"],
            "correlation_id": row["correlation_id"],
            "causation_id": row["causation_id"],
            "data": orjson.Fragment(data) if isinstance(data, str) else data,
        },
        default=str,  # asyncpg's own UUID type
    )


class OutboxRelay:
    """Moves committed events from one service's store to its topic."""

    fetch_sql = FETCH_VISIBLE

    def __init__(
        self,
        pool: Any,
        producer: AIOKafkaProducer,
        topic: str,
        *,
        name: str = "relay",
        batch_size: int = 1000,
    ) -> None:
        self.pool = pool
        self.producer = producer
        self.topic = topic
        self.name = name
        self.batch_size = batch_size
        self._checkpoint: tuple[int, int] | None = None  # cached: one relay per store
        self._partitions: list[int] = []
        self._partition_of: dict[str, int] = {}  # stream -> partition, as the producer would

    async def checkpoint(self, conn: Any) -> tuple[int, int]:
        if self._checkpoint is not None:
            return self._checkpoint
        row = await conn.fetchrow(
            "SELECT tx_id AS tx, position FROM relay_checkpoints WHERE relay = $1",
            self.name,
        )
        return (int(row["tx"]), int(row["position"])) if row else (0, 0)

    async def fetch(self, conn: Any) -> list[asyncpg.Record]:
        tx, pos = await self.checkpoint(conn)
        return list(await conn.fetch(self.fetch_sql, tx, pos, self.batch_size))

    async def publish(self, rows: list[asyncpg.Record]) -> None:
        if not self._partitions:
            self._partitions = sorted(await self.producer.partitions_for(self.topic))
        futures = [
            await self.producer.send(
                self.topic,
                value=message_value(r),
                key=r["stream_id"].encode(),
                partition=self._partition(r["stream_id"]),
                headers=[("type", r["type"].encode())],
            )
            for r in rows
        ]
        await asyncio.gather(*futures)

    def _partition(self, stream_id: str) -> int:
        """The default partitioner's choice (murmur2 of the key), computed once per stream:
        hashing every message in pure Python was a fifth of the relay's time."""
        partition = self._partition_of.get(stream_id)
        if partition is None:
            if len(self._partition_of) >= 200_000:
                self._partition_of.clear()
            partition = DefaultPartitioner()(stream_id.encode(), self._partitions, None)
            self._partition_of[stream_id] = partition
        return partition

    async def record(self, conn: Any, rows: list[asyncpg.Record]) -> None:
        last = rows[-1]
        await conn.execute(
            """
            INSERT INTO relay_checkpoints (relay, tx_id, position, published, updated_at)
            VALUES ($1, $2, $3, $4, now())
            ON CONFLICT (relay) DO UPDATE SET tx_id = EXCLUDED.tx_id,
                position = EXCLUDED.position,
                published = relay_checkpoints.published + EXCLUDED.published,
                updated_at = now()
            """,
            self.name,
            last["tx_id"],
            last["position"],
            len(rows),
        )
        self._checkpoint = (int(last["tx_id"]), int(last["position"]))

    async def step(self) -> int:
        """Publish one batch; returns how many events went out."""
        async with self.pool.acquire() as conn:
            rows = await self.fetch(conn)
            if not rows:
                return 0
            await self.publish(rows)
            await self.record(conn, rows)
        RELAY_PUBLISHED.labels(self.name).inc(len(rows))
        newest = max(r["recorded_at"] for r in rows)
        RELAY_LAG.labels(self.name).set((datetime.now(UTC) - newest).total_seconds())
        return len(rows)

    async def drain(self) -> int:
        """Publish until nothing visible is left (tests, benchmarks, shutdown)."""
        total = 0
        while n := await self.step():
            total += n
        return total

    async def backlog(self) -> int:
        async with self.pool.acquire() as conn:
            tx, pos = await self.checkpoint(conn)
            n = await conn.fetchval(
                "SELECT count(*) FROM events WHERE (tx_id, position) > ($1::xid8, $2)",
                tx,
                pos,
            )
        return int(n)

    async def run(self, stop: asyncio.Event, poll_interval: float = 0.05) -> None:
        """Publish while this process holds the relay's lock; one active relay per store."""
        lock_key = advisory_key(self._lock_name())
        async with self.pool.acquire() as lock_conn:
            while not stop.is_set():
                if await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key):
                    break
                await _wait(stop, 1.0)
            try:
                idle_passes = 0
                while not stop.is_set():
                    try:
                        n = await self.step()
                    except Exception as exc:  # noqa: BLE001 - keep relaying after broker/DB hiccups
                        log.warning("relay %s step failed, retrying: %s", self.name, exc)
                        n = 0
                        await _wait(stop, 1.0)
                    if n == 0:
                        idle_passes += 1
                        if idle_passes % 100 == 1:
                            RELAY_BACKLOG.labels(self.name).set(await self.backlog())
                        await _wait(stop, poll_interval)
                    else:
                        idle_passes = 0
            finally:
                if not lock_conn.is_closed():
                    await lock_conn.execute("SELECT pg_advisory_unlock($1)", lock_key)

    def _lock_name(self) -> str:
        return f"relay:{self.name}"


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
