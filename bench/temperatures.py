"""Temperature readings through the batch API, beside the event store's own append rate.

    python -m bench.temperatures [--readings 20000] [--subjects 2000] [--batch 5000]

1. Full path: `POST /v1/temperatures:batch` on the screening app in-process (httpx
   ASGITransport, real PostgreSQL): validate each item, look up subjects and jurisdiction,
   then per chunk of `SCREENING_WATCH_BATCH_CHUNK` items one transaction that folds the
   subjects' watch streams, decides each reading (slot, late), appends the events and fills
   `temperature_readings`. The subjects are put in quarantine first (not timed).
2. Baseline in the same run: bare `append` of equivalent `TemperatureRecorded` events, in
   chunks of the same size, one transaction per chunk, into a fresh schema.

Figures are readings/s; the ratio says how close the full path gets to the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from services.screening.config import ScreeningSettings
from services.screening.domain.watch import OrderQuarantine
from services.screening.handlers import watch
from services.screening.main import create_app
from shared.auth import issue_token
from shared.contracts.screening import TemperatureRecorded
from shared.db import create_pool
from shared.eventstore import CommandContext, PendingEvent, append
from shared.migrations import upgrade_async
from shared.testing import drop_schema, unique

DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:55432/grid")
ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2020, 2, 1, 7, tzinfo=ZONE)


def readings(n: int, subjects: int) -> list[dict[str, Any]]:
    """n readings, round-robin over the subjects, twice a day from 1 Feb 2020."""
    items = []
    for i in range(n):
        subject, turn = i % subjects, i // subjects
        day, afternoon = divmod(turn, 2)
        at = START + timedelta(days=day, hours=9 if afternoon else 1, minutes=30 + subject % 29)
        items.append(
            {
                "id": f"r-{i}",
                "subject_id": f"h:s{subject}",
                "celsius": 36.0 + (i % 15) / 10,
                "occurred_at": at.isoformat(),
            }
        )
    return items


async def quarantine(pool: Any, settings: ScreeningSettings, subjects: int) -> None:
    ctx = CommandContext(actor="bench")

    async def one(i: int) -> None:
        cmd = OrderQuarantine(
            f"q{i}", f"h:s{i}", "bench-node", "home", None, START, date(2020, 3, 1), None
        )
        await watch.order_quarantine(pool, cmd, settings, ctx)

    for start in range(0, subjects, 50):
        await asyncio.gather(*(one(i) for i in range(start, min(start + 50, subjects))))


async def bench_api(items: list[dict[str, Any]], subjects: int, batch: int) -> tuple[float, int]:
    schema = unique("bench_screening")
    await upgrade_async("screening", DSN, schema)
    settings = ScreeningSettings(
        database_url=DSN,
        db_schema=schema,
        run_relay=False,
        run_consumers=False,
        run_scheduler=False,
        max_body_bytes=20 * 1024 * 1024,
    )
    app = create_app(settings)
    token = issue_token(settings, sub="bench-medic", roles=["medic"], scope=["*"])
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=600
            ) as client,
        ):
            await quarantine(app.state.pool, settings, subjects)
            start = time.perf_counter()
            created = 0
            for i in range(0, len(items), batch):
                r = await client.post(
                    "/v1/temperatures:batch", headers=headers, json={"items": items[i : i + batch]}
                )
                r.raise_for_status()
                body = r.json()
                assert body["errors"] == 0, body["results"][:3]
                created += body["created"]
            elapsed = time.perf_counter() - start
            stored = await app.state.pool.fetchval(
                "SELECT count(*) FROM events WHERE type = 'TemperatureRecorded'"
            )
            assert stored == created == len(items), (stored, created)
    finally:
        await drop_schema(DSN, schema)
    return len(items) / elapsed, settings.watch_batch_chunk


async def bench_append(items: list[dict[str, Any]], chunk: int) -> float:
    schema = unique("bench_append")
    await upgrade_async("screening", DSN, schema)
    pool = await create_pool(DSN, schema, min_size=1, max_size=4)
    versions: dict[str, int] = {}
    events = []
    for it in items:
        stream = f"watch:{it['subject_id']}"
        versions[stream] = versions.get(stream, 1) + 1  # version 1 is the quarantine
        at = datetime.fromisoformat(it["occurred_at"])
        payload = TemperatureRecorded(
            reading_id=it["id"],
            subject_id=it["subject_id"],
            celsius=it["celsius"],
            slot_day=at.date(),
            slot="08:00-10:00" if at.hour < 12 else "16:00-18:00",
            recorded_by="bench-medic",
        )
        events.append(PendingEvent(stream, "watch", versions[stream], payload, at, "bench-node"))
    try:
        ctx = CommandContext(actor="bench-medic")
        start = time.perf_counter()
        for i in range(0, len(events), chunk):
            async with pool.acquire() as conn, conn.transaction():
                await append(conn, events[i : i + chunk], ctx)
        elapsed = time.perf_counter() - start
    finally:
        await pool.close()
        await drop_schema(DSN, schema)
    return len(events) / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--subjects", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=5_000, help="items per HTTP request")
    args = parser.parse_args()

    items = readings(args.readings, args.subjects)
    full, chunk = await bench_api(items, args.subjects, args.batch)
    bare = await bench_append(items, chunk)
    print(
        f"readings {args.readings:,} for {args.subjects:,} subjects in quarantine, "
        f"{args.batch:,} per request, {chunk} per transaction"
    )
    print(f"batch API {full:>10,.0f} readings/s (validate, scope, fold, decide, append, project)")
    print(f"append    {bare:>10,.0f} events/s   (baseline: bare appends, same chunks)")
    print(f"ratio     {full / bare:>10.3f}")


if __name__ == "__main__":
    asyncio.run(main())
