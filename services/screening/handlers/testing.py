"""Test rounds, samples and results, vaccination: commands and their query tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from services.screening.domain import testing as domain
from services.screening.domain.testing import (
    CollectSample,
    GiveDose,
    Result,
    Sample,
    StartRound,
    TestRound,
    Vaccination,
)
from services.screening.handlers.key_persons import (
    Chunk,
    ItemResult,
    PersonFacts,
    active_person,
    commit_chunk,
    load_histories,
    local_day,
    nodes_in_scope,
    person_facts,
)
from shared.batch import chunks
from shared.commands import Aggregate, Outcome, execute
from shared.envelope import Envelope, utc_now
from shared.errors import DomainError, Refusal
from shared.eventstore import CommandContext

ROUND: Aggregate[TestRound | None] = Aggregate(domain.ROUND_STREAM, None, domain.evolve_round)
SAMPLE: Aggregate[Sample | None] = Aggregate(domain.SAMPLE_STREAM, None, domain.evolve_sample)
VACCINATION: Aggregate[Vaccination | None] = Aggregate(
    domain.VACCINATION_STREAM, None, domain.evolve_vaccination
)


# -- test rounds -----------------------------------------------------------------------------


async def start_round(
    pool: Any,
    round_id: str,
    node_id: str,
    number: int,
    starts_on: date,
    ends_on: date,
    ctx: CommandContext,
) -> Outcome[TestRound | None]:
    async with pool.acquire() as conn:
        node_known = bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM places WHERE id = $1 AND NOT retired)", node_id
            )
        )
        taken = await conn.fetchval(
            "SELECT id FROM test_rounds WHERE node_id = $1 AND number = $2", node_id, number
        )
    cmd = StartRound(round_id, node_id, number, starts_on, ends_on, node_known, taken)
    try:
        return await execute(
            pool,
            ROUND,
            domain.round_stream(round_id),
            decide=lambda state: domain.decide_start_round(state, cmd),
            ctx=ctx,
            occurred_at=utc_now(),
            node_id=node_id,
            project=project_rounds,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != "test_rounds_number_key":
            raise
        raise DomainError(
            "round-number-taken",
            f"round {number} of {node_id} was started meanwhile",
            refusal=Refusal.CONFLICT,
            field="number",
        ) from exc


async def project_rounds(conn: Any, events: list[Envelope]) -> None:
    for env in events:
        d = env.data
        await conn.execute(
            "INSERT INTO test_rounds (id, node_id, number, starts_on, ends_on, version)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            d["round_id"],
            d["node_id"],
            d["number"],
            date.fromisoformat(d["starts_on"]),
            date.fromisoformat(d["ends_on"]),
            env.version,
        )


def _round_of(row: Any) -> TestRound:
    return TestRound(
        row["id"], row["node_id"], row["number"], row["starts_on"], row["ends_on"], row["version"]
    )


async def rounds_by_id(conn: Any, round_ids: Sequence[str]) -> dict[str, TestRound]:
    rows = await conn.fetch(
        "SELECT id, node_id, number, starts_on, ends_on, version FROM test_rounds"
        " WHERE id = ANY($1::text[])",
        list(set(round_ids)),
    )
    return {r["id"]: _round_of(r) for r in rows}


async def round_coverage(conn: Any, round_id: str) -> dict[str, Any] | None:
    """The round with its coverage: registered, non-voided persons living under its node
    (as the tree is now) who gave a sample in this round, and those who did not yet."""
    row = await conn.fetchrow(
        """
        WITH r AS (SELECT * FROM test_rounds WHERE id = $1),
        people AS (
            SELECT p.id FROM persons p JOIN places h ON h.id = p.household_id
            WHERE NOT p.voided AND h.path <@ (SELECT pl.path FROM places pl, r
                                              WHERE pl.id = r.node_id)
        ),
        sampled AS (
            SELECT DISTINCT s.subject_id FROM samples s WHERE s.round_id = $1
        )
        SELECT r.id, r.node_id, r.number, r.starts_on, r.ends_on, r.version,
            (SELECT count(*) FROM people) AS persons,
            (SELECT count(*) FROM people JOIN sampled ON sampled.subject_id = people.id)
                AS sampled,
            (SELECT count(*) FROM samples s WHERE s.round_id = $1) AS samples,
            (SELECT count(*) FROM samples s WHERE s.round_id = $1 AND s.result IS NOT NULL)
                AS resulted,
            (SELECT count(*) FROM samples s WHERE s.round_id = $1 AND s.result = 'positive')
                AS positive
        FROM r
        """,
        round_id,
    )
    return dict(row) if row else None


# -- samples ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleInput:
    index: int
    sample_id: str
    person_id: str
    round_id: str | None
    occurred_at: datetime


async def collect(
    pool: Any,
    items: Sequence[SampleInput],
    *,
    zone: ZoneInfo,
    scope: tuple[str, ...] | None,
    ctx: CommandContext,
    chunk_size: int = 500,
) -> list[ItemResult]:
    results: list[ItemResult] = []
    for part in chunks(items, chunk_size):
        results.extend(await _collect_chunk(pool, part, zone, scope, ctx))
    return results


async def _collect_chunk(
    pool: Any,
    items: Sequence[SampleInput],
    zone: ZoneInfo,
    scope: tuple[str, ...] | None,
    ctx: CommandContext,
) -> list[ItemResult]:
    days: dict[str, date] = {}

    async def plan(conn: Any) -> tuple[list[ItemResult], Chunk]:
        days.clear()
        persons = await person_facts(conn, [i.person_id for i in items])
        allowed = await nodes_in_scope(conn, [p.household_id for p in persons.values()], scope)
        rounds = await rounds_by_id(conn, [i.round_id for i in items if i.round_id])
        chunk = Chunk(
            await load_histories(conn, [domain.sample_stream(i.sample_id) for i in items])
        )
        results = []
        for item in items:
            try:
                person = active_person(persons.get(item.person_id), item.person_id, "person_id")
                if person.household_id not in allowed:
                    results.append(ItemResult.out_of_scope(item.index, item.sample_id, "person_id"))
                    continue
                results.append(_plan_sample(chunk, item, person, rounds, zone, ctx, days))
            except DomainError as exc:
                results.append(ItemResult.refused(item.index, item.sample_id, exc))
        return results, chunk

    async def project(conn: Any, events: list[Envelope]) -> None:
        await project_samples(conn, events, days)

    return await commit_chunk(pool, plan, ctx, project)


def _plan_sample(
    chunk: Chunk,
    item: SampleInput,
    person: PersonFacts,
    rounds: dict[str, TestRound],
    zone: ZoneInfo,
    ctx: CommandContext,
    days: dict[str, date],
) -> ItemResult:
    stream = domain.sample_stream(item.sample_id)
    day = local_day(item.occurred_at, zone)
    events = domain.decide_collect(
        chunk.state(SAMPLE, stream),
        CollectSample(
            sample_id=item.sample_id,
            subject_id=person.id,
            round_id=item.round_id,
            round=rounds.get(item.round_id) if item.round_id else None,
            day=day,
            collected_by=ctx.actor or "unknown",
        ),
    )
    if not events:
        return ItemResult(item.index, item.sample_id, "unchanged")
    chunk.add(SAMPLE, stream, events, item.occurred_at, person.household_id)
    days[item.sample_id] = day
    return ItemResult(item.index, item.sample_id, "created")


async def record_result(
    pool: Any, sample_id: str, result: Result, ctx: CommandContext, expected: int | None
) -> Outcome[Sample | None]:
    async with pool.acquire() as conn:
        node = await conn.fetchval(
            "SELECT p.household_id FROM samples s JOIN persons p ON p.id = s.subject_id"
            " WHERE s.id = $1",
            sample_id,
        )
    return await execute(
        pool,
        SAMPLE,
        domain.sample_stream(sample_id),
        decide=lambda state: domain.decide_result(state, result),
        ctx=ctx,
        occurred_at=utc_now(),
        node_id=node,
        expected_version=expected,
        project=project_samples,
    )


async def project_samples(
    conn: Any, events: list[Envelope], days: dict[str, date] | None = None
) -> None:
    """`days`: the local day of each sample collected, as the command computed it."""
    for env in events:
        d = env.data
        if env.type == "SampleCollected":
            await conn.execute(
                "INSERT INTO samples (id, subject_id, round_id, collected_by, collected_at, day,"
                " version) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                d["sample_id"],
                d["subject_id"],
                d["round_id"],
                d["collected_by"],
                env.occurred_at,
                (days or {})[d["sample_id"]],
                env.version,
            )
        elif env.type == "TestResulted":
            await conn.execute(
                "UPDATE samples SET result = $2, resulted_at = $3, version = $4 WHERE id = $1",
                d["sample_id"],
                d["result"],
                env.occurred_at,
                env.version,
            )


SAMPLE_COLUMNS = (
    "id, subject_id, round_id, collected_by, collected_at, day, result, resulted_at, version"
)


async def get_sample(conn: Any, sample_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {SAMPLE_COLUMNS} FROM samples WHERE id = $1", sample_id)
    return dict(row) if row else None


# -- vaccination -----------------------------------------------------------------------------


async def give_dose(
    pool: Any,
    dose_id: str,
    person_id: str,
    dose_number: int,
    vaccine: str,
    ctx: CommandContext,
    occurred_at: datetime | None = None,
) -> tuple[str, Outcome[Vaccination | None]]:
    """Record a dose; returns the id of the dose now recorded under that number."""
    async with pool.acquire() as conn:
        person = active_person(
            (await person_facts(conn, [person_id])).get(person_id), person_id, "person_id"
        )
        holder = await conn.fetchval("SELECT subject_id FROM doses WHERE id = $1", dose_id)
    if holder is not None and holder != person_id:
        raise DomainError(
            "dose-exists",
            f"dose {dose_id} belongs to another person",
            refusal=Refusal.CONFLICT,
            field="id",
        )
    cmd = GiveDose(dose_id, person_id, dose_number, vaccine, ctx.actor or "unknown")
    try:
        outcome = await execute(
            pool,
            VACCINATION,
            domain.vaccination_stream(person_id),
            decide=lambda state: domain.decide_dose(state, cmd),
            ctx=ctx,
            occurred_at=occurred_at or utc_now(),
            node_id=person.household_id,
            project=project_doses,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != "doses_pkey":
            raise
        raise DomainError(
            "dose-exists", f"dose {dose_id} was recorded meanwhile", refusal=Refusal.CONFLICT
        ) from exc
    given = outcome.state.dose(dose_number) if outcome.state is not None else None
    return (given.id if given is not None else dose_id), outcome


async def project_doses(conn: Any, events: list[Envelope]) -> None:
    for env in events:
        d = env.data
        await conn.execute(
            "INSERT INTO doses (id, subject_id, dose_number, vaccine, given_by, given_at)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            d["dose_id"],
            d["subject_id"],
            d["dose_number"],
            d["vaccine"],
            d["given_by"],
            env.occurred_at,
        )


async def get_dose(conn: Any, dose_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT id, subject_id, dose_number, vaccine, given_by, given_at FROM doses WHERE id = $1",
        dose_id,
    )
    return dict(row) if row else None
