"""Registry benchmarks: roster import and the command append path.

    python -m bench.registry_import [--persons 100000] [--commands 5000] [--concurrency 8]

1. Import: a generated roster of N persons (valid national IDs, ~2.5 per household) is
   written to CSV, then imported through the registry's import handler (parse, validate,
   HMAC, mask, encrypt PII, plan, append events, fill query tables; committed in chunks of
   1000 rows). Baseline in the same run: `COPY` of the same rows, as text, into a plain
   table with asyncpg's `copy_records_to_table` - the floor for "getting rows into Postgres".
2. Append path: N `POST /v1/nodes`-equivalent commands (`handlers.create_node`: tree lock,
   fold, decide, append, project) from `--concurrency` tasks. Baseline: the same number of
   bare `append` calls of one event each.

Figures are rows/s or events/s; the ratio says how close the full path gets to the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import tempfile
import time
from typing import Any

from bench.roster_data import generate_rows, write_csv
from services.registry.handlers import imports, places
from services.registry.handlers.people import Keys
from services.registry.pii import DEV_PII_KEYS, PiiCipher
from shared import identity
from shared.db import create_pool
from shared.envelope import utc_now
from shared.eventstore import CommandContext, PendingEvent, append
from shared.migrations import upgrade_async
from shared.settings import DEV_HMAC_KEY
from shared.testing import drop_schema, unique

DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:55432/grid")


async def fresh_registry() -> tuple[str, Any]:
    schema = unique("bench_registry")
    await upgrade_async("registry", DSN, schema)
    return schema, await create_pool(DSN, schema, min_size=2, max_size=20)


async def root(pool: Any) -> None:
    ctx = CommandContext(actor="bench")
    await places.create_node(pool, "bench-root", None, "district", "基准区", ctx, ("district",))
    await places.create_node(
        pool, "bench-comm", "bench-root", "community", "基准社区", ctx, ("community",)
    )


async def bench_import(persons: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "roster.csv")
        write_csv(path, generate_rows(persons, seed=11))
        size = os.path.getsize(path)
        schema, pool = await fresh_registry()
        try:
            await root(pool)
            keys = Keys(PiiCipher(DEV_PII_KEYS), identity.hmac_key(DEV_HMAC_KEY))
            start = time.perf_counter()
            with open(path, "rb") as f:
                report = await imports.import_roster(
                    pool,
                    keys,
                    "bench-comm",
                    f,
                    "roster.csv",
                    "text/csv",
                    CommandContext(actor="bench"),
                )
            imported = time.perf_counter() - start
            assert report.created == persons, (report.created, report.errors)
            events = await pool.fetchval("SELECT count(*) FROM events")

            with open(path, encoding="utf-8-sig", newline="") as f:
                reader = csv.reader(f)
                header = next(reader)
                rows = [tuple(r) for r in reader]
            cols = ", ".join(f"c{i} text" for i in range(len(header)))
            await pool.execute(f"CREATE TABLE roster_copy ({cols})")
            start = time.perf_counter()
            async with pool.acquire() as conn:
                await conn.copy_records_to_table("roster_copy", records=rows)
            copied = time.perf_counter() - start
        finally:
            await pool.close()
            await drop_schema(DSN, schema)
    print(f"roster: {persons:,} persons, {size / 1e6:.1f} MB CSV, {events:,} events appended")
    return persons / imported, persons / copied, events


async def bench_commands(n: int, concurrency: int) -> tuple[float, float]:
    schema, pool = await fresh_registry()
    try:
        await root(pool)
        ctx = CommandContext(actor="bench")
        queue = list(range(n))

        async def creator() -> None:
            while queue:
                i = queue.pop()
                await places.create_node(
                    pool, f"g{i}", "bench-comm", "grid", f"网格{i}", ctx, ("grid",)
                )

        start = time.perf_counter()
        await asyncio.gather(*(creator() for _ in range(concurrency)))
        full = time.perf_counter() - start

        queue = list(range(n))

        async def appender() -> None:
            while queue:
                i = queue.pop()
                async with pool.acquire() as conn, conn.transaction():
                    await append(
                        conn,
                        [
                            PendingEvent(
                                f"raw-{i}",
                                "bench",
                                1,
                                None,
                                utc_now(),
                                type="Noted",
                                schema_version=1,
                                data={"i": i},
                            )
                        ],
                    )

        start = time.perf_counter()
        await asyncio.gather(*(appender() for _ in range(concurrency)))
        bare = time.perf_counter() - start
    finally:
        await pool.close()
        await drop_schema(DSN, schema)
    return n / full, n / bare


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--commands", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    imported, copied, _ = await bench_import(args.persons)
    print(
        f"import   {imported:>10,.0f} rows/s   (full path: validate, HMAC, encrypt, events, "
        "query tables)"
    )
    print(f"COPY     {copied:>10,.0f} rows/s   (baseline: raw asyncpg COPY of the same rows)")
    print(f"ratio    {imported / copied:>10.3f}")
    full, bare = await bench_commands(args.commands, args.concurrency)
    print(
        f"commands {full:>10,.0f} events/s (create_node x{args.commands:,}, "
        f"{args.concurrency} tasks)"
    )
    print(f"append   {bare:>10,.0f} events/s (baseline: bare one-event appends)")
    print(f"ratio    {full / bare:>10.3f}")


if __name__ == "__main__":
    asyncio.run(main())
