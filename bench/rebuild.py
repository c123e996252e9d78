"""B3 rebuild benchmark: events/s rebuilding ALL reporting read models from Kafka, against the
raw aiokafka consume rate of the same topics measured in the same run.

    python -m bench.rebuild [--events 150000] [--households 10000] [--days 30] [--batch 20000]

Set-up: topics `<run>.registry.events`, `<run>.screening.events`, `<run>.checkpoint.events`
(GRID_TOPIC_PARTITIONS partitions, default 6) filled with contract envelopes keyed by stream
like the relay does: the place tree, households and persons of `bench.reporting`'s data set,
then visits, crossings, temperatures (one watch stream per person, versions counting up) and
inquiries over --days days, --events envelopes in all. An empty reporting schema stands for
the live one.

Measured:
* baseline: one aiokafka consumer without a group reading every partition of the three
  topics from offset 0 to the end (records only, no decoding);
* rebuild: `services.reporting.rebuild` as the CLI and `POST /v1/admin/rebuild` run it — a
  fresh schema migrated, every read model of `CONSUMES` caught up from offset 0 (each
  consumer reads its topics; they run concurrently), the gate, the swap, the old schema
  dropped. events/s = envelopes in the topics / wall time of the whole rebuild; the
  catch-up alone is printed too.

Results go to bench/results.json under "B3" (`bench.report.record`). Topics and schemas are
deleted afterwards. Target (issue 8): >= 100,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections import defaultdict
from collections.abc import Iterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.report import check, print_checks, record
from bench.reporting import ZONE, events, tree
from services.reporting.config import ReportingSettings
from services.reporting.main import CONSUMES
from services.reporting.rebuild import reporting_rebuild
from shared.contracts import checkpoint, registry, screening
from shared.db import create_pool
from shared.envelope import Envelope
from shared.kafka import ensure_topics
from shared.lag import partitions_of
from shared.migrations import upgrade_async
from shared.testing import delete_topics, drop_schema, unique

DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:55432/grid")
BOOTSTRAP = os.environ.get("TEST_KAFKA_BOOTSTRAP", "127.0.0.1:59092")
TOPIC_OF = {
    **dict.fromkeys(registry.CATALOG.events, registry.TOPIC),
    **dict.fromkeys(screening.CATALOG.events, screening.TOPIC),
    **dict.fromkeys(checkpoint.CATALOG.events, checkpoint.TOPIC),
}


def data_set(total: int, households: int, days: int) -> Iterator[Envelope]:
    """bench.reporting's envelopes; a person's temperatures form one stream (watch-<id>)."""
    nodes, homes, _ = tree(households)
    yield from nodes
    versions: defaultdict[str, int] = defaultdict(int)
    for env in events(total - len(nodes), homes, days, random.Random(7)):
        if env.type == "TemperatureRecorded":
            stream = f"watch-{env.data['subject_id']}"
            versions[stream] += 1
            env = env.model_copy(update={"stream_id": stream, "version": versions[stream]})
        yield env


async def produce(settings: ReportingSettings, envelopes: Iterator[Envelope]) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks=1,
        linger_ms=20,
        max_batch_size=1024 * 1024,
    )
    await producer.start()
    sent = 0
    try:
        pending = []
        for env in envelopes:
            topic = settings.topic(TOPIC_OF[env.type])
            pending.append(await producer.send(topic, env.to_json(), key=env.stream_id.encode()))
            sent += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def raw_consume(settings: ReportingSettings, topics: list[str]) -> tuple[int, float]:
    """Every record of `topics` from offset 0, no group, no decoding: (records, seconds)."""
    partitions = await partitions_of(settings.kafka_bootstrap, topics)
    kafka = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await kafka.start()
    try:
        kafka.assign(partitions)
        ends = await kafka.end_offsets(partitions)
        await kafka.seek_to_beginning(*partitions)
        t0 = time.perf_counter()
        records, behind = 0, {tp for tp, end in ends.items() if end > 0}
        while behind:
            batches = await kafka.getmany(timeout_ms=200, max_records=10_000)
            records += sum(len(r) for r in batches.values())
            for tp in list(behind):
                if await kafka.position(tp) >= ends[tp]:
                    behind.discard(tp)
        return records, time.perf_counter() - t0
    finally:
        await kafka.stop()


async def persons_at_root(settings: ReportingSettings) -> int:
    pool = await create_pool(settings.database_url, settings.schema_name, max_size=1)
    try:
        value: int = await pool.fetchval(
            "SELECT coalesce(sum(value), 0)::bigint FROM node_day_metrics"
            " WHERE node_id = 'd' AND metric = 'stock.persons'"
        )
        return value
    finally:
        await pool.close()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--households", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--batch", type=int, default=20_000, help="records per transaction")
    parser.add_argument("--no-record", action="store_true", help="do not write results.json")
    args = parser.parse_args()

    run = unique("bench_rebuild")
    settings = ReportingSettings(
        database_url=DSN,
        kafka_bootstrap=BOOTSTRAP,
        db_schema=f"{run}_reporting",
        topic_prefix=f"{run}.",
        timezone=str(ZONE),
    )
    topics = [settings.topic(t) for t in (registry.TOPIC, screening.TOPIC, checkpoint.TOPIC)]
    try:
        await ensure_topics(settings.kafka_bootstrap, topics, settings.topic_partitions)
        await upgrade_async("reporting", DSN, settings.schema_name)
        t0 = time.perf_counter()
        sent = await produce(settings, data_set(args.events, args.households, args.days))
        print(
            f"produced {sent} envelopes to {len(topics)} topics in {time.perf_counter() - t0:.1f} s"
        )

        records, raw_seconds = await raw_consume(settings, topics)
        assert records == sent, (records, sent)
        raw_rate = records / raw_seconds
        print(f"baseline raw aiokafka consume: {records} records in {raw_seconds:.2f} s"
              f" = {raw_rate:,.0f} records/s")  # fmt: skip

        rebuild = reporting_rebuild(settings, CONSUMES, batch=args.batch)
        t0 = time.perf_counter()
        status = await rebuild.run()
        seconds = time.perf_counter() - t0
        rate = sent / seconds
        read = sum(status.records.values())
        print(f"rebuild of {len(CONSUMES)} read models: {sent} events in {seconds:.2f} s"
              f" = {rate:,.0f} events/s ({read} records read by all consumers,"
              f" {status.rounds} rounds, gate held {status.paused_seconds} s)")  # fmt: skip
        print(f"  seconds per phase: {dict(status.seconds)}")
        persons = await persons_at_root(settings)
        print(f"check: persons at the district after the rebuild = {persons}")
        checks = [
            check(
                "rebuild of every reporting read model from offset 0",
                "events/s",
                rate,
                target=">= 100,000 events/s",
                met=rate >= 100_000,
                baseline=raw_rate,
                baseline_name="raw aiokafka consume of the same topics",
            )
        ]
        print_checks(checks)
        if not args.no_record:
            record(
                "B3",
                {
                    "title": "rebuild",
                    "command": "python -m bench.rebuild",
                    "setup": f"{sent:,} contract envelopes ({args.households:,} households,"
                    f" {args.days} days) on 3 topics x {settings.topic_partitions} partitions;"
                    f" {len(CONSUMES)} read models ({', '.join(n for n, _, _ in CONSUMES)})"
                    " rebuilt into a fresh schema and swapped in; wall time of the whole rebuild",
                    "checks": checks,
                    "figures": {
                        "rebuild seconds (whole)": round(seconds, 2),
                        **{f"seconds {phase}": s for phase, s in status.seconds.items()},
                        "records read by all read models": read,
                        "live consumers held at the gate, s": status.paused_seconds,
                        "records per transaction (max)": args.batch,
                    },
                },
            )
    finally:
        await drop_schema(DSN, settings.schema_name)
        await delete_topics(settings.kafka_bootstrap, f"{run}.")


if __name__ == "__main__":
    asyncio.run(main())
