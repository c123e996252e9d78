"""B4 event-store append: our store against the `eventsourcing` library's PostgreSQL recorder
on the same database, with plain asyncpg inserts as the floor, all in one run.

    python -m bench.append [--events 100000] [--batch 1000] [--commands 4000] [--clients 8]
                           [--repeat 3] [--no-record]

Three stores, each in a fresh schema of the same PostgreSQL:

* **ours**: `shared.eventstore.append` into the kernel `events` table: optimistic concurrency
  (`UNIQUE(stream_id, version)`), command-id dedupe, the appending transaction's `xid8` on each
  row for the relay's no-skip ordering, and the "append is the first write" check.
* **eventsourcing**: `eventsourcing.postgres.PostgresApplicationRecorder` 9.5.6 (psycopg 3 with
  its C extension, pipeline mode): `UNIQUE(originator_id, originator_version)` and a table lock
  (`LOCK TABLE ... IN EXCLUSIVE MODE`) per insert so its notification ids follow commit order.
* **plain**: asyncpg into a table with no constraints or indexes (`executemany`, and one
  `INSERT` per transaction): the floor for "getting these rows into PostgreSQL".

The same events go to every store: `CrossingRecorded` contract payloads (about 490 bytes of
JSON; stored as `jsonb` by ours and plain, as the same JSON bytes by eventsourcing), spread
over `--events / 10` streams, version-major. Ours gets the payload models, as the services'
handlers hand them over, so its figures include dumping them.

(a) `--events` events appended by one client in batches of `--batch` events, one transaction
    each: events/s. Ours: `append` in the caller's transaction, as the batch handlers do.
(b) `--commands` one-event commands (each a new version of one of `--commands` streams) from
    `--clients` concurrent clients, each command its own transaction: transactions/s. Ours
    runs the product's command path, `shared.commands.execute` with a command id (an
    `Idempotency-Key`): read the stream and the command id's earlier result, fold, decide,
    append. The target compares it with eventsourcing's recorder inserting the same events
    (its insert alone: no read before it). The services' commands also project into their own
    tables in the command's transaction (BEGIN, append, projection, COMMIT); that path, with a
    one-row upsert for projection, is reported next to it. Our clients are asyncio tasks on a
    pool of `--clients` connections; eventsourcing's are threads on a psycopg pool of the same
    size (its recorder is synchronous).

Each figure is the best of `--repeat` runs (stores alternate within a repeat; every run starts
from an empty table). Ratios are ours / eventsourcing; the targets are >= 2x in (a) and >= 5x
in (b) (issue 8).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson

from bench import report
from shared.commands import Aggregate, execute
from shared.contracts import EventPayload
from shared.contracts.checkpoint import CrossingRecorded
from shared.envelope import Envelope
from shared.eventstore import CommandContext, PendingEvent, append
from shared.testing import drop_schema, fresh_schema, schema_pool, unique

DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:55432/grid")
EVENT_TYPE = "CrossingRecorded"
PLAIN_DDL = """
CREATE TABLE plain_events (
    stream_id text NOT NULL, version integer NOT NULL, type text NOT NULL, data jsonb NOT NULL
)
"""
PLAIN_INSERT = "INSERT INTO plain_events (stream_id, version, type, data) VALUES ($1, $2, $3, $4)"
# the read model the projected commands keep, like a service's own table
PROJECTION_DDL = """
CREATE TABLE crossings_seen (
    crossing_id text PRIMARY KEY, node_id text NOT NULL, decision text NOT NULL,
    version integer NOT NULL
)
"""
PROJECT = """
INSERT INTO crossings_seen (crossing_id, node_id, decision, version) VALUES ($1, $2, $3, $4)
ON CONFLICT (crossing_id) DO UPDATE SET decision = EXCLUDED.decision, version = EXCLUDED.version
"""


# -- the events ------------------------------------------------------------------------------


def crossing(i: int) -> dict[str, Any]:
    """About 300 bytes of JSON, shaped like a gate's crossing record."""
    return {
        "crossing_id": f"c-{i:08d}",
        "checkpoint_id": f"gate-{i % 29:02d}",
        "node_id": f"compound-{i % 97:03d}",
        "kind": "person",
        "direction": "in" if i % 2 else "out",
        "id_hmac": f"{i:064x}",
        "document_type": "resident_id",
        "document_masked": "110105********1234",
        "temperature": 36.5,
        "health_code": "green",
        "decision": "admit",
        "reasons": [],
        "recorded_by": f"officer-{i % 13:02d}",
    }


def stream_of(k: int, streams: int) -> tuple[str, int]:
    """Version-major: every stream's version 1, then every stream's version 2, ..."""
    version, s = divmod(k, streams)
    return f"crossing-{s:07d}", version + 1


class Events:
    """The same events in each store's input form, built before any clock starts."""

    def __init__(self, n: int, streams: int) -> None:
        self.at = datetime.now(UTC)
        self.models = [CrossingRecorded.model_validate(crossing(i)) for i in range(n)]
        self.data = [m.model_dump(mode="json") for m in self.models]
        self.keys = [stream_of(k, streams) for k in range(n)]
        self.pending = [
            PendingEvent(s, "crossing", v, m, self.at, m.node_id)
            for (s, v), m in zip(self.keys, self.models, strict=True)
        ]
        self.ids = [uuid.uuid5(uuid.NAMESPACE_URL, s) for s, _ in self.keys]
        self.payloads = [orjson.dumps(d) for d in self.data]

    def stored(self, lo: int, hi: int) -> list[Any]:
        from eventsourcing.persistence import StoredEvent

        return [
            StoredEvent(
                originator_id=self.ids[k],
                originator_version=self.keys[k][1],
                topic=EVENT_TYPE,
                state=self.payloads[k],
            )
            for k in range(lo, hi)
        ]


# -- ours --------------------------------------------------------------------------------------


async def ours_batches(pool: Any, ev: Events, batch: int) -> float:
    ctx = CommandContext(actor="bench")
    t0 = time.perf_counter()
    async with pool.acquire() as conn:
        for i in range(0, len(ev.pending), batch):
            async with conn.transaction():
                await append(conn, ev.pending[i : i + batch], ctx)
    return time.perf_counter() - t0


def _count(state: int, event: EventPayload, version: int) -> int:
    return state + 1


CROSSING = Aggregate("crossing", 0, _count)


async def project_crossings(conn: Any, events: list[Envelope]) -> None:
    for env in events:
        d = env.data
        await conn.execute(PROJECT, d["crossing_id"], d["node_id"], d["decision"], env.version)


async def ours_commands(pool: Any, ev: Events, clients: int, projected: bool = False) -> float:
    """`execute` one command per event, as a service's handler does."""
    todo = iter(range(len(ev.keys)))

    async def client() -> None:
        for k in todo:
            stream_id, _ = ev.keys[k]
            model = ev.models[k]
            await execute(
                pool,
                CROSSING,
                stream_id,
                decide=lambda state, model=model: [model],  # type: ignore[misc]
                ctx=CommandContext(actor="bench", command_id=f"bench:{k}"),
                occurred_at=ev.at,
                node_id=model.node_id,
                project=project_crossings if projected else None,
            )

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - t0


# -- plain asyncpg -------------------------------------------------------------------------------


async def plain_batches(pool: Any, ev: Events, batch: int) -> float:
    rows = [(s, v, EVENT_TYPE, d) for (s, v), d in zip(ev.keys, ev.data, strict=True)]
    t0 = time.perf_counter()
    async with pool.acquire() as conn:
        for i in range(0, len(rows), batch):
            async with conn.transaction():
                await conn.executemany(PLAIN_INSERT, rows[i : i + batch])
    return time.perf_counter() - t0


async def plain_commands(pool: Any, ev: Events, clients: int) -> float:
    todo = iter(range(len(ev.keys)))

    async def client() -> None:
        async with pool.acquire() as conn:
            for k in todo:
                s, v = ev.keys[k]
                async with conn.transaction():
                    await conn.execute(PLAIN_INSERT, s, v, EVENT_TYPE, ev.data[k])

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - t0


# -- eventsourcing --------------------------------------------------------------------------------


class Library:
    """eventsourcing's PostgreSQL application recorder in its own schema."""

    def __init__(self, dsn: str, schema: str, pool_size: int) -> None:
        from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

        url = urlsplit(dsn)
        self.datastore = PostgresDatastore(
            dbname=url.path.lstrip("/"),
            host=url.hostname or "127.0.0.1",
            port=url.port or 5432,
            user=url.username or "postgres",
            password=url.password or "",
            schema=schema,
            pool_size=pool_size,
        )
        self.recorder = PostgresApplicationRecorder(self.datastore)
        self.recorder.create_table()

    def batches(self, ev: Events, batch: int) -> float:
        chunks = [ev.stored(i, min(i + batch, len(ev.keys))) for i in range(0, len(ev.keys), batch)]
        t0 = time.perf_counter()
        for chunk in chunks:
            self.recorder.insert_events(chunk)
        return time.perf_counter() - t0

    def commands(self, ev: Events, clients: int) -> float:
        singles = [ev.stored(k, k + 1) for k in range(len(ev.keys))]
        todo = iter(singles)
        lock = threading.Lock()

        def client() -> None:
            while True:
                with lock:
                    one = next(todo, None)
                if one is None:
                    return
                self.recorder.insert_events(one)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as threads:
            for f in [threads.submit(client) for _ in range(clients)]:
                f.result()
        return time.perf_counter() - t0

    def count(self) -> int:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT count(*) AS n FROM {self.datastore.schema}.stored_events")
            row = curs.fetchone()
            assert row is not None
            return int(row["n"])

    def close(self) -> None:
        self.datastore.close()


# -- the runs ----------------------------------------------------------------------------------


async def in_fresh_schema(
    dsn: str, clients: int, run: Callable[[Any], Any], ddl: str = "", table: str = "events"
) -> tuple[float, int]:
    """(seconds, rows stored in `table`) of `run(pool)` in a new kernel schema."""
    schema = unique("bench_append")
    await fresh_schema(dsn, schema, *([ddl] if ddl else []))
    pool = await schema_pool(dsn, schema, max_size=clients)
    try:
        secs = await run(pool)
        return secs, int(await pool.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await pool.close()
        await drop_schema(dsn, schema)


async def library_run(dsn: str, clients: int, run: Callable[[Library], float]) -> tuple[float, int]:
    schema = unique("bench_es")
    conn = await asyncpg.connect(dsn)
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.close()
    try:
        lib = await asyncio.to_thread(Library, dsn, schema, clients)
        try:
            secs = await asyncio.to_thread(run, lib)
            return secs, await asyncio.to_thread(lib.count)
        finally:
            lib.close()
    finally:
        await drop_schema(dsn, schema)


def expect(name: str, stored: int, n: int) -> None:
    if stored != n:
        raise RuntimeError(f"{name} stored {stored} rows, expected {n}")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--commands", type=int, default=4_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dsn", default=DSN)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    dsn, n, m, b, c = args.dsn, args.events, args.commands, args.batch, args.clients

    batched = Events(n, max(1, n // 10))
    singles = Events(m, m)
    secs: dict[str, list[float]] = {
        k: [] for k in ("ours_a", "lib_a", "plain_a", "ours_b", "ours_bp", "lib_b", "plain_b")
    }
    for _ in range(args.repeat):
        s, rows = await in_fresh_schema(dsn, c, lambda p: ours_batches(p, batched, b))
        expect("ours (a)", rows, n)
        secs["ours_a"].append(s)
        s, rows = await library_run(dsn, c, lambda lib: lib.batches(batched, b))
        expect("eventsourcing (a)", rows, n)
        secs["lib_a"].append(s)
        s, rows = await in_fresh_schema(
            dsn, c, lambda p: plain_batches(p, batched, b), PLAIN_DDL, "plain_events"
        )
        expect("plain (a)", rows, n)
        secs["plain_a"].append(s)
        s, rows = await in_fresh_schema(dsn, c, lambda p: ours_commands(p, singles, c))
        expect("ours (b)", rows, m)
        secs["ours_b"].append(s)
        s, rows = await in_fresh_schema(
            dsn, c, lambda p: ours_commands(p, singles, c, projected=True), PROJECTION_DDL
        )
        expect("ours, projected (b)", rows, m)
        secs["ours_bp"].append(s)
        s, rows = await library_run(dsn, c, lambda lib: lib.commands(singles, c))
        expect("eventsourcing (b)", rows, m)
        secs["lib_b"].append(s)
        s, rows = await in_fresh_schema(
            dsn, c, lambda p: plain_commands(p, singles, c), PLAIN_DDL, "plain_events"
        )
        expect("plain (b)", rows, m)
        secs["plain_b"].append(s)

    rate = {k: (n if k.endswith("_a") else m) / min(v) for k, v in secs.items()}
    lib = "eventsourcing 9.5.6 PostgresApplicationRecorder"
    checks = [
        report.check(
            f"(a) batches of {b:,} events",
            "events/s",
            rate["ours_a"],
            target=">= 2x eventsourcing",
            met=rate["ours_a"] >= 2 * rate["lib_a"],
            baseline=rate["lib_a"],
            baseline_name=lib,
        ),
        report.check(
            f"(b) one-event commands, {c} clients",
            "tx/s",
            rate["ours_b"],
            target=">= 5x eventsourcing",
            met=rate["ours_b"] >= 5 * rate["lib_b"],
            baseline=rate["lib_b"],
            baseline_name=lib,
        ),
    ]
    figures = {
        "(a) plain asyncpg executemany, no constraints (floor), events/s": rate["plain_a"],
        "(a) ours / floor": round(rate["ours_a"] / rate["plain_a"], 3),
        "(b) plain asyncpg one-row transactions (floor), tx/s": rate["plain_b"],
        "(b) ours / floor": round(rate["ours_b"] / rate["plain_b"], 3),
        "(b) ours with a one-row projection in the command's transaction, tx/s": rate["ours_bp"],
        "(b) ours with the projection / eventsourcing": round(rate["ours_bp"] / rate["lib_b"], 2),
        "runs (events/s or tx/s, each run)": ", ".join(
            f"{k} " + "/".join(f"{(n if k.endswith('_a') else m) / s:,.0f}" for s in v)
            for k, v in secs.items()
        ),
    }
    print(
        f"B4 event-store append: (a) {n:,} events in batches of {b:,}; "
        f"(b) {m:,} one-event commands from {c} clients; best of {args.repeat}"
    )
    report.print_checks(checks)
    for k, v in figures.items():
        print(f"  {k}: {report._num(v)}")
    if not args.no_record:
        report.record(
            "B4",
            {
                "title": "event-store append",
                "command": "python -m bench.append",
                "setup": (
                    f"(a) {n:,} CrossingRecorded events (~490 B JSON, {n // 10:,} streams) "
                    f"appended by one client in transactions of {b:,}; (b) {m:,} one-event "
                    f"commands from {c} concurrent clients through shared.commands.execute with "
                    "a command id (one read of the stream and the id's earlier result, fold, "
                    "decide, the append as one statement), against eventsourcing inserting the "
                    "same events one per transaction. Same PostgreSQL, a fresh schema per run, "
                    f"best of {args.repeat} runs. Ours: OCC on (UNIQUE(stream_id, version)), "
                    "command-id dedupe, xid8 per row for the relay's ordering, the first-write "
                    "check. eventsourcing: psycopg 3 (C extension, pipeline mode), its EXCLUSIVE "
                    "table lock per insert."
                ),
                "checks": checks,
                "figures": figures,
            },
        )


if __name__ == "__main__":
    asyncio.run(main())
