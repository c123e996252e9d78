"""Consumer base: exactly-once effect on a read model from an at-least-once topic.

* Offsets live in Postgres, written in the same transaction as the read-model change, and
  the consumer seeks to them whenever partitions are assigned. Kafka's own committed offsets
  are written afterwards for monitoring only.
* A relay that crashed after publishing re-publishes with new offsets, so every event is
  also deduped by (stream_id, version) and each stream is applied in version order.
* An event the handler cannot apply is parked in `dead_letters` with the error; the
  partition keeps flowing.

A handler receives a batch of envelopes and the connection of the open transaction. The batch
is first tried whole inside a savepoint; if it fails, events are retried one by one so that
only the bad one is parked.

A consumer built with a `gate` takes that Postgres advisory lock (shared) around each batch,
*before* its transaction begins. A rebuild holds it exclusively while it swaps freshly built
tables in (shared/rebuild.py): live batches wait, and the first transaction after the swap
starts on the new tables (a transaction begun before it could mix old and new tables).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord

from shared.coalesce import CoalescingConnection
from shared.db import advisory_key
from shared.envelope import Envelope
from shared.metrics import (
    CONSUMER_APPLIED,
    CONSUMER_DEAD_LETTERS,
    CONSUMER_DUPLICATES,
    CONSUMER_LAG,
)

log = logging.getLogger(__name__)

Handler = Callable[[Any, Sequence[Envelope]], Awaitable[None]]
Item = tuple[TopicPartition, ConsumerRecord[Any, Any], Envelope]  # a record to apply


def gate_key(schema: str) -> int:
    """The advisory-lock key that pauses the consumers of the read models in `schema`."""
    return advisory_key(f"grid-read-model-gate:{schema}")


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: EventConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None  # offsets are already in Postgres with the data they describe

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.owner.seek_to_stored(assigned)


class EventConsumer:
    """Feeds one read model from one or more topics."""

    def __init__(
        self,
        pool: Any,
        bootstrap: str,
        topics: Sequence[str],
        handler: Handler,
        *,
        name: str,
        max_records: int = 500,
        gate: int | None = None,
        coalesce: bool = False,
    ) -> None:
        self.pool = pool
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.handler = handler
        self.name = name
        self.max_records = max_records
        self.gate = gate
        self.coalesce = coalesce  # handler's same-statement runs as executemany (coalesce.py)
        self.kafka: AIOKafkaConsumer | None = None

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        self.kafka = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=self.max_records,
        )
        self.kafka.subscribe(self.topics, listener=_SeekToStored(self))
        await self.kafka.start()

    async def stop(self) -> None:
        if self.kafka is not None:
            await self.kafka.stop()
            self.kafka = None

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            while not stop.is_set():
                try:
                    await self.poll_once(timeout_ms=200)
                except Exception as exc:  # noqa: BLE001 - a DB hiccup must not end the consumer
                    log.exception("consumer %s failed a batch, re-seeking: %s", self.name, exc)
                    assert self.kafka is not None
                    await self.seek_to_stored(list(self.kafka.assignment()))
                    await asyncio.sleep(1.0)
        finally:
            await self.stop()

    async def poll_once(self, timeout_ms: int = 200) -> int:
        """Fetch what is available and apply it; returns the number of records seen."""
        assert self.kafka is not None, "start() first"
        batches = await self.kafka.getmany(timeout_ms=timeout_ms, max_records=self.max_records)
        seen = 0
        for tp, records in batches.items():
            if records:
                await self.process(tp, records)
                seen += len(records)
        return seen

    # -- offsets -------------------------------------------------------------------------
    async def seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        assert self.kafka is not None
        if not partitions:
            return
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT topic, partition, next_offset FROM consumer_offsets WHERE consumer = $1",
                self.name,
            )
        stored = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await self.kafka.seek_to_beginning(tp)
            else:
                self.kafka.seek(tp, offset)

    async def commit_kafka(self, tp: TopicPartition, next_offset: int) -> None:
        """Mirror the stored offset to Kafka so standard lag tooling sees it."""
        assert self.kafka is not None
        try:
            await self.kafka.commit({tp: next_offset})
        except Exception as exc:  # noqa: BLE001 - Postgres holds the real offset
            log.info("consumer %s could not mirror offset to Kafka: %s", self.name, exc)

    # -- applying ------------------------------------------------------------------------
    async def process(self, tp: TopicPartition, records: list[ConsumerRecord[Any, Any]]) -> None:
        await self.process_many({tp: records})

    async def process_many(
        self, batches: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]
    ) -> None:
        """Apply the records of several partitions in one transaction and one handler call
        (their relative order is arbitrary anyway; each partition's stays as it is)."""
        async with self.pool.acquire() as conn:
            if self.gate is None:
                offsets, fresh = await self._process_in_transaction(conn, batches)
            else:
                # the pool's connection reset releases it too, should the unlock not run
                await conn.execute("SELECT pg_advisory_lock_shared($1)", self.gate)
                try:
                    offsets, fresh = await self._process_in_transaction(conn, batches)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock_shared($1)", self.gate)
        for tp, next_offset in offsets.items():
            await self.commit_kafka(tp, next_offset)
        if fresh:
            age = datetime.now(UTC) - fresh[-1][2].recorded_at
            CONSUMER_LAG.labels(self.name).set(age.total_seconds())

    async def _stored_offset(self, conn: Any, tp: TopicPartition) -> int:
        # The row lock serialises a zombie member and the partition's new owner during a
        # rebalance; the row is created first so that there is something to lock.
        await conn.execute(
            "INSERT INTO consumer_offsets (consumer, topic, partition, next_offset)"
            " VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
            self.name,
            tp.topic,
            tp.partition,
        )
        stored: int = await conn.fetchval(
            "SELECT next_offset FROM consumer_offsets"
            " WHERE consumer = $1 AND topic = $2 AND partition = $3 FOR UPDATE",
            self.name,
            tp.topic,
            tp.partition,
        )
        return stored

    async def _process_in_transaction(
        self, conn: Any, batches: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]
    ) -> tuple[dict[TopicPartition, int], list[Item]]:
        """Apply the records not applied yet; next offsets and what was applied.

        A partition whose stored offset lies beyond the whole batch (the read model was
        rebuilt, or another member applied it) is sought forward there instead.
        """
        offsets: dict[TopicPartition, int] = {}
        fresh: list[Item] = []
        async with conn.transaction():
            for tp in sorted(batches):
                records = batches[tp]
                if not records:
                    continue
                stored = await self._stored_offset(conn, tp)
                if records[-1].offset + 1 < stored and self.kafka is not None:
                    self.kafka.seek(tp, stored)
                records = [r for r in records if r.offset >= stored]
                if not records:
                    continue
                decoded, parked = self._decode(records)
                for record, error in parked:
                    await self._park(conn, tp, record, None, error)
                kept = await self._drop_duplicates(conn, decoded)
                fresh.extend((tp, record, env) for record, env in kept)
                offsets[tp] = records[-1].offset + 1
            await self._apply(conn, fresh)
            applied: dict[TopicPartition, list[Envelope]] = {tp: [] for tp in offsets}
            for tp, _, env in fresh:
                applied[tp].append(env)
            for tp, next_offset in offsets.items():
                await self._remember(conn, tp, next_offset, applied[tp])
        return offsets, fresh

    def _decode(
        self, records: list[ConsumerRecord[Any, Any]]
    ) -> tuple[
        list[tuple[ConsumerRecord[Any, Any], Envelope]], list[tuple[ConsumerRecord[Any, Any], str]]
    ]:
        fresh, parked = [], []
        for r in records:
            try:
                fresh.append((r, self.envelope_of(r)))
            except Exception as exc:  # noqa: BLE001 - anything unparseable is parked
                parked.append((r, f"undecodable envelope: {exc}"))
        return fresh, parked

    def envelope_of(self, record: ConsumerRecord[Any, Any]) -> Envelope:
        return Envelope.from_json(record.value)

    async def _drop_duplicates(
        self, conn: Any, items: list[tuple[ConsumerRecord[Any, Any], Envelope]]
    ) -> list[tuple[ConsumerRecord[Any, Any], Envelope]]:
        if not items:
            return items
        rows = await conn.fetch(
            "SELECT stream_id, version FROM consumer_streams"
            " WHERE consumer = $1 AND stream_id = ANY($2::text[])",
            self.name,
            list({e.stream_id for _, e in items}),
        )
        seen = {r["stream_id"]: r["version"] for r in rows}
        kept = []
        for record, env in items:
            if env.version <= seen.get(env.stream_id, 0):
                CONSUMER_DUPLICATES.labels(self.name).inc()
                continue
            if env.version != seen.get(env.stream_id, 0) + 1:
                log.warning(
                    "consumer %s: %s jumps from v%s to v%s",
                    self.name,
                    env.stream_id,
                    seen.get(env.stream_id, 0),
                    env.version,
                )
            seen[env.stream_id] = env.version
            kept.append((record, env))
        return kept

    async def _apply(self, conn: Any, items: list[Item]) -> None:
        if not items:
            return
        try:
            async with conn.transaction():
                await self._handle(conn, [env for _, _, env in items])
            CONSUMER_APPLIED.labels(self.name).inc(len(items))
            return
        except Exception:  # noqa: BLE001 - isolate the bad event below
            if len(items) > 1:
                log.info("consumer %s: batch failed, applying one by one", self.name)
        for tp, record, env in items:
            try:
                async with conn.transaction():
                    await self._handle(conn, [env])
                CONSUMER_APPLIED.labels(self.name).inc()
            except Exception as exc:  # noqa: BLE001
                await self._park(conn, tp, record, env, f"{type(exc).__name__}: {exc}")

    async def _handle(self, conn: Any, events: list[Envelope]) -> None:
        if not self.coalesce:
            await self.handler(conn, events)
            return
        coalescing = CoalescingConnection(conn)
        await self.handler(coalescing, events)
        await coalescing.flush()

    async def _park(
        self,
        conn: Any,
        tp: TopicPartition,
        record: ConsumerRecord[Any, Any],
        env: Envelope | None,
        error: str,
    ) -> None:
        log.error("consumer %s parked offset %s of %s: %s", self.name, record.offset, tp, error)
        CONSUMER_DEAD_LETTERS.labels(self.name).inc()
        raw = record.value or b""
        await conn.execute(
            """
            INSERT INTO dead_letters (consumer, topic, partition, "offset", stream_id, version,
                event_type, error, payload)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT DO NOTHING
            """,
            self.name,
            tp.topic,
            tp.partition,
            record.offset,
            env.stream_id if env else None,
            env.version if env else None,
            env.type if env else None,
            error[:4000],
            raw.decode("utf-8", "replace"),
        )

    async def _remember(
        self,
        conn: Any,
        tp: TopicPartition,
        next_offset: int,
        applied: Sequence[Envelope],
    ) -> None:
        latest: dict[str, int] = {}
        for env in applied:
            latest[env.stream_id] = max(env.version, latest.get(env.stream_id, 0))
        if latest:
            await conn.execute(
                """
                INSERT INTO consumer_streams (consumer, stream_id, version)
                SELECT $1, s, v FROM unnest($2::text[], $3::int[]) AS u(s, v)
                ON CONFLICT (consumer, stream_id)
                DO UPDATE SET version = GREATEST(consumer_streams.version, EXCLUDED.version)
                """,
                self.name,
                list(latest),
                list(latest.values()),
            )
        await conn.execute(
            """
            INSERT INTO consumer_offsets (consumer, topic, partition, next_offset, updated_at)
            VALUES ($1, $2, $3, $4, now())
            ON CONFLICT (consumer, topic, partition)
            DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()
            """,
            self.name,
            tp.topic,
            tp.partition,
            next_offset,
        )
