"""The consumer base under faults: it never loses or buries an event.

* `run()` ends with any error (a supervisor restarts it) and a restarted run applies the batch;
* a transient error (a lost connection, a lock timeout, a deadlock) parks nothing;
* a failed event holds its stream's later versions; other streams keep flowing;
* a version gap is waited for, and closed in version order when the missing event arrives;
* a parked event is re-driven on request once its cause is fixed (shared/dead_letters.py).

Records are produced directly (not through the relay) so each test chooses the versions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

import asyncpg
import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from shared.consumer import AssignmentFailed, EventConsumer, gate_key
from shared.dead_letters import (
    AlreadyResolved,
    DeadLetter,
    get_dead_letter,
    list_dead_letters,
    list_retries,
    request_retry,
)
from shared.envelope import Envelope, utc_now
from shared.testing import Infra, eventually, unique


def event(stream: str, version: int, **data: Any) -> Envelope:
    now = utc_now()
    return Envelope(
        type="Noted",
        schema_version=data.pop("schema_version", 1),
        stream_id=stream,
        stream_type="test",
        version=version,
        occurred_at=now,
        recorded_at=now,
        data={"n": version, **data},
    )


async def publish(
    producer: Any, topic: str, *events: Envelope, partition: int | None = None
) -> None:
    for env in events:
        await producer.send_and_wait(
            topic, env.to_json(), key=env.stream_id.encode(), partition=partition
        )


class Recorder:
    """A read model that writes (stream, version) to `applied`, in the order it applies them.

    `broken` events raise ValueError (their data is wrong for this code); `transient` maps a
    stream to a function raising a transient error while it is there (or doing the thing
    that raises one, on the handler's connection)."""

    def __init__(self) -> None:
        self.broken: set[tuple[str, int]] = set()
        self.attempts = 0
        self.transient: dict[str, Callable[[Any], Any]] = {}

    async def __call__(self, conn: Any, events: Sequence[Envelope]) -> None:
        for e in events:
            if e.stream_id in self.transient:
                await self.transient[e.stream_id](conn)
            if (e.stream_id, e.version) in self.broken:
                self.attempts += 1
                raise ValueError(
                    f"cannot apply {e.stream_id} v{e.version} (attempt {self.attempts})"
                )
            await conn.execute(
                "INSERT INTO applied (stream_id, version) VALUES ($1, $2)", e.stream_id, e.version
            )


@pytest.fixture
async def applied_table(pool: Any) -> None:
    # no unique key on purpose: a double application must show up as a duplicate row
    await pool.execute(
        "CREATE TABLE applied"
        " (seq serial PRIMARY KEY, stream_id text NOT NULL, version int NOT NULL)"
    )
    await pool.execute("CREATE TABLE busy (id int PRIMARY KEY)")
    await pool.execute("INSERT INTO busy VALUES (1)")


async def applied(pool: Any, stream: str | None = None) -> list[tuple[str, int]]:
    rows = await pool.fetch(
        "SELECT stream_id, version FROM applied WHERE $1::text IS NULL OR stream_id = $1"
        " ORDER BY seq",
        stream,
    )
    return [(r["stream_id"], r["version"]) for r in rows]


async def parked(
    pool: Any, *, open_only: bool = True
) -> list[tuple[str | None, int | None, str, str]]:
    rows = await pool.fetch(
        "SELECT stream_id, version, reason, error FROM dead_letters"
        " WHERE NOT $1 OR resolved_at IS NULL ORDER BY stream_id, version, id",
        open_only,
    )
    return [(r["stream_id"], r["version"], r["reason"], r["error"]) for r in rows]


async def streams(pool: Any) -> dict[str, tuple[int, int | None]]:
    rows = await pool.fetch("SELECT stream_id, version, held_from FROM consumer_streams")
    return {r["stream_id"]: (r["version"], r["held_from"]) for r in rows}


async def stored_total(pool: Any) -> int:
    return int(await pool.fetchval("SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets"))


def dead_letters_counted(name: str) -> float:
    return REGISTRY.get_sample_value("grid_consumer_dead_letters_total", {"consumer": name}) or 0.0


async def consume_through(pool: Any, offsets: int, consumer: EventConsumer) -> None:
    """Start the consumer and poll it until the stored offsets add up to `offsets`."""
    await consumer.start()
    try:

        async def done() -> bool:
            await consumer.poll_once(timeout_ms=50)
            return await stored_total(pool) == offsets

        await eventually(done)
    finally:
        await consumer.stop()


class Running:
    """`consumer.run()` as a task for the duration of a `with`."""

    def __init__(self, consumer: EventConsumer, beat: Callable[[], None] | None = None) -> None:
        self.consumer = consumer
        self.beat = beat
        self.stop = asyncio.Event()

    async def __aenter__(self) -> Running:
        if self.beat is None:
            self.task = asyncio.create_task(self.consumer.run(self.stop))
        else:
            self.task = asyncio.create_task(self.consumer.run(self.stop, self.beat))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        with suppress(Exception):
            await asyncio.wait_for(self.task, 30)

    def alive(self) -> None:
        """Fail the test at once if run() ended."""
        if self.task.done():
            raise AssertionError(f"run() ended: {self.task.exception()!r}")

    async def ended(self, timeout: float = 20) -> BaseException | None:
        async def done() -> bool:
            return self.task.done()

        await eventually(done, timeout=timeout, message="run() did not end")
        return self.task.exception()


def make(pool: Any, infra: Infra, topic: str, handler: Any, name: str, **kw: Any) -> EventConsumer:
    return EventConsumer(pool, infra.kafka_bootstrap, [topic], handler, name=name, **kw)


# -- run() -----------------------------------------------------------------------------------
async def test_run_beats_after_every_poll_even_an_empty_one(
    infra: Infra, pool: Any, topic: str, applied_table: None
) -> None:
    beats: list[float] = []
    consumer = make(pool, infra, topic, Recorder(), unique("c"))
    async with Running(consumer, beat=lambda: beats.append(1)) as running:

        async def beating() -> bool:
            running.alive()
            return len(beats) >= 3

        await eventually(beating)
    assert running.task.done() and running.task.exception() is None
    assert consumer.kafka is None


async def test_run_ends_with_a_transient_error_and_a_restarted_run_applies_the_batch(
    infra: Infra, pool: Any, topic: str, producer: Any, applied_table: None
) -> None:
    recorder = Recorder()

    async def deadlock(conn: Any) -> None:
        raise asyncpg.DeadlockDetectedError("deadlock detected")

    recorder.transient["s-2"] = deadlock
    events = [event(f"s-{i % 3}", i // 3 + 1) for i in range(9)]
    await publish(producer, topic, *events)
    name = unique("c")
    consumer = make(pool, infra, topic, recorder, name)

    async with Running(consumer) as running:
        error = await running.ended()
    assert isinstance(error, asyncpg.DeadlockDetectedError)
    assert consumer.kafka is None  # stopped on the way out
    assert await parked(pool) == []
    assert dead_letters_counted(name) == 0

    del recorder.transient["s-2"]  # the deadlock is gone; the supervisor starts it again
    async with Running(consumer) as running:

        async def all_applied() -> bool:
            running.alive()
            return len(await applied(pool)) == 9

        await eventually(all_applied)
    assert sorted(await applied(pool)) == sorted((e.stream_id, e.version) for e in events)
    assert await parked(pool) == []
    assert await stored_total(pool) == 9


@pytest.mark.parametrize("poison_first", [False, True], ids=["whole-batch", "one-by-one"])
async def test_a_lock_timeout_parks_nothing_and_the_batch_is_retried(
    infra: Infra, pool: Any, topic: str, producer: Any, applied_table: None, poison_first: bool
) -> None:
    """A real lock_timeout (55P03) while another transaction holds the row: in the whole
    batch, or in the one-by-one pass that isolates a poison event."""
    recorder = Recorder()
    recorder.broken.add(("poison", 1))

    async def lock_busy(conn: Any) -> None:
        await conn.execute("SET LOCAL lock_timeout = '100ms'")
        await conn.execute("SELECT id FROM busy WHERE id = 1 FOR UPDATE")

    recorder.transient["waits"] = lock_busy
    first, second = (event("poison", 1), event("waits", 1))
    if not poison_first:
        first, second = second, first
    await publish(producer, topic, first, second, event("fine", 1), partition=0)
    name = unique("c")
    consumer = make(pool, infra, topic, recorder, name)

    holder = await pool.acquire()
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT id FROM busy WHERE id = 1 FOR UPDATE")
        async with Running(consumer) as running:
            error = await running.ended()
        assert isinstance(error, asyncpg.LockNotAvailableError)
        assert await parked(pool) == []  # not the waiting event, nor the poison one
        assert dead_letters_counted(name) == 0
        assert await applied(pool) == []
        assert await stored_total(pool) == 0
        await tx.rollback()
    finally:
        await pool.release(holder)

    async with Running(consumer) as running:

        async def through() -> bool:
            running.alive()
            return await stored_total(pool) == 3

        await eventually(through)
    assert sorted(await applied(pool)) == [("fine", 1), ("waits", 1)]
    assert [(s, v, r) for s, v, r, _ in await parked(pool)] == [("poison", 1, "failed")]
    assert dead_letters_counted(name) == 1


async def test_a_connection_lost_while_applying_parks_nothing(
    infra: Infra, pool: Any, topic: str, producer: Any, applied_table: None
) -> None:
    recorder = Recorder()
    killed: list[int] = []

    async def die(conn: Any) -> None:
        if not killed:
            killed.append(await conn.fetchval("SELECT pg_backend_pid()"))
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    recorder.transient["s-1"] = die
    await publish(producer, topic, event("s-1", 1), event("s-2", 1), partition=0)
    consumer = make(pool, infra, topic, recorder, unique("c"))
    async with Running(consumer) as running:
        await running.ended()
    assert killed and await parked(pool) == []

    async with Running(consumer) as running:

        async def through() -> bool:
            running.alive()
            return await stored_total(pool) == 2

        await eventually(through)
    assert sorted(await applied(pool)) == [("s-1", 1), ("s-2", 1)]
    assert await parked(pool) == []


class SeekFailsOnce(EventConsumer):
    failed = False

    async def seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        if partitions and not self.failed:
            self.failed = True
            raise ConnectionResetError("the database went away while seeking")
        await super().seek_to_stored(partitions)


async def test_a_failed_seek_on_assignment_ends_run_instead_of_reading_from_kafka(
    infra: Infra, pool: Any, topic: str, producer: Any, applied_table: None
) -> None:
    await publish(producer, topic, event("s-1", 1), event("s-2", 1))
    consumer = SeekFailsOnce(pool, infra.kafka_bootstrap, [topic], Recorder(), name=unique("c"))
    async with Running(consumer) as running:
        error = await running.ended()
    assert isinstance(error, AssignmentFailed)
    assert isinstance(error.__cause__, ConnectionResetError)
    assert await applied(pool) == []

    async with Running(consumer) as running:

        async def through() -> bool:
            running.alive()
            return await stored_total(pool) == 2

        await eventually(through)
    assert sorted(await applied(pool)) == [("s-1", 1), ("s-2", 1)]


class StopFails(EventConsumer):
    async def start(self) -> None:
        await super().start()
        assert self.kafka is not None
        real_stop = self.kafka.stop

        async def stop() -> None:
            await real_stop()
            raise RuntimeError("the broker hung up while we left the group")

        self.kafka.stop = stop  # type: ignore[method-assign]


async def test_stopping_never_raises_from_run(infra: Infra, pool: Any, topic: str) -> None:
    consumer = StopFails(pool, infra.kafka_bootstrap, [topic], Recorder(), name=unique("c"))
    stop = asyncio.Event()
    stop.set()
    await consumer.run(stop)
    assert consumer.kafka is None


async def test_client_id_and_group_timeouts_reach_the_kafka_client(
    infra: Infra, pool: Any, topic: str
) -> None:
    consumer = EventConsumer(
        pool,
        infra.kafka_bootstrap,
        [topic],
        Recorder(),
        name=unique("c"),
        client_id="reporting-consumer:figures@host:1",
        session_timeout_ms=6000,  # the broker's default group.min.session.timeout.ms
        heartbeat_interval_ms=1500,
    )
    await consumer.start()
    try:
        kafka: Any = consumer.kafka
        assert kafka._client._client_id == "reporting-consumer:figures@host:1"
        assert kafka._session_timeout_ms == 6000
        assert kafka._heartbeat_interval_ms == 1500
    finally:
        await consumer.stop()


# -- holds -----------------------------------------------------------------------------------
@pytest.mark.parametrize("max_records", [500, 1], ids=["one-batch", "record-by-record"])
async def test_a_failed_event_holds_back_its_stream_and_other_streams_flow(
    infra: Infra, pool: Any, topic: str, producer: Any, applied_table: None, max_records: int
) -> None:
    recorder = Recorder()
    recorder.broken |= {("s-1", 2), ("s-3", 1)}
    await publish(
        producer,
        topic,
        *[event("s-1", v) for v in (1, 2, 3, 4)],
        *[event("s-2", v) for v in (1, 2, 3)],
        *[event("s-3", v) for v in (1, 2)],
        partition=0,
    )
    name = unique("c")
    consumer = make(pool, infra, topic, recorder, name, max_records=max_records)
    await consume_through(pool, 9, consumer)

    assert await applied(pool) == [("s-1", 1), ("s-2", 1), ("s-2", 2), ("s-2", 3)]
    assert [(s, v, r) for s, v, r, _ in await parked(pool)] == [
        ("s-1", 2, "failed"),
        ("s-1", 3, "held"),
        ("s-1", 4, "held"),
        ("s-3", 1, "failed"),
        ("s-3", 2, "held"),
    ]
    errors = {(s, v): e for s, v, _, e in await parked(pool)}
    assert errors[("s-1", 2)].startswith("ValueError: cannot apply s-1 v2")
    assert errors[("s-1", 3)] == errors[("s-1", 4)] == "held behind v2"
    assert errors[("s-3", 2)] == "held behind v1"
    assert await streams(pool) == {"s-1": (1, 2), "s-2": (3, None), "s-3": (0, 1)}
    assert dead_letters_counted(name) == 5

    # a re-delivery of a held version is not parked twice; a new version is held too
    await publish(producer, topic, event("s-1", 3), event("s-1", 5), event("s-2", 4), partition=0)
    await consume_through(pool, 12, consumer)
    assert [(s, v, r) for s, v, r, _ in await parked(pool) if s == "s-1"] == [
        ("s-1", 2, "failed"),
        ("s-1", 3, "held"),
        ("s-1", 4, "held"),
        ("s-1", 5, "held"),
    ]
    assert await applied(pool, "s-2") == [("s-2", v) for v in (1, 2, 3, 4)]
    assert dead_letters_counted(name) == 6


# -- gaps ------------------------------------------------------------------------------------
async def test_a_version_gap_is_waited_for_and_closed_in_version_order(
    infra: Infra, pool: Any, topic: str, producer: Any, applied_table: None
) -> None:
    await publish(
        producer,
        topic,
        event("s-1", 1),
        event("s-1", 3),
        event("s-1", 4),
        event("s-2", 2),  # a stream first seen past v1
        event("s-3", 1),
        partition=0,
    )
    name = unique("c")
    consumer = make(pool, infra, topic, Recorder(), name)
    await consume_through(pool, 5, consumer)
    assert await applied(pool) == [("s-1", 1), ("s-3", 1)]
    assert await parked(pool) == [
        ("s-1", 3, "gap", "waiting for v2"),
        ("s-1", 4, "held", "held behind v3"),
        ("s-2", 2, "gap", "waiting for v1"),
    ]
    assert await streams(pool) == {"s-1": (1, 3), "s-2": (0, 2), "s-3": (1, None)}

    # the missing events arrive (a relay that had not published them yet)
    await publish(producer, topic, event("s-1", 2), event("s-2", 1), event("s-1", 5), partition=0)
    await consume_through(pool, 8, consumer)
    assert await applied(pool, "s-1") == [("s-1", v) for v in (1, 2, 3, 4, 5)]
    assert await applied(pool, "s-2") == [("s-2", 1), ("s-2", 2)]
    assert await parked(pool) == []
    assert await streams(pool) == {"s-1": (5, None), "s-2": (2, None), "s-3": (1, None)}
    resolved = await list_dead_letters(pool, open_only=False)
    assert len(resolved) == 3 and all(d.resolved_at is not None for d in resolved)
    audit = await list_retries(pool, resolved[0].id)
    assert [(r.requested_by, r.outcome) for r in audit] == [(name, "applied")]
    assert audit[0].finished_at is not None


async def test_a_gap_closed_within_one_batch_applies_in_version_order(
    infra: Infra, pool: Any, topic: str, producer: Any, applied_table: None
) -> None:
    await publish(
        producer, topic, event("s-1", 1), event("s-1", 3), event("s-1", 2), event("s-1", 2)
    )
    consumer = make(pool, infra, topic, Recorder(), unique("c"))
    await consume_through(pool, 4, consumer)
    assert await applied(pool) == [("s-1", 1), ("s-1", 2), ("s-1", 3)]
    assert await parked(pool) == []
    assert await streams(pool) == {"s-1": (3, None)}


# -- re-drive on request ---------------------------------------------------------------------
async def held_stream(
    infra: Infra, pool: Any, topic: str, producer: Any, recorder: Recorder, name: str
) -> DeadLetter:
    """s-1 v1 applied, v2 failed, v3 and v4 held; s-2 v1 applied. The dead letter of v2."""
    recorder.broken.add(("s-1", 2))
    await publish(producer, topic, *[event("s-1", v) for v in (1, 2, 3, 4)], event("s-2", 1))
    await consume_through(pool, 5, make(pool, infra, topic, recorder, name))
    (failed,) = [d for d in await list_dead_letters(pool) if d.reason == "failed"]
    assert (failed.stream_id, failed.version) == ("s-1", 2)
    return failed


async def test_a_fixed_event_is_redriven_on_request_by_any_replica(
    infra: Infra, pool: Any, topic: str, producer: Any, applied_table: None
) -> None:
    recorder = Recorder()
    name = unique("c")
    failed = await held_stream(infra, pool, topic, producer, recorder, name)

    recorder.broken.clear()  # the handler is fixed
    async with pool.acquire() as conn:
        asked = await request_retry(conn, failed.id, requested_by="alice", reason="handler fixed")
    assert asked is not None and asked.retry_requested_at is not None
    replica = make(pool, infra, topic, recorder, name)  # another process of the same consumer
    async with Running(replica) as running:

        async def redriven() -> bool:
            running.alive()
            return await parked(pool) == []

        await eventually(redriven)
        assert await applied(pool, "s-1") == [("s-1", v) for v in (1, 2, 3, 4)]
        assert (await streams(pool))["s-1"] == (4, None)
        done = await get_dead_letter(pool, failed.id)
        assert done is not None and done.resolved_at and done.retry_requested_at is None
        (audit,) = await list_retries(pool, failed.id)
        assert (audit.requested_by, audit.reason, audit.outcome) == (
            "alice",
            "handler fixed",
            "applied",
        )
        assert audit.finished_at is not None

        await publish(producer, topic, event("s-1", 5))  # the stream flows again

        async def flowing() -> bool:
            running.alive()
            return len(await applied(pool, "s-1")) == 5

        await eventually(flowing)
    assert await parked(pool) == []


async def test_a_retry_that_fails_again_keeps_the_event_parked_with_the_new_error(
    infra: Infra, pool: Any, topic: str, producer: Any, applied_table: None
) -> None:
    recorder = Recorder()
    name = unique("c")
    failed = await held_stream(infra, pool, topic, producer, recorder, name)

    async with pool.acquire() as conn:
        await request_retry(conn, failed.id, requested_by="bob", reason="try again")
    async with Running(make(pool, infra, topic, recorder, name)) as running:

        async def finished() -> Any:
            running.alive()
            (audit,) = await list_retries(pool, failed.id)
            return audit if audit.finished_at else None

        audit = await eventually(finished)
    again = await get_dead_letter(pool, failed.id)
    assert again is not None and again.resolved_at is None and again.retry_requested_at is None
    assert again.reason == "failed" and again.error.startswith("ValueError: cannot apply s-1 v2")
    assert again.error != failed.error  # the error of the retry, not the first one
    assert audit.outcome == f"failed again: {again.error}"
    assert [(s, v, r) for s, v, r, _ in await parked(pool)] == [
        ("s-1", 2, "failed"),
        ("s-1", 3, "held"),
        ("s-1", 4, "held"),
    ]
    assert (await streams(pool))["s-1"] == (1, 2)
    assert await applied(pool, "s-1") == [("s-1", 1)]


async def test_a_retry_waits_for_the_rebuild_gate(
    infra: Infra, pool: Any, schema: str, topic: str, producer: Any, applied_table: None
) -> None:
    recorder = Recorder()
    name = unique("c")
    failed = await held_stream(infra, pool, topic, producer, recorder, name)
    recorder.broken.clear()
    async with pool.acquire() as conn:
        await request_retry(conn, failed.id, requested_by="alice", reason="fixed")

    holder = await asyncpg.connect(infra.pg_dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", gate_key(schema))
        consumer = make(pool, infra, topic, recorder, name, gate=gate_key(schema))
        async with Running(consumer) as running:

            async def waiting_at_the_gate() -> bool:
                running.alive()
                return bool(
                    await holder.fetchval(
                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                        " WHERE l.locktype = 'advisory' AND NOT l.granted"
                        " AND a.application_name = $1",
                        schema,
                    )
                )

            await eventually(waiting_at_the_gate)
            assert len(await parked(pool)) == 3
            await holder.execute("SELECT pg_advisory_unlock($1)", gate_key(schema))

            async def redriven() -> bool:
                running.alive()
                return await parked(pool) == []

            await eventually(redriven)
    finally:
        await holder.close()
    assert await applied(pool, "s-1") == [("s-1", v) for v in (1, 2, 3, 4)]


class Upgradable(EventConsumer):
    """Cannot read schema_version 2 envelopes until it is upgraded."""

    upgraded = False

    def decode(self, raw: bytes) -> Envelope:
        env = super().decode(raw)
        if env.schema_version > 1 and not self.upgraded:
            raise ValueError(f"schema_version {env.schema_version} is newer than this consumer")
        return env


async def test_an_undecodable_event_is_never_passed_its_stream_waits_and_a_retry_applies_it(
    infra: Infra, pool: Any, topic: str, producer: Any, applied_table: None
) -> None:
    await publish(
        producer,
        topic,
        event("s-1", 1),
        event("s-1", 2, schema_version=2),
        event("s-1", 3),
        partition=0,
    )
    await producer.send_and_wait(topic, b'{"not": "an envelope\x00"}', partition=0)
    name = unique("c")
    consumer = Upgradable(pool, infra.kafka_bootstrap, [topic], Recorder(), name=name)
    await consume_through(pool, 4, consumer)
    assert await applied(pool) == [("s-1", 1)]
    rows = await parked(pool)
    assert [(s, v, r) for s, v, r, _ in rows] == [
        ("s-1", 3, "gap"),
        (None, None, "undecodable"),
        (None, None, "undecodable"),
    ]
    assert rows[0][3] == "waiting for v2"
    assert all(e.startswith("undecodable envelope: ") for _, _, _, e in rows[1:])
    letters = await list_dead_letters(pool)
    unreadable = next(d for d in letters if d.offset == 1)
    garbage = next(d for d in letters if d.offset == 3)

    consumer.upgraded = True  # a release that reads the new schema version
    async with pool.acquire() as conn:
        await request_retry(conn, unreadable.id, requested_by="ops", reason="consumer upgraded")
        await request_retry(conn, garbage.id, requested_by="ops", reason="just to see")
    async with Running(consumer) as running:

        async def both_finished() -> bool:
            running.alive()
            audits = [
                *await list_retries(pool, unreadable.id),
                *await list_retries(pool, garbage.id),
            ]
            return all(a.finished_at for a in audits)

        await eventually(both_finished)
    assert await applied(pool) == [("s-1", 1), ("s-1", 2), ("s-1", 3)]
    assert await streams(pool) == {"s-1": (3, None)}
    (still,) = await list_dead_letters(pool)
    assert still.id == garbage.id and still.reason == "undecodable"
    (audit,) = await list_retries(pool, garbage.id)
    assert audit.outcome is not None and audit.outcome.startswith("failed again: undecodable")


# -- the retry API ---------------------------------------------------------------------------
async def test_request_retry_and_list_dead_letters(
    infra: Infra, pool: Any, topic: str, producer: Any, applied_table: None
) -> None:
    recorder = Recorder()
    name = unique("c")
    failed = await held_stream(infra, pool, topic, producer, recorder, name)
    async with pool.acquire() as conn:
        assert await request_retry(conn, 10**9, requested_by="alice", reason="x") is None
        with pytest.raises(ValueError):
            await request_retry(conn, failed.id, requested_by=" ", reason="x")

        everything = await list_dead_letters(conn)
        assert [(d.stream_id, d.version, d.reason) for d in everything] == [
            ("s-1", 2, "failed"),
            ("s-1", 3, "held"),
            ("s-1", 4, "held"),
        ]
        assert everything[1].error == "held behind v2" and everything[1].consumer == name
        assert everything[0].topic == topic and everything[0].parked_at is not None
        assert await list_dead_letters(conn, consumer="someone-else") == []
        page = await list_dead_letters(conn, consumer=name, after_id=everything[0].id, limit=1)
        assert [d.id for d in page] == [everything[1].id]
        with pytest.raises(ValueError):
            await list_dead_letters(conn, limit=0)
        assert "payload" not in DeadLetter.model_fields

        await conn.execute("UPDATE dead_letters SET resolved_at = now() WHERE id = $1", failed.id)
        with pytest.raises(AlreadyResolved):
            await request_retry(conn, failed.id, requested_by="alice", reason="again")
        assert [d.id for d in await list_dead_letters(conn)] == [d.id for d in everything[1:]]
        assert len(await list_dead_letters(conn, open_only=False)) == 3
        assert await list_retries(conn, failed.id) == []
