"""B2 report query: reporting's `summary` and `children/summary` over HTTP at district scale,
against the same full answers computed by GROUP BY / window queries over the raw events.

    python -m bench.query [--events 1000000] [--households 40000] [--queries 300]
                          [--baseline-queries 15] [--rebuild] [--no-record]

Data set (`bench.district`, >= 1M events: ~100k persons in 40k households, visits,
crossings, temperatures, key persons, quarantines over 30 days). Built once and kept in two
schemas of the shared PostgreSQL, `bench_b2_reporting` (reporting's read models) and
`bench_b2_raw` (the raw events and a marker naming the data set); a later run with the same
parameters reuses them (`--rebuild` forces a new build). Building: the envelopes are produced
straight onto the three contract topics (under a fresh prefix), and reporting runs as a
uvicorn server with its consumers until every consumer has stored offsets at the end of every
topic it reads; the topics are then deleted. The same envelopes are copied into
`bench_b2_raw.raw_events`, with the place tree from their `NodeCreated` events in
`raw_places` (ltree path, GiST index) and an index on (node_id, occurred_at).

Measured: reporting (its consumers off) and the baseline app (`bench.query_baseline`) run as
uvicorn servers on loopback; one client asks, one request at a time, for a district, a street,
a community and a grid (`summary`) and for the district and a community (`children/summary`)
on a day in the middle of the period, `--queries` times each for reporting and
`--baseline-queries` times each for the baseline. Before timing, both answers are compared for
every probe: flows, stocks (incl. screened households, key persons, under quarantine by type)
and coverage % must be equal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections import Counter
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import orjson

from bench import report
from bench.district import TOPICS, Scale, events, tree
from bench.relay import wait_for_leaders
from bench.servers import Spec, client, running
from services.reporting.main import CONSUMES
from shared.kafka import ensure_topics, relay_producer
from shared.testing import drop_schema, unique

DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:55432/grid")
BOOTSTRAP = os.environ.get("TEST_KAFKA_BOOTSTRAP", "127.0.0.1:59092")
REPORTING = "bench_b2_reporting"
RAW = "bench_b2_raw"
RAW_DDL = [
    "CREATE EXTENSION IF NOT EXISTS ltree",
    f"CREATE SCHEMA {RAW}",
    f"""CREATE TABLE {RAW}.raw_events (
        event_id uuid PRIMARY KEY, type text NOT NULL, stream_id text NOT NULL,
        version integer NOT NULL, occurred_at timestamptz NOT NULL, node_id text,
        data jsonb NOT NULL)""",
    f"CREATE TABLE {RAW}.marker (key text PRIMARY KEY, events bigint, built_at timestamptz)",
]
RAW_INDEXES = [
    f"""CREATE TABLE {RAW}.raw_places AS
        SELECT data->>'node_id' AS id, data->>'parent_id' AS parent_id, data->>'kind' AS kind,
               data->>'name' AS name, (data->>'path')::public.ltree AS path
        FROM {RAW}.raw_events WHERE type = 'NodeCreated'""",
    f"ALTER TABLE {RAW}.raw_places ADD PRIMARY KEY (id)",
    f"CREATE INDEX ON {RAW}.raw_places USING gist (path)",
    f"CREATE INDEX ON {RAW}.raw_places (parent_id)",
    f"CREATE INDEX ON {RAW}.raw_events (node_id, occurred_at)",
    f"ANALYZE {RAW}.raw_events",
    f"ANALYZE {RAW}.raw_places",
]
SUMMARY_PROBES = ["district", "street", "community", "grid"]
CHILDREN_PROBES = ["district", "community"]


# -- the data set ---------------------------------------------------------------------------


async def built(dsn: str, scale: Scale) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{RAW}.marker"):
            return False
        return bool(
            await conn.fetchval(f"SELECT count(*) FROM {RAW}.marker WHERE key = $1", scale.key)
        )
    finally:
        await conn.close()


async def copy_raw(dsn: str, rows: list[tuple[Any, ...]]) -> None:
    conn = await asyncpg.connect(dsn)  # no JSON codec: data goes as text
    try:
        for sql in RAW_DDL:
            await conn.execute(sql)
        await conn.copy_records_to_table(
            "raw_events",
            schema_name=RAW,
            records=rows,
            columns=["event_id", "type", "stream_id", "version", "occurred_at", "node_id", "data"],
        )
        for sql in RAW_INDEXES:
            await conn.execute(sql)
    finally:
        await conn.close()


async def produce(bootstrap: str, prefix: str, messages: list[tuple[str, bytes, bytes]]) -> None:
    producer = relay_producer(bootstrap)
    await producer.start()
    try:
        for i in range(0, len(messages), 5000):
            futures = [
                await producer.send(f"{prefix}{topic}", value=value, key=key)
                for topic, key, value in messages[i : i + 5000]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def folded(dsn: str, prefix: str, counts: Counter[str]) -> tuple[bool, str]:
    """Has every reporting consumer stored offsets at the end of every topic it reads?"""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f"SELECT consumer, topic, sum(next_offset) AS n FROM {REPORTING}.consumer_offsets"
            " GROUP BY consumer, topic"
        )
        parked = await conn.fetchval(f"SELECT count(*) FROM {REPORTING}.dead_letters")
    finally:
        await conn.close()
    done = {(r["consumer"].rsplit(".", 1)[-1], r["topic"]): r["n"] for r in rows}
    behind = []
    for name, topics, _ in CONSUMES:
        for topic in topics:
            have = done.get((name, f"{prefix}{topic}"), 0)
            if have < counts[topic]:
                behind.append(f"{name}/{topic} {have}/{counts[topic]}")
    return not behind, f"parked {parked}; behind: {', '.join(behind) or 'none'}"


async def build(dsn: str, bootstrap: str, scale: Scale) -> dict[str, Any]:
    t0 = time.perf_counter()
    for schema in (REPORTING, RAW):
        await drop_schema(dsn, schema)
    messages: list[tuple[str, bytes, bytes]] = []
    rows: list[tuple[Any, ...]] = []
    counts: Counter[str] = Counter()
    for e in events(scale):
        env, topic = e.envelope, TOPICS[e.topic]
        data = orjson.dumps(env["data"]).decode()
        messages.append((topic, env["stream_id"].encode(), orjson.dumps(env)))
        rows.append(
            (
                UUID(env["event_id"]),
                env["type"],
                env["stream_id"],
                env["version"],
                datetime.fromisoformat(env["occurred_at"]),
                env["node_id"],
                data,
            )
        )
        counts[topic] += 1
    generated = time.perf_counter() - t0
    print(f"  generated {len(messages):,} events in {generated:.0f} s: {dict(counts)}", flush=True)
    await copy_raw(dsn, rows)
    del rows
    print(f"  raw events copied and indexed ({time.perf_counter() - t0:.0f} s)", flush=True)
    run = unique("bench_b2")
    prefix = f"{run}."
    topics = [f"{prefix}{t}" for t in TOPICS.values()]
    await ensure_topics(bootstrap, topics, 6)
    await wait_for_leaders(bootstrap, topics)
    spec = Spec("reporting", schema=REPORTING)
    async with running([spec], dsn, bootstrap, run=run):
        f0 = time.perf_counter()
        await produce(bootstrap, prefix, messages)
        produced = time.perf_counter() - f0
        print(f"  produced to Kafka in {produced:.0f} s; reporting folding...", flush=True)
        del messages
        last = ""
        while True:
            done, status = await folded(dsn, prefix, counts)
            if done:
                break
            if status != last and int(time.perf_counter() - f0) % 30 < 3:
                print(f"  {time.perf_counter() - f0:.0f} s: {status}", flush=True)
                last = status
            await asyncio.sleep(2)
        fold = time.perf_counter() - f0
    total = sum(counts.values())
    conn = await asyncpg.connect(dsn)
    try:
        parked = await conn.fetchval(f"SELECT count(*) FROM {REPORTING}.dead_letters")
        await conn.execute(f"ANALYZE {REPORTING}.node_day_metrics")
        await conn.execute(f"INSERT INTO {RAW}.marker VALUES ($1, $2, now())", scale.key, total)
    finally:
        await conn.close()
    if parked:
        print(f"  WARNING: reporting parked {parked} events as dead letters")
    return {
        "events": total,
        "fold_events_per_s": total / fold,
        "build_seconds": time.perf_counter() - t0,
        "parked": parked,
    }


# -- measuring --------------------------------------------------------------------------------


async def timed(
    http: httpx.AsyncClient, url: str, params: dict[str, str], times: int, headers: dict[str, str]
) -> list[float]:
    out = []
    for _ in range(times):
        t0 = time.perf_counter()
        r = await http.get(url, params=params, headers=headers)
        out.append(time.perf_counter() - t0)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {r.text[:300]}")
    return out


def answer(body: dict[str, Any]) -> Any:
    if "children" in body and isinstance(body["children"], list):
        return [(c["id"], c["flows"], c["stocks"], c["coverage_pct"]) for c in body["children"]]
    return (body["flows"], body["stocks"], body["coverage_pct"], body["descendants_by_kind"])


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def measure(
    dsn: str, bootstrap: str, scale: Scale, queries: int, base_queries: int
) -> dict[str, Any]:
    probes = tree(scale).probes
    day = scale.day(scale.days // 2).isoformat()
    specs = [
        Spec("reporting", schema=REPORTING, env={"REPORTING_RUN_CONSUMERS": "false"}),
        Spec("baseline", app="bench.query_baseline:app", schema=RAW, migrate=False),
    ]
    async with running(specs, dsn, bootstrap) as srv:
        headers = srv.headers("command")
        ours, base = client(srv["reporting"]), client(srv["baseline"])
        try:
            urls = [(f"/v1/nodes/{probes[p]}/summary", "summary", p) for p in SUMMARY_PROBES]
            urls += [
                (f"/v1/nodes/{probes[p]}/children/summary", "children", p) for p in CHILDREN_PROBES
            ]
            params = {"date": day}
            mismatches = []
            for url, _, level in urls:
                a = (await ours.get(url, params=params, headers=headers)).json()
                b = (await base.get(url, params=params, headers=headers)).json()
                if answer(a) != answer(b):
                    mismatches.append(
                        f"{level} {url}: reporting {answer(a)} != baseline {answer(b)}"
                    )
            lat: dict[str, dict[str, list[float]]] = {"ours": {}, "base": {}}
            by_probe: dict[str, dict[str, list[list[float]]]] = {"ours": {}, "base": {}}
            levels: dict[str, str] = {}
            for url, kind, level in urls:
                await timed(ours, url, params, 20, headers)  # warm
                got = await timed(ours, url, params, queries, headers)
                lat["ours"].setdefault(kind, []).extend(got)
                by_probe["ours"].setdefault(kind, []).append(got)
                levels[f"{kind} {level}"] = f"{pct(got, 50) * 1000:.2f} / {pct(got, 99) * 1000:.2f}"
            for url, kind, level in urls:
                got = await timed(base, url, params, base_queries, headers)
                lat["base"].setdefault(kind, []).extend(got)
                by_probe["base"].setdefault(kind, []).append(got)
                levels[f"{kind} {level}"] += (
                    f" vs {pct(got, 50) * 1000:.0f} / {pct(got, 99) * 1000:.0f}"
                )
                print(f"  {kind} {level}: p50 / p99 ms {levels[f'{kind} {level}']}", flush=True)
        finally:
            await ours.aclose()
            await base.aclose()
    return {
        "lat": lat,
        "mismatches": mismatches,
        "day": day,
        "levels": levels,
        "by_probe": by_probe,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--households", type=int, default=40_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--baseline-queries", type=int, default=15)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--dsn", default=DSN)
    parser.add_argument("--bootstrap", default=BOOTSTRAP)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    scale = Scale(args.events, args.households, args.days)
    wall = time.perf_counter()
    build_info: dict[str, Any] = {}
    if args.rebuild or not await built(args.dsn, scale):
        print(f"building the data set {scale.key} (once; kept for later runs)", flush=True)
        build_info = await build(args.dsn, args.bootstrap, scale)
        print(f"  built: {build_info}", flush=True)
    else:
        print(f"reusing the data set {scale.key}")
    m = await measure(args.dsn, args.bootstrap, scale, args.queries, args.baseline_queries)
    for line in m["mismatches"]:
        print("MISMATCH", line)
    checks, figures = [], {}
    for kind, name in (("summary", "summary"), ("children", "children/summary")):
        ours, base = m["lat"]["ours"][kind], m["lat"]["base"][kind]
        p99, b99 = pct(ours, 99), pct(base, 99)
        # the same questions, each probe weighted alike: mean latency per probe, averaged
        mean, base_mean = (
            statistics.fmean(statistics.fmean(v) for v in m["by_probe"][side][kind])
            for side in ("ours", "base")
        )
        checks.append(
            report.check(
                f"`{name}` p99",
                "ms",
                p99 * 1000,
                target="< 10 ms",
                met=p99 < 0.010,
                baseline=b99 * 1000,
                baseline_name="GROUP BY / window over raw events, p99",
            )
        )
        checks.append(
            report.check(
                f"`{name}` mean over the probes, times faster than GROUP BY",
                "ms",
                mean * 1000,
                target=">= 100x faster",
                met=base_mean / mean >= 100,
                baseline=base_mean * 1000,
                baseline_name="GROUP BY / window over raw events, same probes",
                ratio=base_mean / mean,
            )
        )
        figures[f"{name} p50 / p99 (reporting), ms"] = (
            f"{pct(ours, 50) * 1000:.2f} / {p99 * 1000:.2f}"
        )
        figures[f"{name} p50 / p99 (baseline), ms"] = (
            f"{pct(base, 50) * 1000:.0f} / {b99 * 1000:.0f}"
        )
    for level, value in m["levels"].items():
        figures[f"{level}: p50 / p99 ms, reporting vs baseline"] = value
    figures["answers equal (all probes)"] = "yes" if not m["mismatches"] else "NO"
    if build_info:
        figures["data set built in this run, s"] = round(build_info["build_seconds"])
        figures["reporting fold rate while building (all its consumers), events/s"] = round(
            build_info["fold_events_per_s"]
        )
    print(f"B2 report query ({scale.key}, day {m['day']}):")
    report.print_checks(checks)
    for k, v in figures.items():
        print(f"  {k}: {v}")
    print(f"wall time {time.perf_counter() - wall:.0f} s")
    if not args.no_record:
        report.record(
            "B2",
            {
                "title": "report query",
                "command": "python -m bench.query",
                "setup": (
                    f"{scale.events:,}+ events ({scale.households:,} households, ~2.5 "
                    f"persons each, {scale.days} days of visits, crossings, temperatures, key "
                    "persons, quarantines) folded by reporting's consumers from Kafka; "
                    "reporting (consumers off) and the baseline app as uvicorn servers; one "
                    f"client, sequential requests for the day {m['day']}: `summary` of a "
                    "district, street, community and grid, `children/summary` of the district "
                    f"and a community; {args.queries} requests per probe to reporting, "
                    f"{args.baseline_queries} to the baseline. Answers compared equal before "
                    "timing."
                ),
                "checks": checks,
                "figures": figures,
                "notes": [f"answer mismatch: {x}" for x in m["mismatches"]],
            },
        )


if __name__ == "__main__":
    asyncio.run(main())
