"""What the suite looks at, straight from the private servers: the event stores, every record
of every topic (read from offset 0, `read_committed`), the consumers' stored offsets and dead
letters, each service's `GET /v1/lag`, and reporting's figures against the load generator's
ledger.

`Observer.unmet()` lists what is not recovered yet (empty: recovered); `Observer.analyse()`
counts what the issue asks for: lost and doubled writes, events missing from Kafka,
re-publications, positions published by two relay holders, records a fenced holder committed
after a newer one, dead letters, figures that differ.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.db import advisory_key
from tests.chaos.harness import (
    PUBLISHERS,
    SERVICES,
    Cluster,
    Config,
    Replica,
    connect,
    pid_of_client_port,
)
from tests.chaos.load import (
    ZONE,
    Client,
    District,
    LoadGenerator,
    comparable_flows,
    comparable_stocks,
    coverage,
)

EPOCH_HEADER = "grid-relay-epoch"
POSITION_HEADER = "grid-relay-position"


def consumers() -> dict[str, dict[str, list[str]]]:
    """service -> read model -> the services whose topics it reads."""
    found: dict[str, dict[str, list[str]]] = {
        "screening": {
            "registry-views": ["registry"],
            "reactions": ["screening"],
            "checkpoint-referrals": ["checkpoint"],
        }
    }
    for service in ("checkpoint", "reporting"):
        module = __import__(f"services.{service}.main", fromlist=["CONSUMES"])
        found[service] = {
            name: [t.removesuffix(".events") for t in topics] for name, topics, _ in module.CONSUMES
        }
    return found


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    event_id: str | None
    epoch: int | None
    position: str | None
    timestamp: float  # seconds since the epoch (the producer's create time)


class TopicLog:
    """Every committed record of some topics, read incrementally from offset 0."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.records: list[Record] = []
        self.next: dict[TopicPartition, int] = {}
        self.kafka: AIOKafkaConsumer | None = None
        self.error: str | None = None

    async def _connect(self) -> AIOKafkaConsumer:
        kafka = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            request_timeout_ms=5000,
            fetch_max_bytes=16 * 1024 * 1024,
        )
        await asyncio.wait_for(kafka.start(), 10)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        try:
            await asyncio.wait_for(admin.start(), 10)
            described = await asyncio.wait_for(admin.describe_topics(self.topics), 10)
        finally:
            await admin.close()
        partitions = sorted(
            TopicPartition(t["topic"], p["partition"])
            for t in described
            if t["error_code"] == 0
            for p in t["partitions"]
        )
        if not partitions:
            await kafka.stop()
            raise RuntimeError(f"no partitions known for {self.topics}")
        kafka.assign(partitions)
        for tp in partitions:
            self.next.setdefault(tp, 0)
            kafka.seek(tp, self.next[tp])
        self.kafka = kafka
        return kafka

    async def drop(self) -> None:
        if self.kafka is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.kafka.stop(), 5)
            self.kafka = None

    async def catch_up(self, budget: float = 15.0) -> bool:
        """Read up to the end offsets of now; False (and `error`) if Kafka did not let us."""
        try:
            kafka = self.kafka or await self._connect()
            partitions = sorted(kafka.assignment())
            ends = await asyncio.wait_for(kafka.end_offsets(partitions), 5)
            deadline = time.monotonic() + budget
            while True:
                behind = [tp for tp in partitions if await kafka.position(tp) < ends[tp]]
                if not behind:
                    break
                if time.monotonic() > deadline:
                    self.error = f"could not read up to the end offsets within {budget:.0f}s"
                    return False
                batches = await kafka.getmany(*behind, timeout_ms=300, max_records=10000)
                for tp, records in batches.items():
                    for r in records:
                        self._add(tp, r)
                for tp in behind:
                    self.next[tp] = await kafka.position(tp)
            self.error = None
            return True
        except Exception as exc:  # noqa: BLE001 - Kafka down, restarting, metadata missing
            self.error = f"{type(exc).__name__}: {exc}"
            await self.drop()
            return False

    def _add(self, tp: TopicPartition, r: Any) -> None:
        headers = {k: v for k, v in (r.headers or ())}
        try:
            event_id = str(orjson.loads(r.value)["event_id"])
        except Exception:  # noqa: BLE001 - counted as a record without an event id
            event_id = None
        epoch = headers.get(EPOCH_HEADER)
        position = headers.get(POSITION_HEADER)
        self.records.append(
            Record(
                tp.topic,
                tp.partition,
                r.offset,
                event_id,
                int(epoch) if epoch is not None and epoch.isdigit() else None,
                position.decode() if position is not None else None,
                r.timestamp / 1000.0,
            )
        )
        self.next[tp] = r.offset + 1

    def offsets(self, before: float | None = None) -> dict[tuple[str, int], list[int]]:
        """(topic, partition) -> the offsets of its data records, ascending (only those
        produced before `before`, when given)."""
        out: dict[tuple[str, int], list[int]] = defaultdict(list)
        for r in self.records:
            if before is None or r.timestamp < before:
                out[(r.topic, r.partition)].append(r.offset)
        for offs in out.values():
            offs.sort()
        return out


def publication(
    records: list[Record], stored: dict[str, tuple[str, int]], since: int = 0
) -> dict[str, Any]:
    """Records against the stored events (id -> (tx_id, position)): re-publications (from
    record `since` on for the per-fault count), events missing from Kafka, and fencing:
    positions published under two epochs, and records of an older epoch committed after a
    newer epoch's in the same partition (a fenced holder that published anyway)."""
    per_event = Counter(r.event_id for r in records)
    recent = Counter(r.event_id for r in records[since:])
    republished = sum(n - 1 for n in per_event.values() if n > 1)
    republished_now = sum(min(recent[e], per_event[e] - 1) for e in recent if per_event[e] > 1)
    unknown = sorted(e for e in per_event if e not in stored)
    no_headers = sum(1 for r in records if r.epoch is None or r.position is None)
    by_position: dict[tuple[str, str], set[int]] = defaultdict(set)
    wrong_position = []
    for r in records:
        if r.position is not None and r.epoch is not None:
            by_position[(r.topic, r.position)].add(r.epoch)
        if r.event_id in stored and r.position is not None:
            tx, pos = stored[r.event_id]
            if r.position != f"{tx}:{pos}":
                wrong_position.append(f"{r.event_id}: header {r.position}, store {tx}:{pos}")
    two_holders = sorted(
        f"{topic} {pos} epochs {sorted(e)}" for (topic, pos), e in by_position.items() if len(e) > 1
    )
    zombie = []  # a record of an older epoch after one of a newer epoch, in one partition
    newest: dict[tuple[str, int], tuple[int, int]] = {}
    for r in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        if r.epoch is None:
            continue
        key = (r.topic, r.partition)
        top = newest.get(key)
        if top is not None and r.epoch < top[0]:
            zombie.append(
                f"{r.topic}[{r.partition}]@{r.offset} epoch {r.epoch} after epoch {top[0]}@{top[1]}"
            )
        if top is None or r.epoch > top[0]:
            newest[key] = (r.epoch, r.offset)
    return {
        "records": len(records),
        "distinct_events": len(per_event),
        "stored_events": len(stored),
        "missing_from_kafka": len(set(stored) - set(per_event)),
        "republications": republished,
        "republications_this_fault": republished_now,
        "records_without_event_in_store": unknown[:10],
        "records_without_relay_headers": no_headers,
        "positions_published_by_two_holders": two_holders[:10],
        "positions_published_by_two_holders_count": len(two_holders),
        "zombie_records": zombie[:10],
        "zombie_records_count": len(zombie),
        "header_position_mismatches": wrong_position[:10],
        "epochs": sorted({r.epoch for r in records if r.epoch is not None}),
    }


@dataclass
class Facts:
    ready: dict[str, bool] = field(default_factory=dict)
    in_flight: int = 0
    db_error: str | None = None
    # service -> event id -> (tx_id, position), and when it was recorded (PostgreSQL's clock)
    store: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)
    recorded: dict[str, dict[str, float]] = field(default_factory=dict)
    db_now: float = 0.0
    backlog: dict[str, int] = field(default_factory=dict)
    kafka_ok: bool = False
    kafka_error: str | None = None
    consumer_lag: dict[str, int] = field(default_factory=dict)
    consumer_stale: dict[str, int] = field(default_factory=dict)  # not applied, produced > S ago
    dead_letters: dict[str, list[str]] = field(default_factory=dict)
    lag_api: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)  # places that differ from the ledger
    got: Figures = field(default_factory=dict)


# place -> (flows of day0, stocks today), the metrics the ledger accounts for
Figures = dict[str, tuple[Counter[str], Counter[str]]]


class Observer:
    def __init__(
        self, config: Config, cluster: Cluster, client: Client, district: District
    ) -> None:
        self.config = config
        self.cluster = cluster
        self.client = client
        self.district = district
        self.gen = cluster.generation
        self.log = TopicLog(config.bootstrap, [self.gen.topic(s) for s in PUBLISHERS])
        self.consumers = consumers()
        self.rng = random.Random(0)
        self.http = httpx.AsyncClient(timeout=5.0)

    async def close(self) -> None:
        await self.log.drop()
        await self.http.aclose()

    # -- the pieces --------------------------------------------------------------------------

    async def _ready(self, facts: Facts) -> None:
        async def one(r: Replica) -> None:
            facts.ready[r.name] = r.alive and await self.cluster.ready(r)

        await asyncio.gather(*(one(r) for r in self.cluster.all()))

    async def _database(self, facts: Facts) -> None:
        try:
            conn = await connect(self.config.dsn)
        except Exception as exc:  # noqa: BLE001
            facts.db_error = f"{type(exc).__name__}: {exc}"
            return
        try:
            for s in PUBLISHERS:
                schema = self.gen.schema(s)
                facts.db_now = float(await conn.fetchval("SELECT extract(epoch FROM now())"))
                rows = await conn.fetch(
                    "SELECT event_id::text AS id, tx_id::text AS tx, position,"
                    f" extract(epoch FROM recorded_at)::float8 AS at FROM {schema}.events"
                )
                facts.store[s] = {r["id"]: (r["tx"], r["position"]) for r in rows}
                facts.recorded[s] = {r["id"]: r["at"] for r in rows}
                facts.backlog[s] = int(
                    await conn.fetchval(
                        f"""SELECT count(*) FROM {schema}.events e
                        WHERE (e.tx_id, e.position) > COALESCE(
                            (SELECT (c.tx_id, c.position) FROM {schema}.relay_checkpoints c
                             WHERE c.relay = $1), ('0'::xid8, 0::bigint))""",
                        self.gen.relay(s),
                    )
                )
            offsets = self.log.offsets()
            stale = self.log.offsets(before=time.time() - self.config.staleness)
            for s, models in self.consumers.items():
                schema = self.gen.schema(s)
                rows = await conn.fetch(
                    f"SELECT consumer, topic, partition, next_offset FROM {schema}.consumer_offsets"
                )
                stored = {
                    (r["consumer"], r["topic"], r["partition"]): r["next_offset"] for r in rows
                }
                for name, topics in models.items():
                    consumer = self.gen.consumer(s, name)
                    wanted = {self.gen.topic(t) for t in topics}
                    for table, found in (
                        (facts.consumer_lag, offsets),
                        (facts.consumer_stale, stale),
                    ):
                        table[f"{s}.{name}"] = sum(
                            len(offs) - bisect.bisect_left(offs, stored.get((consumer, *tp), 0))
                            for tp, offs in found.items()
                            if tp[0] in wanted
                        )
                dead = await conn.fetch(
                    "SELECT consumer, stream_id, version, event_type, error"
                    f" FROM {schema}.dead_letters WHERE resolved_at IS NULL ORDER BY id"
                )
                for d in dead:
                    facts.dead_letters.setdefault(d["consumer"], []).append(
                        f"{d['event_type']} {d['stream_id']} v{d['version']}: {d['error'][:200]}"
                    )
        except Exception as exc:  # noqa: BLE001
            facts.db_error = f"{type(exc).__name__}: {exc}"
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _lag_api(self, facts: Facts) -> None:
        async def one(service: str) -> None:
            live = [r for r in self.cluster.replicas[service] if facts.ready.get(r.name)]
            if not live:
                facts.lag_api[service] = "no replica ready"
                return
            r = self.rng.choice(live)
            try:
                answer = await self.http.get(
                    f"{r.url}/v1/lag", headers=self.client.headers("admin")
                )
            except httpx.HTTPError as exc:
                facts.lag_api[service] = f"{type(exc).__name__}"
                return
            if answer.status_code == 404:
                facts.lag_api[service] = None  # not there (yet)
            elif answer.status_code != 200:
                facts.lag_api[service] = f"HTTP {answer.status_code}"
            else:
                facts.lag_api[service] = answer.json()

        await asyncio.gather(*(one(s) for s in SERVICES))

    @staticmethod
    def lag_api_unmet(service: str, answer: Any) -> list[str]:
        if answer is None:
            return []  # the endpoint does not exist on this service (yet)
        if not isinstance(answer, dict):
            return [f"GET /v1/lag on {service}: {answer}"]
        unmet = []
        lag = answer.get("lag")
        if lag != 0 and answer.get("consumers") != []:
            unmet.append(f"GET /v1/lag on {service}: consumer lag {lag!r} ({answer.get('status')})")
        relay = answer.get("relay")
        if isinstance(relay, dict) and relay.get("backlog") != 0:
            unmet.append(f"GET /v1/lag on {service}: relay backlog {relay.get('backlog')!r}")
        if answer.get("dead_letters"):
            unmet.append(f"GET /v1/lag on {service}: {answer['dead_letters']} dead letters")
        return unmet

    async def figures(self) -> tuple[Figures, list[str]]:
        """Reporting's figures of every place of the ledger (day0's flows, today's stocks),
        and the places it could not answer for."""
        ledger = self.district.ledger
        today = datetime.now(ZONE).date()
        headers = self.client.headers("command")
        got: Figures = {}
        errors: list[str] = []
        live = [r for r in self.cluster.replicas["reporting"] if r.alive]
        if not live:
            return got, ["no reporting replica runs"]

        async def summary(node: str, day: Any) -> dict[str, Any] | str:
            r = self.rng.choice(live)
            try:
                answer = await self.http.get(
                    f"{r.url}/v1/nodes/{node}/summary", params={"date": str(day)}, headers=headers
                )
            except httpx.HTTPError as exc:
                return f"{type(exc).__name__}"
            if answer.status_code != 200:
                return f"HTTP {answer.status_code}"
            return dict(answer.json())

        sem = asyncio.Semaphore(8)

        async def one(node: str) -> None:
            async with sem:
                flows, stocks = await asyncio.gather(
                    summary(node, ledger.day0), summary(node, today)
                )
            if isinstance(flows, str) or isinstance(stocks, str):
                errors.append(f"{node}: summary {flows if isinstance(flows, str) else stocks}")
                return
            got[node] = (
                Counter(comparable_flows(flows["flows"])),
                Counter(comparable_stocks(stocks["stocks"])),
            )

        await asyncio.gather(*(one(n) for n in ledger.places()))
        return got, errors

    @staticmethod
    def differences(got: Figures, want: Figures) -> list[str]:
        """Per place, the metrics where reporting and the ledger differ: (reporting, ledger)."""
        out = []
        for node in sorted(want):
            if node not in got:
                continue
            diff = {
                m: (g.get(m, 0), w.get(m, 0))
                for g, w in zip(got[node], want[node], strict=True)
                for m in set(g) | set(w)
                if g.get(m, 0) != w.get(m, 0)
            }
            got_cov, want_cov = coverage(got[node][1]), coverage(want[node][1])
            if got_cov != want_cov:
                diff["coverage_pct"] = (got_cov, want_cov)  # type: ignore[assignment]
            if diff:
                out.append(f"{node}: {dict(sorted(diff.items()))}")
        return out

    def expected(self) -> Figures:
        return {
            node: (Counter(comparable_flows(f)), Counter(comparable_stocks(s)))
            for node, (f, s) in self.district.ledger.expected().items()
        }

    async def compare_figures(self, facts: Facts, settle: float = 10.0) -> None:
        """Reporting against the ledger, asked again for up to `settle` seconds."""
        deadline = time.monotonic() + settle
        while True:
            got, errors = await self.figures()
            facts.got = got
            facts.figures = errors + self.differences(got, self.expected())
            if not facts.figures or time.monotonic() > deadline:
                return
            await asyncio.sleep(1.0)

    # -- recovered? --------------------------------------------------------------------------

    async def facts(
        self, load: LoadGenerator | None, *, full: bool, live: bool = False
    ) -> tuple[Facts, list[str]]:
        """What is not caught up: replicas not ready, writes not accepted, events not on
        Kafka, records not applied, lag reported.

        `live`: while the load goes on, caught up means within `staleness` seconds: no write
        retrying, every event recorded earlier than that on Kafka, every record produced
        earlier than that applied by every consumer. Otherwise exactly: nothing in flight,
        backlog 0, lag 0, and `GET /v1/lag` saying so. With `full=False` it stops at the first
        stage that is not caught up (cheap polling). Dead letters and figures are judged
        afterwards: they do not heal by waiting."""
        facts = Facts()
        unmet: list[str] = []
        await self._ready(facts)
        down = [n for n, ok in facts.ready.items() if not ok]
        if down:
            unmet.append(f"replicas not ready (/readyz): {', '.join(sorted(down))}")
        if live:
            facts.in_flight = self.client.stats.retrying
            if facts.in_flight:
                unmet.append(f"{facts.in_flight} writes retrying, not accepted yet")
        else:
            facts.in_flight = load.in_flight if load is not None else 0
            if facts.in_flight:
                unmet.append(f"{facts.in_flight} writes in flight, not accepted yet")
        if unmet and not full:
            return facts, unmet
        facts.kafka_ok = await self.log.catch_up()
        facts.kafka_error = self.log.error
        if not facts.kafka_ok:
            unmet.append(f"cannot read the topics: {self.log.error}")
        await self._database(facts)
        if facts.db_error:
            unmet.append(f"cannot read the stores: {facts.db_error}")
            return facts, unmet
        in_kafka = {r.event_id for r in self.log.records}
        horizon = facts.db_now - self.config.staleness
        for s in PUBLISHERS:
            if live:
                late = sum(
                    1
                    for e, at in facts.recorded.get(s, {}).items()
                    if at < horizon and e not in in_kafka
                )
                if late:
                    unmet.append(
                        f"{s}: {late} events recorded over {self.config.staleness:.0f}s ago"
                        f" not on {self.gen.topic(s)}"
                    )
                continue
            if facts.backlog.get(s):
                unmet.append(f"relay {self.gen.relay(s)}: backlog {facts.backlog[s]} events")
            missing = len(set(facts.store.get(s, {})) - in_kafka)
            if missing:
                unmet.append(f"{s}: {missing} stored events not on {self.gen.topic(s)}")
        lag = facts.consumer_stale if live else facts.consumer_lag
        behind = {c: n for c, n in lag.items() if n}
        if behind:
            unmet.append(f"consumers behind (records not applied): {behind}")
        if live or (unmet and not full):
            return facts, unmet
        await self._lag_api(facts)
        for s in SERVICES:
            unmet += self.lag_api_unmet(s, facts.lag_api.get(s))
        return facts, unmet

    async def wait_recovered(
        self, since: float, deadline: float, load: LoadGenerator | None, *, live: bool = False
    ) -> tuple[float | None, Facts, list[str]]:
        """Poll until nothing is unmet (the time it was first seen) or `deadline` seconds
        after `since` have passed."""
        while True:
            facts, unmet = await self.facts(load, full=False, live=live)
            if not unmet:
                return time.monotonic(), facts, []
            if time.monotonic() > since + deadline:
                facts, unmet = await self.facts(load, full=True, live=live)
                return (time.monotonic() if not unmet else None), facts, unmet
            await asyncio.sleep(1.0)

    # -- what the issue counts -----------------------------------------------------------------

    async def exactly_once(self) -> dict[str, Any]:
        """Each accepted write: how many times its event is in its store."""
        ledger = self.district.ledger
        lost: list[str] = []
        doubled: list[str] = []
        conn = await connect(self.config.dsn)
        try:
            for kind, (service, event_type, key) in ledger.KINDS.items():
                rows = await conn.fetch(
                    f"SELECT data->>'{key}' AS id, count(*) AS n"
                    f" FROM {self.gen.schema(service)}.events WHERE type = $1 GROUP BY 1",
                    event_type,
                )
                counts = {r["id"]: r["n"] for r in rows}
                for item_id in ledger.ids[kind]:
                    n = counts.get(item_id, 0)
                    if n == 0:
                        lost.append(f"{kind} {item_id}")
                    elif n > 1:
                        doubled.append(f"{kind} {item_id} x{n}")
        finally:
            await conn.close()
        return {"checked": ledger.total(), "lost": lost, "doubled": doubled}

    def publication(self, facts: Facts, since: int = 0) -> dict[str, Any]:
        stored = {eid: pos for s in PUBLISHERS for eid, pos in facts.store.get(s, {}).items()}
        return publication(self.log.records, stored, since)

    # -- the active relays ---------------------------------------------------------------------

    async def relay_holders(self) -> dict[str, tuple[Replica | None, str]]:
        """service -> (the replica publishing its store now, how it was found)."""
        found: dict[str, tuple[Replica | None, str]] = {}
        conn = await connect(self.config.dsn)
        try:
            for s in PUBLISHERS:
                schema, relay = self.gen.schema(s), self.gen.relay(s)
                lease = None
                with contextlib.suppress(Exception):
                    lease = await conn.fetchrow(
                        "SELECT holder, epoch, expires_at > now() AS live"
                        f" FROM {schema}.relay_leases WHERE relay = $1",
                        relay,
                    )
                if lease is not None and lease["live"]:
                    replica = self.cluster.by_replica_id(lease["holder"])
                    found[s] = (replica, f"relay_leases: {lease['holder']} epoch {lease['epoch']}")
                    continue
                key = advisory_key(f"relay:{relay}")
                port = await conn.fetchval(
                    "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
                    " AND l.classid::bigint = $1 AND l.objid::bigint = $2",
                    (key >> 32) & 0xFFFFFFFF,
                    key & 0xFFFFFFFF,
                )
                pids = [r.pid for r in self.cluster.replicas[s] if r.alive and r.pid]
                pid = pid_of_client_port(port, pids) if port else None
                replica = self.cluster.by_pid(pid) if pid else None
                found[s] = (replica, f"advisory lock of client port {port}" if port else "none")
        finally:
            await conn.close()
        return found

    async def published_since(self, services: list[str], moment: datetime) -> dict[str, bool]:
        """Whether any event a store recorded after `moment` (PostgreSQL's clock) is on Kafka."""
        out = dict.fromkeys(services, False)
        if not await self.log.catch_up(budget=2.0):
            return out
        in_kafka = {r.event_id for r in self.log.records}
        conn = await connect(self.config.dsn)
        try:
            for s in services:
                ids = await conn.fetch(
                    f"SELECT event_id::text AS id FROM {self.gen.schema(s)}.events"
                    " WHERE recorded_at > $1",
                    moment,
                )
                out[s] = any(r["id"] in in_kafka for r in ids)
        finally:
            await conn.close()
        return out

    async def db_now(self) -> datetime:
        conn = await connect(self.config.dsn)
        try:
            return await conn.fetchval("SELECT now()")  # type: ignore[no-any-return]
        finally:
            await conn.close()
