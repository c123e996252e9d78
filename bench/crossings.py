"""Checkpoint benchmarks: crossing decisions through the batch API, and single-crossing
latency at a steady offered load, each beside a bare-`append` baseline from the same run.

    python -m bench.crossings [--crossings 20000] [--residents 5000] [--rate 50] [--seconds 20]

Set-up: a fresh checkpoint schema (migrations), its local views filled directly with SQL (a
compound with `--residents` registered persons in households under it, a car per tenth
household, a risk area, some persons under quarantine), a residents-only gate opened through
the API, and a gatekeeper's shift. The app runs in this process behind `httpx.ASGITransport`
(no sockets, no relay, no consumers): the figures are the service's own work — validation,
HMAC and masking, reading the views, deciding, appending, filling the ledger — not HTTP
parsing or the network.

1. *Batch*: `--crossings` crossings (persons and vehicles, in and out, residents and not,
   some from the risk area, some with fever, some quarantined people going out) uploaded in
   batches of 5000 through `POST /v1/crossings:batch`; decisions/s over the whole upload.
   Baseline: the very events those uploads stored (`CrossingRecorded` and breaches), read
   back and appended again by bare `shared.eventstore.append` into a fresh event store, in
   transactions of the batch's chunk size: the floor for "getting these events stored".
2. *Single*: `POST /v1/crossings` by a gatekeeper on shift, sent open-loop at `--rate`
   requests/s for `--seconds` (each request starts on schedule whether or not earlier ones
   finished); latency is measured from the scheduled start, so queueing counts. Baseline:
   one bare `append` transaction of one `CrossingRecorded` at the same offered load.

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
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx

from services.checkpoint.config import CheckpointSettings
from services.checkpoint.main import create_app
from shared import identity
from shared.auth import issue_token
from shared.db import create_pool
from shared.envelope import utc_now
from shared.eventstore import PendingEvent, append
from shared.migrations import upgrade_async
from shared.testing import drop_schema, fresh_schema, unique

DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:55432/grid")
BATCH = 5000
GATE = "bench-gate"
PROVINCES = ["110105", "220102", "510121", "420103", "440305", "330106"]


def national_id(i: int) -> str:
    first17 = f"{PROVINCES[i % len(PROVINCES)]}{1950 + i % 50}{1 + i % 12:02d}{1 + i % 28:02d}"
    first17 += f"{i % 1000:03d}"
    return first17 + identity.resident_id_check_digit(first17)


def plate(i: int) -> str:
    return f"吉A{i % 100000:05d}"


async def seed_views(pool: Any, residents: int, key: bytes) -> None:
    """Places, persons, vehicles, a risk area and quarantines, as the consumers would."""
    households = max(1, residents // 2)
    await pool.execute(
        "INSERT INTO places (id, parent_id, kind, name, path, version, updated_at) VALUES"
        " ('bench-root', NULL, 'district', '基准区', 'bench_root', 1, now()),"
        " ('bench-comp', 'bench-root', 'compound', '基准小区', 'bench_root.bench_comp', 1, now())"
    )
    await pool.execute(
        "INSERT INTO places (id, parent_id, kind, name, path, version, updated_at)"
        " SELECT 'hh' || g, 'bench-comp', 'household', g::text,"
        " ('bench_root.bench_comp.hh' || g)::ltree, 1, now()"
        " FROM generate_series(0, $1 - 1) g",
        households,
    )
    rows = []
    for i in range(residents):
        number = national_id(i)
        rows.append(
            (
                f"p{i}",
                f"hh{i % households}",
                "resident",
                "resident_id",
                identity.mask_document("resident_id", number),
                "张*",
                identity.id_hmac(key, "resident_id", number),
                1,
            )
        )
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "persons",
            records=rows,
            columns=[
                "id",
                "household_id",
                "residency",
                "document_type",
                "document_masked",
                "name_masked",
                "id_hmac",
                "version",
            ],
        )
        await conn.copy_records_to_table(
            "vehicles",
            records=[(f"v{i}", f"hh{i}", plate(i)) for i in range(0, households, 10)],
            columns=["id", "household_id", "plate"],
        )
    await pool.execute(
        "INSERT INTO risk_areas (id, name, level, region_codes, valid_from)"
        " VALUES ('wuhan', '湖北省武汉市', 'high', '{4201}', '2020-01-01')"
    )
    await pool.execute(
        "INSERT INTO watch_periods (id, subject_id, kind, type, starts_at)"
        " SELECT 'q' || g, 'p' || g, 'quarantine', 'home', now() - interval '2 days'"
        " FROM generate_series(0, $1 - 1, 50) g",
        residents,
    )


def crossing(i: int, residents: int, at: str) -> dict[str, Any]:
    """A varied mix: 1 in 10 a vehicle; 1 in 4 a non-resident; 1 in 15 from Wuhan; 1 in 40
    with fever; every 50th resident is quarantined."""
    rng = random.Random(i)
    body: dict[str, Any] = {
        "id": f"c-{i}",
        "checkpoint_id": GATE,
        "occurred_at": at,
        "direction": rng.choice(["in", "out"]),
        "health_code": "green" if rng.random() > 0.03 else "yellow",
        "temperature": 38.1 if rng.random() < 0.025 else round(36.0 + rng.random(), 1),
        "test_report_at": at,
    }
    person = rng.randrange(residents) if rng.random() > 0.25 else residents + i
    if rng.random() < 0.067:
        body.update(origin="湖北省武汉市", origin_region_code="420103")
    if i % 10 == 0:
        body.update(
            kind="vehicle",
            plate=plate(rng.randrange(residents // 2 + 1)),
            passengers=[{"document_number": national_id(person)}],
        )
    else:
        body.update(kind="person", document_number=national_id(person))
    return body


async def open_loop(
    rate: float, seconds: float, send: Callable[[int], Awaitable[None]]
) -> tuple[list[float], float]:
    """Start `send(i)` at t0 + i/rate for `seconds`; latencies (s) from the scheduled start."""
    loop = asyncio.get_running_loop()
    n = int(rate * seconds)
    latencies: list[float] = []
    t0 = loop.time() + 0.05

    async def one(i: int) -> None:
        scheduled = t0 + i / rate
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        await send(i)
        latencies.append(loop.time() - scheduled)

    await asyncio.gather(*(one(i) for i in range(n)))
    return latencies, n / (loop.time() - t0)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--crossings", type=int, default=20_000)
    parser.add_argument("--residents", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    schema, bare = unique("bench_checkpoint"), unique("bench_bare")
    settings = CheckpointSettings(
        database_url=DSN, db_schema=schema, run_relay=False, run_consumers=False, db_pool_max=20
    )
    key = identity.hmac_key(settings.id_hmac_key)
    await upgrade_async("checkpoint", DSN, schema)
    await fresh_schema(DSN, bare)
    pool = await create_pool(DSN, schema)
    bare_pool = await create_pool(DSN, bare, max_size=20)
    app = create_app(settings)
    try:
        await seed_views(pool, args.residents, key)
        admin = {
            "Authorization": "Bearer "
            + issue_token(settings, sub="bench", roles=["admin"], scope=["*"])
        }
        keeper = {
            "Authorization": "Bearer "
            + issue_token(settings, sub="gk", roles=["gatekeeper"], scope=["bench-comp"])
        }
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=600
            ) as client,
        ):
            now = utc_now()
            r = await client.post(
                "/v1/checkpoints",
                headers=admin,
                json={
                    "id": GATE,
                    "node_id": "bench-comp",
                    "name": "基准小区大门",
                    "level": "compound",
                    "opened_at": (now - timedelta(days=1)).isoformat(),
                    "policy": {"residents_only": True, "test_report_max_hours": 48},
                },
            )
            assert r.status_code == 201, r.text
            r = await client.post(
                f"/v1/checkpoints/{GATE}/shifts",
                headers=admin,
                json={
                    "id": "gk-shift",
                    "sub": "gk",
                    "role": "property_guard",
                    "starts_at": (now - timedelta(hours=1)).isoformat(),
                    "ends_at": (now + timedelta(hours=12)).isoformat(),
                },
            )
            assert r.status_code == 201, r.text

            # 1. batch uploads, then bare appends of the same events
            at = (now - timedelta(minutes=1)).isoformat()
            items = [crossing(i, args.residents, at) for i in range(args.crossings)]
            decisions: dict[str, int] = {}
            start = time.perf_counter()
            for b in range(0, len(items), BATCH):
                r = await client.post(
                    "/v1/crossings:batch", headers=admin, json={"items": items[b : b + BATCH]}
                )
                assert r.status_code == 200, r.text
                for result in r.json()["results"]:
                    assert result["status"] == "created", result
                    decisions[result["decision"]] = decisions.get(result["decision"], 0) + 1
            batch_s = time.perf_counter() - start
            stored = await pool.fetch(
                "SELECT stream_id, stream_type, version, type, schema_version, occurred_at,"
                " node_id, data FROM events WHERE stream_type = 'crossing' ORDER BY position"
            )
            pending = [
                PendingEvent(
                    r["stream_id"],
                    r["stream_type"],
                    r["version"],
                    None,
                    r["occurred_at"],
                    r["node_id"],
                    type=r["type"],
                    schema_version=r["schema_version"],
                    data=r["data"],
                )
                for r in stored
            ]
            chunk = settings.crossing_batch_chunk
            start = time.perf_counter()
            async with bare_pool.acquire() as conn:
                for c in range(0, len(pending), chunk):
                    async with conn.transaction():
                        await append(conn, pending[c : c + chunk])
            bare_s = time.perf_counter() - start

            # 2. single crossings at a steady offered load, then bare one-event appends
            singles = [
                crossing(10**7 + i, args.residents, "")
                for i in range(int(args.rate * args.seconds))
            ]
            statuses: dict[int, int] = {}

            async def send(i: int) -> None:
                body = dict(singles[i])
                body.pop("occurred_at")
                body.pop("test_report_at")
                r = await client.post("/v1/crossings", headers=keeper, json=body)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

            single_lat, single_rate = await open_loop(args.rate, args.seconds, send)
            template = next(p for p in pending if p.type == "CrossingRecorded")

            async def bare_one(i: int) -> None:
                event = PendingEvent(
                    f"single-{i}",
                    "crossing",
                    1,
                    None,
                    utc_now(),
                    template.node_id,
                    type=template.type,
                    schema_version=template.schema_version,
                    data=template.data,
                )
                async with bare_pool.acquire() as conn, conn.transaction():
                    await append(conn, [event])

            bare_lat, bare_rate = await open_loop(args.rate, args.seconds, bare_one)
    finally:
        await pool.close()
        await bare_pool.close()
        await drop_schema(DSN, schema)
        await drop_schema(DSN, bare)

    n = len(items)
    print(
        f"views: {args.residents:,} residents, {args.residents // 20:,} cars; "
        f"decisions: {dict(sorted(decisions.items()))}"
    )
    print(
        f"batch    {n / batch_s:>10,.0f} decisions/s ({n:,} crossings in uploads of {BATCH}, "
        f"{len(pending):,} events)"
    )
    print(
        f"append   {len(pending) / bare_s:>10,.0f} events/s    (baseline: bare append of the "
        f"same events, {chunk} per transaction)"
    )
    print(f"ratio    {(n / batch_s) / (len(pending) / bare_s):>10.3f}")
    print(
        f"single   p50 {pct(single_lat, 50):7.1f} ms  p99 {pct(single_lat, 99):7.1f} ms  "
        f"(offered {args.rate:g}/s for {args.seconds:g} s, achieved {single_rate:.1f}/s, "
        f"statuses {statuses})"
    )
    print(
        f"append   p50 {pct(bare_lat, 50):7.1f} ms  p99 {pct(bare_lat, 99):7.1f} ms  "
        f"(baseline: one-event append transactions, achieved {bare_rate:.1f}/s)"
    )


if __name__ == "__main__":
    asyncio.run(main())
