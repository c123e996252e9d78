"""Outbox relay: publish committed events to `<service>.events`, never skipping one, and
from one publisher per store at a time.

Positions (identity values) are handed out at insert, not at commit, so a reader that moves
past a lower position still in flight loses it (DESIGN.md §3, trap 1). The relay therefore
reads in (tx_id, position) order and only rows whose transaction id is below the current
snapshot's xmin: every transaction under xmin has finished, so no row can later appear
behind the relay's checkpoint. Appends are the first write of their transaction (the event
store checks), so a stream's later version always carries a higher tx_id (trap 2).

Fencing (DESIGN §9). A relay publishes only while it holds the store's lease
(`relay_leases`: holder, epoch, expires_at — expiry judged by PostgreSQL's clock alone); a
standby takes the lease once it has expired, with the next epoch. The holder renews it while
it works, and the statement that advances the checkpoint renews it too, for the epoch the
holder was given: a 0-row update means the lease was lost, and the holder stops, drops what it
cached and waits to be given the lease again. An advisory lock would not do: its session dies
with a database restart while the process goes on, and a frozen process keeps it for ever.

Each holder publishes through a transactional producer with one `transactional.id` per store:
a new holder's initialisation fences the previous one (its open transaction is aborted and it
can commit nothing more; consumers read committed), and one batch is one transaction. Once
fenced, Kafka holds a prefix of the (tx_id, position) order, so the new holder reads where the
last committed batch ended from the records' headers (`grid-relay-position`) and resumes after
the later of that and the stored checkpoint: a batch committed to Kafka whose checkpoint was
never written (a crash, a lost lease, a database restart in between) is not published again.
Every record also names its holder's epoch (`grid-relay-epoch`).

Every record also carries its CloudEvents 1.0 attributes as binary-mode headers (`ce_id` the
event id, `ce_type` its type and schema version, `ce_dataschema` the schema of the value in
docs/contracts/, ...; `shared/contracts/records.py`), so a CloudEvents client reads it as an
event without knowing the envelope; the value is the envelope, unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from shared.contracts import records
from shared.contracts.published import catalog_of
from shared.eventstore import COLUMNS
from shared.kafka import Cluster, kafka_consumer, relay_producer
from shared.metrics import RELAY_LAG, RELAY_PUBLISHED

log = logging.getLogger(__name__)

Beat = Callable[[], None]
Position = tuple[int, int]  # (tx_id, position): the relay's order

EPOCH_HEADER = "grid-relay-epoch"
POSITION_HEADER = "grid-relay-position"

# `data` stays text: it is embedded in the message as is, never parsed and re-encoded.
RELAY_COLUMNS = COLUMNS.replace(", data", ", data::text AS data")

FETCH_VISIBLE = f"""
SELECT {RELAY_COLUMNS} FROM events
WHERE (tx_id, position) > ($1::xid8, $2::bigint)
  AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY tx_id, position
LIMIT $3
"""

# -- the lease ---------------------------------------------------------------------------

ACQUIRE = """
INSERT INTO relay_leases AS l (relay, holder, epoch, acquired_at, renewed_at, expires_at)
VALUES ($1, $2, 1, now(), now(), now() + make_interval(secs => $3))
ON CONFLICT (relay) DO UPDATE
    SET holder = EXCLUDED.holder, epoch = l.epoch + 1, acquired_at = now(),
        renewed_at = now(), expires_at = EXCLUDED.expires_at
    WHERE l.expires_at <= now() OR l.holder = EXCLUDED.holder
RETURNING epoch, extract(epoch FROM expires_at - now())::float8 AS remaining
"""

RENEW = """
UPDATE relay_leases SET renewed_at = now(), expires_at = now() + make_interval(secs => $4)
WHERE relay = $1 AND holder = $2 AND epoch = $3
RETURNING extract(epoch FROM expires_at - now())::float8 AS remaining
"""

RELEASE = """
UPDATE relay_leases SET expires_at = now()
WHERE relay = $1 AND holder = $2 AND epoch = $3
"""

# The checkpoint advances only for the epoch that holds the lease, and renews it.
ADVANCE = """
WITH lease AS (
    UPDATE relay_leases SET renewed_at = now(), expires_at = now() + make_interval(secs => $7)
    WHERE relay = $1 AND holder = $5 AND epoch = $6
    RETURNING extract(epoch FROM expires_at - now())::float8 AS remaining
)
INSERT INTO relay_checkpoints AS c (relay, tx_id, position, published, updated_at)
SELECT $1, $2, $3, $4, now() FROM lease
ON CONFLICT (relay) DO UPDATE SET tx_id = EXCLUDED.tx_id, position = EXCLUDED.position,
    published = c.published + EXCLUDED.published, updated_at = now()
RETURNING (SELECT remaining FROM lease)
"""


class LeaseLost(Exception):
    """Another holder has the store's lease now (or this one's ran out and was taken)."""


class Lease:
    """The store's publishing lease as held by one relay: holder id, epoch and the time (on
    this process's monotonic clock) by which it surely still holds it."""

    def __init__(self, relay: str, holder: str, seconds: float) -> None:
        self.relay = relay
        self.holder = holder
        self.seconds = seconds
        self.epoch: int | None = None
        self._valid_until = 0.0  # loop time

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _held(self, asked_at: float, remaining: float) -> None:
        # measured from when the statement was sent: never later than PostgreSQL's expiry
        self._valid_until = asked_at + remaining

    @property
    def held(self) -> bool:
        return self.epoch is not None

    def remaining(self) -> float:
        return self._valid_until - self._now() if self.held else 0.0

    async def acquire(self, conn: Any) -> bool:
        asked_at = self._now()
        row = await conn.fetchrow(ACQUIRE, self.relay, self.holder, self.seconds)
        if row is None:
            self.epoch = None
            return False
        self.epoch = int(row["epoch"])
        self._held(asked_at, row["remaining"])
        return True

    async def renew(self, conn: Any) -> None:
        if self.epoch is None:
            raise LeaseLost(self.relay)
        asked_at = self._now()
        remaining = await conn.fetchval(RENEW, self.relay, self.holder, self.epoch, self.seconds)
        if remaining is None:
            self.lost()
        self._held(asked_at, remaining)

    async def renew_if_due(self, conn: Any) -> None:
        """Renew once a third of the lease has passed."""
        if self.remaining() < self.seconds * 2 / 3:
            await self.renew(conn)

    async def ensure(self, conn: Any) -> None:
        """Before committing to Kafka: at least a third of the lease is left, or renew."""
        if self.remaining() < self.seconds / 3:
            await self.renew(conn)

    async def advance(self, conn: Any, last: Position, published: int) -> None:
        """Store `last` as the checkpoint (`published` more events) for this epoch only."""
        if self.epoch is None:
            raise LeaseLost(self.relay)
        asked_at = self._now()
        remaining = await conn.fetchval(
            ADVANCE,
            self.relay,
            *last,
            published,
            self.holder,
            self.epoch,
            self.seconds,
        )
        if remaining is None:
            self.lost()
        self._held(asked_at, remaining)

    def lost(self) -> None:
        epoch, self.epoch = self.epoch, None
        raise LeaseLost(f"{self.relay}: epoch {epoch} of {self.holder} no longer holds the lease")

    async def release(self, conn: Any) -> None:
        if self.epoch is not None:
            epoch, self.epoch = self.epoch, None
            await conn.execute(RELEASE, self.relay, self.holder, epoch)


# -- publishing --------------------------------------------------------------------------


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


Headers = list[tuple[str, bytes]]


def cloud_event_headers(topic: str, event_type: str, schema_version: int) -> Headers:
    """The attributes every record of one type and version shares: computed once, not per
    record. A type no contract publishes (tests) has no `ce_dataschema` to name."""
    service = records.service_of(topic)
    headers = [
        ("ce_specversion", records.SPECVERSION.encode()),
        ("ce_source", records.ce_source(service).encode()),
        ("ce_type", records.ce_type(service, event_type, schema_version).encode()),
        ("content-type", records.CONTENT_TYPE.encode()),
    ]
    catalog = catalog_of(event_type)
    if catalog is not None:
        uri = records.dataschema(catalog.topic, event_type, schema_version)
        headers.append(("ce_dataschema", uri.encode()))
    return headers


def record_headers(row: asyncpg.Record, shared: Headers) -> Headers:
    """A record's own CloudEvents attributes: its event id, time (RFC 3339) and subject."""
    return [
        *shared,
        ("ce_id", str(row["event_id"]).encode()),
        ("ce_time", row["occurred_at"].isoformat().encode()),
        ("ce_subject", row["stream_id"].encode()),
    ]


class OutboxRelay:
    """Moves committed events from one service's store to its topic, a batch at a time.

    Without a lease (tests, benchmarks) it publishes through the producer it is given and
    stores the checkpoint unconditionally; `FencedRelay` gives it a lease and a transactional
    producer, and each batch is then one Kafka transaction.
    """

    fetch_sql = FETCH_VISIBLE

    def __init__(
        self,
        pool: Any,
        producer: AIOKafkaProducer,
        topic: str,
        *,
        name: str = "relay",
        batch_size: int = 1000,
        lease: Lease | None = None,
        start_after: Position | None = None,
    ) -> None:
        self.pool = pool
        self.producer = producer
        self.topic = topic
        self.name = name
        self.batch_size = batch_size
        self.lease = lease
        self._checkpoint: Position | None = start_after  # cached while the lease is held
        self._partitions: list[int] = []
        self._partition_of: dict[str, int] = {}  # stream -> partition, as the producer would
        self._cloud_event: dict[tuple[str, int], Headers] = {}  # (type, version) -> headers
        self._epoch = str(lease.epoch if lease and lease.epoch is not None else 0).encode()
        self._transactional = lease is not None  # a leased relay's producer is transactional

    async def checkpoint(self, conn: Any) -> Position:
        if self._checkpoint is not None:
            return self._checkpoint
        return await stored_checkpoint(conn, self.name)

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
                headers=[
                    ("type", r["type"].encode()),
                    (EPOCH_HEADER, self._epoch),
                    (POSITION_HEADER, f"{r['tx_id']}:{r['position']}".encode()),
                    *record_headers(r, self._shared_headers(r["type"], r["schema_version"])),
                ],
            )
            for r in rows
        ]
        await asyncio.gather(*futures)

    def _shared_headers(self, event_type: str, schema_version: int) -> Headers:
        headers = self._cloud_event.get((event_type, schema_version))
        if headers is None:
            headers = cloud_event_headers(self.topic, event_type, schema_version)
            self._cloud_event[(event_type, schema_version)] = headers
        return headers

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
        if self.lease is not None:
            await self.lease.advance(conn, (last["tx_id"], last["position"]), len(rows))
        else:
            await conn.execute(
                """
                INSERT INTO relay_checkpoints AS c (relay, tx_id, position, published, updated_at)
                VALUES ($1, $2, $3, $4, now())
                ON CONFLICT (relay) DO UPDATE SET tx_id = EXCLUDED.tx_id,
                    position = EXCLUDED.position, published = c.published + EXCLUDED.published,
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
            if self.lease is not None:
                await self.lease.renew_if_due(conn)
            rows = await self.fetch(conn)
            if not rows:
                return 0
            if self._transactional:
                await self.producer.begin_transaction()
                try:
                    await self.publish(rows)
                    if self.lease is not None:
                        await self.lease.ensure(conn)  # never commit on a lease about to lapse
                except BaseException:
                    await _abort_quietly(self.producer)
                    raise
                await self.producer.commit_transaction()
            else:
                await self.publish(rows)
            try:
                await self.record(conn, rows)
            except BaseException:
                self._checkpoint = None  # what Kafka holds decides at the next takeover
                raise
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
        """Committed events after the checkpoint (tests, benchmarks; `GET /v1/lag` asks the
        database the same for any replica)."""
        async with self.pool.acquire() as conn:
            tx, pos = await self.checkpoint(conn)
            n = await conn.fetchval(
                "SELECT count(*) FROM events WHERE (tx_id, position) > ($1::xid8, $2)", tx, pos
            )
        return int(n)


async def _abort_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await producer.abort_transaction()
    except Exception as exc:  # noqa: BLE001 - the producer is dropped anyway
        log.info("could not abort the relay's Kafka transaction: %s", exc)


async def stored_checkpoint(conn: Any, relay: str) -> Position:
    row = await conn.fetchrow(
        "SELECT tx_id AS tx, position FROM relay_checkpoints WHERE relay = $1", relay
    )
    return (int(row["tx"]), int(row["position"])) if row else (0, 0)


# -- where Kafka says the last committed batch ended -------------------------------------


def _position_of(headers: Any) -> Position | None:
    for key, value in headers or ():
        if key == POSITION_HEADER:
            tx, _, pos = value.decode().partition(":")
            return (int(tx), int(pos))
    return None


async def published_through(
    bootstrap: Cluster,
    topic: str,
    partitions: Sequence[int],
    *,
    window: int = 64,
    client_id: str | None = None,
) -> Position | None:
    """The highest relay position among the committed records of `topic` (read committed,
    so only what some holder committed), or None when no record names one.

    Called by a new holder after its producer has fenced the previous one: nothing can be
    committed behind its back any more, and since each batch is one transaction over a
    prefix of the relay's order, the last committed record of each partition suffices.
    """
    kafka = kafka_consumer(
        bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        client_id=client_id or "grid-relay-takeover",
        request_timeout_ms=15000,
    )
    await kafka.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return None
        kafka.assign(tps)
        ends = await kafka.end_offsets(tps)
        best: Position | None = None
        for tp in tps:
            found = await _last_position(kafka, tp, ends[tp], window)
            if found is not None and (best is None or found > best):
                best = found
        return best
    finally:
        await kafka.stop()


async def _last_position(
    kafka: AIOKafkaConsumer, tp: TopicPartition, end: int, window: int, timeout: float = 15.0
) -> Position | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    start = end
    while start > 0:
        start = max(0, start - window)
        kafka.seek(tp, start)
        last: Position | None = None
        while await kafka.position(tp) < end:
            if loop.time() > deadline:
                raise TimeoutError(f"could not read the tail of {tp} in {timeout}s")
            batch = await kafka.getmany(tp, timeout_ms=500, max_records=window * 4)
            for record in batch.get(tp, []):
                last = _position_of(record.headers) or last
        if last is not None:
            return last
        window *= 4  # only aborted records and markers in the window: look further back
    return None


# -- the relay loop ----------------------------------------------------------------------


@dataclass(frozen=True)
class RelayConfig:
    """Where a store's relay publishes and how it holds its lease."""

    bootstrap: Cluster
    topic: str
    name: str  # the store's relay: `<schema>.relay`
    replica: str  # this process (`host:pid`)
    lease_seconds: float = 10.0
    batch_size: int = 1000
    poll_interval: float = 0.05
    standby_poll: float = 1.0


def transactional_producer(config: RelayConfig) -> AIOKafkaProducer:
    return relay_producer(
        config.bootstrap,
        transactional_id=f"grid-relay:{config.name}",
        client_id=f"{config.name}@{config.replica}",
    )


class FencedRelay:
    """Publishes while it holds the store's lease; a standby otherwise. Supervised: any
    error ends `run()` (the supervisor starts it again), and a lost lease is not an error."""

    def __init__(
        self,
        pool: Any,
        config: RelayConfig,
        producer_factory: Callable[[RelayConfig], AIOKafkaProducer] = transactional_producer,
    ) -> None:
        self.pool = pool
        self.config = config
        self.producer_factory = producer_factory
        # unique per process and relay, so that two processes given the same replica id
        # still cannot hold one lease together
        self.lease = Lease(
            config.name, f"{config.replica}#{secrets.token_hex(3)}", config.lease_seconds
        )

    async def run(self, stop: asyncio.Event, beat: Beat | None = None) -> None:
        beat = beat or (lambda: None)
        while not stop.is_set():
            async with self.pool.acquire() as conn:
                acquired = await self.lease.acquire(conn)
            beat()
            if not acquired:
                await _wait(stop, self.config.standby_poll)
                continue
            log.info("relay %s: %s holds the lease, epoch %s",
                     self.config.name, self.lease.holder, self.lease.epoch)  # fmt: skip
            try:
                await self._publish(stop, beat)
            except LeaseLost as exc:
                log.warning("relay %s lost its lease, standing by: %s", self.config.name, exc)
            finally:
                await self._release()

    async def _publish(self, stop: asyncio.Event, beat: Beat) -> None:
        producer = self.producer_factory(self.config)
        await producer.start()
        try:
            # fence: the previous holder's transaction is aborted, it can commit no more
            await producer.begin_transaction()
            await _abort_quietly(producer)
            relay = OutboxRelay(
                self.pool,
                producer,
                self.config.topic,
                name=self.config.name,
                batch_size=self.config.batch_size,
                lease=self.lease,
                start_after=await self._resume_after(
                    await producer.partitions_for(self.config.topic)
                ),
            )
            while not stop.is_set():
                n = await relay.step()
                beat()
                if n == 0:
                    await _wait(stop, self.config.poll_interval)
        finally:
            await _stop_quietly(producer)

    async def _resume_after(self, partitions: Sequence[int]) -> Position:
        """After the later of the stored checkpoint and what Kafka already holds; a batch
        Kafka holds beyond the checkpoint is recorded as published (once)."""
        in_kafka = await published_through(
            self.config.bootstrap,
            self.config.topic,
            partitions,
            client_id=f"{self.config.name}-takeover@{self.config.replica}",
        )
        async with self.pool.acquire() as conn:
            stored = await stored_checkpoint(conn, self.config.name)
            if in_kafka is None or in_kafka <= stored:
                return stored
            missed = await conn.fetchval(
                "SELECT count(*) FROM events WHERE (tx_id, position) > ($1::xid8, $2::bigint)"
                " AND (tx_id, position) <= ($3::xid8, $4::bigint)",
                *stored,
                *in_kafka,
            )
            await self.lease.advance(conn, in_kafka, int(missed))
        log.warning(
            "relay %s: Kafka already held %s events past the stored checkpoint; not publishing"
            " them again",
            self.config.name,
            missed,
        )
        return in_kafka

    async def _release(self) -> None:
        try:
            async with self.pool.acquire() as conn:
                await self.lease.release(conn)
        except Exception as exc:  # noqa: BLE001 - the lease then simply expires
            self.lease.epoch = None
            log.info("relay %s could not release its lease: %s", self.config.name, exc)


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 10)
    except Exception as exc:  # noqa: BLE001 - a fenced or disconnected producer
        log.info("relay producer did not stop cleanly: %s", exc)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
