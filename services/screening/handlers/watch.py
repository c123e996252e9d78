"""Watch and quarantine commands, temperature readings (single and batch), the projection of
the watch streams into the query tables, and the reads behind the watch API.

Every command is one short transaction (fold, decide, append first, project). A command that
loses a race with the scheduler on the same stream (a reading against a miss) is decided
again on the new state, unless the client pinned a version with `If-Match`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from services.screening.config import ScreeningSettings
from services.screening.domain import watch as domain
from services.screening.domain.watch import Observe, OrderQuarantine, RecordReading, Watch
from services.screening.views import person_node
from shared.commands import Aggregate, Outcome, execute
from shared.contracts import EventPayload
from shared.contracts import screening as contract
from shared.contracts.published import decode
from shared.envelope import Envelope, utc_now
from shared.errors import DomainError, Refusal
from shared.eventstore import (
    CommandContext,
    ConcurrencyError,
    PendingEvent,
    append,
    row_to_envelope,
)

WATCH: Aggregate[Watch] = Aggregate(domain.STREAM, domain.EMPTY, domain.evolve)
TRANSITIONS = (
    "ObservationStarted",
    "QuarantineOrdered",
    "QuarantineExtended",
    "QuarantineReleased",
    "QuarantineTransferred",
)
RETRIES = 10  # a stream the scheduler is catching up on may move a few times

WatchDecision = Callable[[Watch], list[EventPayload]]


def is_hmac_subject(subject_id: str) -> bool:
    return subject_id.startswith("h:")


async def watch_node(conn: Any, subject_id: str) -> str | None:
    value = await conn.fetchval(
        "SELECT node_id FROM watch_subjects WHERE subject_id = $1", subject_id
    )
    return str(value) if value is not None else None


async def subject_node(conn: Any, subject_id: str) -> str | None:
    """Where a subject's jurisdiction is checked: a registered person's household, or the
    node recorded with the watch of someone known only by document HMAC."""
    if is_hmac_subject(subject_id):
        return await watch_node(conn, subject_id)
    return await person_node(conn, subject_id)


def field_time(at: datetime, now: datetime) -> datetime:
    """When a transition happened in the field: its start, unless that lies ahead."""
    return min(at, now)


async def change_watch(
    pool: Any,
    subject_id: str,
    ctx: CommandContext,
    *,
    occurred_at: datetime,
    node_id: str | None,
    decide: WatchDecision | None = None,
    prepare: Callable[[Any], Awaitable[WatchDecision]] | None = None,
    expected: int | None = None,
) -> Outcome[Watch]:
    for attempt in range(1, RETRIES + 1):
        try:
            return await execute(
                pool,
                WATCH,
                domain.stream_id(subject_id),
                decide=decide,
                prepare=prepare,
                ctx=ctx,
                occurred_at=occurred_at,
                node_id=node_id,
                expected_version=expected,
                project=project_watch,
            )
        except ConcurrencyError:
            if expected is not None or attempt == RETRIES:
                raise
    raise AssertionError("unreachable")


# -- transitions -----------------------------------------------------------------------------


async def start_observation(
    pool: Any, cmd: Observe, settings: ScreeningSettings, ctx: CommandContext
) -> Outcome[Watch]:
    return await change_watch(
        pool,
        cmd.subject_id,
        ctx,
        occurred_at=field_time(cmd.starts_at, utc_now()),
        node_id=cmd.node_id,
        decide=lambda s: domain.decide_observe(s, cmd, settings.zone),
    )


async def order_quarantine(
    pool: Any, cmd: OrderQuarantine, settings: ScreeningSettings, ctx: CommandContext
) -> Outcome[Watch]:
    async def prepare(conn: Any) -> WatchDecision:
        holder = await conn.fetchval(
            "SELECT subject_id FROM quarantines WHERE id = $1", cmd.quarantine_id
        )
        if holder is not None and holder != cmd.subject_id:
            raise DomainError(
                "quarantine-id-taken",
                f"quarantine {cmd.quarantine_id} belongs to another subject",
                refusal=Refusal.CONFLICT,
                field="id",
            )
        return lambda s: domain.decide_quarantine(s, cmd, settings.zone)

    try:
        return await change_watch(
            pool,
            cmd.subject_id,
            ctx,
            occurred_at=field_time(cmd.starts_at, utc_now()),
            node_id=cmd.node_id,
            prepare=prepare,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != "quarantines_pkey":
            raise
        raise DomainError(
            "quarantine-id-taken",
            f"quarantine {cmd.quarantine_id} belongs to another subject",
            refusal=Refusal.CONFLICT,
            field="id",
        ) from exc


async def quarantine_subject(conn: Any, quarantine_id: str) -> str | None:
    value = await conn.fetchval("SELECT subject_id FROM quarantines WHERE id = $1", quarantine_id)
    return str(value) if value is not None else None


# -- the projection --------------------------------------------------------------------------


async def move_mark(conn: Any, stream_id: str, at: datetime) -> None:
    """Make the scheduler look at a stream from `at` on (a start, an end, a new plan)."""
    await conn.execute(
        """
        INSERT INTO scheduler_marks (stream_id, scanned_to, next_check) VALUES ($1, $2, $2)
        ON CONFLICT (stream_id) DO UPDATE SET
            scanned_to = LEAST(scheduler_marks.scanned_to, EXCLUDED.scanned_to),
            next_check = LEAST(COALESCE(scheduler_marks.next_check, EXCLUDED.next_check),
                               EXCLUDED.next_check),
            epoch = scheduler_marks.epoch + 1
        """,
        stream_id,
        at,
    )


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _target_kind(stream_id: str) -> str:
    return "subject" if stream_id.startswith(f"{domain.STREAM}:") else "place"


async def project_watch(conn: Any, events: Sequence[Envelope]) -> None:
    """Keep the query tables current, in the command's transaction (the rows of many
    readings or misses — an upload, a scheduler's catch-up — in one statement each)."""
    readings: list[tuple[Any, ...]] = []
    follow_up_misses: list[tuple[Any, ...]] = []
    care_misses: list[tuple[Any, ...]] = []
    for env in events:
        d = env.data
        match env.type:
            case "ObservationStarted":
                await conn.execute(
                    """
                    INSERT INTO watch_subjects (subject_id, status, kind, node_id, planned_end,
                        carer_party_id, since, updated_at)
                    VALUES ($1, 'under_observation', 'observation', $2, $3, $4, $5, $6)
                    ON CONFLICT (subject_id) DO UPDATE SET status = EXCLUDED.status,
                        kind = EXCLUDED.kind,
                        node_id = COALESCE(EXCLUDED.node_id, watch_subjects.node_id),
                        quarantine_id = NULL, place = NULL, planned_end = EXCLUDED.planned_end,
                        carer_party_id = EXCLUDED.carer_party_id, since = EXCLUDED.since,
                        ended_at = NULL, updated_at = EXCLUDED.updated_at
                    """,
                    d["subject_id"],
                    d["node_id"],
                    _day(d["planned_end"]),
                    d["carer_party_id"],
                    _time(d["starts_at"]),
                    env.recorded_at,
                )
                await move_mark(conn, env.stream_id, _time(d["starts_at"]))
            case "QuarantineOrdered":
                starts = _time(d["starts_at"])
                await conn.execute(
                    """
                    INSERT INTO watch_subjects (subject_id, status, kind, node_id, quarantine_id,
                        place, planned_end, carer_party_id, since, updated_at)
                    VALUES ($1, 'quarantined', $2, $3, $4, $5, $6, $7, $8, $9)
                    ON CONFLICT (subject_id) DO UPDATE SET status = EXCLUDED.status,
                        kind = EXCLUDED.kind,
                        node_id = COALESCE(EXCLUDED.node_id, watch_subjects.node_id),
                        quarantine_id = EXCLUDED.quarantine_id, place = EXCLUDED.place,
                        planned_end = EXCLUDED.planned_end,
                        carer_party_id = EXCLUDED.carer_party_id,
                        since = CASE WHEN watch_subjects.status = 'under_observation'
                                     THEN watch_subjects.since ELSE EXCLUDED.since END,
                        ended_at = NULL, updated_at = EXCLUDED.updated_at
                    """,
                    d["subject_id"],
                    d["type"],
                    d["node_id"],
                    d["quarantine_id"],
                    d["place"],
                    _day(d["planned_end"]),
                    d["carer_party_id"],
                    starts,
                    env.recorded_at,
                )
                await conn.execute(
                    """
                    INSERT INTO quarantines (id, subject_id, node_id, type, place, starts_at,
                        planned_end, carer_party_id, status, ordered_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9)
                    """,
                    d["quarantine_id"],
                    d["subject_id"],
                    env.node_id,
                    d["type"],
                    d["place"],
                    starts,
                    _day(d["planned_end"]),
                    d["carer_party_id"],
                    env.occurred_at,
                )
                await move_mark(conn, env.stream_id, starts)
            case "QuarantineExtended":
                await conn.execute(
                    "UPDATE watch_subjects SET planned_end = $2, updated_at = $3"
                    " WHERE subject_id = $1",
                    d["subject_id"],
                    _day(d["planned_end"]),
                    env.recorded_at,
                )
                await conn.execute(
                    "UPDATE quarantines SET planned_end = $2, extensions = extensions + 1"
                    " WHERE id = $1",
                    d["quarantine_id"],
                    _day(d["planned_end"]),
                )
            case "QuarantineReleased":
                at = _time(d["released_at"])
                await conn.execute(
                    "UPDATE watch_subjects SET status = 'released', ended_at = $2, updated_at = $3"
                    " WHERE subject_id = $1",
                    d["subject_id"],
                    at,
                    env.recorded_at,
                )
                if d["quarantine_id"]:
                    await conn.execute(
                        "UPDATE quarantines SET status = 'released', ended_at = $2,"
                        " end_reason = $3 WHERE id = $1",
                        d["quarantine_id"],
                        at,
                        d["reason"],
                    )
                await move_mark(conn, env.stream_id, at)
            case "QuarantineTransferred":
                await _project_transfer(conn, env)
            case "TemperatureRecorded":
                readings.append(
                    (
                        d["reading_id"],
                        d["subject_id"],
                        float(d["celsius"]),
                        env.occurred_at,
                        _day(d["slot_day"]),
                        d["slot"],
                        bool(d["late"]),
                        d["recorded_by"],
                        env.node_id,
                    )
                )
            case "FollowUpMissed":
                follow_up_misses.append(
                    (d["subject_id"], _day(d["slot_day"]), d["slot"], env.node_id, env.occurred_at)
                )
            case "CareTaskCompleted":
                await conn.execute(
                    """
                    INSERT INTO care_tasks (task_id, target_id, target_kind, task, slot_day, slot,
                        occurred_at, done_by, notes, late, node_id)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                    """,
                    d["task_id"],
                    d["target_id"],
                    _target_kind(env.stream_id),
                    d["task"],
                    _day(d["slot_day"]),
                    d["slot"],
                    env.occurred_at,
                    d["done_by"],
                    d["notes"],
                    bool(d["late"]),
                    env.node_id,
                )
            case "CareTaskMissed":
                care_misses.append(
                    (
                        d["target_id"],
                        _target_kind(env.stream_id),
                        d["task"],
                        _day(d["slot_day"]),
                        d["slot"],
                        d.get("party_id"),
                        env.node_id,
                        env.occurred_at,
                    )
                )
            case "PlaceCarePlanned":
                at = _time(d["effective_from"])
                await conn.execute(
                    """
                    INSERT INTO place_care_plans (node_id, task, times_per_day, slots, party_id,
                        effective_from, version)
                    VALUES ($1, $2, $3, $4, $5, $6, $7)
                    ON CONFLICT (node_id, task) DO UPDATE SET
                        times_per_day = EXCLUDED.times_per_day, slots = EXCLUDED.slots,
                        party_id = EXCLUDED.party_id, effective_from = EXCLUDED.effective_from,
                        version = EXCLUDED.version
                    """,
                    d["node_id"],
                    d["task"],
                    d["times_per_day"],
                    d["slots"],
                    d["party_id"],
                    at,
                    env.version,
                )
                await move_mark(conn, env.stream_id, at)
    if readings:
        await conn.execute(
            """
            INSERT INTO temperature_readings (reading_id, subject_id, celsius, occurred_at,
                slot_day, slot, late, recorded_by, node_id)
            SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::timestamptz[],
                $5::date[], $6::text[], $7::bool[], $8::text[], $9::text[])
            """,
            *[list(c) for c in zip(*readings, strict=True)],
        )
    if follow_up_misses:
        await conn.execute(
            """
            INSERT INTO follow_up_misses (subject_id, slot_day, slot, node_id, carer_party_id,
                closed_at)
            SELECT u.subject_id, u.slot_day, u.slot, u.node_id, w.carer_party_id, u.closed_at
            FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::timestamptz[])
                AS u(subject_id, slot_day, slot, node_id, closed_at)
            LEFT JOIN watch_subjects w ON w.subject_id = u.subject_id
            ON CONFLICT DO NOTHING
            """,
            *[list(c) for c in zip(*follow_up_misses, strict=True)],
        )
    if care_misses:
        await conn.execute(
            """
            INSERT INTO care_misses (target_id, target_kind, task, slot_day, slot, party_id,
                node_id, closed_at)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::text[],
                $6::text[], $7::text[], $8::timestamptz[])
            ON CONFLICT DO NOTHING
            """,
            *[list(c) for c in zip(*care_misses, strict=True)],
        )


async def _project_transfer(conn: Any, env: Envelope) -> None:
    d = env.data
    at = _time(d["transferred_at"])
    if d["to"] == "hospital":
        await conn.execute(
            "UPDATE watch_subjects SET status = 'transferred', ended_at = $2, updated_at = $3"
            " WHERE subject_id = $1",
            d["subject_id"],
            at,
            env.recorded_at,
        )
        if d["quarantine_id"]:
            await conn.execute(
                "UPDATE quarantines SET status = 'transferred', ended_at = $2,"
                " transferred_to = 'hospital', destination = $3 WHERE id = $1",
                d["quarantine_id"],
                at,
                d["destination"],
            )
    else:
        await conn.execute(
            "UPDATE watch_subjects SET kind = 'centralized', place = $2, updated_at = $3"
            " WHERE subject_id = $1",
            d["subject_id"],
            d["destination"],
            env.recorded_at,
        )
        await conn.execute(
            "UPDATE quarantines SET type = 'centralized', place = $2,"
            " transferred_to = 'centralized', destination = $2 WHERE id = $1",
            d["quarantine_id"],
            d["destination"],
        )
    await move_mark(conn, env.stream_id, at)


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


# -- temperature readings --------------------------------------------------------------------


async def record_reading(
    pool: Any,
    cmd: RecordReading,
    node_id: str | None,
    settings: ScreeningSettings,
    ctx: CommandContext,
) -> Outcome[Watch]:
    slots = settings.follow_up_slots

    async def prepare(conn: Any) -> WatchDecision:
        await _reading_id_free(conn, cmd.reading_id, cmd.subject_id)
        now = utc_now()
        return lambda s: domain.decide_reading(s, cmd, slots, settings.zone, now)

    return await change_watch(
        pool, cmd.subject_id, ctx, occurred_at=cmd.occurred_at, node_id=node_id, prepare=prepare
    )


async def _reading_id_free(conn: Any, reading_id: str, subject_id: str) -> None:
    holder = await conn.fetchval(
        "SELECT subject_id FROM temperature_readings WHERE reading_id = $1", reading_id
    )
    if holder is not None and holder != subject_id:
        raise DomainError(
            "reading-id-taken",
            f"reading {reading_id} belongs to another subject",
            refusal=Refusal.CONFLICT,
            field="id",
        )


async def get_reading(conn: Any, reading_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT reading_id, subject_id, celsius, occurred_at, slot_day, slot, late, recorded_by"
        " FROM temperature_readings WHERE reading_id = $1",
        reading_id,
    )
    return dict(row) if row else None


# -- batches ---------------------------------------------------------------------------------


@dataclass
class ItemOutcome:
    """What became of one item of a batch upload."""

    index: int
    id: str | None
    status: str  # created | unchanged | error
    code: str | None = None
    refusal: str | None = None  # invalid | not_found | conflict | forbidden
    field: str | None = None
    reason: str | None = None
    slot_day: date | None = None
    slot: str | None = None
    late: bool | None = None
    version: int | None = None

    @classmethod
    def refused(cls, index: int, item_id: str | None, exc: DomainError) -> ItemOutcome:
        return cls(
            index,
            item_id,
            "error",
            code=exc.code,
            refusal=exc.refusal.value,
            field=exc.field,
            reason=str(exc),
        )

    @classmethod
    def forbidden(cls, index: int, item_id: str | None, node_id: str) -> ItemOutcome:
        return cls(
            index,
            item_id,
            "error",
            code="out-of-scope",
            refusal="forbidden",
            field="subject_id",
            reason=f"node {node_id} is outside the caller's jurisdiction",
        )


@dataclass(frozen=True)
class ChunkItem:
    """One command of a batch, bound for one stream."""

    index: int
    item_id: str
    stream_id: str
    occurred_at: datetime
    node_id: str | None
    command: Any


Describe = Callable[[Any, ChunkItem, list[EventPayload]], ItemOutcome]
ChunkCheck = Callable[[Any, list[ChunkItem]], Awaitable[dict[int, DomainError]]]


async def load_streams(conn: Any, stream_ids: list[str]) -> dict[str, list[Stored]]:
    """The decoded events of several streams, in version order (no envelopes: the hot path
    of a batch)."""
    rows = await conn.fetch(
        "SELECT stream_id, version, type, schema_version, data FROM events"
        " WHERE stream_id = ANY($1::text[]) ORDER BY stream_id, version",
        stream_ids,
    )
    streams: dict[str, list[Stored]] = {s: [] for s in stream_ids}
    for r in rows:
        streams[r["stream_id"]].append((r["version"], _decode_row(r)))
    return streams


Stored = tuple[int, EventPayload]


def _decode_row(row: Any) -> EventPayload:
    cls = contract.CATALOG.events.get(row["type"])
    if cls is not None and row["schema_version"] == cls.schema_version:
        return cls.model_validate(row["data"])
    full = row_to_envelope({**dict(row), **_ENVELOPE_DEFAULTS})
    return decode(full)


_ENVELOPE_DEFAULTS = {
    "event_id": uuid.UUID(int=0),
    "stream_type": "watch",
    "occurred_at": datetime(2000, 1, 1, tzinfo=UTC),
    "recorded_at": datetime(2000, 1, 1, tzinfo=UTC),
    "node_id": None,
    "actor": None,
    "correlation_id": None,
    "causation_id": None,
}


def _aggregate_for(stream_id: str, aggregates: dict[str, Aggregate[Any]]) -> Aggregate[Any]:
    return aggregates[stream_id.split(":", 1)[0]]


async def commit_chunk(
    pool: Any,
    items: list[ChunkItem],
    aggregates: dict[str, Aggregate[Any]],
    decide: Callable[[Any, ChunkItem], list[EventPayload]],
    describe: Describe,
    ctx: CommandContext,
    check: ChunkCheck | None = None,
) -> list[ItemOutcome]:
    """Decide a chunk of items on the current state of their streams and append the events
    of all of them in one transaction; decided again from scratch if a stream moved."""
    for attempt in range(1, RETRIES + 1):
        try:
            return await _commit_chunk(pool, items, aggregates, decide, describe, ctx, check)
        except ConcurrencyError:
            if attempt == RETRIES:
                raise
        except asyncpg.UniqueViolationError:
            # an id taken concurrently by another stream: the check sees it on the next try
            if attempt == RETRIES:
                raise
    raise AssertionError("unreachable")


async def _commit_chunk(
    pool: Any,
    items: list[ChunkItem],
    aggregates: dict[str, Aggregate[Any]],
    decide: Callable[[Any, ChunkItem], list[EventPayload]],
    describe: Describe,
    ctx: CommandContext,
    check: ChunkCheck | None,
) -> list[ItemOutcome]:
    outcomes: list[ItemOutcome] = []
    async with pool.acquire() as conn, conn.transaction():
        refused = await check(conn, items) if check is not None else {}
        streams = await load_streams(conn, sorted({i.stream_id for i in items}))
        states: dict[str, Any] = {}
        versions: dict[str, int] = {}
        for sid, history in streams.items():
            aggregate = _aggregate_for(sid, aggregates)
            states[sid] = aggregate.initial
            for version, payload in history:
                states[sid] = aggregate.evolve(states[sid], payload, version)
            versions[sid] = history[-1][0] if history else 0
        pending: list[PendingEvent] = []
        for item in items:
            if item.index in refused:
                outcomes.append(ItemOutcome.refused(item.index, item.item_id, refused[item.index]))
                continue
            aggregate = _aggregate_for(item.stream_id, aggregates)
            try:
                payloads = decide(states[item.stream_id], item)
            except DomainError as exc:
                outcomes.append(ItemOutcome.refused(item.index, item.item_id, exc))
                continue
            for payload in payloads:
                versions[item.stream_id] += 1
                v = versions[item.stream_id]
                pending.append(
                    PendingEvent(
                        item.stream_id,
                        aggregate.stream_type,
                        v,
                        payload,
                        item.occurred_at,
                        item.node_id,
                    )
                )
                states[item.stream_id] = aggregate.evolve(states[item.stream_id], payload, v)
            outcome = describe(states[item.stream_id], item, payloads)
            outcome.version = versions[item.stream_id]
            outcomes.append(outcome)
        if pending:
            stored = await append(conn, pending, ctx)
            await project_watch(conn, stored)
    return outcomes


async def nodes_of_subjects(conn: Any, subject_ids: list[str]) -> dict[str, str]:
    """Registered, non-voided persons' households and h: subjects' watch nodes."""
    rows = await conn.fetch(
        "SELECT id AS subject_id, household_id AS node_id FROM persons"
        " WHERE id = ANY($1::text[]) AND NOT voided"
        " UNION ALL SELECT subject_id, node_id FROM watch_subjects"
        " WHERE subject_id = ANY($1::text[]) AND subject_id LIKE 'h:%' AND node_id IS NOT NULL",
        subject_ids,
    )
    return {r["subject_id"]: r["node_id"] for r in rows}


async def covered_nodes(conn: Any, node_ids: list[str], scope: tuple[str, ...] | None) -> set[str]:
    """The nodes among `node_ids` inside the scope (None: everywhere)."""
    if scope is None:
        return set(node_ids)
    rows = await conn.fetch(
        "SELECT DISTINCT n.id FROM places n JOIN places s ON n.path <@ s.path"
        " WHERE n.id = ANY($1::text[]) AND s.id = ANY($2::text[])",
        node_ids,
        list(scope),
    )
    return {r["id"] for r in rows}


@dataclass(frozen=True)
class ReadingInput:
    index: int
    reading_id: str
    subject_id: str
    celsius: float
    occurred_at: datetime


async def record_reading_batch(
    pool: Any,
    inputs: list[ReadingInput],
    settings: ScreeningSettings,
    scope: tuple[str, ...] | None,
    ctx: CommandContext,
) -> list[ItemOutcome]:
    """Readings uploaded by a field app: each item is refused or recorded on its own; items
    are committed `watch_batch_chunk` at a time, one transaction per chunk."""
    outcomes: list[ItemOutcome] = []
    async with pool.acquire() as conn:
        nodes = await nodes_of_subjects(conn, sorted({i.subject_id for i in inputs}))
        inside = await covered_nodes(conn, sorted(set(nodes.values())), scope)
    items: list[ChunkItem] = []
    for i in inputs:
        node = nodes.get(i.subject_id)
        if node is None:
            outcomes.append(ItemOutcome.refused(i.index, i.reading_id, unknown_subject(i)))
        elif node not in inside:
            outcomes.append(ItemOutcome.forbidden(i.index, i.reading_id, node))
        else:
            cmd = RecordReading(
                i.reading_id, i.subject_id, i.celsius, i.occurred_at, ctx.actor or ""
            )
            items.append(
                ChunkItem(
                    i.index, i.reading_id, domain.stream_id(i.subject_id), i.occurred_at, node, cmd
                )
            )
    slots, zone, now = settings.follow_up_slots, settings.zone, utc_now()
    size = settings.watch_batch_chunk
    for start in range(0, len(items), size):
        outcomes.extend(
            await commit_chunk(
                pool,
                items[start : start + size],
                {domain.STREAM: WATCH},
                lambda state, item: domain.decide_reading(state, item.command, slots, zone, now),
                _describe_reading,
                ctx,
                _readings_check,
            )
        )
    return sorted(outcomes, key=lambda o: o.index)


def unknown_subject(i: Any) -> DomainError:
    if is_hmac_subject(i.subject_id):
        return DomainError(
            "unknown-subject", f"no watch is recorded for {i.subject_id}", field="subject_id"
        )
    return DomainError(
        "unknown-person", f"person {i.subject_id} does not exist or was voided", field="subject_id"
    )


def _describe_reading(state: Watch, item: ChunkItem, payloads: list[EventPayload]) -> ItemOutcome:
    reading = state.readings[item.item_id]
    return ItemOutcome(
        item.index,
        item.item_id,
        "created" if payloads else "unchanged",
        slot_day=reading.slot[0],
        slot=reading.slot[1],
        late=reading.late,
    )


async def _readings_check(conn: Any, items: list[ChunkItem]) -> dict[int, DomainError]:
    """Reading ids held by another subject, in the table or earlier in the chunk."""
    rows = await conn.fetch(
        "SELECT reading_id, subject_id FROM temperature_readings"
        " WHERE reading_id = ANY($1::text[])",
        [i.item_id for i in items],
    )
    holders = {r["reading_id"]: r["subject_id"] for r in rows}
    refused: dict[int, DomainError] = {}
    for i in items:
        holder = holders.setdefault(i.item_id, i.command.subject_id)
        if holder != i.command.subject_id:
            refused[i.index] = DomainError(
                "reading-id-taken",
                f"reading {i.item_id} belongs to another subject",
                refusal=Refusal.CONFLICT,
                field="id",
            )
    return refused


# -- reads -----------------------------------------------------------------------------------


async def get_watch(conn: Any, subject_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT subject_id, status, kind, node_id, quarantine_id, place, planned_end,"
        " carer_party_id, since, ended_at FROM watch_subjects WHERE subject_id = $1",
        subject_id,
    )
    return dict(row) if row else None


async def watch_history(conn: Any, subject_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT version, type, occurred_at, recorded_at, actor, data FROM events"
        " WHERE stream_id = $1 AND type = ANY($2::text[]) ORDER BY version",
        domain.stream_id(subject_id),
        list(TRANSITIONS),
    )
    return [dict(r) for r in rows]


async def watch_version(conn: Any, subject_id: str) -> int:
    value = await conn.fetchval(
        "SELECT max(version) FROM events WHERE stream_id = $1", domain.stream_id(subject_id)
    )
    return int(value or 0)


async def get_quarantine(conn: Any, quarantine_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT id, subject_id, node_id, type, place, starts_at, planned_end, carer_party_id,"
        " status, extensions, ended_at, end_reason, transferred_to, destination"
        " FROM quarantines WHERE id = $1",
        quarantine_id,
    )
    return dict(row) if row else None


async def follow_ups(conn: Any, subject_id: str, limit: int) -> dict[str, list[dict[str, Any]]]:
    readings = await conn.fetch(
        "SELECT reading_id, celsius, occurred_at, slot_day, slot, late, recorded_by"
        " FROM temperature_readings WHERE subject_id = $1"
        " ORDER BY slot_day DESC, slot DESC, occurred_at DESC LIMIT $2",
        subject_id,
        limit,
    )
    missed = await conn.fetch(
        "SELECT slot_day, slot, closed_at FROM follow_up_misses WHERE subject_id = $1"
        " ORDER BY slot_day DESC, slot DESC LIMIT $2",
        subject_id,
        limit,
    )
    return {"readings": [dict(r) for r in readings], "missed": [dict(r) for r in missed]}
