"""The missed-slot scheduler on real PostgreSQL, with a fake clock: misses are written exactly
once across scans, restarts and concurrent scanners, caught up after downtime, and a reading
races them correctly (before the scan it fills its slot, after it is late)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.screening.config import ScreeningSettings
from services.screening.domain import slots as slot_math
from services.screening.domain.care import SetPlacePlan
from services.screening.domain.watch import (
    Observe,
    OrderQuarantine,
    RecordReading,
    decide_release,
)
from services.screening.handlers import care, watch
from services.screening.handlers.scheduler import Scheduler, scan
from shared.db import create_pool
from shared.eventstore import CommandContext
from shared.migrations import upgrade_async
from shared.testing import Infra, drop_schema, unique

ZONE = ZoneInfo("Asia/Shanghai")
MEDIC = CommandContext(actor="medic-1")
SUBJECT = "h:" + "ab" * 32


def at(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2020, 2, day, hh, mm, tzinfo=ZONE)


@dataclass
class Screening:
    pool: Any
    settings: ScreeningSettings

    async def events(self, type_: str, stream_id: str | None = None) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT stream_id, occurred_at, data, command_id FROM events WHERE type = $1"
            " AND ($2::text IS NULL OR stream_id = $2) ORDER BY position",
            type_,
            stream_id,
        )
        return [dict(r) for r in rows]


@pytest.fixture
async def screening(infra: Infra) -> AsyncIterator[Screening]:
    schema = unique("sched")
    await upgrade_async("screening", infra.pg_dsn, schema)
    pool = await create_pool(infra.pg_dsn, schema, max_size=10)
    # only follow-ups and the observation's daily call, to keep the figures readable
    settings = ScreeningSettings(
        database_url=infra.pg_dsn,
        db_schema=schema,
        care_plans={"observation": {"call": ["08:00-20:00"]}},
    )
    try:
        yield Screening(pool, settings)
    finally:
        await pool.close()
        await drop_schema(infra.pg_dsn, schema)


async def observe(s: Screening, subject: str = SUBJECT) -> None:
    cmd = Observe(subject, "g1", at(1, 7), date(2020, 2, 14), "doctor-li")
    await watch.start_observation(s.pool, cmd, s.settings, MEDIC)


async def read(s: Screening, reading_id: str, when: datetime, subject: str = SUBJECT) -> Any:
    cmd = RecordReading(reading_id, subject, 36.7, when, "medic-1")
    return await watch.record_reading(s.pool, cmd, "g1", s.settings, MEDIC)


async def test_a_missed_slot_is_written_once_across_scans_and_restarts(
    screening: Screening,
) -> None:
    s = screening
    await observe(s)
    assert await scan(s.pool, s.settings, at(1, 9, 59)) == 0  # the window is still open
    assert await scan(s.pool, s.settings, at(1, 10, 5)) == 1
    assert await scan(s.pool, s.settings, at(1, 10, 5)) == 0
    restarted = Scheduler(s.pool, s.settings, clock=lambda: at(1, 10, 6))
    assert await restarted.tick() == 0
    [miss] = await s.events("FollowUpMissed")
    assert miss["data"] == {"subject_id": SUBJECT, "slot_day": "2020-02-01", "slot": "08:00-10:00"}
    assert miss["command_id"] == f"missed:watch:{SUBJECT}@1"  # decided on version 1
    assert miss["occurred_at"] == at(1, 10)  # when the slot closed
    row = await s.pool.fetchrow("SELECT slot, carer_party_id FROM follow_up_misses")
    assert dict(row) == {"slot": "08:00-10:00", "carer_party_id": "doctor-li"}


async def test_a_scheduler_that_was_down_catches_up_on_every_closed_slot(
    screening: Screening,
) -> None:
    s = screening
    await observe(s)
    assert await scan(s.pool, s.settings, at(1, 10, 5)) == 1
    # down from 10:05 on the 1st to 10:30 on the 3rd
    later = Scheduler(s.pool, s.settings, clock=lambda: at(3, 10, 30))
    assert await later.tick() == 6  # 4 follow-ups and 2 daily calls
    follow_ups = [
        (m["data"]["slot_day"], m["data"]["slot"]) for m in await s.events("FollowUpMissed")
    ]
    assert follow_ups == [
        ("2020-02-01", "08:00-10:00"),
        ("2020-02-01", "16:00-18:00"),
        ("2020-02-02", "08:00-10:00"),
        ("2020-02-02", "16:00-18:00"),
        ("2020-02-03", "08:00-10:00"),
    ]
    calls = [
        (m["data"]["slot_day"], m["data"]["party_id"]) for m in await s.events("CareTaskMissed")
    ]
    assert calls == [("2020-02-01", "doctor-li"), ("2020-02-02", "doctor-li")]
    assert await later.tick() == 0


async def test_concurrent_scanners_write_each_miss_once(screening: Screening) -> None:
    s = screening
    for i in range(5):
        await observe(s, f"h:{i:064d}")
    counts = await asyncio.gather(*(scan(s.pool, s.settings, at(1, 18, 1)) for _ in range(4)))
    assert sum(counts) == 10
    assert len(await s.events("FollowUpMissed")) == 10


async def test_a_back_dated_reading_that_arrives_before_the_scan_fills_its_slot(
    screening: Screening,
) -> None:
    s = screening
    await observe(s)
    # taken at 09:30 in the field, uploaded after 10:00, before the scheduler looked
    outcome = await read(s, "r1", at(1, 9, 30))
    [event] = outcome.events
    assert event.data["slot"] == "08:00-10:00" and event.data["late"] is False
    # a reading outside every window counts for the last slot opened that day
    outcome = await read(s, "r2", at(1, 19))
    assert outcome.events[0].data["slot"] == "16:00-18:00"
    assert await scan(s.pool, s.settings, at(1, 18, 30)) == 0
    assert await s.events("FollowUpMissed") == []


async def test_a_reading_after_the_miss_is_recorded_late_against_that_slot(
    screening: Screening,
) -> None:
    s = screening
    await observe(s)
    assert await scan(s.pool, s.settings, at(1, 10, 1)) == 1
    outcome = await read(s, "r1", at(1, 9, 45))
    [event] = outcome.events
    assert (event.data["slot_day"], event.data["slot"], event.data["late"]) == (
        "2020-02-01",
        "08:00-10:00",
        True,
    )
    row = await s.pool.fetchrow("SELECT slot, late FROM temperature_readings")
    assert dict(row) == {"slot": "08:00-10:00", "late": True}
    # the miss stays, as a fact; nothing is written twice on the next scan
    assert await scan(s.pool, s.settings, at(1, 10, 2)) == 0
    assert len(await s.events("FollowUpMissed")) == 1


async def test_slots_end_with_the_watch(screening: Screening) -> None:
    s = screening
    order = OrderQuarantine(
        "q1", SUBJECT, "g1", "centralized", "隔离酒店", at(1, 7), date(2020, 2, 14), None
    )
    await watch.order_quarantine(s.pool, order, s.settings, MEDIC)
    await watch.change_watch(
        s.pool,
        SUBJECT,
        MEDIC,
        occurred_at=at(1, 17),
        node_id="g1",
        decide=lambda st: decide_release(st, "q1", "转出", at(1, 17)),
    )
    assert await scan(s.pool, s.settings, at(5, 0)) == 1  # only the morning of the 1st
    mark = await s.pool.fetchrow("SELECT next_check FROM scheduler_marks")
    assert mark["next_check"] is None


async def test_a_missed_place_care_task_is_written_once(screening: Screening) -> None:
    s = screening
    three = slot_math.split_day(slot_math.parse_slot("07:00-21:00"), 3)
    plan = SetPlacePlan("stairs", "disinfection", three, "property-co", at(1, 6))
    await care.set_place_plan(s.pool, plan, MEDIC)
    assert await scan(s.pool, s.settings, at(1, 12)) == 1
    assert await scan(s.pool, s.settings, at(1, 12)) == 0
    assert await Scheduler(s.pool, s.settings, clock=lambda: at(1, 12, 1)).tick() == 0
    [miss] = await s.events("CareTaskMissed", "placecare:stairs")
    assert miss["data"] == {
        "target_id": "stairs",
        "task": "disinfection",
        "slot_day": "2020-02-01",
        "slot": "07:00-11:40",
        "party_id": "property-co",
    }
    row = await s.pool.fetchrow("SELECT target_kind, party_id FROM care_misses")
    assert dict(row) == {"target_kind": "place", "party_id": "property-co"}


# -- catch-up: linear per watch, fair across watches -------------------------------------------


class CountingPool:
    """The pool, counting the statements a scan sends and the event rows it reads back."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.statements = 0
        self.event_rows = 0

    def _count(self, query: str, result: Any) -> Any:
        self.statements += 1
        if isinstance(result, list) and " FROM events " in f" {query} ":
            self.event_rows += len(result)
        return result

    async def fetch(self, query: str, *args: Any) -> Any:
        return self._count(query, await self.pool.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> Any:
        return self._count(query, await self.pool.fetchrow(query, *args))

    async def fetchval(self, query: str, *args: Any) -> Any:
        return self._count(query, await self.pool.fetchval(query, *args))

    async def execute(self, query: str, *args: Any) -> Any:
        return self._count(query, await self.pool.execute(query, *args))

    def acquire(self) -> Any:
        counting = self

        class _Conn:
            def __init__(self, conn: Any) -> None:
                self.conn = conn

            def __getattr__(self, name: str) -> Any:
                return getattr(self.conn, name)

            async def fetch(self, query: str, *args: Any) -> Any:
                return counting._count(query, await self.conn.fetch(query, *args))

            async def fetchrow(self, query: str, *args: Any) -> Any:
                return counting._count(query, await self.conn.fetchrow(query, *args))

            async def fetchval(self, query: str, *args: Any) -> Any:
                return counting._count(query, await self.conn.fetchval(query, *args))

            async def execute(self, query: str, *args: Any) -> Any:
                return counting._count(query, await self.conn.execute(query, *args))

        class _Acquire:
            async def __aenter__(self) -> _Conn:
                self.cm = counting.pool.acquire()
                return _Conn(await self.cm.__aenter__())

            async def __aexit__(self, *exc: Any) -> None:
                await self.cm.__aexit__(*exc)

        return _Acquire()


BACKDATED, ON_TIME = "h:" + "0a" * 32, "h:" + "0b" * 32  # the late one sorts first
CAUGHT_UP_AT = datetime(2020, 3, 2, 10, 5, tzinfo=ZONE)


async def backdated_and_on_time(s: Screening) -> None:
    """A watch back-dated 30 days (2020-02-01 07:00) and one started this morning: at 10:05 on
    2020-03-02 the first owes 30 days of two follow-ups and a call plus this morning's
    follow-up (91 misses), the second this morning's follow-up (1)."""
    for subject, starts in ((BACKDATED, at(1, 7)), (ON_TIME, CAUGHT_UP_AT.replace(hour=7))):
        cmd = Observe(subject, "g1", starts, date(2020, 3, 14), "doctor-li")
        await watch.start_observation(s.pool, cmd, s.settings, MEDIC)


async def test_a_back_dated_watch_catches_up_without_delaying_another_watchs_miss(
    screening: Screening,
) -> None:
    s = screening
    capped = screening.settings.model_copy(update={"scheduler_misses_per_watch": 20})
    await backdated_and_on_time(s)
    assert await scan(s.pool, capped, CAUGHT_UP_AT) == 92
    backdated = await s.events("FollowUpMissed", f"watch:{BACKDATED}") + await s.events(
        "CareTaskMissed", f"watch:{BACKDATED}"
    )
    assert len(backdated) == 91
    [on_time] = await s.events("FollowUpMissed", f"watch:{ON_TIME}")
    assert on_time["occurred_at"] == CAUGHT_UP_AT.replace(hour=10, minute=0)
    # the other watch's miss is written in the first pass, after at most one cap of the
    # back-dated watch's misses (which come oldest first)
    positions = sorted(
        await s.pool.fetch(
            "SELECT position, stream_id FROM events WHERE type LIKE '%Missed' ORDER BY position"
        ),
        key=lambda r: r["position"],
    )
    assert [r["stream_id"] for r in positions].index(f"watch:{ON_TIME}") <= 20
    assert await scan(s.pool, capped, CAUGHT_UP_AT) == 0


async def test_catching_up_reads_each_event_of_a_stream_once(screening: Screening) -> None:
    s = screening
    await backdated_and_on_time(s)
    stream_length = 1 + 91  # the start and the misses
    counting = CountingPool(s.pool)
    assert await scan(counting, s.settings, CAUGHT_UP_AT) == 92
    # each stream is folded once, not once per miss (before: 4,189 event rows, 281
    # statements): the page of due streams, then per watch a load, an append, the projection
    # of its follow-up and care misses and its mark, whatever the backlog
    assert counting.event_rows <= stream_length
    assert counting.statements <= 1 + 5 * 2
