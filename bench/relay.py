"""Outbox relay throughput (and optionally lag) against a raw Kafka producer, in one run.

What is measured
----------------
1. *Load* (side figure): N events are appended to a fresh event store through
   `shared.eventstore.append`, in chunks of one transaction each. Not part of the relay figures.
2. *Baseline*: the same rows are read back once, their message bytes built up front with
   `shared.relay.message_value`, and a raw producer with the relay's settings
   (`shared.kafka.relay_producer`: acks=all, idempotent) sends them, awaiting every batch's
   acknowledgements before sending the next batch, exactly as the relay does. This is the
   ceiling for the relay's publishing pattern: Kafka work only, no database, no encoding.
   A *pipelined* variant (every message in flight, one wait at the end) is printed as a side
   figure: the ceiling of the producer itself.
3. *Relay*: `OutboxRelay(...).drain()` from an empty checkpoint until all N are published.
   `drain` returns after the last batch is acknowledged by Kafka and checkpointed, so its rate
   is the end-to-end, Kafka-acknowledged rate; the topic's end offsets are checked to sum to N.
   The time inside `fetch` (checkpoint read + visible-rows query), `publish` (encoding, sends,
   waiting for acks) and `record` (checkpoint write) is summed per phase.
4. `--lag`: the relay runs (`run(stop, poll_interval=0.01)`) while writers append events at a
   steady rate in small transactions; a consumer in a separate process stamps each message's
   arrival. Lag is arrival minus `recorded_at` (the appending transaction's start, as stored)
   and arrival minus the writer's own commit time.

Every timed run gets a fresh topic (created and warmed before any clock starts: a partition's
first appends stall the broker once) and a fresh producer; baseline and relay runs alternate.
`cpu` is this process's CPU time over the run's wall time: near 100% means the Python process
(not Kafka or PostgreSQL) is the bottleneck.

Reading the ratio
-----------------
`relay/baseline` is relay events/s divided by baseline events/s at the same batch size. 1.0
means the relay adds nothing over bare Kafka publishing; 0.5 means half the run is spent on
what the relay does besides sending (database reads, row decoding, JSON encoding, checkpoint
writes, and the serial fetch -> publish -> ack -> checkpoint cycle with nothing overlapped).
Figures come from a single machine where PostgreSQL, Kafka and this process share the CPUs:
compare ratios from the same run, not absolute numbers across machines.

    uv run python -m bench.relay [--events 100000] [--payload-bytes 300] [--partitions 6]
                                 [--batch-sizes 500,1000,5000] [--repeat 1] [--lag] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import multiprocessing as mp
import os
import pstats
import statistics
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.eventstore import COLUMNS, PendingEvent, append
from shared.kafka import ensure_topics, relay_producer
from shared.relay import FencedRelay, OutboxRelay, RelayConfig, message_value
from shared.testing import drop_schema, fresh_schema, schema_pool, unique
from tests.integration.helpers import raw_event

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:55432/grid"
DEFAULT_BOOTSTRAP = "127.0.0.1:59092"
EVENT_TYPE = "CaseReported"
PLACES = [
    "武汉市江汉区花楼街",
    "北京市朝阳区望京街道",
    "上海市浦东新区陆家嘴街道",
    "广州市天河区石牌街道",
    "成都市武侯区玉林街道",
    "杭州市西湖区北山街道",
    "深圳市南山区粤海街道",
    "西安市雁塔区小寨路街道",
]
MB = 1_000_000
WARMUP = b"w" * 1000
WARMUP_MESSAGES = 60  # per partition


# ----------------------------------------------------------------------------- events


def event_data(i: int, version: int, payload_bytes: int) -> dict[str, Any]:
    """A case report of about `payload_bytes` bytes of compact JSON (with raw_event's "n")."""
    data: dict[str, Any] = {
        "n": version,
        "district": PLACES[i % len(PLACES)],
        "grid": f"G{i % 977:04d}-{i % 13:02d}",
        "confirmed": i % 7,
        "suspected": i % 11,
        "note": "",
    }
    missing = payload_bytes - len(orjson.dumps(data))
    data["note"] = "x" * max(0, missing)
    del data["n"]  # raw_event puts it back first
    return data


def pending_events(n: int, streams: int, payload_bytes: int) -> Iterator[PendingEvent]:
    """Version-major: every stream's version 1, then every stream's version 2, ..."""
    streams = min(streams, n)
    for k in range(n):
        version, s = divmod(k, streams)
        yield raw_event(
            f"case-{s:06d}", version + 1, EVENT_TYPE, **event_data(k, version + 1, payload_bytes)
        )


async def load(pool: Any, n: int, streams: int, chunk: int, payload_bytes: int) -> float:
    """Append n events, one transaction per chunk; returns the seconds taken."""
    events = pending_events(n, streams, payload_bytes)
    t0 = time.perf_counter()
    async with pool.acquire() as conn:
        while batch := [e for _, e in zip(range(chunk), events, strict=False)]:
            async with conn.transaction():
                await append(conn, batch)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- kafka helpers

# (value, key, type header): tuples of bytes only, untracked by the cyclic GC once collected,
# so holding N of them does not slow the relay's collections (a list per message cost the
# relay ~10% here); the headers list is built at send time, as the relay does
Message = tuple[bytes, bytes, bytes]


async def started_producer(bootstrap: str, topic: str) -> AIOKafkaProducer:
    producer = relay_producer(bootstrap)
    await producer.start()
    await producer.partitions_for(topic)  # metadata fetched before any clock starts
    return producer


async def produce(producer: AIOKafkaProducer, topic: str, msgs: list[Message], window: int) -> None:
    """Send everything, awaiting all acknowledgements after each `window` messages."""
    for i in range(0, len(msgs), window):
        futures = [
            await producer.send(topic, value=value, key=key, headers=[("type", type_)])
            for value, key, type_ in msgs[i : i + window]
        ]
        await asyncio.gather(*futures)


async def run_baseline(
    bootstrap: str, topic: str, msgs: list[Message], window: int
) -> tuple[float, float]:
    """Wall and this process's CPU seconds for a fresh producer to get every message acked."""
    producer = await started_producer(bootstrap, topic)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        await produce(producer, topic, msgs, window)
        return time.perf_counter() - t0, time.process_time() - c0
    finally:
        await producer.stop()


async def topic_size(bootstrap: str, topic: str, partitions: int) -> int:
    """Sum of the partitions' end offsets: how many messages the broker holds."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def wait_for_leaders(bootstrap: str, topics: list[str], timeout: float = 30.0) -> None:
    """Block until every partition of the new topics has a leader (else sends get retried)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            described = await admin.describe_topics(topics)
            if len(described) == len(topics) and all(
                t["error_code"] == 0
                and t["partitions"]
                and all(p["error_code"] == 0 and p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics without leaders after {timeout}s: {described}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    await asyncio.sleep(1.0)  # the broker's own metadata lags describe_topics a little


async def warm_topics(bootstrap: str, topics: list[str], partitions: int) -> None:
    """Write WARMUP_MESSAGES per partition in three requests before anything is timed.

    A partition's first appends stall the broker for 0.1-0.4 s once (seen on the second real
    batch even after a single tiny warm-up message); a few KB per partition moves that here.
    """
    producer = relay_producer(bootstrap)
    await producer.start()
    try:
        for _ in range(3):
            await asyncio.gather(
                *[
                    await producer.send(t, value=WARMUP, partition=p)
                    for t in topics
                    for p in range(partitions)
                    for _ in range(WARMUP_MESSAGES // 3)
                ]
            )
    finally:
        await producer.stop()


async def delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()


# ----------------------------------------------------------------------------- relay


class TimedRelay(OutboxRelay):
    """The project's relay, unchanged, with wall time summed per phase of `step`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.phase = {"fetch": 0.0, "publish": 0.0, "record": 0.0}
        self.batches = 0

    async def fetch(self, conn: Any) -> list[asyncpg.Record]:
        t0 = time.perf_counter()
        try:
            return await super().fetch(conn)
        finally:
            self.phase["fetch"] += time.perf_counter() - t0

    async def publish(self, rows: list[asyncpg.Record]) -> None:
        t0 = time.perf_counter()
        try:
            await super().publish(rows)
        finally:
            self.phase["publish"] += time.perf_counter() - t0
            self.batches += 1

    async def record(self, conn: Any, rows: list[asyncpg.Record]) -> None:
        t0 = time.perf_counter()
        try:
            await super().record(conn, rows)
        finally:
            self.phase["record"] += time.perf_counter() - t0


async def run_relay(
    pool: Any, bootstrap: str, topic: str, name: str, batch_size: int, n: int
) -> tuple[float, float, TimedRelay]:
    """Wall and this process's CPU seconds of one drain from an empty checkpoint."""
    producer = await started_producer(bootstrap, topic)
    try:
        relay = TimedRelay(pool, producer, topic, name=name, batch_size=batch_size)
        t0, c0 = time.perf_counter(), time.process_time()
        published = await relay.drain()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        await producer.stop()
    if published != n:
        raise RuntimeError(f"relay {name} published {published} events, expected {n}")
    return elapsed, cpu, relay


# ----------------------------------------------------------------------------- lag


def _lag_consumer(
    bootstrap: str, topic: str, partitions: int, expected: int, timeout: float, queue: Any
) -> None:
    asyncio.run(_consume_arrivals(bootstrap, topic, partitions, expected, timeout, queue))


async def _consume_arrivals(
    bootstrap: str, topic: str, partitions: int, expected: int, timeout: float, queue: Any
) -> None:
    """Report when each event id arrived (wall clock), with its message's recorded_at."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)  # past the warm-up messages
        for tp in tps:
            await consumer.position(tp)
        queue.put(("ready", None))
        arrivals: dict[str, tuple[float, str]] = {}
        deadline = time.monotonic() + timeout
        while len(arrivals) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for records in batches.values():
                for r in records:
                    m = orjson.loads(r.value)
                    arrivals[m["event_id"]] = (now, m["recorded_at"])
        queue.put(("done", arrivals))
    finally:
        await consumer.stop()


async def _writer(
    pool: Any,
    w: int,
    txs: int,
    tx_size: int,
    interval: float,
    t0: float,
    payload_bytes: int,
    committed: dict[str, float],
) -> None:
    versions: dict[str, int] = {}
    async with pool.acquire() as conn:
        for k in range(txs):
            delay = t0 + k * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            stream = f"live-{w}-{k % 50:03d}"
            v = versions.get(stream, 0)
            batch = [
                raw_event(
                    stream,
                    v + j + 1,
                    EVENT_TYPE,
                    **event_data(k * tx_size + j, v + j + 1, payload_bytes),
                )
                for j in range(tx_size)
            ]
            async with conn.transaction():
                envelopes = await append(conn, batch)
            now = time.time()
            versions[stream] = v + tx_size
            for e in envelopes:
                committed[str(e.event_id)] = now


def _percentiles(values: list[float]) -> str:
    values = sorted(values)
    q = statistics.quantiles(values, n=100, method="inclusive")
    return (
        f"p50 {q[49] * 1000:7.1f} ms   p95 {q[94] * 1000:7.1f} ms   "
        f"p99 {q[98] * 1000:7.1f} ms   max {values[-1] * 1000:7.1f} ms"
    )


async def measure_lag(pool: Any, bootstrap: str, topic: str, args: argparse.Namespace) -> None:
    writers, tx_size = args.lag_writers, args.lag_tx_size
    txs_per_writer = max(1, args.lag_events // (writers * tx_size))
    total = txs_per_writer * writers * tx_size
    interval = tx_size * writers / args.lag_rate  # seconds between one writer's transactions
    name = "bench_lag"
    async with pool.acquire() as conn:  # start the relay at the store's current end
        await conn.execute(
            """INSERT INTO relay_checkpoints (relay, tx_id, position)
               SELECT $1, tx_id, position FROM events ORDER BY tx_id DESC, position DESC LIMIT 1
            """,
            name,
        )

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    timeout = total / args.lag_rate + 60
    proc = ctx.Process(
        target=_lag_consumer,
        daemon=True,
        args=(bootstrap, topic, args.partitions, total, timeout, queue),
    )
    proc.start()
    loop = asyncio.get_running_loop()
    kind, _ = await asyncio.wait_for(loop.run_in_executor(None, queue.get), 60)
    assert kind == "ready"

    producer = await started_producer(bootstrap, topic)
    stop = asyncio.Event()
    relay = OutboxRelay(pool, producer, topic, name=name, batch_size=args.batch_sizes[0])
    # the services' relay loop: leased, one Kafka transaction per batch
    fenced = FencedRelay(
        pool,
        RelayConfig(
            bootstrap, topic, name, "bench", batch_size=relay.batch_size, poll_interval=0.01
        ),
    )
    relay_task = asyncio.create_task(fenced.run(stop))
    committed: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        await asyncio.gather(
            *(
                _writer(
                    pool, w, txs_per_writer, tx_size, interval, t0, args.payload_bytes, committed
                )
                for w in range(writers)
            )
        )
        write_secs = time.monotonic() - t0
        kind, arrivals = await asyncio.wait_for(loop.run_in_executor(None, queue.get), timeout + 30)
    finally:
        stop.set()
        await relay_task
        await producer.stop()
        proc.join(10)

    vs_recorded = [at - datetime.fromisoformat(rec).timestamp() for at, rec in arrivals.values()]
    vs_commit = [at - committed[eid] for eid, (at, _) in arrivals.items() if eid in committed]
    print()
    print(
        f"Lag under live writes: {total} events, {writers} writers x {tx_size} events/tx, "
        f"target {args.lag_rate:,.0f} ev/s, achieved {total / write_secs:,.0f} ev/s "
        f"over {write_secs:.1f} s; relay batch {relay.batch_size}, poll 10 ms"
    )
    print(f"  received {len(arrivals)}/{total} on the topic (consumer in a separate process)")
    if vs_recorded:
        print(f"  arrival - recorded_at : {_percentiles(vs_recorded)}")
    if vs_commit:
        print(f"  arrival - commit      : {_percentiles(vs_commit)}")


# ----------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--payload-bytes", type=int, default=300, help="size of each event's data")
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument(
        "--batch-sizes",
        default="1000",
        help="comma-separated relay batch sizes, one relay (and topic) each",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="baseline/relay pairs per batch size; the table shows medians",
    )
    p.add_argument("--streams", type=int, default=10_000)
    p.add_argument("--load-chunk", type=int, default=2000, help="events per load transaction")
    p.add_argument("--lag", action="store_true", help="also measure lag under live writes")
    p.add_argument("--lag-events", type=int, default=20_000)
    p.add_argument("--lag-rate", type=float, default=2000, help="events/s, all writers together")
    p.add_argument("--lag-writers", type=int, default=4)
    p.add_argument("--lag-tx-size", type=int, default=5)
    p.add_argument(
        "--profile",
        action="store_true",
        help="profile one extra relay drain (first batch size) with cProfile",
    )
    p.add_argument("--keep-topics", action="store_true")
    p.add_argument("--dsn", default=os.environ.get("GRID_PG_DSN", DEFAULT_DSN))
    p.add_argument("--bootstrap", default=os.environ.get("GRID_KAFKA_BOOTSTRAP", DEFAULT_BOOTSTRAP))
    args = p.parse_args()
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    return args


async def main() -> None:
    args = parse_args()
    n, bootstrap = args.events, args.bootstrap
    schema = unique("bench_relay")
    runs = [(b, rep) for rep in range(args.repeat) for b in args.batch_sizes]
    base_topics = {run: unique(f"bench.base{run[0]}") for run in runs}
    relay_topics = {run: unique(f"bench.relay{run[0]}") for run in runs}
    extra_topics = {
        k: unique(f"bench.{k}")
        for k in ("pipelined", "lag", "profile")
        if k == "pipelined" or getattr(args, k)
    }
    topics = [*base_topics.values(), *relay_topics.values(), *extra_topics.values()]
    wall0 = time.perf_counter()

    await fresh_schema(args.dsn, schema)
    pool = await schema_pool(args.dsn, schema, max_size=10)
    try:
        await ensure_topics(bootstrap, topics, args.partitions)
        await wait_for_leaders(bootstrap, topics)
        await warm_topics(bootstrap, topics, args.partitions)
        warm = WARMUP_MESSAGES * args.partitions

        load_secs = await load(pool, n, args.streams, args.load_chunk, args.payload_bytes)
        async with pool.acquire() as conn:
            await conn.execute("VACUUM ANALYZE events")
            t0 = time.perf_counter()
            rows = await conn.fetch(f"SELECT {COLUMNS} FROM events ORDER BY position")
            read_secs = time.perf_counter() - t0
        t0 = time.perf_counter()
        msgs: list[Message] = [
            (message_value(r), r["stream_id"].encode(), r["type"].encode()) for r in rows
        ]
        encode_secs = time.perf_counter() - t0
        del rows
        gc.collect()
        if len(msgs) != n:
            raise RuntimeError(f"store holds {len(msgs)} events, expected {n}")
        value_bytes = sum(len(v) for v, _, _ in msgs)
        mbytes = value_bytes / MB

        # side figure, and a warm-up of broker and process before the compared runs
        pipelined_secs, _ = await run_baseline(bootstrap, extra_topics["pipelined"], msgs, n)

        # each measurement gets a fresh producer and a fresh topic; baseline and relay alternate
        base_secs: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
        relay_secs: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
        base_cpu: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
        relay_cpu: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
        phases: dict[int, list[dict[str, float]]] = {b: [] for b in args.batch_sizes}
        on_topic: dict[int, list[int]] = {b: [] for b in args.batch_sizes}
        for b, rep in runs:
            secs, cpu = await run_baseline(bootstrap, base_topics[b, rep], msgs, b)
            base_secs[b].append(secs)
            base_cpu[b].append(cpu / secs)
            held = await topic_size(bootstrap, base_topics[b, rep], args.partitions)
            if held != n + warm:
                raise RuntimeError(
                    f"baseline topic holds {held} messages, expected {n} + {warm} warm-up messages"
                )
            secs, cpu, relay = await run_relay(
                pool, bootstrap, relay_topics[b, rep], f"bench_b{b}_r{rep}", b, n
            )
            relay_secs[b].append(secs)
            relay_cpu[b].append(cpu / secs)
            phases[b].append(relay.phase)
            held = await topic_size(bootstrap, relay_topics[b, rep], args.partitions)
            on_topic[b].append(held - warm)
        del msgs

        print()
        print(
            f"Setup: {n:,} events in {min(args.streams, n):,} streams, data ~"
            f"{args.payload_bytes} B, message value mean {value_bytes / n:.0f} B "
            f"({mbytes:.1f} MB total), {args.partitions} partitions, acks=all, idempotent, "
            f"{os.cpu_count()} CPUs"
        )
        print(
            f"Load (side figure): {n / load_secs:,.0f} events/s via append, "
            f"{args.load_chunk} events/tx ({load_secs:.1f} s)"
        )
        print(
            f"Baseline prep (untimed): read all rows {read_secs:.2f} s "
            f"({n / read_secs:,.0f} rows/s), build messages (message_value, key, headers) "
            f"{encode_secs:.2f} s ({n / encode_secs:,.0f} rows/s)"
        )
        print(
            f"Baseline pipelined (all in flight, one wait; also the warm-up): "
            f"{n / pipelined_secs:,.0f} ev/s, {mbytes / pipelined_secs:.1f} MB/s "
            f"({pipelined_secs:.2f} s)"
        )
        print()
        if args.repeat > 1:
            print(f"Medians of {args.repeat} runs per batch size; relay phases are means.")
        header = (
            f"{'batch':>6} | {'baseline ev/s':>13} {'MB/s':>6} {'cpu':>4} | "
            f"{'relay ev/s':>10} {'MB/s':>6} {'secs':>6} {'cpu':>4} | "
            f"{'relay/base':>10} | {'fetch s':>7} "
            f"{'publish s':>9} {'record s':>8} | {'acked on topic':>14}"
        )
        print(header)
        print("-" * len(header))
        for b in args.batch_sizes:
            bs, rs = statistics.median(base_secs[b]), statistics.median(relay_secs[b])
            base_rate, relay_rate = n / bs, n / rs
            ph = {k: statistics.fmean(p[k] for p in phases[b]) for k in phases[b][0]}
            bc, rc = statistics.median(base_cpu[b]), statistics.median(relay_cpu[b])
            print(
                f"{b:>6} | {base_rate:>13,.0f} {mbytes / bs:>6.1f} {bc:>4.0%} | "
                f"{relay_rate:>10,.0f} {mbytes / rs:>6.1f} {rs:>6.2f} {rc:>4.0%} | "
                f"{relay_rate / base_rate:>10.2f} | {ph['fetch']:>7.2f} "
                f"{ph['publish']:>9.2f} {ph['record']:>8.2f} | {min(on_topic[b]):>14,}"
            )
        if args.repeat > 1:
            print()
            for b in args.batch_sizes:
                print(
                    f"batch {b}: baseline ev/s "
                    + ", ".join(f"{n / s:,.0f}" for s in base_secs[b])
                    + "; relay ev/s "
                    + ", ".join(f"{n / s:,.0f}" for s in relay_secs[b])
                )
        print()
        print(
            "relay ev/s = N / drain() time; drain returns after the last batch is acked and "
            "checkpointed,\nso it is the end-to-end Kafka-acknowledged rate. "
            "'acked on topic' = sum of the topic's end offsets minus the warm-up messages\n"
            "(min over runs). Every topic is fresh and warmed; every run has a fresh "
            "producer.\ncpu = this Python process's CPU time / wall time during the run "
            "(~100% = bound by this process)."
        )

        if args.profile:
            b = args.batch_sizes[0]
            profiler = cProfile.Profile()
            profiler.enable()
            secs, _, _ = await run_relay(
                pool, bootstrap, extra_topics["profile"], "bench_profile", b, n
            )
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).strip_dirs()
            stats.sort_stats("tottime").print_stats(25)
            print(
                f"\ncProfile of one extra relay drain, batch {b} ({secs:.2f} s under the "
                f"profiler), top 25 by own time:"
            )
            print(out.getvalue())

        if args.lag:
            await measure_lag(pool, bootstrap, extra_topics["lag"], args)
    finally:
        await pool.close()
        await drop_schema(args.dsn, schema)
        if not args.keep_topics:
            await delete_topics(bootstrap, topics)
    print(f"\nwall time {time.perf_counter() - wall0:.1f} s")


if __name__ == "__main__":
    asyncio.run(main())
