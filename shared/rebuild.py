"""Rebuild every read model of a schema from offset 0 of its topics, then swap it in.

1. A fresh schema `<schema>_rb_<id>` is migrated with the service's migrations.
2. One `CatchUpConsumer` per read model, under the live consumer's name but without a Kafka
   group (every partition assigned, offsets from the fresh schema, i.e. from 0), applies the
   topics with the consumer base's usual guarantees. Rounds are repeated until a round finds
   little new; queries and the live consumers keep using the live schema meanwhile.
3. The schema's gate (`shared.consumer.gate_key`) is taken exclusively: it waits for live
   batches in flight and holds back new ones (in every process of the service). The rebuild
   catches up to the high watermarks read under the gate, then, in ONE transaction, renames
   the live schema to `<schema>_old_<id>` and the fresh one to `<schema>`, and lets the gate
   go. Live consumers then begin their next transaction on the rebuilt tables, whose stored
   offsets and per-stream versions are the rebuild's: nothing is lost or applied twice.
4. The old schema is dropped (after queries still reading it finish).

Connections keep their `search_path` by name, so they see the rebuilt tables from their next
transaction on: Postgres re-plans cached statements when the schemas a search path names
change. (A transaction that had already read a table keeps reading the old one; that is why
the live consumers take the gate *before* they begin.)

One rebuild per schema at a time, across processes (an advisory lock held by the rebuild).

Each rebuild's status is a row of the schema's `rebuild_runs`, written at every phase change
and every few seconds while it catches up, so that any replica answers for it. The swap's
transaction copies the rows of the schema it replaces into the fresh one, so the history
survives it. A row that says the rebuild runs while nobody holds the rebuild lock is a
rebuild whose process ended: the first reader marks it failed (`stored_status`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel, Field

from shared.consumer import EventConsumer, Handler, gate_key
from shared.db import advisory_key, check_schema_name, create_pool
from shared.envelope import Envelope
from shared.kafka import Cluster, kafka_consumer
from shared.lag import Watermarks, partitions_of

log = logging.getLogger(__name__)

Migrate = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class ReadModel:
    """One consumer to rebuild: the live consumer's name, its topics, its handler."""

    name: str
    topics: tuple[str, ...]
    handler: Handler


class Phase(StrEnum):
    PENDING = "pending"
    MIGRATING = "migrating"
    CATCHING_UP = "catching_up"
    SWAPPING = "swapping"
    DROPPING_OLD = "dropping_old"
    DONE = "done"
    FAILED = "failed"


class RebuildStatus(BaseModel):
    id: str
    schema_name: str = Field(serialization_alias="schema")
    phase: Phase = Phase.PENDING
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    records: dict[str, int] = Field(default_factory=dict, description="records read per read model")
    rounds: int = 0
    paused_seconds: float | None = Field(
        None, description="how long live consumers waited at the gate for the swap"
    )
    seconds: dict[str, float] = Field(
        default_factory=dict, description="time spent per phase (migrating, catching_up, ...)"
    )
    error: str | None = None


FINISHED = frozenset({Phase.DONE, Phase.FAILED})


class RebuildRunning(Exception):
    """Another rebuild of the schema holds the lock."""


def _running_key(schema: str) -> int:
    return advisory_key(f"grid-rebuild:{schema}")


# -- the status where every replica reads it ---------------------------------------------------

# `status` goes as text: the service's pool and the rebuild's own connections differ in their
# JSON codecs. A row's `started_at` is the rebuild's.
SAVE_STATUS = """
INSERT INTO {schema}.rebuild_runs AS r (id, status, started_at, updated_at)
VALUES ($1, $2::text::jsonb, $3, now())
ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, updated_at = now()
"""

# in the swap's transaction, once the fresh schema bears the live name: the history comes along
CARRY_RUNS = """
INSERT INTO {schema}.rebuild_runs (id, status, started_at, updated_at)
SELECT id, status, started_at, updated_at FROM {old}.rebuild_runs
ON CONFLICT (id) DO NOTHING
"""

# ... and so does the audit of dead-letter re-drives (who asked, why, with what outcome); the
# dead letters they name were those of the tables the rebuild replaced
CARRY_RETRIES = """
INSERT INTO {schema}.dead_letter_retries
    (dead_letter_id, consumer, requested_by, requested_at, reason, finished_at, outcome)
SELECT dead_letter_id, consumer, requested_by, requested_at, reason, finished_at, outcome
FROM {old}.dead_letter_retries ORDER BY id
"""

# pg_advisory_lock(bigint) shows in pg_locks as (classid, objid) = (high, low) 32 bits, objsubid 1
LOCK_HELD = """
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND classid = $1::bigint::oid AND objid = $2::bigint::oid
)
"""

ENDED_UNFINISHED = "the process running the rebuild ended before it finished"


async def _lock_held(conn: Any, key: int) -> bool:
    """Whether some session holds the advisory lock `key` (without taking it: a reader that
    took it for a moment would turn a rebuild started meanwhile away)."""
    held: bool = await conn.fetchval(LOCK_HELD, (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)
    return held


async def stored_status(conn: Any, rebuild_id: str) -> RebuildStatus | None:
    """A rebuild's status from `rebuild_runs` of the connection's schema (`latest`: the one
    started last). One that says it runs while nobody holds its schema's rebuild lock is
    marked failed: its process ended."""
    for _ in range(3):
        if rebuild_id == "latest":
            row = await conn.fetchrow(
                "SELECT status::text AS status FROM rebuild_runs"
                " ORDER BY started_at DESC, updated_at DESC LIMIT 1"
            )
        else:
            row = await conn.fetchrow(
                "SELECT status::text AS status FROM rebuild_runs WHERE id = $1", rebuild_id
            )
        if row is None:
            return None
        status = RebuildStatus.model_validate_json(row["status"])
        if status.phase in FINISHED or await _lock_held(conn, _running_key(status.schema_name)):
            return status
        running = status.phase
        status.phase, status.error = Phase.FAILED, ENDED_UNFINISHED
        status.finished_at = datetime.now(UTC)
        marked = await conn.fetchval(
            "UPDATE rebuild_runs SET status = $2::text::jsonb, updated_at = now()"
            " WHERE id = $1 AND status->>'phase' = $3 RETURNING true",
            status.id,
            status.model_dump_json(),
            running.value,
        )
        if marked:
            log.warning("rebuild %s of %s: %s", status.id, status.schema_name, ENDED_UNFINISHED)
            return status
        # it moved on meanwhile (it finished and let the lock go): read it again
    return status


# The catch-up allocates millions of short-lived objects (records, envelopes, rows) while
# holding many decoded envelopes: with the default thresholds (700, 10, 10) the collector
# ran every few hundred of them and took about half the rebuild's Python time.
REBUILD_GC_THRESHOLDS = (100_000, 50, 10)


@contextmanager
def fewer_collections(thresholds: tuple[int, int, int] = REBUILD_GC_THRESHOLDS) -> Iterator[None]:
    """Run the cyclic garbage collector less often while a rebuild runs (process-wide;
    overlapping rebuilds keep the raised thresholds until the last one ends, then the
    thresholds from before the first come back)."""
    if not _before:
        _before.append(gc.get_threshold())
        gc.set_threshold(*thresholds)
    _raised.append(thresholds)
    try:
        yield
    finally:
        _raised.pop()
        if not _raised:
            gc.set_threshold(*_before.pop())


_before: list[tuple[int, int, int]] = []  # the thresholds to restore, while raised
_raised: list[tuple[int, int, int]] = []  # one entry per rebuild running


class DecodedOnce:
    """Envelopes decoded by the first of the rebuild's consumers that reads a record and kept
    until every consumer of its topic has taken it (at most `limit` at a time)."""

    def __init__(self, readers: dict[str, int], limit: int = 200_000) -> None:
        self.readers = readers
        self.limit = limit
        self.entries: dict[tuple[str, int, int], list[Any]] = {}

    def envelope_of(self, record: ConsumerRecord[Any, Any]) -> Envelope:
        key = (record.topic, record.partition, record.offset)
        entry = self.entries.get(key)
        if entry is None:
            try:
                decoded: Envelope | Exception = Envelope.from_json(record.value)
            except Exception as exc:  # noqa: BLE001 - raised to each reader, which parks it
                decoded = exc
            entry = [decoded, self.readers.get(record.topic, 1)]
            if len(self.entries) < self.limit:
                self.entries[key] = entry
        entry[1] -= 1
        if entry[1] <= 0:
            self.entries.pop(key, None)
        if isinstance(entry[0], Exception):
            raise entry[0]
        envelope: Envelope = entry[0]
        return envelope


class CatchUpConsumer(EventConsumer):
    """A read model's consumer without a group: reads every partition of its topics from the
    offsets stored in its pool's schema, up to given targets."""

    def __init__(
        self,
        *args: Any,
        on_records: Callable[[int], None],
        decoded: DecodedOnce,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_records = on_records
        self.decoded = decoded
        self.partitions: list[TopicPartition] = []

    def envelope_of(self, record: ConsumerRecord[Any, Any]) -> Envelope:
        return self.decoded.envelope_of(record)

    async def start(self) -> None:
        self.kafka = kafka_consumer(
            self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=self.max_records,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            fetch_max_wait_ms=100,
        )
        await self.kafka.start()
        await self.follow(await partitions_of(self.bootstrap, self.topics))

    async def follow(self, partitions: Sequence[TopicPartition]) -> None:
        """Read `partitions` (of its topics), from the stored offsets; a topic or partition
        created since the last round joins here."""
        assert self.kafka is not None
        mine = sorted(tp for tp in partitions if tp.topic in self.topics)
        if mine != self.partitions:
            self.partitions = mine
            self.kafka.assign(mine)
            await self.seek_to_stored(mine)

    async def commit_kafka(self, tp: TopicPartition, next_offset: int) -> None:
        return None  # no group: Kafka's committed offsets stay the live consumer's

    async def poll_once(self, timeout_ms: int = 200) -> int:
        """What a fetch brought from all partitions, in one transaction: one handler call
        folds more events (the figures' upserts aggregate over more of them)."""
        assert self.kafka is not None
        batches = await self.kafka.getmany(timeout_ms=timeout_ms, max_records=self.max_records)
        batches = {tp: records for tp, records in batches.items() if records}
        if not batches:
            return 0
        await self.process_many(batches)
        seen = sum(len(records) for records in batches.values())
        self.on_records(seen)
        return seen

    async def catch_up(self, targets: dict[TopicPartition, int]) -> None:
        """Apply everything before `targets` (a batch may go beyond them)."""
        assert self.kafka is not None
        behind = dict(targets)
        while True:
            for tp in list(behind):
                if await self.kafka.position(tp) >= behind[tp]:
                    del behind[tp]
            if not behind:
                return
            await self.poll_once(timeout_ms=100)


class Rebuild:
    """Rebuild the read models of `schema` into fresh tables and swap them in."""

    def __init__(
        self,
        *,
        dsn: str,
        schema: str,
        bootstrap: Cluster,
        models: Sequence[ReadModel],
        migrate: Migrate,
        batch: int = 20_000,
        small_round: int = 2000,
        max_rounds: int = 10,
        gate_timeout: float = 60.0,
        keep_old: bool = False,
        coalesce: bool = True,
        on_swapped: Callable[[], Awaitable[None]] | None = None,
        progress_every: float = 2.0,
    ) -> None:
        self.dsn = dsn
        self.schema = check_schema_name(schema)
        self.bootstrap = bootstrap
        self.models = list(models)
        self.migrate = migrate
        self.batch = batch
        self.small_round = small_round
        self.max_rounds = max_rounds
        self.gate_timeout = gate_timeout
        self.keep_old = keep_old
        self.coalesce = coalesce
        self.on_swapped = on_swapped
        self.progress_every = progress_every
        suffix = uuid.uuid4().hex[:8]
        self.fresh = check_schema_name(f"{schema}_rb_{suffix}")
        self.old = check_schema_name(f"{schema}_old_{suffix}")
        self.status = RebuildStatus(id=suffix, schema_name=schema)
        self._holder: Any = None
        self._writer: Any = None  # writes the status, beside the holder's own work
        self._writing = asyncio.Lock()
        self._since = 0.0
        self._watermarks = Watermarks(bootstrap)

    # -- the one-at-a-time lock ------------------------------------------------------------
    async def claim(self) -> None:
        """Take the schema's rebuild lock (RebuildRunning if another rebuild holds it) and
        store the pending status."""
        holder = await asyncpg.connect(self.dsn)
        try:
            if not await holder.fetchval(
                "SELECT pg_try_advisory_lock($1)", _running_key(self.schema)
            ):
                raise RebuildRunning(f"a rebuild of {self.schema} is running")
            # no statement cache: the table its statement names is another after the swap
            self._writer = await asyncpg.connect(self.dsn, statement_cache_size=0)
        except BaseException:
            await holder.close()
            raise
        self._holder = holder
        await self._save()

    async def run(self) -> RebuildStatus:
        if self._holder is None:
            await self.claim()
        try:
            with fewer_collections():
                await self._build()
        except BaseException as exc:
            self._enter(Phase.FAILED)
            self.status.error = f"{type(exc).__name__}: {exc}"
            log.exception("rebuild %s of %s failed", self.status.id, self.schema)
            await self._drop(self.fresh)
            raise
        finally:
            self.status.finished_at = datetime.now(UTC)
            await self._save()  # before the lock goes: a reader would take it for a dead run
            await self._holder.close()  # lets the locks go
            self._holder = None
            await self._writer.close()
            self._writer = None
        return self.status

    # -- the stored status -----------------------------------------------------------------
    async def _save(self) -> None:
        """Store the status in the live schema's `rebuild_runs` (nothing to store it in
        before a first rebuild of a schema that does not exist yet swaps one in)."""
        async with self._writing:
            if self._writer is None:
                return
            try:
                await self._writer.execute(
                    SAVE_STATUS.format(schema=self.schema),
                    self.status.id,
                    self.status.model_dump_json(),
                    self.status.started_at,
                )
            except (asyncpg.InvalidSchemaNameError, asyncpg.UndefinedTableError):
                log.info("rebuild %s: no %s.rebuild_runs to keep its status", self.status.id,
                         self.schema)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - the status is a report, the rebuild goes on
                log.warning("rebuild %s: could not store its status: %s", self.status.id, exc)

    @asynccontextmanager
    async def _saving_progress(self) -> AsyncIterator[None]:
        """Store the status every `progress_every` seconds meanwhile."""
        stop = asyncio.Event()

        async def every() -> None:
            while not stop.is_set():
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.progress_every)
                if not stop.is_set():
                    await self._save()

        task = asyncio.create_task(every(), name=f"rebuild-{self.status.id}-progress")
        try:
            yield
        finally:
            stop.set()
            await task

    async def _move(self, phase: Phase) -> None:
        self._enter(phase)
        await self._save()

    # -- steps -----------------------------------------------------------------------------
    def _enter(self, phase: Phase) -> None:
        """Move to `phase`, booking the time since the last move to the previous one."""
        now = asyncio.get_running_loop().time()
        if self.status.phase != Phase.PENDING:
            previous = self.status.phase.value
            spent = now - self._since + self.status.seconds.get(previous, 0.0)
            self.status.seconds[previous] = round(spent, 3)
        self.status.phase, self._since = phase, now

    async def _build(self) -> None:
        await self._move(Phase.MIGRATING)
        await self._drop_leftovers()
        await self.migrate(self.fresh)
        pool = await create_pool(self.dsn, self.fresh, min_size=1, max_size=len(self.models) + 1)
        readers = Counter(t for m in self.models for t in m.topics)
        decoded = DecodedOnce(dict(readers))
        consumers = [self._consumer(pool, m, decoded) for m in self.models]
        try:
            await asyncio.gather(*(c.start() for c in consumers))
            await self._move(Phase.CATCHING_UP)
            async with self._saving_progress():
                await self._rounds(consumers)
            await self._move(Phase.SWAPPING)
            await self._gated_swap(consumers, pool)
        finally:
            await asyncio.gather(*(c.stop() for c in consumers))
            await pool.close()
            await self._watermarks.close()
        await self._move(Phase.DROPPING_OLD)
        await self._retire_old()
        self._enter(Phase.DONE)

    def _consumer(self, pool: Any, model: ReadModel, decoded: DecodedOnce) -> CatchUpConsumer:
        self.status.records[model.name] = 0

        def count(n: int) -> None:
            self.status.records[model.name] += n

        return CatchUpConsumer(
            pool,
            self.bootstrap,
            model.topics,
            model.handler,
            name=model.name,
            max_records=self.batch,
            coalesce=self.coalesce,
            on_records=count,
            decoded=decoded,
        )

    async def _catch_up(self, consumers: Sequence[CatchUpConsumer]) -> int:
        """One round: every consumer up to the high watermarks read when it begins."""
        before = sum(self.status.records.values())
        # from a client of their own: a consumer's client answers after its pending fetch
        ends = await self._watermarks.of([t for m in self.models for t in m.topics])
        for c in consumers:
            await c.follow([TopicPartition(topic, p) for topic, p in ends])
        await asyncio.gather(
            *(c.catch_up({tp: ends.get((tp.topic, tp.partition), 0) for tp in c.partitions})
              for c in consumers)
        )  # fmt: skip
        self.status.rounds += 1
        return sum(self.status.records.values()) - before

    async def _rounds(self, consumers: Sequence[CatchUpConsumer]) -> None:
        """Catch up while live traffic goes on, until a round finds little new."""
        for _ in range(self.max_rounds):
            if await self._catch_up(consumers) <= self.small_round:
                return

    async def _gated_swap(self, consumers: Sequence[CatchUpConsumer], pool: Any) -> None:
        holder = self._holder
        gate = gate_key(self.schema)
        await holder.execute(f"SET lock_timeout = {int(self.gate_timeout * 1000)}")
        await holder.execute("SELECT pg_advisory_lock($1)", gate)
        clock = asyncio.get_running_loop().time
        paused = clock()
        try:
            await self._catch_up(consumers)  # under the gate: the live position cannot move
            log.info("rebuild %s: final round in %.3f s", self.status.id, clock() - paused)
            live = await holder.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", self.schema
            )
            async with holder.transaction():
                if live:
                    await holder.execute(f"ALTER SCHEMA {self.schema} RENAME TO {self.old}")
                await holder.execute(f"ALTER SCHEMA {self.fresh} RENAME TO {self.schema}")
                if live:  # the rebuilds' history, this one's last status included
                    await holder.execute(CARRY_RUNS.format(schema=self.schema, old=self.old))
                    await holder.execute(CARRY_RETRIES.format(schema=self.schema, old=self.old))
        finally:
            await holder.execute("SELECT pg_advisory_unlock($1)", gate)
            self.status.paused_seconds = round(clock() - paused, 3)
        log.info("rebuild %s: %s swapped in", self.status.id, self.schema)
        await asyncio.gather(*(c.stop() for c in consumers))
        await pool.close()  # its connections named the fresh schema
        if self.on_swapped is not None:
            try:
                await self.on_swapped()
            except Exception as exc:  # noqa: BLE001 - the swap is done; connections catch up
                log.warning("rebuild %s: after-swap hook failed: %s", self.status.id, exc)

    async def _drop_leftovers(self) -> None:
        """Drop the fresh schemas of rebuilds whose process ended before they swapped (this
        one holds the lock: no other rebuild of the schema can be using one)."""
        leftovers = await self._holder.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname ~ $1 AND nspname <> $2",
            f"^{self.schema}_rb_[0-9a-f]{{8}}$",
            self.fresh,
        )
        for row in leftovers:
            log.info("rebuild %s: dropping %s, left by an earlier rebuild", self.status.id,
                     row["nspname"])  # fmt: skip
            await self._drop(check_schema_name(row["nspname"]))

    async def _retire_old(self) -> None:
        if not self.keep_old:
            await self._drop(self.old)

    async def _drop(self, schema: str) -> None:
        try:
            conn = await asyncpg.connect(self.dsn)
            try:
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            finally:
                await conn.close()
        except Exception as exc:  # noqa: BLE001 - leftovers are named and can be dropped later
            log.warning("could not drop schema %s: %s", schema, exc)


class Rebuilds:
    """Rebuilds of one schema as any replica sees them: started here (their tasks run in
    this process), read from `rebuild_runs` through the service's pool."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self, rebuild: Rebuild) -> RebuildStatus:
        """Claim the lock and store the status now (RebuildRunning if taken), run in the
        background."""
        await rebuild.claim()
        task = asyncio.create_task(self._run(rebuild), name=f"rebuild-{rebuild.status.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return rebuild.status

    @staticmethod
    async def _run(rebuild: Rebuild) -> None:
        try:
            await rebuild.run()
        except Exception:  # noqa: BLE001 - recorded in the status and logged
            pass

    async def get(self, rebuild_id: str) -> RebuildStatus | None:
        """A rebuild by id, or `latest`: the one started last, by whichever replica."""
        async with self.pool.acquire() as conn:
            return await stored_status(conn, rebuild_id)

    async def latest(self) -> RebuildStatus | None:
        return await self.get("latest")

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
