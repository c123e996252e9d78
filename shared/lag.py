"""How far a service is behind: its relay's backlog and its consumers' lag, from shared state.

`GET /v1/lag` (shared/ops.py) on every service, answered by any replica, never from one
process's memory:

* **Relay** (a service that publishes): the events of its store after the relay's checkpoint
  (`relay_checkpoints`), i.e. not yet on Kafka, how old the oldest of them is, and who holds
  the relay's lease (`relay_leases`, expiry judged by PostgreSQL's clock). One indexed range
  over `events (tx_id, position)`; Kafka is not asked.
* **Consumers**: per consumer, topic and partition, the offset stored in PostgreSQL with the
  read model (`consumer_offsets`: what is applied) against the partition's high watermark in
  Kafka (what exists), plus the consumer's open dead letters and held streams. Kafka is asked
  within a bounded time; when it cannot answer, the lag is `null` with status `unknown`, never
  0, and the rest of the report still answers. The relay publishes in Kafka transactions,
  whose commit markers take offsets that hold no record: a consumer that applied everything
  stores an offset short of the high watermark. The records in between are therefore counted
  (`DataRecords`: a few thousand per partition at most, remembered), so that caught up is 0.

`LagWatch.measure()` builds the report and sets the Prometheus gauges; `lag_parts()` adds it to
a service's lifespan with a supervised loop that refreshes the gauges every
`settings.lag_refresh_seconds`, so that /metrics shows them between calls.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from pydantic import BaseModel, Field, computed_field

from shared.http import Part, background
from shared.kafka import Cluster, kafka_admin, kafka_consumer
from shared.metrics import (
    COMMITTED,
    CONSUMER_HELD_STREAMS,
    CONSUMER_LAG_UNKNOWN,
    DEAD_LETTERED,
    HIGH_WATERMARK,
    OFFSET_LAG,
    RELAY_BACKLOG,
    RELAY_OLDEST_UNPUBLISHED,
)
from shared.runtime import consumer_name
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

KAFKA_TIMEOUT = 3.0  # seconds a report waits for Kafka's high watermarks

Consumes = Sequence[tuple[str, Sequence[str], Any]]  # (name, contract topics, handler)
Ends = dict[tuple[str, int], int]  # (topic, partition) -> high watermark


@dataclass(frozen=True)
class Watched:
    """A consumer to watch: its name (key of its stored offsets) and its topics."""

    name: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class WatchedRelay:
    """A store's relay: its name (key of its checkpoint and lease) and its topic."""

    name: str
    topic: str


# -- the report ------------------------------------------------------------------------------


class LagStatus(StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"


class RelayLease(BaseModel):
    holder: str = Field(description="the replica that holds (or last held) the relay's lease")
    epoch: int = Field(description="fencing token: grows by one with every new holder")
    renewed_at: datetime = Field(description="when the holder last renewed the lease")
    expires_at: datetime
    expired: bool = Field(
        description="the lease has run out by PostgreSQL's clock: nobody publishes until a "
        "replica takes it over"
    )


class RelayBacklog(BaseModel):
    relay: str = Field(description="the relay's name (`<schema>.relay`)")
    topic: str = Field(description="the topic it publishes to")
    backlog: int = Field(description="events of the store not published yet (after the checkpoint)")
    oldest_unpublished_at: datetime | None = Field(
        None, description="`recorded_at` of the oldest of them; null when there are none"
    )
    oldest_unpublished_seconds: float | None = Field(
        None, description="how long the oldest of them has waited (PostgreSQL's clock)"
    )
    published: int = Field(description="events published since the store began")
    checkpoint_updated_at: datetime | None = Field(
        None, description="when the checkpoint last advanced; null before the first batch"
    )
    lease: RelayLease | None = Field(None, description="null: no relay ever took the lease")


class PartitionLag(BaseModel):
    topic: str
    partition: int
    committed: int = Field(description="next offset to apply, stored with the read model (0: none)")
    high_watermark: int | None = Field(
        description="offset after the partition's last record in Kafka; null: Kafka did not answer"
    )
    lag: int | None = Field(
        description="records not applied yet (commit markers are no records); null: unknown"
    )
    dead_letters: int = Field(description="open dead letters of this partition")


class ConsumerLag(BaseModel):
    consumer: str = Field(description="consumer group and key of the stored offsets")
    topics: list[str]
    status: LagStatus = Field(description="`unknown` when Kafka could not be asked")
    lag: int | None = Field(description="records not applied yet, all partitions; null: unknown")
    dead_letters: int = Field(description="open dead letters (parked, not resolved)")
    held_streams: int = Field(
        description="streams whose later versions wait behind a dead letter until it is re-driven"
    )
    partitions: list[PartitionLag]

    @computed_field(  # type: ignore[prop-decorator]
        description="every record on its topics when measured is applied: lag known and 0, "
        "no open dead letter (a parked record is not applied)"
    )
    @property
    def caught_up(self) -> bool:
        return self.status is LagStatus.OK and self.lag == 0 and self.dead_letters == 0


class LagReport(BaseModel):
    service: str
    measured_at: datetime
    status: LagStatus = Field(description="consumer lag: `unknown` when Kafka could not be asked")
    relay: RelayBacklog | None = Field(description="null for a service that publishes nothing")
    lag: int | None = Field(description="records not applied yet, all consumers; null: unknown")
    dead_letters: int = Field(description="open dead letters, all consumers")
    held_streams: int = Field(description="held streams, all consumers")
    kafka_error: str | None = Field(None, description="why Kafka could not be asked")
    consumers: list[ConsumerLag]

    @computed_field(  # type: ignore[prop-decorator]
        description="when measured, everything this service recorded was on Kafka (relay "
        "backlog 0) and every consumer had applied what was on its topics (`caught_up`)"
    )
    @property
    def caught_up(self) -> bool:
        published = self.relay is None or self.relay.backlog == 0
        return published and all(c.caught_up for c in self.consumers)


# -- Kafka -----------------------------------------------------------------------------------


class KafkaUnavailable(Exception):
    """Kafka did not answer within the time given."""


async def partitions_of(bootstrap: Cluster, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of the existing `topics`, from the cluster's metadata."""
    admin = kafka_admin(bootstrap, request_timeout_ms=10000)
    try:
        await admin.start()
        described = await admin.describe_topics(sorted(set(topics)))
    finally:
        await admin.close()
    return _partitions(described)


def _partitions(described: Any) -> list[TopicPartition]:
    return sorted(
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if t["error_code"] == 0
        for p in t["partitions"]
    )


class Watermarks:
    """High watermarks from Kafka through long-lived clients without a group.

    `of()` gives up after `timeout` seconds, and any failure drops the clients, so that the
    next call connects afresh (a broker that was down and is back, another address).
    """

    def __init__(self, bootstrap: Cluster, *, timeout: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self._kafka: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        request_ms = max(1000, int(self.timeout * 1000))
        if self._admin is None:
            admin = kafka_admin(self.bootstrap, request_timeout_ms=request_ms)
            self._admin = admin
            await admin.start()
        if self._kafka is None:
            kafka = kafka_consumer(
                self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
                request_timeout_ms=request_ms,
            )
            self._kafka = kafka
            await kafka.start()
        return self._admin, self._kafka

    async def _ask(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        admin, kafka = await self._clients()
        partitions = _partitions(await admin.describe_topics(sorted(set(topics))))
        if not partitions:
            return {}
        ends = await kafka.end_offsets(partitions)
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def of(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        """(topic, partition) -> high watermark of every partition of the existing `topics`
        (KafkaUnavailable if Kafka does not answer in time)."""
        async with self._lock:
            try:
                return await asyncio.wait_for(self._ask(topics), self.timeout)
            except Exception as exc:
                await self._drop()
                if isinstance(exc, TimeoutError):
                    raise KafkaUnavailable(f"no answer within {self.timeout:g} s") from exc
                raise KafkaUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def _drop(self) -> None:
        kafka, admin, self._kafka, self._admin = self._kafka, self._admin, None, None
        if kafka is not None:
            with suppress(Exception):
                await asyncio.wait_for(kafka.stop(), 5)
        if admin is not None:
            with suppress(Exception):
                await asyncio.wait_for(admin.close(), 5)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


Span = tuple[int, int]  # [start, end) of a partition


class DataRecords:
    """Which offsets of a partition's span hold records, as a read-committed consumer sees
    them: a transactional producer's commit marker takes an offset of its own, so the high
    watermark after a batch lies one past its last record, and a consumer that applied
    everything stores an offset one short of it.

    Spans are read with a group-less consumer, at most `cap` records each (else the span is
    not counted), and remembered: below the high watermark nothing changes any more, so a
    later span over the same partition reads only what was appended since.
    """

    def __init__(self, bootstrap: Cluster, *, timeout: float = 3.0, cap: int = 2000) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self.cap = cap
        self._kafka: AIOKafkaConsumer | None = None
        self._known: dict[tuple[str, int], tuple[Span, list[int]]] = {}
        self._lock = asyncio.Lock()

    async def offsets(self, spans: dict[tuple[str, int], Span]) -> dict[tuple[str, int], list[int]]:
        """The offsets holding records in each span, for the spans counted in time."""
        async with self._lock:
            counted: dict[tuple[str, int], list[int]] = {}
            to_read: dict[tuple[str, int], Span] = {}
            for key, (start, end) in spans.items():
                known = self._known.get(key)
                if known is not None and known[0][0] <= start and known[0][1] <= end:
                    if known[0][1] == end:
                        counted[key] = [o for o in known[1] if o >= start]
                        continue
                    to_read[key] = (known[0][1], end)  # only the tail appended since
                else:
                    to_read[key] = (start, end)
            if to_read:
                try:
                    read = await asyncio.wait_for(self._read(to_read), self.timeout)
                except Exception as exc:  # noqa: BLE001 - uncounted spans stay upper bounds
                    log.info("lag: could not count records: %s", exc)
                    await self._drop()
                    read = {}
                for key, found in read.items():
                    start, end = spans[key]
                    known = self._known.get(key)
                    head = known[1] if known is not None and to_read[key][0] > start else []
                    offsets = [o for o in head if o >= start] + found
                    counted[key] = offsets
                    self._known[key] = ((start, end), offsets)
                for key in to_read.keys() - read.keys():
                    self._known.pop(key, None)
            if len(self._known) > 10_000:
                self._known.clear()
            return counted

    async def _read(self, spans: dict[tuple[str, int], Span]) -> dict[tuple[str, int], list[int]]:
        kafka = await self._client()
        partitions = {TopicPartition(*key): span for key, span in spans.items()}
        kafka.assign(list(partitions))
        try:
            for tp, (start, _) in partitions.items():
                kafka.seek(tp, start)
            found: dict[TopicPartition, list[int]] = {tp: [] for tp in partitions}
            done: dict[tuple[str, int], list[int]] = {}
            pending = set(partitions)
            while pending:
                got = await kafka.getmany(*pending, timeout_ms=100, max_records=self.cap)
                for tp, records in got.items():
                    end = partitions[tp][1]
                    found[tp].extend(r.offset for r in records if r.offset < end)
                for tp in list(pending):
                    if len(found[tp]) > self.cap:
                        pending.discard(tp)  # too many to count: not counted
                    elif await kafka.position(tp) >= partitions[tp][1]:
                        pending.discard(tp)
                        done[(tp.topic, tp.partition)] = found[tp]
                    else:
                        continue
                    kafka.pause(tp)
            return done
        finally:
            kafka.unsubscribe()

    async def _client(self) -> AIOKafkaConsumer:
        if self._kafka is None:
            kafka = kafka_consumer(
                self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
                request_timeout_ms=max(1000, int(self.timeout * 1000)),
                fetch_max_wait_ms=100,
                max_partition_fetch_bytes=256 * 1024,
                fetch_max_bytes=4 * 1024 * 1024,
            )
            self._kafka = kafka
            await kafka.start()
        return self._kafka

    async def _drop(self) -> None:
        kafka, self._kafka = self._kafka, None
        if kafka is not None:
            with suppress(Exception):
                await asyncio.wait_for(kafka.stop(), 5)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


# -- PostgreSQL ------------------------------------------------------------------------------

# One range over events (tx_id, position) after the checkpoint, beside the checkpoint and the
# lease rows. `published` and the checkpoint are 0 before the relay's first batch.
RELAY_BACKLOG_SQL = """
SELECT b.backlog, b.oldest, extract(epoch FROM now() - b.oldest)::float8 AS oldest_seconds,
       coalesce(c.published, 0) AS published, c.updated_at AS checkpoint_updated_at,
       l.holder, l.epoch, l.renewed_at, l.expires_at, l.expires_at <= now() AS expired
FROM (SELECT 1) AS one
LEFT JOIN relay_checkpoints AS c ON c.relay = $1
LEFT JOIN relay_leases AS l ON l.relay = $1
CROSS JOIN LATERAL (
    SELECT count(*) AS backlog, min(e.recorded_at) AS oldest FROM events AS e
    WHERE (e.tx_id, e.position) > (coalesce(c.tx_id, '0'::xid8), coalesce(c.position, 0))
) AS b
"""


async def relay_backlog(conn: Any, relay: WatchedRelay) -> RelayBacklog:
    row = await conn.fetchrow(RELAY_BACKLOG_SQL, relay.name)
    lease = None
    if row["holder"] is not None:
        lease = RelayLease(
            holder=row["holder"],
            epoch=row["epoch"],
            renewed_at=row["renewed_at"],
            expires_at=row["expires_at"],
            expired=row["expired"],
        )
    oldest_seconds = row["oldest_seconds"]
    return RelayBacklog(
        relay=relay.name,
        topic=relay.topic,
        backlog=row["backlog"],
        oldest_unpublished_at=row["oldest"],
        oldest_unpublished_seconds=None if oldest_seconds is None else max(0.0, oldest_seconds),
        published=row["published"],
        checkpoint_updated_at=row["checkpoint_updated_at"],
        lease=lease,
    )


@dataclass(frozen=True)
class _Stored:
    offsets: dict[tuple[str, str, int], int]  # (consumer, topic, partition) -> next offset
    dead: dict[tuple[str, str, int], int]  # open dead letters
    held: dict[str, int]  # consumer -> held streams


async def _stored(conn: Any, names: list[str]) -> _Stored:
    offsets = await conn.fetch(
        "SELECT consumer, topic, partition, next_offset FROM consumer_offsets"
        " WHERE consumer = ANY($1::text[])",
        names,
    )
    dead = await conn.fetch(
        "SELECT consumer, topic, partition, count(*) AS n FROM dead_letters"
        " WHERE consumer = ANY($1::text[]) AND resolved_at IS NULL GROUP BY 1, 2, 3",
        names,
    )
    held = await conn.fetch(
        "SELECT consumer, count(*) AS n FROM consumer_streams"
        " WHERE consumer = ANY($1::text[]) AND held_from IS NOT NULL GROUP BY 1",
        names,
    )
    return _Stored(
        offsets={(r["consumer"], r["topic"], r["partition"]): r["next_offset"] for r in offsets},
        dead={(r["consumer"], r["topic"], r["partition"]): r["n"] for r in dead},
        held={r["consumer"]: r["n"] for r in held},
    )


# -- the watch -------------------------------------------------------------------------------


class LagWatch:
    """Measures a service's relay backlog and consumer lag; sets the gauges each time."""

    def __init__(
        self,
        pool: Any,
        watermarks: Watermarks,
        consumers: Sequence[Watched],
        *,
        service: str = "",
        relay: WatchedRelay | None = None,
        records: DataRecords | None = None,
    ) -> None:
        self.pool = pool
        self.watermarks = watermarks
        self.records = records
        self.consumers = list(consumers)
        self.service = service
        self.relay = relay

    async def measure(self) -> LagReport:
        names = [c.name for c in self.consumers]
        topics = sorted({t for c in self.consumers for t in c.topics})
        # Kafka and PostgreSQL at once: a broker that does not answer costs its timeout only
        kafka = asyncio.create_task(self._ends(topics))
        try:
            async with self.pool.acquire() as conn:
                relay = await relay_backlog(conn, self.relay) if self.relay else None
                stored = await _stored(conn, names)
        except BaseException:
            kafka.cancel()
            with suppress(BaseException):
                await kafka
            raise
        ends, error = await kafka
        counted = await self._count(ends, stored) if ends else {}
        consumers = [self._consumer(c, ends, stored, counted) for c in self.consumers]
        known = ends is not None
        report = LagReport(
            service=self.service,
            measured_at=datetime.now(UTC),
            status=LagStatus.OK if known else LagStatus.UNKNOWN,
            relay=relay,
            lag=sum(c.lag or 0 for c in consumers) if known else None,
            dead_letters=sum(c.dead_letters for c in consumers),
            held_streams=sum(c.held_streams for c in consumers),
            kafka_error=error,
            consumers=consumers,
        )
        self._publish(report)
        return report

    async def _ends(self, topics: list[str]) -> tuple[Ends | None, str | None]:
        if not topics:
            return {}, None
        try:
            return await self.watermarks.of(topics), None
        except KafkaUnavailable as exc:
            log.info("lag: Kafka did not answer: %s", exc)
            return None, str(exc)

    async def _count(self, ends: Ends, stored: _Stored) -> dict[tuple[str, int], list[int]]:
        """The offsets holding records between the lowest stored offset behind a high
        watermark and that watermark, per partition (where they could be counted)."""
        if self.records is None:
            return {}
        spans: dict[tuple[str, int], Span] = {}
        for c in self.consumers:
            for key, end in ends.items():
                if key[0] not in c.topics:
                    continue
                committed = stored.offsets.get((c.name, *key), 0)
                if committed < end:
                    start = min(committed, spans.get(key, (committed, end))[0])
                    spans[key] = (start, end)
        return await self.records.offsets(spans) if spans else {}

    @staticmethod
    def _consumer(
        consumer: Watched,
        ends: Ends | None,
        stored: _Stored,
        counted: dict[tuple[str, int], list[int]],
    ) -> ConsumerLag:
        mine = {
            (topic, partition): offset
            for (name, topic, partition), offset in stored.offsets.items()
            if name == consumer.name and topic in consumer.topics
        }
        if ends is None:  # what PostgreSQL knows: the partitions with stored offsets
            keys = sorted(mine)
        else:
            keys = sorted(k for k in ends if k[0] in consumer.topics)
        partitions = []
        for topic, partition in keys:
            committed = mine.get((topic, partition), 0)
            end = None if ends is None else ends[(topic, partition)]
            lag = None if end is None else max(0, end - committed)
            records = counted.get((topic, partition))
            if lag and records is not None:  # not the offsets that hold commit markers
                lag = sum(1 for offset in records if offset >= committed)
            partitions.append(
                PartitionLag(
                    topic=topic,
                    partition=partition,
                    committed=committed,
                    high_watermark=end,
                    lag=lag,
                    dead_letters=stored.dead.get((consumer.name, topic, partition), 0),
                )
            )
        dead = sum(n for (name, _, _), n in stored.dead.items() if name == consumer.name)
        return ConsumerLag(
            consumer=consumer.name,
            topics=list(consumer.topics),
            status=LagStatus.UNKNOWN if ends is None else LagStatus.OK,
            lag=None if ends is None else sum(p.lag or 0 for p in partitions),
            dead_letters=dead,
            held_streams=stored.held.get(consumer.name, 0),
            partitions=partitions,
        )

    @staticmethod
    def _publish(report: LagReport) -> None:
        if report.relay is not None:
            relay = report.relay
            RELAY_BACKLOG.labels(relay.relay).set(relay.backlog)
            RELAY_OLDEST_UNPUBLISHED.labels(relay.relay).set(relay.oldest_unpublished_seconds or 0)
        for c in report.consumers:
            DEAD_LETTERED.labels(c.consumer).set(c.dead_letters)
            CONSUMER_HELD_STREAMS.labels(c.consumer).set(c.held_streams)
            CONSUMER_LAG_UNKNOWN.labels(c.consumer).set(c.status is LagStatus.UNKNOWN)
            for p in c.partitions:
                labels = (c.consumer, p.topic, str(p.partition))
                COMMITTED.labels(*labels).set(p.committed)
                # unknown is NaN, never 0: an alert on the lag must not read "caught up"
                OFFSET_LAG.labels(*labels).set(math.nan if p.lag is None else p.lag)
                HIGH_WATERMARK.labels(p.topic, str(p.partition)).set(
                    math.nan if p.high_watermark is None else p.high_watermark
                )


def watched_consumers(settings: ServiceSettings, consumes: Consumes) -> list[Watched]:
    """Every consumer of `consumes` by its deployed name and topics (as shared.runtime runs
    them)."""
    return [
        Watched(consumer_name(settings, name), tuple(settings.topic(t) for t in topics))
        for name, topics, _ in consumes
    ]


def lag_parts(
    settings: ServiceSettings,
    *,
    publishes: str | None,
    consumes: Consumes = (),
    kafka_timeout: float = KAFKA_TIMEOUT,
) -> list[Part]:
    """Lifespan parts (after the pool's) behind `GET /v1/lag`: `app.state.lag_watch`, and a
    supervised loop refreshing the gauges every `settings.lag_refresh_seconds`.

    `publishes` and the topics of `consumes` are contract topic names, as for
    `shared.runtime.service_parts`; every consumer is watched whether or not this process
    runs it (another replica may)."""
    relay = (
        WatchedRelay(f"{settings.schema_name}.relay", settings.topic(publishes))
        if publishes
        else None
    )
    consumers = watched_consumers(settings, consumes)

    @asynccontextmanager
    async def watch(app: FastAPI) -> AsyncIterator[None]:
        watermarks = Watermarks(settings.kafka, timeout=kafka_timeout)
        records = DataRecords(settings.kafka, timeout=kafka_timeout)
        app.state.lag_watch = LagWatch(
            app.state.pool,
            watermarks,
            consumers,
            service=settings.service,
            relay=relay,
            records=records,
        )
        try:
            yield
        finally:
            await records.close()
            await watermarks.close()

    async def refresh(
        app: FastAPI, stop: asyncio.Event, beat: Callable[[], None] = lambda: None
    ) -> None:
        # a PostgreSQL failure propagates: the supervisor restarts the loop with backoff.
        # Kafka not answering is a measurement (lag unknown), not a failure of the loop.
        lag_watch: LagWatch = app.state.lag_watch
        while not stop.is_set():
            await lag_watch.measure()
            beat()
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.lag_refresh_seconds)

    return [watch, background(f"{settings.service}-lag", refresh)]
