"""The PII scan: after the small district scenario (and a few careless clients typing ID
numbers and phones into free text), no clear name, resident ID number or phone of any
person the scenario generated is found in any Kafka record of any topic, any log line the
services wrote, any row of any table outside the PII store (`registry.pii`), or any ledger
CSV/XLSX of the district on any day.

Names are looked for in every run of CJK characters, numbers in every run of digits, so the
scan is linear in what it reads. The figures it prints are the ones in docs/security.md.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from scenario.calendar import calendar_ending_yesterday
from scenario.driver import drive
from scenario.http import Services, Tokens
from scenario.observed import Observed
from scenario.scale import SMALL
from scenario.world import World, build_world
from shared.logs import JsonFormatter
from shared.testing import Infra
from tests.e2e.conftest import Stack, start_stack

SEED = 2020
LEDGERS = ("key-persons", "screening", "crossings")
_CJK_RUN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]{2,}")
_DIGIT_RUN = re.compile("[0-9Xx]{11,}")
_GROUPING = re.compile("(?<=[0-9])[ -](?=[0-9])")


@dataclass
class Secrets:
    """What must never leave the PII store in clear."""

    names: set[str] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)  # resident IDs (upper case) and phones

    @classmethod
    def of(cls, world: World) -> Secrets:
        s = cls()
        for p in world.district.persons:
            s.names.add(p.name)
            s.numbers.add(p.document_number.upper())
            if p.phone:
                s.numbers.add(p.phone)
        for c in world.plan.crossings:  # travellers the gates saw: their IDs are PII too
            for doc in [c.body, *c.body.get("passengers", [])]:
                if doc.get("document_number"):
                    s.numbers.add(doc["document_number"].upper())
        return s

    def found_in(self, text: str) -> set[str]:
        """The secrets in `text`, also when a number is grouped by spaces or dashes."""
        hits = set()
        text += "\n" + _GROUPING.sub("", text)
        lengths = {len(n) for n in self.names}
        for run in _CJK_RUN.findall(text):
            for size in lengths:
                hits |= {run[i : i + size] for i in range(len(run) - size + 1)} & self.names
        for run in _DIGIT_RUN.findall(text):
            run = run.upper()
            for size in (11, 18):
                hits |= {run[i : i + size] for i in range(len(run) - size + 1)} & self.numbers
        return hits


@dataclass
class Scan:
    secrets: Secrets
    scanned: dict[str, int] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def read(self, source: str, where: str, text: str) -> None:
        self.scanned[source] = self.scanned.get(source, 0) + 1
        for secret in self.secrets.found_in(text):
            self.hits.append(f"{source} {where}: {secret}")


@pytest.fixture
async def district(infra: Infra, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Stack]:
    """All four services, every record they log captured from their start (INFO and up, as
    they are configured to write)."""
    caplog.set_level(logging.INFO)
    names = ["registry", "screening", "checkpoint", "reporting"]
    async for s in start_stack(infra, names, screening={"scheduler_interval": 0.3}):
        yield s


async def careless_clients(stack: Stack, world: World, seen: Observed) -> None:
    """A grid worker, a gatekeeper and a registrar who type identity numbers into prose."""
    person = next(p for h in world.district.households for p in h.persons if p.phone)
    household = next(h for h in world.district.households if person in h.persons)
    typed = (
        f"{person.document_number}，电话 {person.phone[:3]} {person.phone[3:7]} {person.phone[7:]}"
    )
    admin, now = stack.token("admin"), datetime.now(UTC)
    r = await stack.screening.post(
        "/v1/visits",
        headers=stack.token("grid_worker"),
        json={
            "household_id": seen.household_id(household.ref),
            "method": "phone",
            "outcome": "screened",
            "occurred_at": now.isoformat(),
            "notes": f"户主{typed}",
        },
    )
    assert r.status_code == 201, r.text
    crossing = {**world.plan.crossings[0].body}
    crossing.update(id="careless-crossing", occurred_at=now.isoformat(), origin=f"邻县 {typed}")
    r = await stack.checkpoint.post("/v1/crossings", headers=admin, json=crossing)
    assert r.status_code in (200, 201), r.text
    r = await stack.registry.post(
        "/v1/households",
        headers=admin,
        json={
            "parent_id": world.district.of_kind("building")[0].id,
            "door_number": "999",
            "address": f"租户{typed}",
        },
    )
    assert r.status_code == 201, r.text


async def partitions_of_run(stack: Stack) -> list[TopicPartition]:
    """Every partition of every topic the run's services created (all named by its prefix)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        prefix = stack.settings.topic_prefix
        topics = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        described = await admin.describe_topics(topics)
        return [
            TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]
        ]
    finally:
        await admin.close()


async def scan_kafka(stack: Stack, scan: Scan) -> None:
    """Every record of every topic of the run, aborted transactions included (a reader of
    the log sees them): key, value and headers."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap,
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_uncommitted",
    )
    await consumer.start()
    try:
        partitions = await partitions_of_run(stack)
        scan.scanned["kafka topics"] = len({tp.topic for tp in partitions})
        if partitions:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            idle = 0
            while idle < 3 and (
                left := [tp for tp in partitions if await consumer.position(tp) < ends[tp]]
            ):
                batches = await consumer.getmany(*left, timeout_ms=1000, max_records=5000)
                idle = 0 if batches else idle + 1
                for tp, records in batches.items():
                    for rec in records:
                        parts = [rec.key or b"", rec.value or b""]
                        parts += [v for _, v in rec.headers or ()]
                        text = b"\n".join(parts).decode("utf-8", "replace")
                        where = f"{tp.topic}/{tp.partition}@{rec.offset}"
                        scan.read("kafka records", where, text)
                        if '"birth_year"' in text:  # it narrows a masked ID to ~33 numbers
                            scan.hits.append(f"kafka records {where}: birth_year")
    finally:
        await consumer.stop()


async def scan_tables(stack: Stack, infra: Infra, scan: Scan) -> None:
    """Every row of every table of the four services' schemas but the PII store, all its
    columns as text (`row::text`)."""
    schemas = {n: app.state.settings.schema_name for n, app in stack.apps.items()}
    conn = await asyncpg.connect(infra.pg_dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE'",
            list(schemas.values()),
        )
        for t in tables:
            schema, table = t["table_schema"], t["table_name"]
            if (schema, table) == (schemas["registry"], "pii"):
                continue
            scan.scanned["tables"] = scan.scanned.get("tables", 0) + 1
            for row in await conn.fetch(f'SELECT r::text AS t FROM "{schema}"."{table}" r'):
                scan.read("table rows", f"{schema}.{table}", row["t"])
    finally:
        await conn.close()


def xlsx_text(body: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        return "\n".join(z.read(name).decode("utf-8", "replace") for name in z.namelist())


async def scan_exports(stack: Stack, world: World, scan: Scan) -> None:
    days = [*world.calendar.dates, world.calendar.today]
    for name in LEDGERS:
        for fmt in ("csv", "xlsx"):
            for day in days:
                r = await stack.reporting.get(
                    f"/v1/ledgers/{name}.{fmt}",
                    params={"node_id": world.district.root.id, "date": str(day)},
                    headers=stack.token("admin"),
                )
                assert r.status_code == 200, r.text
                text = r.content.decode("utf-8-sig") if fmt == "csv" else xlsx_text(r.content)
                scan.read("exports", f"{name}.{fmt} {day}", text)
                lines = text.count("\n") if fmt == "csv" else 0
                scan.scanned["export csv lines"] = scan.scanned.get("export csv lines", 0) + lines


def scan_logs(records: Iterable[logging.LogRecord], scan: Scan) -> None:
    """Every record logged while the services started and ran, as their JSON formatter
    writes it (message, arguments, exception and traceback included)."""
    formatter = JsonFormatter("scan")
    for record in records:
        scan.read("log lines", f"{record.name}:{record.lineno}", formatter.format(record))


async def test_no_clear_pii_of_any_generated_person_outside_the_pii_store(
    district: Stack,
    infra: Infra,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = district
    calendar = calendar_ending_yesterday(SMALL.days, s.settings.zone, datetime.now(UTC))
    world = build_world(SEED, SMALL, calendar)
    services = Services(s.registry, s.screening, s.checkpoint, s.reporting)
    seen = await drive(world, services, tokens=Tokens(s.settings))
    await careless_clients(s, world, seen)

    scan = Scan(Secrets.of(world))
    assert scan.secrets.found_in(f"x{world.district.persons[0].name}x") == {
        world.district.persons[0].name
    }
    await scan_kafka(s, scan)
    await scan_tables(s, infra, scan)
    await scan_exports(s, world, scan)
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    scan_logs(records, scan)
    with capsys.disabled():
        print(
            f"\nPII scan: {len(scan.secrets.names)} names, {len(scan.secrets.numbers)} numbers;"
            f" scanned {scan.scanned}; hits {len(scan.hits)}"
        )
    assert scan.scanned["kafka records"] > 1000 and scan.scanned["table rows"] > 1000
    assert scan.scanned["exports"] == len(LEDGERS) * 2 * (len(world.calendar.dates) + 1)
    assert scan.hits == [], "\n".join(sorted(scan.hits)[:40])
