"""Consumer base: exactly-once effect on a read model from an at-least-once topic.

* Offsets live in Postgres, written in the same transaction as the read-model change, and
  the consumer seeks to them whenever partitions are assigned. Kafka's own committed offsets
  are written afterwards for monitoring only.
* A relay that crashed after publishing re-publishes with new offsets, so every event is
  also deduped by (stream_id, version), and each stream is applied in version order, without
  gaps: an event whose version is not the next one waits (parked with reason `gap`) until the
  versions before it arrive, and is then applied in the same transaction as the last of them.
* An event the handler cannot apply is parked in `dead_letters` with the error (reason
  `failed`), and it *holds* its stream: `consumer_streams.held_from` records it, and the later
  versions of that stream are parked behind it (reason `held`) until it is re-driven
  (shared/dead_letters.py: someone fixes the cause and asks; a replica of this consumer picks
  the request up in its poll loop). Other streams and the partition offset keep moving.
* Only the event's own failure parks it. A transient error (shared/faults.py: the
  connection, a timeout, a deadlock, a serialization failure, ...) rolls the whole transaction
  back and ends `run()`; the supervisor starts it again, it rejoins the group, seeks to the
  stored offsets and applies the batch again.

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
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord

from shared.coalesce import CoalescingConnection
from shared.db import advisory_key
from shared.dead_letters import Reason, finish_retries
from shared.envelope import Envelope
from shared.faults import describe, is_transient
from shared.kafka import Cluster, kafka_consumer
from shared.metrics import (
    CONSUMER_APPLIED,
    CONSUMER_DEAD_LETTERS,
    CONSUMER_DUPLICATES,
    CONSUMER_LAG,
)

log = logging.getLogger(__name__)

Handler = Callable[[Any, Sequence[Envelope]], Awaitable[None]]
Item = tuple[TopicPartition, Any, Envelope]  # a record (or a parked one) to apply
T = TypeVar("T")


def gate_key(schema: str) -> int:
    """The advisory-lock key that pauses the consumers of the read models in `schema`."""
    return advisory_key(f"grid-read-model-gate:{schema}")


class AssignmentFailed(Exception):
    """The consumer could not seek to its stored offsets when partitions were assigned."""


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: EventConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None  # offsets are already in Postgres with the data they describe

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        try:
            await self.owner.seek_to_stored(assigned)
        except Exception as exc:
            # aiokafka logs and swallows a listener's error, then fetches from Kafka's
            # committed offsets: poll_once raises this instead of applying from there
            self.owner.assignment_error = exc
            raise


class _Parked:
    """A parked event read back from `dead_letters`; stands where a ConsumerRecord would."""

    __slots__ = ("id", "topic", "partition", "offset", "value", "reason", "error")

    def __init__(self, row: Any) -> None:
        self.id: int = row["id"]
        self.topic: str = row["topic"]
        self.partition: int = row["partition"]
        self.offset: int = row["offset"]
        self.value: bytes = row["payload"].encode()
        self.reason: str = row["reason"]
        self.error: str = row["error"]


# one query per batch for the streams' versions; for the rare held stream, which of its
# versions are parked already (a re-delivered one is not parked twice)
_STREAMS_SQL = """
SELECT s.stream_id, s.version, s.held_from,
       CASE WHEN s.held_from IS NOT NULL THEN ARRAY(
           SELECT d.version FROM dead_letters d
           WHERE d.consumer = s.consumer AND d.stream_id = s.stream_id
             AND d.resolved_at IS NULL AND d.version IS NOT NULL) END AS parked
FROM consumer_streams s
WHERE s.consumer = $1 AND s.stream_id = ANY($2::text[])
"""
_PARKED_OF_STREAM_SQL = """
SELECT id, topic, partition, "offset", version, reason, error, payload FROM dead_letters
WHERE consumer = $1 AND stream_id = $2 AND resolved_at IS NULL AND version >= $3
ORDER BY version, id
FOR UPDATE
"""
_REQUESTED_SQL = """
SELECT id FROM dead_letters
WHERE consumer = $1 AND resolved_at IS NULL AND retry_requested_at IS NOT NULL
ORDER BY retry_requested_at, id
LIMIT $2
"""


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL."""
    return value.replace("\x00", "\\x00") if "\x00" in value else value


def _storable(env: Envelope) -> Envelope:
    if "\x00" in env.stream_id:  # it could not be stored in consumer_streams
        raise ValueError("stream_id holds a NUL character")
    return env


class _Batch:
    """One transaction's work: what to apply, what to park, and the streams' state after it.

    `place` walks the events in order against each stream's applied version and hold; events
    it lets through are applied by `apply`, whose failures park and hold their streams; `save`
    writes the streams' versions and holds and resolves the parked events that were applied.
    """

    def __init__(self, consumer: EventConsumer, conn: Any, why: str) -> None:
        self.consumer = consumer
        self.conn = conn
        self.why = why  # what re-drives parked events here, for the audit rows
        self.loaded: dict[str, int] = {}  # stream -> version applied before this transaction
        self.applied: dict[str, int] = {}  # stream -> version applied with what is planned
        self.held: dict[str, int] = {}  # stream -> held_from
        self.parked: dict[str, set[int]] = {}  # held stream -> its parked versions
        self.changed: set[str] = set()  # streams whose hold changed
        self.plan: list[Item] = []
        self.done: list[Item] = []
        self.duplicates = 0
        self.new_parks = 0
        self.updates: dict[int, tuple[str, str]] = {}  # dead letter -> (reason, error)
        self.resolved: dict[int, str] = {}  # dead letter -> outcome
        self.failed_again: set[int] = set()  # parked events whose re-drive failed
        self._parked_duplicates: list[tuple[int, str, int]] = []

    # -- reading the streams ---------------------------------------------------------------
    async def load(self, streams: Collection[str]) -> None:
        if not streams:
            return
        rows = await self.conn.fetch(_STREAMS_SQL, self.consumer.name, list(streams))
        for row in rows:
            stream = row[0]
            self.loaded[stream] = row[1]
            if row[2] is not None:
                self.held[stream] = row[2]
                self.parked[stream] = set(row[3])
        self.applied = dict(self.loaded)

    def parked_items(self, rows: Sequence[Any]) -> list[Item]:
        items = []
        for row in rows:
            parked = _Parked(row)
            try:
                env = self.consumer.decode(parked.value)
            except Exception as exc:  # noqa: BLE001 - it was decoded once; leave it parked
                log.warning(
                    "consumer %s: parked %s no longer decodes: %s",
                    self.consumer.name,
                    parked.id,
                    exc,
                )
                continue
            items.append((TopicPartition(parked.topic, parked.partition), parked, env))
        return items

    # -- deciding --------------------------------------------------------------------------
    async def place(self, items: Sequence[Item]) -> None:
        applied, held, plan = self.applied, self.held, self.plan
        for item in items:
            env = item[2]
            stream, version = env.stream_id, env.version
            current = applied.get(stream, 0)
            if version <= current:
                if type(item[1]) is _Parked:
                    self._parked_duplicates.append((item[1].id, stream, version))
                else:
                    self.duplicates += 1
                continue
            if version == current + 1 and stream not in held:
                applied[stream] = version
                plan.append(item)
                continue
            await self._place_out_of_line(item, current)

    async def _place_out_of_line(self, item: Item, current: int) -> None:
        env = item[2]
        stream, version = env.stream_id, env.version
        held_from = self.held.get(stream)
        if held_from is None or version < held_from:
            if version == current + 1:  # fills (part of) the gap before a hold
                self.applied[stream] = version
                self.plan.append(item)
                if held_from is not None and version + 1 == held_from:
                    await self._gap_closed(stream, held_from)
                return
            await self._hold(item, Reason.GAP, f"waiting for v{current + 1}")
            return
        if type(item[1]) is not _Parked and version in self.parked.get(stream, ()):
            self.duplicates += 1  # parked already, from an earlier delivery
            return
        await self._park(item, Reason.HELD, f"held behind v{held_from}")

    async def _gap_closed(self, stream: str, held_from: int) -> None:
        """The versions before the hold are all planned: what waited behind it follows."""
        del self.held[stream]
        self.changed.add(stream)
        self.parked[stream] = set()
        rows = await self.conn.fetch(_PARKED_OF_STREAM_SQL, self.consumer.name, stream, held_from)
        log.info(
            "consumer %s: %s reached v%s, re-driving %s parked event(s)",
            self.consumer.name,
            stream,
            held_from - 1,
            len(rows),
        )
        await self.place(self.parked_items(rows))

    async def _hold(self, item: Item, reason: Reason, error: str) -> None:
        stream, version = item[2].stream_id, item[2].version
        await self._park(item, reason, error)
        held_from = self.held.get(stream)
        if held_from is None or version < held_from:
            self.held[stream] = version
            self.changed.add(stream)

    async def _park(self, item: Item, reason: Reason, error: str) -> None:
        tp, record, env = item
        self.parked.setdefault(env.stream_id, set()).add(env.version)
        if type(record) is _Parked:  # parked already: only what it waits for may change
            if reason == Reason.HELD and record.reason == Reason.FAILED:
                return  # its own error says more; it is tried again with the stream
            if (reason.value, error) != (record.reason, record.error):
                self.updates[record.id] = (reason.value, error)
            return
        await self.consumer._park(self.conn, tp, record, env, error, reason)
        self.new_parks += 1

    # -- applying --------------------------------------------------------------------------
    async def apply(self) -> None:
        plan, conn, consumer = self.plan, self.conn, self.consumer
        if not plan:
            return
        try:
            async with conn.transaction():
                await consumer._handle(conn, [env for _, _, env in plan])
            self.done = plan
            return
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(plan) == 1:
                await self._failed(plan[0], exc)
                return
            log.info(
                "consumer %s: batch failed (%s), applying one by one",
                consumer.name,
                describe(exc),
            )
        failed: dict[str, int] = {}  # stream -> the version that failed
        for item in plan:
            stream, version = item[2].stream_id, item[2].version
            if stream in failed:
                await self._park(item, Reason.HELD, f"held behind v{failed[stream]}")
                continue
            try:
                async with conn.transaction():
                    await consumer._handle(conn, [item[2]])
            except Exception as exc:
                if is_transient(exc):
                    raise
                failed[stream] = version
                await self._failed(item, exc)
                continue
            self.done.append(item)

    async def _failed(self, item: Item, exc: Exception) -> None:
        if type(item[1]) is _Parked:
            self.failed_again.add(item[1].id)
        await self._hold(item, Reason.FAILED, describe(exc))

    # -- writing ---------------------------------------------------------------------------
    async def save(self) -> None:
        conn, name = self.conn, self.consumer.name
        latest: dict[str, int] = {}
        for _, record, env in self.done:
            latest[env.stream_id] = env.version
            if type(record) is _Parked:
                self.resolved[record.id] = "applied"
        for dead_letter_id, stream, version in self._parked_duplicates:
            if version <= latest.get(stream, self.loaded.get(stream, 0)):
                self.resolved[dead_letter_id] = "duplicate of an applied event"
        steady = [s for s in latest if s not in self.changed]
        if steady:
            await conn.execute(
                """
                INSERT INTO consumer_streams (consumer, stream_id, version)
                SELECT $1, s, v FROM unnest($2::text[], $3::int[]) AS u(s, v)
                ON CONFLICT (consumer, stream_id)
                DO UPDATE SET version = GREATEST(consumer_streams.version, EXCLUDED.version)
                """,
                name,
                steady,
                [latest[s] for s in steady],
            )
        if self.changed:
            changed = sorted(self.changed)
            await conn.execute(
                """
                INSERT INTO consumer_streams (consumer, stream_id, version, held_from)
                SELECT $1, s, v, h FROM unnest($2::text[], $3::int[], $4::int[]) AS u(s, v, h)
                ON CONFLICT (consumer, stream_id)
                DO UPDATE SET version = GREATEST(consumer_streams.version, EXCLUDED.version),
                              held_from = EXCLUDED.held_from
                """,
                name,
                changed,
                [latest.get(s, 0) for s in changed],
                [self.held.get(s) for s in changed],
            )
        for dead_letter_id in self.resolved:
            self.updates.pop(dead_letter_id, None)
        if self.updates:
            ids = list(self.updates)
            await conn.execute(
                """
                UPDATE dead_letters d SET reason = u.r, error = u.e
                FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(i, r, e)
                WHERE d.id = u.i
                """,
                ids,
                [self.updates[i][0] for i in ids],
                [_text(self.updates[i][1])[:4000] for i in ids],
            )
        if self.resolved:
            ids = list(self.resolved)
            await conn.execute(
                "UPDATE dead_letters SET resolved_at = now(), retry_requested_at = NULL"
                " WHERE id = ANY($1::bigint[])",
                ids,
            )
            # an open request is finished; anything else gets a row saying what re-drove it
            await conn.execute(
                """
                WITH outcome AS (
                    SELECT * FROM unnest($1::bigint[], $2::text[]) AS u(id, outcome)
                ), finished AS (
                    UPDATE dead_letter_retries r SET finished_at = now(), outcome = o.outcome
                    FROM outcome o WHERE r.dead_letter_id = o.id AND r.finished_at IS NULL
                    RETURNING r.dead_letter_id
                )
                INSERT INTO dead_letter_retries
                    (dead_letter_id, consumer, requested_by, reason, finished_at, outcome)
                SELECT o.id, $3, $3, $4, now(), o.outcome FROM outcome o
                WHERE o.id NOT IN (SELECT dead_letter_id FROM finished)
                """,
                ids,
                [self.resolved[i] for i in ids],
                name,
                self.why,
            )

    def report(self) -> None:
        """Count what the committed transaction did."""
        name = self.consumer.name
        if self.done:
            CONSUMER_APPLIED.labels(name).inc(len(self.done))
        if self.duplicates:
            CONSUMER_DUPLICATES.labels(name).inc(self.duplicates)
        if self.new_parks:
            CONSUMER_DEAD_LETTERS.labels(name).inc(self.new_parks)


class EventConsumer:
    """Feeds one read model from one or more topics."""

    def __init__(
        self,
        pool: Any,
        bootstrap: Cluster,
        topics: Sequence[str],
        handler: Handler,
        *,
        name: str,
        max_records: int = 500,
        gate: int | None = None,
        coalesce: bool = False,
        client_id: str | None = None,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        retry_interval: float = 1.0,
    ) -> None:
        self.pool = pool
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.handler = handler
        self.name = name
        self.max_records = max_records
        self.gate = gate
        self.coalesce = coalesce  # handler's same-statement runs as executemany (coalesce.py)
        self.client_id = client_id
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.retry_interval = retry_interval  # how often run() looks for retry requests
        self.kafka: AIOKafkaConsumer | None = None
        self.assignment_error: Exception | None = None

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        options: dict[str, Any] = {}
        if self.client_id is not None:
            options["client_id"] = self.client_id
        self.assignment_error = None
        self.kafka = kafka_consumer(
            self.bootstrap,
            group_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=self.max_records,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            **options,
        )
        self.kafka.subscribe(self.topics, listener=_SeekToStored(self))
        await self.kafka.start()

    async def stop(self) -> None:
        """Close the Kafka client; never raises (the stored offsets are what count)."""
        kafka, self.kafka = self.kafka, None
        if kafka is None:
            return
        try:
            await kafka.stop()
        except Exception as exc:  # noqa: BLE001 - leaving the group is best effort
            log.warning("consumer %s: stopping the Kafka client failed: %s", self.name, exc)

    async def run(self, stop: asyncio.Event, beat: Callable[[], None] | None = None) -> None:
        """Apply records until `stop` is set; `beat()` after every poll that went through.

        Any error ends it (after the Kafka client is closed): a supervisor starts it again,
        and a started consumer seeks to the stored offsets. Retry requests for this
        consumer's dead letters are picked up every `retry_interval` seconds.
        """
        loop = asyncio.get_running_loop()
        try:
            await self.start()
            retries_due = loop.time()
            while not stop.is_set():
                await self.poll_once(timeout_ms=200)
                if beat is not None:
                    beat()
                if loop.time() >= retries_due:
                    await self.redrive_requested()
                    retries_due = loop.time() + self.retry_interval
        finally:
            await self.stop()

    async def poll_once(self, timeout_ms: int = 200) -> int:
        """Fetch what is available and apply it; returns the number of records seen."""
        assert self.kafka is not None, "start() first"
        self._check_assignment()
        batches = await self.kafka.getmany(timeout_ms=timeout_ms, max_records=self.max_records)
        self._check_assignment()  # an assignment during the fetch
        seen = 0
        for tp, records in batches.items():
            if records:
                await self.process(tp, records)
                seen += len(records)
        return seen

    def _check_assignment(self) -> None:
        if self.assignment_error is not None:
            error, self.assignment_error = self.assignment_error, None
            raise AssignmentFailed(
                f"consumer {self.name} could not seek to its stored offsets: {describe(error)}"
            ) from error

    # -- offsets -------------------------------------------------------------------------
    async def seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        kafka = self.kafka
        assert kafka is not None
        if not partitions:
            return
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT topic, partition, next_offset FROM consumer_offsets WHERE consumer = $1",
                self.name,
            )
        if self.kafka is None or self.kafka is not kafka:
            return  # stopped meanwhile (shutdown): the next run seeks again
        stored = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await kafka.seek_to_beginning(tp)
            else:
                kafka.seek(tp, offset)

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
            offsets, batch = await self._gated(
                conn, lambda: self._process_in_transaction(conn, batches)
            )
        batch.report()
        for tp, next_offset in offsets.items():
            await self.commit_kafka(tp, next_offset)
        fresh = next((env for _, r, env in reversed(batch.done) if type(r) is not _Parked), None)
        if fresh is not None:
            age = datetime.now(UTC) - fresh.recorded_at
            CONSUMER_LAG.labels(self.name).set(age.total_seconds())

    async def _gated(self, conn: Any, work: Callable[[], Awaitable[T]]) -> T:
        if self.gate is None:
            return await work()
        # the pool's connection reset releases it too, should the unlock not run
        await conn.execute("SELECT pg_advisory_lock_shared($1)", self.gate)
        try:
            return await work()
        finally:
            await conn.execute("SELECT pg_advisory_unlock_shared($1)", self.gate)

    async def _stored_offset(self, conn: Any, tp: TopicPartition) -> int:
        # The row lock serialises a zombie member and the partition's new owner during a
        # rebalance (and a re-drive of the partition's parked events); the row is created
        # first so that there is something to lock.
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
    ) -> tuple[dict[TopicPartition, int], _Batch]:
        """Apply the records not applied yet; the next offsets and what was done.

        A partition whose stored offset lies beyond the whole batch (the read model was
        rebuilt, or another member applied it) is sought forward there instead.
        """
        offsets: dict[TopicPartition, int] = {}
        async with conn.transaction():
            batch = _Batch(self, conn, "re-driven when the versions before it arrived")
            items: list[Item] = []
            undecodable: list[tuple[TopicPartition, ConsumerRecord[Any, Any], str]] = []
            for tp in sorted(batches):
                records = batches[tp]
                if not records:
                    continue
                stored = await self._stored_offset(conn, tp)
                if records[-1].offset + 1 < stored and self.kafka is not None:
                    self.kafka.seek(tp, stored)
                if records[0].offset < stored:
                    records = [r for r in records if r.offset >= stored]
                if not records:
                    continue
                for record in records:
                    try:
                        env = _storable(self.envelope_of(record))
                    except Exception as exc:  # noqa: BLE001 - anything unparseable is parked
                        undecodable.append((tp, record, f"undecodable envelope: {exc}"))
                        continue
                    items.append((tp, record, env))
                offsets[tp] = records[-1].offset + 1
            await batch.load({env.stream_id for _, _, env in items})
            for tp, record, error in undecodable:
                await self._park(conn, tp, record, None, error, Reason.UNDECODABLE)
                batch.new_parks += 1
            await batch.place(items)
            await batch.apply()
            await batch.save()
            for tp, next_offset in offsets.items():
                await self._store_offset(conn, tp, next_offset)
        return offsets, batch

    def envelope_of(self, record: ConsumerRecord[Any, Any]) -> Envelope:
        return self.decode(record.value)

    def decode(self, raw: bytes) -> Envelope:
        """An envelope from its wire form (records and parked events alike)."""
        return Envelope.from_json(raw)

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
        reason: Reason = Reason.FAILED,
    ) -> None:
        log.error(
            "consumer %s parked offset %s of %s (%s): %s",
            self.name,
            record.offset,
            tp,
            reason.value,
            error,
        )
        raw = record.value or b""
        await conn.execute(
            """
            INSERT INTO dead_letters (consumer, topic, partition, "offset", stream_id, version,
                event_type, reason, error, payload)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT DO NOTHING
            """,
            self.name,
            tp.topic,
            tp.partition,
            record.offset,
            env.stream_id if env else None,
            env.version if env else None,
            _text(env.type) if env else None,
            reason.value,
            _text(error)[:4000],
            # a NUL cannot be in an envelope's JSON text, so this changes no decodable one
            raw.decode("utf-8", "replace").replace("\x00", "\ufffd"),
        )

    async def _store_offset(self, conn: Any, tp: TopicPartition, next_offset: int) -> None:
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

    # -- re-driving on request -------------------------------------------------------------
    async def redrive_requested(self, limit: int = 20) -> int:
        """Re-drive the dead letters of this consumer someone asked to retry
        (shared/dead_letters.py); returns how many requests were taken up."""
        async with self.pool.acquire() as conn:
            requested = [r[0] for r in await conn.fetch(_REQUESTED_SQL, self.name, limit)]
            taken = 0
            for dead_letter_id in requested:
                batch = await self._gated(
                    conn, partial(self._retry_in_transaction, conn, dead_letter_id)
                )
                if batch is not None:
                    batch.report()
                    taken += 1
        return taken

    async def _retry_in_transaction(self, conn: Any, dead_letter_id: int) -> _Batch | None:
        async with conn.transaction():
            first = await conn.fetchrow(
                "SELECT topic, partition, stream_id FROM dead_letters"
                " WHERE id = $1 AND consumer = $2 AND resolved_at IS NULL"
                " AND retry_requested_at IS NOT NULL",
                dead_letter_id,
                self.name,
            )
            if first is None:
                return None
            # the partitions' batches wait (and see the outcome): their offset rows are locked
            partitions = {(first["topic"], first["partition"])}
            if first["stream_id"] is not None:
                rows = await conn.fetch(
                    "SELECT DISTINCT topic, partition FROM dead_letters"
                    " WHERE consumer = $1 AND stream_id = $2 AND resolved_at IS NULL",
                    self.name,
                    first["stream_id"],
                )
                partitions |= {(r["topic"], r["partition"]) for r in rows}
            for topic, partition in sorted(partitions):
                await self._stored_offset(conn, TopicPartition(topic, partition))
            dead = await conn.fetchrow(
                'SELECT id, topic, partition, "offset", stream_id, version, reason, error,'
                " payload FROM dead_letters"
                " WHERE id = $1 AND resolved_at IS NULL AND retry_requested_at IS NOT NULL"
                " FOR UPDATE",
                dead_letter_id,
            )
            if dead is None:  # another replica got to it first
                return None
            batch = _Batch(self, conn, f"re-driven with dead letter {dead_letter_id}")
            outcome = await self._retry(conn, batch, dead)
            if dead_letter_id not in batch.resolved:
                await conn.execute(
                    "UPDATE dead_letters SET retry_requested_at = NULL WHERE id = $1",
                    dead_letter_id,
                )
                await finish_retries(conn, [dead_letter_id], outcome)
            log.info(
                "consumer %s: retry of dead letter %s: %s",
                self.name,
                dead_letter_id,
                batch.resolved.get(dead_letter_id, outcome),
            )
            return batch

    async def _retry(self, conn: Any, batch: _Batch, dead: Any) -> str:
        """Re-apply the stream's parked events from `dead` on; the outcome if it stays."""
        try:
            env = _storable(self.decode(dead["payload"].encode()))
        except Exception as exc:  # noqa: BLE001 - still no envelope
            error = f"undecodable envelope: {exc}"
            await conn.execute(
                "UPDATE dead_letters SET error = $2 WHERE id = $1", dead["id"], _text(error)[:4000]
            )
            return f"failed again: {error}"
        if dead["stream_id"] is None:  # decodes now: it joins its stream's order
            await conn.execute(
                "UPDATE dead_letters SET stream_id = $2, version = $3, event_type = $4"
                " WHERE id = $1",
                dead["id"],
                env.stream_id,
                env.version,
                _text(env.type),
            )
        stream, version = env.stream_id, env.version
        await batch.load([stream])
        current = batch.applied.get(stream, 0)
        if version <= current:
            if dead["stream_id"] is None:  # another delivery of it was applied
                batch.resolved[dead["id"]] = "duplicate of an applied event"
                await batch.save()
                return "duplicate of an applied event"
            # parked before streams were held: applying it now would reorder the stream
            return f"not applied: {stream} is at v{current} already"
        below = await conn.fetchval(
            "SELECT min(version) FROM dead_letters WHERE consumer = $1 AND stream_id = $2"
            " AND resolved_at IS NULL AND version > $3 AND version < $4",
            self.name,
            stream,
            current,
            version,
        )
        batch.changed.add(stream)
        batch.parked[stream] = set()
        if below is None:
            batch.held.pop(stream, None)
        else:
            batch.held[stream] = below
        rows = await conn.fetch(_PARKED_OF_STREAM_SQL, self.name, stream, version)
        await batch.place(batch.parked_items(rows))
        await batch.apply()
        await batch.save()
        reason, error = batch.updates.get(dead["id"], (dead["reason"], dead["error"]))
        if dead["id"] in batch.failed_again:
            return f"failed again: {error}"
        return f"still parked ({reason}): {error}"
