"""Campaign, visit and audit commands and queries; `campaigns`, `visits` and `audits` are kept
current in each command's transaction.

An offline upload (`record_visit_batch`) commits chunk by chunk: each chunk is one short
transaction that reads what it needs (households, campaigns, scope, earlier visits with the
same ids), decides every item, appends all new visit streams in one `append` as its first
write, then fills `visits` in one statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from services.screening.domain import visits as domain
from services.screening.domain.visits import (
    AuditVisit,
    Campaign,
    CampaignRef,
    RecordVisit,
    StartCampaign,
    Visit,
    VisitFacts,
)
from shared.commands import Aggregate, Outcome, execute
from shared.contracts import EventPayload
from shared.envelope import Envelope
from shared.errors import DomainError, Refusal
from shared.eventstore import (
    COLUMNS,
    CommandContext,
    ConcurrencyError,
    PendingEvent,
    append,
    row_to_envelope,
)

CAMPAIGN: Aggregate[Campaign | None] = Aggregate(
    domain.CAMPAIGN_STREAM, None, domain.evolve_campaign
)
VISIT: Aggregate[Visit | None] = Aggregate(domain.VISIT_STREAM, None, domain.evolve_visit)

VisitDecision = Callable[[Visit | None], list[EventPayload]]


# -- campaigns -------------------------------------------------------------------------------


async def place_known(conn: Any, node_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM places WHERE id = $1 AND NOT retired)", node_id
        )
    )


async def start_campaign(
    pool: Any, cmd: StartCampaign, ctx: CommandContext, now: datetime
) -> Outcome[Campaign | None]:
    async def prepare(conn: Any) -> Callable[[Campaign | None], list[EventPayload]]:
        checked = replace(cmd, node_known=await place_known(conn, cmd.node_id))
        return lambda state: domain.decide_start_campaign(state, checked)

    async def project(conn: Any, events: list[Envelope]) -> None:
        for env in events:
            if env.type == "CampaignStarted":
                d = env.data
                await conn.execute(
                    "INSERT INTO campaigns (id, node_id, name, starts_on, due_on, goal,"
                    " started_by, started_at, version)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    d["campaign_id"],
                    d["node_id"],
                    d["name"],
                    date.fromisoformat(d["starts_on"]),
                    date.fromisoformat(d["due_on"]),
                    d["goal"],
                    env.actor,
                    env.occurred_at,
                    env.version,
                )

    return await execute(
        pool,
        CAMPAIGN,
        domain.campaign_stream(cmd.campaign_id),
        prepare=prepare,
        ctx=ctx,
        occurred_at=now,
        node_id=cmd.node_id,
        project=project,
    )


COVERAGE_SQL = """
WITH c AS (
    SELECT c.id, c.starts_on, p.path FROM campaigns c JOIN places p ON p.id = c.node_id
    WHERE c.id = $1
), hh AS (
    SELECT h.id FROM households h JOIN places p ON p.id = h.id, c
    WHERE p.path <@ c.path AND NOT p.retired
), best AS (
    SELECT DISTINCT ON (v.household_id) v.household_id, v.outcome, v.screens_household
    FROM visits v, c
    WHERE v.household_id IN (SELECT id FROM hh) AND NOT v.voided
      AND (v.campaign_id = c.id OR (v.campaign_id IS NULL AND v.day >= c.starts_on))
    ORDER BY v.household_id, v.screens_household DESC, v.occurred_at DESC, v.id DESC
)
SELECT count(*) AS households,
       count(*) FILTER (WHERE best.screens_household) AS screened,
       count(*) FILTER (WHERE NOT best.screens_household AND best.outcome = 'absent') AS absent,
       count(*) FILTER (WHERE NOT best.screens_household AND best.outcome = 'refused')
           AS refused,
       count(*) FILTER (WHERE NOT best.screens_household AND best.outcome = 'vacant') AS vacant,
       count(*) FILTER (WHERE best.outcome IS NULL) AS not_visited
FROM hh LEFT JOIN best ON best.household_id = hh.id
"""


async def get_campaign(conn: Any, campaign_id: str, today: date) -> dict[str, Any] | None:
    """The campaign with its coverage as of now."""
    row = await conn.fetchrow(
        "SELECT id, node_id, name, starts_on, due_on, goal, started_by, version"
        " FROM campaigns WHERE id = $1",
        campaign_id,
    )
    if row is None:
        return None
    counts = dict(await conn.fetchrow(COVERAGE_SQL, campaign_id))
    households = counts["households"]
    counts["ratio"] = round(counts["screened"] / households, 4) if households else 0.0
    counts["due_on"] = row["due_on"]
    counts["overdue"] = today > row["due_on"] and counts["screened"] < households
    return {**dict(row), "coverage": counts}


# -- visits ----------------------------------------------------------------------------------


async def visit_facts(
    conn: Any,
    cmds: Sequence[RecordVisit],
    existing_at: dict[str, datetime],
    now: datetime,
    clock_skew: timedelta,
) -> dict[str, VisitFacts]:
    """What deciding each visit needs, looked up for all of them at once (keyed by id)."""
    household_ids = sorted({c.household_id for c in cmds})
    campaign_ids = sorted({c.campaign_id for c in cmds if c.campaign_id})
    paths = {
        r["id"]: r["path"]
        for r in await conn.fetch(
            "SELECT h.id, p.path::text AS path FROM households h JOIN places p ON p.id = h.id"
            " WHERE h.id = ANY($1::text[]) AND NOT p.retired",
            household_ids,
        )
    }
    campaigns = {
        r["id"]: CampaignRef(r["id"], r["path"])
        for r in await conn.fetch(
            "SELECT c.id, p.path::text AS path FROM campaigns c JOIN places p ON p.id = c.node_id"
            " WHERE c.id = ANY($1::text[])",
            campaign_ids,
        )
    }
    return {
        c.visit_id: VisitFacts(
            household_path=paths.get(c.household_id),
            campaign=campaigns.get(c.campaign_id) if c.campaign_id else None,
            existing_at=existing_at.get(c.visit_id),
            now=now,
            clock_skew=clock_skew,
        )
        for c in cmds
    }


def project_visits(zone: str) -> Callable[[Any, list[Envelope]], Any]:
    """Keep `visits` and `audits` current; `zone` gives each visit its local day."""

    async def project(conn: Any, events: list[Envelope]) -> None:
        visited = [e for e in events if e.type == "HouseholdVisited"]
        if visited:
            await conn.execute(
                """
                INSERT INTO visits (id, household_id, campaign_id, method, outcome, steps,
                    commitment_signed, screens_household, visitor, notes, occurred_at, day,
                    recorded_at, version)
                SELECT i, h, c, m, o, string_to_array(s, ','), cs, sh, vi, n, oa,
                       (oa AT TIME ZONE $14)::date, ra, ve
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                            $6::text[], $7::bool[], $8::bool[], $9::text[], $10::text[],
                            $11::timestamptz[], $12::timestamptz[], $13::int[])
                     AS u(i, h, c, m, o, s, cs, sh, vi, n, oa, ra, ve)
                """,
                [e.data["visit_id"] for e in visited],
                [e.data["household_id"] for e in visited],
                [e.data["campaign_id"] for e in visited],
                [e.data["method"] for e in visited],
                [e.data["outcome"] for e in visited],
                [",".join(e.data["steps"]) for e in visited],
                [e.data["commitment_signed"] for e in visited],
                [e.data["screens_household"] for e in visited],
                [e.data["visitor"] for e in visited],
                [e.data["notes"] for e in visited],
                [e.occurred_at for e in visited],
                [e.recorded_at for e in visited],
                [e.version for e in visited],
                zone,
            )
        for env in events:
            d = env.data
            if env.type == "VisitAudited":
                await conn.execute(
                    "INSERT INTO audits (id, visit_id, household_id, verdict, discrepancies,"
                    " auditor, audited_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    d["audit_id"],
                    d["visit_id"],
                    d["household_id"],
                    d["verdict"],
                    d["discrepancies"],
                    d["auditor"],
                    env.occurred_at,
                )
                await conn.execute(
                    "UPDATE visits SET audit_verdict = $2, version = $3 WHERE id = $1",
                    d["visit_id"],
                    d["verdict"],
                    env.version,
                )
            elif env.type == "VisitVoided":
                await conn.execute(
                    "UPDATE visits SET voided = true, void_reason = $2, version = $3 WHERE id = $1",
                    d["visit_id"],
                    d["reason"],
                    env.version,
                )

    return project


async def record_visit(
    pool: Any,
    cmd: RecordVisit,
    ctx: CommandContext,
    now: datetime,
    clock_skew: timedelta,
    zone: str,
) -> Outcome[Visit | None]:
    stream_id = domain.visit_stream(cmd.visit_id)

    async def prepare(conn: Any) -> VisitDecision:
        first = await conn.fetchval(
            "SELECT occurred_at FROM events WHERE stream_id = $1 AND version = 1", stream_id
        )
        existing = {cmd.visit_id: first} if first is not None else {}
        facts = (await visit_facts(conn, [cmd], existing, now, clock_skew))[cmd.visit_id]
        return lambda state: domain.decide_record_visit(state, cmd, facts)

    return await execute(
        pool,
        VISIT,
        stream_id,
        prepare=prepare,
        ctx=ctx,
        occurred_at=cmd.occurred_at,
        node_id=cmd.household_id,
        project=project_visits(zone),
    )


@dataclass(frozen=True)
class Refused:
    """An item of an upload that was refused before deciding (bad shape, out of scope)."""

    index: int
    id: str | None
    code: str
    refusal: str
    field: str | None
    reason: str


@dataclass(frozen=True)
class ItemOutcome:
    index: int
    id: str | None
    status: str  # created | unchanged | error
    version: int | None = None
    code: str | None = None
    refusal: str | None = None
    field: str | None = None
    reason: str | None = None


async def _load_visits(conn: Any, visit_ids: list[str]) -> dict[str, list[Envelope]]:
    streams = [domain.visit_stream(i) for i in visit_ids]
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM events WHERE stream_id = ANY($1::text[])"
        " ORDER BY stream_id, version",
        streams,
    )
    out: dict[str, list[Envelope]] = {}
    for r in rows:
        out.setdefault(r["stream_id"], []).append(row_to_envelope(r))
    return out


async def _covered(conn: Any, node_ids: list[str], scope: tuple[str, ...] | None) -> set[str]:
    """Which of `node_ids` lie in the caller's jurisdiction (None: everywhere)."""
    if scope is None:
        return set(node_ids)
    rows = await conn.fetch(
        "SELECT DISTINCT n.id FROM places n JOIN places s ON n.path <@ s.path"
        " WHERE n.id = ANY($1::text[]) AND s.id = ANY($2::text[])",
        node_ids,
        list(scope),
    )
    return {r["id"] for r in rows}


async def _commit_chunk(
    conn: Any,
    chunk: list[tuple[int, RecordVisit]],
    scope: tuple[str, ...] | None,
    ctx: CommandContext,
    now: datetime,
    clock_skew: timedelta,
    zone: str,
) -> list[ItemOutcome]:
    async with conn.transaction():
        cmds = [c for _, c in chunk]
        histories = await _load_visits(conn, sorted({c.visit_id for c in cmds}))
        states: dict[str, Visit | None] = {}
        existing_at: dict[str, datetime] = {}
        for c in cmds:
            history = histories.get(domain.visit_stream(c.visit_id), [])
            states[c.visit_id] = VISIT.fold(history) if history else None
            if history:
                existing_at[c.visit_id] = history[0].occurred_at
        facts = await visit_facts(conn, cmds, existing_at, now, clock_skew)
        in_scope = await _covered(conn, sorted({c.household_id for c in cmds}), scope)
        results: list[ItemOutcome] = []
        pending: list[PendingEvent] = []
        for index, cmd in chunk:
            fact = facts[cmd.visit_id]
            if fact.household_path is not None and cmd.household_id not in in_scope:
                results.append(
                    ItemOutcome(
                        index,
                        cmd.visit_id,
                        "error",
                        code="out-of-scope",
                        refusal="forbidden",
                        field="household_id",
                        reason=f"household {cmd.household_id} is outside your jurisdiction",
                    )
                )
                continue
            # an id repeated within the upload is decided against its first occurrence
            fact = VisitFacts(
                fact.household_path,
                fact.campaign,
                existing_at.get(cmd.visit_id),
                fact.now,
                fact.clock_skew,
            )
            state = states[cmd.visit_id]
            try:
                events = domain.decide_record_visit(state, cmd, fact)
            except DomainError as exc:
                results.append(_error(index, cmd.visit_id, exc))
                continue
            if not events:
                assert state is not None
                results.append(ItemOutcome(index, cmd.visit_id, "unchanged", state.version))
                continue
            stream_id = domain.visit_stream(cmd.visit_id)
            for version, payload in enumerate(events, start=1):
                pending.append(
                    PendingEvent(
                        stream_id,
                        domain.VISIT_STREAM,
                        version,
                        payload,
                        cmd.occurred_at,
                        cmd.household_id,
                    )
                )
                states[cmd.visit_id] = domain.evolve_visit(states[cmd.visit_id], payload, version)
            existing_at[cmd.visit_id] = cmd.occurred_at
            results.append(ItemOutcome(index, cmd.visit_id, "created", len(events)))
        if pending:
            stored = await append(conn, pending, ctx)
            await project_visits(zone)(conn, stored)
    return results


def _error(index: int, item_id: str | None, exc: DomainError) -> ItemOutcome:
    refusal = "conflict" if exc.refusal is Refusal.CONFLICT else exc.refusal.value
    return ItemOutcome(
        index, item_id, "error", code=exc.code, refusal=refusal, field=exc.field, reason=str(exc)
    )


async def record_visit_batch(
    pool: Any,
    items: list[tuple[int, RecordVisit] | Refused],
    scope: tuple[str, ...] | None,
    ctx: CommandContext,
    clock: Callable[[], datetime],
    clock_skew: timedelta,
    zone: str,
    chunk_size: int,
) -> list[ItemOutcome]:
    """Record an offline upload, one short transaction per chunk; a result per item, in
    the upload's order. The batch is idempotent by the items' own ids (the command id is not
    used: a retried upload finds its visits and answers `unchanged`)."""
    ctx = ctx.unkeyed()
    results: list[ItemOutcome] = [
        ItemOutcome(i.index, i.id, "error", None, i.code, i.refusal, i.field, i.reason)
        for i in items
        if isinstance(i, Refused)
    ]
    valid = [i for i in items if not isinstance(i, Refused)]
    async with pool.acquire() as conn:
        for start in range(0, len(valid), chunk_size):
            chunk = valid[start : start + chunk_size]
            try:
                done = await _commit_chunk(conn, chunk, scope, ctx, clock(), clock_skew, zone)
            except ConcurrencyError:
                # someone recorded one of these visits meanwhile: decide the chunk again, once
                done = await _commit_chunk(conn, chunk, scope, ctx, clock(), clock_skew, zone)
            results.extend(done)
    return sorted(results, key=lambda r: r.index)


# -- audits and voiding ----------------------------------------------------------------------


async def audit_visit(
    pool: Any,
    cmd: AuditVisit,
    ctx: CommandContext,
    now: datetime,
    zone: str,
    expected: int | None = None,
) -> Outcome[Visit | None]:
    async def prepare(conn: Any) -> VisitDecision:
        holder = await conn.fetchval("SELECT visit_id FROM audits WHERE id = $1", cmd.audit_id)
        other = holder if holder is not None and holder != cmd.visit_id else None
        return lambda state: domain.decide_audit(state, cmd, other)

    return await execute(
        pool,
        VISIT,
        domain.visit_stream(cmd.visit_id),
        prepare=prepare,
        ctx=ctx,
        occurred_at=now,
        node_id=await _household_of(pool, cmd.visit_id),
        expected_version=expected,
        project=project_visits(zone),
    )


async def void_visit(
    pool: Any,
    visit_id: str,
    reason: str,
    ctx: CommandContext,
    now: datetime,
    zone: str,
    expected: int | None = None,
) -> Outcome[Visit | None]:
    return await execute(
        pool,
        VISIT,
        domain.visit_stream(visit_id),
        decide=lambda state: domain.decide_void(state, reason),
        ctx=ctx,
        occurred_at=now,
        node_id=await _household_of(pool, visit_id),
        expected_version=expected,
        project=project_visits(zone),
    )


async def _household_of(pool: Any, visit_id: str) -> str | None:
    async with pool.acquire() as conn:
        value = await conn.fetchval("SELECT household_id FROM visits WHERE id = $1", visit_id)
    return str(value) if value is not None else None


# -- queries ---------------------------------------------------------------------------------

VISIT_COLUMNS = (
    "id, household_id, campaign_id, method, outcome, steps, commitment_signed, visitor, notes,"
    " occurred_at, day, recorded_at, voided, void_reason, audit_verdict, version"
)


async def get_visit(conn: Any, visit_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {VISIT_COLUMNS} FROM visits WHERE id = $1", visit_id)
    return dict(row) if row else None


async def household_visits(
    conn: Any, household_id: str, limit: int, after: tuple[datetime, str] | None
) -> list[dict[str, Any]]:
    """Newest first; `after` is the (occurred_at, id) of the last visit of the page before."""
    rows = await conn.fetch(
        f"SELECT {VISIT_COLUMNS} FROM visits WHERE household_id = $1"
        " AND ($2::timestamptz IS NULL OR (occurred_at, id) < ($2, $3))"
        " ORDER BY occurred_at DESC, id DESC LIMIT $4",
        household_id,
        after[0] if after else None,
        after[1] if after else "",
        limit,
    )
    return [dict(r) for r in rows]


async def get_audit(conn: Any, audit_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT a.id, a.visit_id, a.household_id, a.verdict, a.discrepancies, a.auditor,"
        " a.audited_at, v.version AS visit_version"
        " FROM audits a JOIN visits v ON v.id = a.visit_id WHERE a.id = $1",
        audit_id,
    )
    return dict(row) if row else None
