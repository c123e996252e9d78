"""Reporting figures benchmark: how fast the `figures` projection applies events, and what a
`summary` costs against the same question answered by a GROUP BY over the raw events.

    python -m bench.reporting [--events 1000000] [--households 10000] [--days 30] [--queries 300]

Set-up: a fresh reporting schema (migrations). A place tree of 1 district → 10 streets → 5
communities each → 4 grids each → --households / 200 households per grid (via buildings of
10 households), then 2.5 persons per household, then visits (door / phone, all outcomes),
crossings (all decisions), temperature readings and inquiries spread over --days days, up to
--events envelopes in all. They are fed straight to the consumer's handler (`FIGURES`) in
batches of 500 (the consumer's `max_records`), each batch in its own transaction: no Kafka,
no dedupe, just the projection's own work (decoding, state lookups, spreading over
ancestors, the single upsert). The same envelopes are stored in the schema's `events` table
(indexed on node_id, type, occurred_at) for the baseline.

Question asked, for a district, a community and a grid, on a day in the middle of the range:
"visits by method that day, and persons at the end of that day, for the node and everything
under it". Pre-aggregated: `api.figures.figures_of` (two index lookups on
`node_day_metrics`). Baseline: a GROUP BY over `events` joined to the subtree of `places`.
p50/p99 over --queries runs each.

Figures come from one machine where PostgreSQL and this process share the CPUs: compare the
ratios within a run, not absolute numbers across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from services.reporting.api.figures import figures_of
from services.reporting.projections import PLACES
from services.reporting.projections_figures import FiguresProjection
from shared.db import create_pool
from shared.envelope import Envelope
from shared.migrations import upgrade_async
from shared.testing import drop_schema, unique

DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:55432/grid")
ZONE = ZoneInfo("Asia/Shanghai")
BATCH = 500
START = datetime(2022, 4, 1, tzinfo=ZONE)
DECISIONS = ["admit"] * 7 + ["deny", "persuade_return", "refer"]
OUTCOMES = ["screened"] * 6 + ["absent", "absent", "refused", "vacant"]


def env(type_: str, stream: str, at: datetime, node: str | None, /, **data: Any) -> Envelope:
    return Envelope(
        type=type_,
        schema_version=1,
        stream_id=stream,
        stream_type=stream.split("-", 1)[0],
        version=1,
        occurred_at=at,
        recorded_at=at,
        node_id=node,
        data=data,
    )


def tree(households: int) -> tuple[list[Envelope], list[str], dict[str, str]]:
    """NodeCreated envelopes root first, the household ids, and named probes."""
    out: list[Envelope] = []
    at = START - timedelta(days=30)

    def node(node_id: str, parent: tuple[str, str] | None, kind: str) -> tuple[str, str]:
        label = node_id.replace("-", "_")
        path = f"{parent[1]}.{label}" if parent else label
        out.append(
            env(
                "NodeCreated",
                f"node-{node_id}",
                at,
                node_id,
                node_id=node_id,
                parent_id=parent[0] if parent else None,
                kind=kind,
                name=node_id,
                path=path,
            )
        )
        return node_id, path

    per_grid = max(1, households // 200)
    homes: list[str] = []
    root = node("d", None, "district")
    for s in range(10):
        street = node(f"s{s}", root, "street")
        for c in range(5):
            comm = node(f"s{s}-c{c}", street, "community")
            for g in range(4):
                grid = node(f"s{s}-c{c}-g{g}", comm, "grid")
                for b in range((per_grid + 9) // 10):
                    building = node(f"{grid[0]}-b{b}", grid, "building")
                    for h in range(min(10, per_grid - 10 * b)):
                        homes.append(node(f"{building[0]}-h{h}", building, "household")[0])
    return out, homes, {"district": "d", "community": "s0-c0", "grid": "s0-c0-g0"}


def events(total: int, homes: list[str], days: int, rng: random.Random) -> Iterator[Envelope]:
    """Households and persons first, then field events across `days` days."""
    at = START - timedelta(days=1)
    persons: list[tuple[str, str]] = []
    n = 0
    for h in homes:
        yield env("HouseholdRegistered", f"household-{h}", at, h, household_id=h, node_id=h)
        n += 1
        for k in range(2 + (len(persons) % 2)):
            pid = f"p-{h}-{k}"
            persons.append((pid, h))
            yield env(
                "PersonRegistered",
                f"person-{pid}",
                at,
                h,
                person_id=pid,
                household_id=h,
                residency="resident",
                tags=["低保"] if rng.random() < 0.03 else [],
                document_type="resident_id",
                document_masked="110105********1234",
                name_masked="张*",
                id_hmac="ab" * 32,
            )
            n += 1
    grids = sorted({h.rsplit("-", 2)[0] for h in homes})
    i = 0
    while n < total:
        at = START + timedelta(seconds=rng.randrange(days * 86400))
        roll = rng.random()
        i += 1
        if roll < 0.3:
            h = rng.choice(homes)
            yield env(
                "HouseholdVisited",
                f"visit-{i}",
                at,
                h,
                visit_id=f"v{i}",
                household_id=h,
                method=rng.choice(["door", "door", "phone", "notice"]),
                outcome=rng.choice(OUTCOMES),
                commitment_signed=rng.random() < 0.5,
                visitor="w",
            )
        elif roll < 0.6:
            g = rng.choice(grids)
            yield env(
                "CrossingRecorded",
                f"crossing-{i}",
                at,
                g,
                crossing_id=f"x{i}",
                checkpoint_id=f"gate-{g}",
                node_id=g,
                kind="person",
                direction=rng.choice(["in", "out"]),
                decision=rng.choice(DECISIONS),
                reasons=[],
                recorded_by="gk",
            )
        elif roll < 0.85:
            pid, h = rng.choice(persons)
            yield env(
                "TemperatureRecorded",
                f"watch-{i}",
                at,
                h,
                reading_id=f"r{i}",
                subject_id=pid,
                celsius=round(rng.uniform(36.0, 37.6), 1),
                slot_day=at.date().isoformat(),
                slot="08:00-10:00",
                recorded_by="m",
            )
        else:
            pid, h = rng.choice(persons)
            yield env(
                "PersonInquired",
                f"inquiry-{i}",
                at,
                h,
                inquiry_id=f"i{i}",
                subject_id=pid,
                household_id=h,
                inquirer="w",
            )
        n += 1


async def store_raw(pool: Any, batch: list[Envelope]) -> None:
    await pool.execute(
        """
        INSERT INTO events (event_id, stream_id, stream_type, version, type, schema_version,
                            occurred_at, recorded_at, node_id, data)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[],
                             $6::int[], $7::timestamptz[], $8::timestamptz[], $9::text[],
                             $10::text[]::jsonb[])
        """,
        [e.event_id for e in batch],
        [e.stream_id for e in batch],
        [e.stream_type for e in batch],
        [e.version for e in batch],
        [e.type for e in batch],
        [e.schema_version for e in batch],
        [e.occurred_at for e in batch],
        [e.recorded_at for e in batch],
        [e.node_id for e in batch],
        [orjson.dumps(e.data).decode() for e in batch],
    )


BASELINE = """
WITH under AS (
    SELECT id FROM places WHERE path <@ (SELECT path FROM places WHERE id = $1)
)
SELECT 'visits.' || (e.data->>'method') AS metric, count(*) AS value
FROM events e JOIN under u ON u.id = e.node_id
WHERE e.type = 'HouseholdVisited'
  AND e.occurred_at >= $2 AND e.occurred_at < $2 + interval '1 day'
GROUP BY 1
UNION ALL
SELECT 'stock.persons', count(*)
FROM events e JOIN under u ON u.id = e.node_id
WHERE e.type = 'PersonRegistered' AND e.occurred_at < $2 + interval '1 day'
"""


async def timed(run: Callable[[], Awaitable[Any]], times: int) -> tuple[float, float, Any]:
    latencies, result = [], None
    for _ in range(times):
        t0 = time.perf_counter()
        result = await run()
        latencies.append(time.perf_counter() - t0)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    return statistics.median(latencies) * 1000, p99 * 1000, result


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--households", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    args = parser.parse_args()

    schema = unique("bench_reporting")
    await upgrade_async("reporting", DSN, schema)
    pool = await create_pool(DSN, schema, max_size=4)
    projection = FiguresProjection(ZONE)
    rng = random.Random(7)
    try:
        nodes, homes, probes = tree(args.households)
        async with pool.acquire() as conn, conn.transaction():
            await PLACES(conn, nodes)
            await projection(conn, nodes)
        applied, spent, chunk = 0, 0.0, []
        raw_spent = 0.0
        print(f"tree: {len(nodes)} nodes, {len(homes)} households; feeding {args.events} events")

        async def feed(batch: list[Envelope]) -> None:
            nonlocal applied, spent, raw_spent
            t0 = time.perf_counter()
            async with pool.acquire() as conn, conn.transaction():
                await projection(conn, batch)
            spent += time.perf_counter() - t0
            applied += len(batch)
            t1 = time.perf_counter()
            await store_raw(pool, batch)
            raw_spent += time.perf_counter() - t1
            if applied % 100_000 < BATCH:
                print(f"  {applied} applied, {applied / spent:.0f} events/s so far", flush=True)

        for e in events(args.events, homes, args.days, rng):
            chunk.append(e)
            if len(chunk) == BATCH:
                await feed(chunk)
                chunk = []
        if chunk:
            await feed(chunk)
        print(f"projection: {applied} events in {spent:.1f} s = {applied / spent:.0f} events/s")
        print(f"raw INSERT of the same events (for the baseline): {applied / raw_spent:.0f} rows/s")
        async with pool.acquire() as conn:
            await conn.execute("CREATE INDEX ON events (node_id, type, occurred_at)")
            await conn.execute("ANALYZE")
            rows = await conn.fetchval("SELECT count(*) FROM node_day_metrics")
            print(f"node_day_metrics: {rows} rows")

        day = (START + timedelta(days=args.days // 2)).date()
        day_start = datetime.combine(day, datetime.min.time(), ZONE).astimezone(UTC)
        print(f"\nsummary of {day} (visits by method + persons), {args.queries} runs each:")
        print(f"{'level':<10} {'pre p50':>9} {'pre p99':>9} {'raw p50':>9} {'raw p99':>9} ratio")
        async with pool.acquire() as conn:
            for level, node_id in probes.items():

                async def pre(node_id: str = node_id) -> Any:
                    return await figures_of(conn, [node_id], day)

                async def raw(node_id: str = node_id) -> Any:
                    return await conn.fetch(BASELINE, node_id, day_start)

                p50, p99, fig = await timed(pre, args.queries)
                r50, r99, rows = await timed(raw, max(5, args.queries // 10))
                want = {r["metric"]: r["value"] for r in rows}
                got = {k: v for k, v in fig[node_id].flows.items() if k in want}
                got["stock.persons"] = fig[node_id].stocks["persons"]
                assert got == want, (level, got, want)
                print(
                    f"{level:<10} {p50:>7.2f}ms {p99:>7.2f}ms {r50:>7.1f}ms {r99:>7.1f}ms"
                    f" x{r50 / p50:.0f}"
                )
        print("(answers checked equal; raw runs: max(5, queries/10))")
    finally:
        await pool.close()
        if not args.keep:
            await drop_schema(DSN, schema)


if __name__ == "__main__":
    asyncio.run(main())
