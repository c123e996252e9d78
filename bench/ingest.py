"""B1 end-to-end ingest: crossings uploaded through checkpoint's batch API until reporting's
`summary` counts them, beside raw PostgreSQL and raw Kafka baselines from the same run.

    python -m bench.ingest [--events 60000] [--batch 2000] [--uploaders 3]
                           [--rate 5000] [--seconds 20] [--no-record]

Set-up: registry, checkpoint and reporting run as real uvicorn servers on loopback, each in its
own process with its production settings (`bench.servers`: fresh schemas, topic prefix and
consumer groups). Through registry's API: a district, a street and three compounds; through
checkpoint's: an open gate on each compound (once checkpoint's place view has the compound).
A warm-up upload is made visible before any clock starts (consumer groups joined, topics
warm). The path measured is the whole system's: HTTP upload -> validation, HMAC and masking,
the gate's decision, append (the events table is the outbox) -> relay -> Kafka ->
reporting's consumers (`figures` and the others) -> `GET /v1/nodes/{id}/summary`.

1. *Max rate*: `--events` crossings in uploads of `--batch`, `--uploaders` at a time, as fast
   as the API takes them. Figure: events / (time the summary first counts all of them - time
   the first upload was sent).
2. *Fixed offered rate*: `--rate` crossings/s for `--seconds` (an upload of rate/20 every
   50 ms, each sent on schedule whether or not earlier ones have returned). The summary is
   polled every 20 ms; event k became visible at the first poll (time of its answer) counting
   at least k crossings, and its delay is that time minus the time event k was offered
   (the horizontal distance between the offered and the visible cumulative curves).

Baselines, same payloads:
* raw asyncpg `COPY` of the same rows (one column per field) into a plain table;
* raw aiokafka: the same JSON payloads produced (acks=all, idempotent, like the relay) and
  consumed from a fresh topic by a consumer in this process: events/s until all are
  consumed, and p50/p99 produce-to-consume delay at the same offered rate and schedule.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from bench import report
from bench.crossings import national_id
from bench.relay import wait_for_leaders, warm_topics
from bench.servers import Servers, client, running
from shared.kafka import ensure_topics, relay_producer
from shared.testing import drop_schema, fresh_schema, schema_pool, unique

DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:55432/grid")
BOOTSTRAP = os.environ.get("TEST_KAFKA_BOOTSTRAP", "127.0.0.1:59092")
ZONE = ZoneInfo(os.environ.get("GRID_TIMEZONE", "Asia/Shanghai"))
TICK = 0.05  # seconds between uploads at the fixed rate
POLL = 0.02  # seconds between summary polls at the fixed rate
COMPOUNDS = ("b1-warm", "b1-max", "b1-rate")
COPY_COLUMNS = [
    "id",
    "checkpoint_id",
    "kind",
    "direction",
    "document_number",
    "health_code",
    "temperature",
    "occurred_at",
]


# -- the crossings ------------------------------------------------------------------------------


def crossings(prefix: str, n: int, gate: str, at: datetime) -> list[dict[str, Any]]:
    """Persons at an open gate: 1 in 20 with a yellow code (refused), 1 in 50 with fever."""
    return [
        {
            "id": f"{prefix}-{i}",
            "checkpoint_id": gate,
            "kind": "person",
            "direction": "in" if i % 2 else "out",
            "document_number": national_id(i),
            "health_code": "yellow" if i % 20 == 0 else "green",
            "temperature": 37.8 if i % 50 == 0 else 36.4,
            "occurred_at": at.isoformat(),
        }
        for i in range(n)
    ]


def bodies(items: list[dict[str, Any]], size: int) -> list[tuple[int, bytes]]:
    """Upload bodies, encoded before any clock starts: (items in it, JSON bytes)."""
    return [
        (len(items[i : i + size]), orjson.dumps({"items": items[i : i + size]}))
        for i in range(0, len(items), size)
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_queue_seconds(pid: int) -> float:
    """Time the process's main thread (the event loop) has spent runnable but waiting for a
    core (Linux schedstat)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


# -- the system -------------------------------------------------------------------------------


@dataclass
class System:
    servers: Servers
    http: dict[str, httpx.AsyncClient]
    day: date
    at: datetime
    admin: dict[str, str] = field(default_factory=dict)

    async def visible(self, node_id: str) -> int:
        r = await self.http["reporting"].get(
            f"/v1/nodes/{node_id}/summary",
            params={"date": self.day.isoformat()},
            headers=self.admin,
        )
        if r.status_code == 404:
            return -1
        r.raise_for_status()
        return int(orjson.loads(r.content)["flows"].get("crossings", 0))

    async def upload(self, body: bytes, expected: int) -> None:
        r = await self.http["checkpoint"].post(
            "/v1/crossings:batch",
            content=body,
            headers={**self.admin, "Content-Type": "application/json"},
        )
        if r.status_code != 200:
            raise RuntimeError(f"upload refused: {r.status_code} {r.text[:500]}")
        created = orjson.loads(r.content)["created"]
        if created != expected:
            raise RuntimeError(f"upload created {created} of {expected}: {r.text[:500]}")

    async def wait_for(self, node_id: str, count: int, timeout: float, every: float) -> float:
        """Poll the summary until it counts `count`; the perf_counter time of that answer."""
        deadline = time.perf_counter() + timeout
        while True:
            seen = await self.visible(node_id)
            now = time.perf_counter()
            if seen >= count:
                return now
            if now > deadline:
                raise TimeoutError(f"{node_id}: {seen} of {count} visible after {timeout}s")
            await asyncio.sleep(every)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout}s")
        await asyncio.sleep(0.1)


async def set_up(sys_: System) -> None:
    registry, checkpoint = sys_.http["registry"], sys_.http["checkpoint"]
    tree = [("b1-d", None, "district"), ("b1-s", "b1-d", "street")]
    tree += [(c, "b1-s", "compound") for c in COMPOUNDS]
    for node_id, parent, kind in tree:
        r = await registry.post(
            "/v1/nodes",
            headers=sys_.admin,
            json={"id": node_id, "parent_id": parent, "kind": kind, "name": node_id},
        )
        if r.status_code != 201:
            raise RuntimeError(f"node {node_id}: {r.status_code} {r.text}")
    for compound in COMPOUNDS:
        body = {
            "id": f"{compound}-gate",
            "node_id": compound,
            "name": f"{compound} 大门",
            "level": "compound",
            "opened_at": (sys_.at - timedelta(days=1)).isoformat(),
            "policy": {"residents_only": False, "health_code_colours": ["green"]},
        }

        async def opened(body: dict[str, Any] = body) -> bool:
            r = await checkpoint.post("/v1/checkpoints", headers=sys_.admin, json=body)
            if r.status_code in (200, 201, 409):
                return True
            if r.status_code in (404, 422):  # the compound is not in checkpoint's view yet
                print(f"  waiting for checkpoint's view of {body['node_id']}: {r.text[:200]}")
                return False
            raise RuntimeError(f"gate {body['id']}: {r.status_code} {r.text}")

        await until(opened, f"gate on {compound}")
    for compound in COMPOUNDS:

        async def known(compound: str = compound) -> bool:
            return await sys_.visible(compound) >= 0

        await until(known, f"{compound} in reporting")


async def warm_up(sys_: System) -> None:
    items = crossings("warm", 500, "b1-warm-gate", sys_.at)
    for n, body in bodies(items, 250):
        await sys_.upload(body, n)
    await sys_.wait_for("b1-warm", len(items), timeout=120, every=0.1)


async def max_rate(sys_: System, n: int, batch: int, uploaders: int) -> dict[str, float]:
    queue = bodies(crossings("max", n, "b1-max-gate", sys_.at), batch)
    pending = iter(queue)
    pids = {name: sys_.servers[name].pid() for name in ("checkpoint", "reporting")}
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    waited0 = run_queue_seconds(pids["checkpoint"])

    async def uploader() -> None:
        for count, body in pending:
            await sys_.upload(body, count)

    t0 = time.perf_counter()
    accepting = asyncio.gather(*(uploader() for _ in range(uploaders)))
    visible = asyncio.create_task(sys_.wait_for("b1-max", n, timeout=900, every=0.05))
    await accepting
    accepted = time.perf_counter()
    seen = await visible
    # CPU time each server used per crossing (checkpoint's relay has published them all by
    # now), and the share of one core that is over the run: on a machine that other work
    # shares, a server that wants the CPU all the time may get much less of it
    cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
    waited = run_queue_seconds(pids["checkpoint"]) - waited0
    return {
        "events_per_s": n / (seen - t0),
        "accepted_per_s": n / (accepted - t0),
        "checkpoint_cpu_us": cpu["checkpoint"] / n * 1e6,
        "reporting_cpu_us": cpu["reporting"] / n * 1e6,
        "checkpoint_core_share": cpu["checkpoint"] / (seen - t0),
        "checkpoint_waiting_share": waited / (seen - t0),
    }


async def open_loop(
    rate: float, seconds: float, send: Callable[[int], Awaitable[None]]
) -> tuple[list[float], int]:
    """Call send(i) at t0 + i * TICK; returns the scheduled perf_counter times and per-tick size."""
    ticks = int(seconds / TICK)
    per_tick = max(1, round(rate * TICK))
    t0 = time.perf_counter() + 0.05
    scheduled = [t0 + i * TICK for i in range(ticks)]

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, scheduled[i] - time.perf_counter()))
        await send(i)

    await asyncio.gather(*(one(i) for i in range(ticks)))
    return scheduled, per_tick


def delays(
    scheduled: list[float], per_tick: int, polls: list[tuple[float, int]], total: int
) -> list[float]:
    """Delay of each event: first poll counting >= k, minus when event k was offered."""
    times = [t for t, _ in polls]
    counts = [c for _, c in polls]
    # counts only grow; bisect on them for the first poll that covers event k
    out = []
    for k in range(1, total + 1):
        i = bisect.bisect_left(counts, k)
        offered = scheduled[(k - 1) // per_tick]
        out.append(times[i] - offered)
    return out


async def fixed_rate(sys_: System, rate: float, seconds: float) -> list[float]:
    per_tick = max(1, round(rate * TICK))
    ticks = int(seconds / TICK)
    total = per_tick * ticks
    queue = bodies(crossings("rate", total, "b1-rate-gate", sys_.at), per_tick)
    polls: list[tuple[float, int]] = []
    done = asyncio.Event()

    async def poller() -> None:
        while not done.is_set():
            seen = await sys_.visible("b1-rate")
            polls.append((time.perf_counter(), seen))
            if seen >= total:
                done.set()
            else:
                await asyncio.sleep(POLL)

    polling = asyncio.create_task(poller())

    async def send(i: int) -> None:
        count, body = queue[i]
        await sys_.upload(body, count)

    scheduled, _ = await open_loop(rate, seconds, send)
    await asyncio.wait_for(polling, timeout=900)
    return delays(scheduled, per_tick, polls, total)


# -- baselines ---------------------------------------------------------------------------------


async def copy_baseline(dsn: str, items: list[dict[str, Any]]) -> float:
    rows = [
        (
            it["id"],
            it["checkpoint_id"],
            it["kind"],
            it["direction"],
            it["document_number"],
            it["health_code"],
            it["temperature"],
            datetime.fromisoformat(it["occurred_at"]),
        )
        for it in items
    ]
    schema = unique("bench_copy")
    await fresh_schema(
        dsn,
        schema,
        "CREATE TABLE crossings_copy (id text, checkpoint_id text, kind text, direction text,"
        " document_number text, health_code text, temperature float8, occurred_at timestamptz)",
    )
    pool = await schema_pool(dsn, schema, max_size=1)
    try:
        async with pool.acquire() as conn:
            t0 = time.perf_counter()
            await conn.copy_records_to_table("crossings_copy", records=rows, columns=COPY_COLUMNS)
            secs = time.perf_counter() - t0
            assert await conn.fetchval("SELECT count(*) FROM crossings_copy") == len(rows)
    finally:
        await pool.close()
        await drop_schema(dsn, schema)
    return len(rows) / secs


class KafkaBaseline:
    """A fresh topic, a relay-like producer and a consumer stamping each arrival."""

    def __init__(self, bootstrap: str, partitions: int = 6) -> None:
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.topic = unique("bench.b1raw")

    async def __aenter__(self) -> KafkaBaseline:
        await ensure_topics(self.bootstrap, [self.topic], self.partitions)
        await wait_for_leaders(self.bootstrap, [self.topic])
        await warm_topics(self.bootstrap, [self.topic], self.partitions)
        self.producer = relay_producer(self.bootstrap)
        await self.producer.start()
        await self.producer.partitions_for(self.topic)
        self.consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="latest",
            enable_auto_commit=False,
        )
        await self.consumer.start()
        await until(self._assigned, "raw consumer assignment")
        for tp in self.consumer.assignment():
            await self.consumer.position(tp)
        return self

    async def _assigned(self) -> bool:
        await self.consumer.getmany(timeout_ms=100)
        return len(self.consumer.assignment()) == self.partitions

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()
        await self.consumer.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([self.topic])
        finally:
            await admin.close()

    async def send(self, payloads: list[tuple[bytes, bytes]]) -> None:
        futures = [
            await self.producer.send(self.topic, value=value, key=key) for key, value in payloads
        ]
        await asyncio.gather(*futures)

    async def consume(self, total: int, arrivals: list[float]) -> None:
        while len(arrivals) < total:
            batches = await self.consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.perf_counter()
            for records in batches.values():
                arrivals.extend(now for _ in records)


def payloads(items: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    return [(it["id"].encode(), orjson.dumps(it)) for it in items]


async def kafka_rate(bootstrap: str, items: list[dict[str, Any]], batch: int) -> float:
    messages = payloads(items)
    async with KafkaBaseline(bootstrap) as k:
        arrivals: list[float] = []
        t0 = time.perf_counter()
        consuming = asyncio.create_task(k.consume(len(messages), arrivals))
        for i in range(0, len(messages), batch):
            await k.send(messages[i : i + batch])
        await asyncio.wait_for(consuming, 300)
        return len(messages) / (time.perf_counter() - t0)


async def kafka_delays(bootstrap: str, rate: float, seconds: float, at: datetime) -> list[float]:
    per_tick = max(1, round(rate * TICK))
    total = per_tick * int(seconds / TICK)
    messages = payloads(crossings("raw", total, "raw-gate", at))
    async with KafkaBaseline(bootstrap) as k:
        arrivals: list[float] = []
        consuming = asyncio.create_task(k.consume(total, arrivals))

        async def send(i: int) -> None:
            await k.send(messages[i * per_tick : (i + 1) * per_tick])

        scheduled, _ = await open_loop(rate, seconds, send)
        await asyncio.wait_for(consuming, 300)
    # arrival order within the topic's partitions is not offer order: compare the curves
    arrivals.sort()
    return [arrivals[k] - scheduled[k // per_tick] for k in range(total)]


# -- main --------------------------------------------------------------------------------------


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=2_000, help="items per upload")
    parser.add_argument("--uploaders", type=int, default=3)
    parser.add_argument("--rate", type=float, default=5_000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--dsn", default=DSN)
    parser.add_argument("--bootstrap", default=BOOTSTRAP)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    wall = time.perf_counter()
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)

    async with running(["registry", "checkpoint", "reporting"], args.dsn, args.bootstrap) as srv:
        http = {name: client(srv[name]) for name in ("registry", "checkpoint", "reporting")}
        sys_ = System(srv, http, at.astimezone(ZONE).date(), at, srv.headers("admin"))
        try:
            await set_up(sys_)
            await warm_up(sys_)
            pids = {name: srv[name].pid() for name in ("checkpoint", "reporting")}
            print(f"servers up and warm ({time.perf_counter() - wall:.0f} s); pids {pids}")
            rates = await max_rate(sys_, args.events, args.batch, args.uploaders)
            print(f"max rate: {rates}")
            lag = await fixed_rate(sys_, args.rate, args.seconds)
        finally:
            for c in http.values():
                await c.aclose()

    items = crossings("max", args.events, "b1-max-gate", at)
    copy_rate = await copy_baseline(args.dsn, items)
    raw_rate = await kafka_rate(args.bootstrap, items, args.batch)
    raw_lag = await kafka_delays(args.bootstrap, args.rate, args.seconds, at)

    p50, p99, raw50, raw99 = pct(lag, 50), pct(lag, 99), pct(raw_lag, 50), pct(raw_lag, 99)
    ev = rates["events_per_s"]
    checks = [
        report.check(
            "events/s at max rate (vs COPY)",
            "events/s",
            ev,
            target=">= 20,000 events/s",
            met=ev >= 20_000,
            baseline=copy_rate,
            baseline_name="raw asyncpg COPY of the same rows",
        ),
        report.check(
            "events/s at max rate (vs Kafka)",
            "events/s",
            ev,
            target=">= 20,000 events/s",
            met=ev >= 20_000,
            baseline=raw_rate,
            baseline_name="raw aiokafka produce+consume of the same payloads",
        ),
        report.check(
            f"p99 visibility delay at {args.rate:,.0f} events/s offered",
            "s",
            p99,
            target="< 1 s",
            met=p99 < 1.0,
            baseline=raw99,
            baseline_name="raw aiokafka produce-to-consume p99, same schedule",
        ),
    ]
    figures = {
        "max rate: uploads accepted by the API, events/s": rates["accepted_per_s"],
        "checkpoint CPU per crossing at max rate (API, decision, append, ledger, relay), µs": (
            rates["checkpoint_cpu_us"]
        ),
        "reporting CPU per crossing at max rate (consumers, summary polls), µs": (
            rates["reporting_cpu_us"]
        ),
        "share of the max-rate run checkpoint was on a core": rates["checkpoint_core_share"],
        "share of the max-rate run checkpoint was runnable but waiting for a core": (
            rates["checkpoint_waiting_share"]
        ),
        f"p50 visibility delay at {args.rate:,.0f}/s offered, s": p50,
        "raw aiokafka p50 produce-to-consume delay, s": raw50,
        "max visibility delay at the fixed rate, s": max(lag),
    }
    print(
        f"B1 end-to-end ingest: {args.events:,} crossings in uploads of {args.batch:,} "
        f"({args.uploaders} at a time); fixed rate {args.rate:,.0f}/s for {args.seconds:g} s"
    )
    report.print_checks(checks)
    for k, v in figures.items():
        print(f"  {k}: {report._num(v)}")
    print(f"wall time {time.perf_counter() - wall:.0f} s")
    if not args.no_record:
        report.record(
            "B1",
            {
                "title": "end-to-end ingest",
                "command": "python -m bench.ingest",
                "setup": (
                    f"Crossings through checkpoint's `POST /v1/crossings:batch` until reporting's "
                    f"`GET /v1/nodes/{{id}}/summary` counts them; registry, checkpoint and "
                    f"reporting as uvicorn servers on loopback (one process each, production "
                    f"settings). Max rate: {args.events:,} crossings in uploads of "
                    f"{args.batch:,}, {args.uploaders} uploads in flight. Fixed rate: "
                    f"{args.rate:,.0f}/s offered for {args.seconds:g} s (an upload every "
                    f"{TICK * 1000:.0f} ms), summary polled every {POLL * 1000:.0f} ms."
                ),
                "checks": checks,
                "figures": figures,
            },
        )


if __name__ == "__main__":
    asyncio.run(main())
