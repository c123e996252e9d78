"""Risk areas, key-person rules, inquiries and key persons: commands and their query tables.

Single-stream commands go through `shared.commands.execute`. An inquiry appends to two
streams at once (`inquiry:<id>` and, when the rules match, `kp:<subject>`), and batches append
many streams per transaction, so those are planned in a `Chunk`: the streams' histories are
read, each item is decided in order against the states the chunk has reached so far, and all
the chunk's events are appended in one `append` call as the transaction's first write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, datetime
from typing import Any, Literal, TypeVar, cast
from zoneinfo import ZoneInfo

from services.screening.domain import key_persons as domain
from services.screening.domain.key_persons import (
    Flag,
    FlagSource,
    Inquiry,
    KeyPerson,
    RiskArea,
    Rules,
)
from shared import divisions
from shared.batch import chunks
from shared.commands import Aggregate, Outcome, execute
from shared.contracts import EventPayload
from shared.contracts.screening import PersonInquired, TravelStop
from shared.envelope import Envelope, utc_now
from shared.errors import DomainError
from shared.eventstore import (
    COLUMNS,
    CommandContext,
    ConcurrencyError,
    DuplicateCommand,
    PendingEvent,
    append,
    row_to_envelope,
)

S = TypeVar("S")

RISK_AREA: Aggregate[RiskArea | None] = Aggregate(
    domain.RISK_AREA_STREAM, None, domain.evolve_risk_area
)
RULES: Aggregate[Rules] = Aggregate(domain.RULES_STREAM, domain.DEFAULT_RULES, domain.evolve_rules)
INQUIRY: Aggregate[PersonInquired | None] = Aggregate(
    domain.INQUIRY_STREAM, None, domain.evolve_inquiry
)
KEY_PERSON: Aggregate[KeyPerson | None] = Aggregate(
    domain.KEY_PERSON_STREAM, None, domain.evolve_key_person
)
CHUNK_ATTEMPTS = 5


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """A fact belongs to the day of its `occurred_at` in the system's zone."""
    return moment.astimezone(zone).date()


# -- reading what decisions need -------------------------------------------------------------


@dataclass(frozen=True)
class PersonFacts:
    """Screening's view of a registered person: where they live and their masked values."""

    id: str
    household_id: str
    voided: bool
    id_hmac: str
    document_masked: str
    name_masked: str


async def person_facts(conn: Any, person_ids: Sequence[str]) -> dict[str, PersonFacts]:
    rows = await conn.fetch(
        "SELECT id, household_id, voided, id_hmac, document_masked, name_masked FROM persons"
        " WHERE id = ANY($1::text[])",
        list(set(person_ids)),
    )
    return {r["id"]: PersonFacts(**dict(r)) for r in rows}


def active_person(facts: PersonFacts | None, person_id: str, field: str) -> PersonFacts:
    """The person, or a refusal naming the field: unknown and voided persons are refused."""
    if facts is None:
        raise DomainError("unknown-person", f"person {person_id} is not registered", field=field)
    if facts.voided:
        raise DomainError("person-voided", f"person {person_id} was voided", field=field)
    return facts


async def nodes_in_scope(
    conn: Any, node_ids: Sequence[str], scope: tuple[str, ...] | None
) -> set[str]:
    """Which of `node_ids` lie under the scope (`None`: the whole system)."""
    if scope is None:
        return set(node_ids)
    rows = await conn.fetch(
        "SELECT n.id FROM places n WHERE n.id = ANY($1::text[]) AND EXISTS ("
        " SELECT 1 FROM places s WHERE s.id = ANY($2::text[]) AND n.path <@ s.path)",
        list(set(node_ids)),
        list(scope),
    )
    return {r["id"] for r in rows}


async def current_rules(conn: Any) -> Rules:
    row = await conn.fetchrow(
        "SELECT fever_threshold, look_back_days, version FROM key_person_rules WHERE id = 'current'"
    )
    if row is None:
        return domain.DEFAULT_RULES
    return Rules(row["fever_threshold"], row["look_back_days"], row["version"])


def _area_of(row: Any) -> RiskArea:
    return RiskArea(
        row["id"],
        row["name"],
        row["level"],
        tuple(row["region_codes"]),
        row["valid_from"],
        row["valid_to"],
        row["lifted_on"],
        row["version"],
    )


RISK_AREA_COLUMNS = (
    "id, name, level, region_codes, valid_from, valid_to, lifted_on, lift_reason, declared_at,"
    " version"
)


async def risk_areas(conn: Any) -> list[RiskArea]:
    rows = await conn.fetch(f"SELECT {RISK_AREA_COLUMNS} FROM risk_areas ORDER BY id")
    return [_area_of(r) for r in rows]


async def load_histories(conn: Any, stream_ids: Sequence[str]) -> dict[str, list[Envelope]]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM events WHERE stream_id = ANY($1::text[])"
        " ORDER BY stream_id, version",
        list(set(stream_ids)),
    )
    out: dict[str, list[Envelope]] = {}
    for r in rows:
        out.setdefault(r["stream_id"], []).append(row_to_envelope(r))
    return out


# -- chunks: many streams decided and appended in one transaction ----------------------------


@dataclass
class ItemResult:
    """What became of one item of a command or batch."""

    index: int
    id: str | None
    status: Literal["created", "unchanged", "error"]
    code: str | None = None
    field: str | None = None
    reason: str | None = None
    error: DomainError | None = None
    details: dict[str, Any] = dataclass_field(default_factory=dict)

    @classmethod
    def refused(cls, index: int, item_id: str | None, exc: DomainError) -> ItemResult:
        return cls(index, item_id, "error", exc.code, exc.field, str(exc), exc)

    @classmethod
    def out_of_scope(cls, index: int, item_id: str | None, field: str) -> ItemResult:
        return cls(
            index, item_id, "error", "out-of-scope", field, "outside the caller's jurisdiction"
        )


class Chunk:
    """The streams one transaction touches, advanced as each item's events are planned."""

    def __init__(self, histories: dict[str, list[Envelope]]) -> None:
        self.histories = histories
        self.current: dict[str, tuple[int, Any]] = {}
        self.pending: list[PendingEvent] = []

    def state(self, aggregate: Aggregate[S], stream_id: str) -> S:
        if stream_id not in self.current:
            history = self.histories.get(stream_id, [])
            version = history[-1].version if history else 0
            self.current[stream_id] = (version, aggregate.fold(history))
        return cast(S, self.current[stream_id][1])

    def add(
        self,
        aggregate: Aggregate[S],
        stream_id: str,
        payloads: list[EventPayload],
        occurred_at: datetime,
        node_id: str | None,
    ) -> None:
        self.state(aggregate, stream_id)
        version, state = self.current[stream_id]
        for payload in payloads:
            version += 1
            state = aggregate.evolve(state, payload, version)
            self.pending.append(
                PendingEvent(
                    stream_id, aggregate.stream_type, version, payload, occurred_at, node_id
                )
            )
        self.current[stream_id] = (version, state)


Plan = Callable[[Any], Awaitable[tuple[list[ItemResult], Chunk]]]
Project = Callable[[Any, list[Envelope]], Awaitable[None]]


async def commit_chunk(
    pool: Any, plan: Plan, ctx: CommandContext, project: Project
) -> list[ItemResult]:
    """Plan and append in one short transaction; a concurrent writer makes it plan again."""
    for attempt in range(1, CHUNK_ATTEMPTS + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                results, chunk = await plan(conn)
                stored = await append(conn, chunk.pending, ctx)
                if stored:
                    await project(conn, stored)
            return results
        except (ConcurrencyError, DuplicateCommand):
            # another writer (or a concurrent retry of this very command) got there first:
            # deciding again sees its events, so a retried item comes out `unchanged`
            if attempt == CHUNK_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


# -- risk areas ------------------------------------------------------------------------------


async def declare_risk_area(
    pool: Any, cmd: domain.DeclareRiskArea, ctx: CommandContext
) -> Outcome[RiskArea | None]:
    return await execute(
        pool,
        RISK_AREA,
        domain.risk_area_stream(cmd.area_id),
        decide=lambda state: domain.decide_declare_risk_area(state, cmd),
        ctx=ctx,
        occurred_at=utc_now(),
        project=project_risk_areas,
    )


async def lift_risk_area(
    pool: Any,
    area_id: str,
    lifted_on: date,
    reason: str,
    ctx: CommandContext,
    expected: int | None,
) -> Outcome[RiskArea | None]:
    return await execute(
        pool,
        RISK_AREA,
        domain.risk_area_stream(area_id),
        decide=lambda state: domain.decide_lift_risk_area(state, lifted_on, reason),
        ctx=ctx,
        occurred_at=utc_now(),
        expected_version=expected,
        project=project_risk_areas,
    )


async def project_risk_areas(conn: Any, events: list[Envelope]) -> None:
    for env in events:
        d = env.data
        if env.type == "RiskAreaDeclared":
            await conn.execute(
                "INSERT INTO risk_areas (id, name, level, region_codes, valid_from, valid_to,"
                " declared_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                d["area_id"],
                d["name"],
                d["level"],
                d["region_codes"],
                date.fromisoformat(d["valid_from"]),
                date.fromisoformat(d["valid_to"]) if d["valid_to"] else None,
                env.occurred_at,
                env.version,
            )
        elif env.type == "RiskAreaLifted":
            await conn.execute(
                "UPDATE risk_areas SET lifted_on = $2, lift_reason = $3, version = $4"
                " WHERE id = $1",
                d["area_id"],
                date.fromisoformat(d["lifted_on"]),
                d["reason"],
                env.version,
            )


async def get_risk_area(conn: Any, area_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {RISK_AREA_COLUMNS} FROM risk_areas WHERE id = $1", area_id)
    return dict(row) if row else None


async def list_risk_areas(
    conn: Any, active_on: date | None, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """Risk areas by id; with `active_on`, those active that day (as `RiskArea.active_on`)."""
    rows = await conn.fetch(
        f"""
        SELECT {RISK_AREA_COLUMNS} FROM risk_areas
        WHERE ($1::date IS NULL OR (valid_from <= $1 AND (valid_to IS NULL OR $1 <= valid_to)
                                    AND (lifted_on IS NULL OR $1 < lifted_on)))
          AND ($2::text IS NULL OR id > $2)
        ORDER BY id LIMIT $3
        """,
        active_on,
        after,
        limit + 1,
    )
    return [dict(r) for r in rows]


# -- rules -----------------------------------------------------------------------------------


async def change_rules(
    pool: Any,
    fever_threshold: float,
    look_back_days: int,
    ctx: CommandContext,
    expected: int | None,
) -> Outcome[Rules]:
    return await execute(
        pool,
        RULES,
        domain.RULES_STREAM_ID,
        decide=lambda state: domain.decide_change_rules(state, fever_threshold, look_back_days),
        ctx=ctx,
        occurred_at=utc_now(),
        expected_version=expected,
        project=project_rules,
    )


async def project_rules(conn: Any, events: list[Envelope]) -> None:
    for env in events:
        await conn.execute(
            """
            INSERT INTO key_person_rules (id, fever_threshold, look_back_days, changed_at,
                changed_by, version)
            VALUES ('current', $1, $2, $3, $4, $5)
            ON CONFLICT (id) DO UPDATE SET fever_threshold = EXCLUDED.fever_threshold,
                look_back_days = EXCLUDED.look_back_days, changed_at = EXCLUDED.changed_at,
                changed_by = EXCLUDED.changed_by, version = EXCLUDED.version
            """,
            env.data["fever_threshold"],
            env.data["look_back_days"],
            env.recorded_at,
            env.actor,
            env.version,
        )


# -- inquiries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class InquiryRow:
    """What the `inquiries` table keeps beside the answers: decided when they were recorded."""

    day: date
    matched: list[str]
    new: list[str]
    travel_resolution: list[dict[str, Any]]  # per stop, as `shared.divisions.answer`


@dataclass(frozen=True)
class InquiryInput:
    """One inquiry as asked: who, what they answered, when (with its place in a batch)."""

    index: int
    inquiry_id: str
    person_id: str
    travel: tuple[TravelStop, ...]
    close_contact: bool
    symptoms: tuple[str, ...]
    temperature: float | None
    occurred_at: datetime


async def inquire(
    pool: Any,
    items: Sequence[InquiryInput],
    *,
    zone: ZoneInfo,
    scope: tuple[str, ...] | None,
    ctx: CommandContext,
    chunk_size: int = 500,
) -> list[ItemResult]:
    """Record inquiries and flag whom the rules match; one transaction per chunk."""
    results: list[ItemResult] = []
    for part in chunks(items, chunk_size):
        results.extend(await _inquire_chunk(pool, part, zone, scope, ctx))
    return results


async def _inquire_chunk(
    pool: Any,
    items: Sequence[InquiryInput],
    zone: ZoneInfo,
    scope: tuple[str, ...] | None,
    ctx: CommandContext,
) -> list[ItemResult]:
    rows: dict[str, InquiryRow] = {}

    async def plan(conn: Any) -> tuple[list[ItemResult], Chunk]:
        rows.clear()
        rules = await current_rules(conn)
        areas = await risk_areas(conn)
        persons = await person_facts(conn, [i.person_id for i in items])
        allowed = await nodes_in_scope(conn, [p.household_id for p in persons.values()], scope)
        chunk = Chunk(
            await load_histories(
                conn,
                [domain.inquiry_stream(i.inquiry_id) for i in items]
                + [domain.key_person_stream(i.person_id) for i in items],
            )
        )
        results = []
        for item in items:
            try:
                person = active_person(persons.get(item.person_id), item.person_id, "person_id")
                if person.household_id not in allowed:
                    results.append(
                        ItemResult.out_of_scope(item.index, item.inquiry_id, "person_id")
                    )
                    continue
                results.append(_plan_inquiry(chunk, item, person, rules, areas, zone, ctx, rows))
            except DomainError as exc:
                results.append(ItemResult.refused(item.index, item.inquiry_id, exc))
        return results, chunk

    async def project(conn: Any, events: list[Envelope]) -> None:
        await project_inquiries(conn, events, rows)
        await project_key_persons(conn, events)

    return await commit_chunk(pool, plan, ctx, project)


def _plan_inquiry(
    chunk: Chunk,
    item: InquiryInput,
    person: PersonFacts,
    rules: Rules,
    areas: list[RiskArea],
    zone: ZoneInfo,
    ctx: CommandContext,
    rows: dict[str, InquiryRow],
) -> ItemResult:
    inquiry = Inquiry(
        inquiry_id=item.inquiry_id,
        subject_id=person.id,
        household_id=person.household_id,
        travel=item.travel,
        close_contact=item.close_contact,
        symptoms=item.symptoms,
        temperature=item.temperature,
        inquirer=ctx.actor or "unknown",
        day=local_day(item.occurred_at, zone),
    )
    stream = domain.inquiry_stream(item.inquiry_id)
    recorded = domain.decide_inquiry(chunk.state(INQUIRY, stream), inquiry)
    if not recorded:
        return ItemResult(item.index, item.inquiry_id, "unchanged")
    checked = domain.check_inquiry(inquiry)
    places = [domain.located(stop) for stop in checked.travel]
    matched = domain.matched_reasons(checked, rules, areas, places)
    kp_stream = domain.key_person_stream(person.id)
    flagged = domain.decide_flag(
        chunk.state(KEY_PERSON, kp_stream),
        Flag(
            subject_id=person.id,
            reasons=tuple(matched),
            source="inquiry",
            source_id=item.inquiry_id,
            node_id=person.household_id,
            id_hmac=person.id_hmac,
            document_masked=person.document_masked,
            name_masked=person.name_masked,
        ),
    )
    chunk.add(INQUIRY, stream, recorded, item.occurred_at, person.household_id)
    chunk.add(KEY_PERSON, kp_stream, flagged, item.occurred_at, person.household_id)
    new = [r for e in flagged for r in getattr(e, "reasons", [])]
    rows[item.inquiry_id] = InquiryRow(
        inquiry.day, list(matched), new, [divisions.answer(p) for p in places]
    )
    return ItemResult(
        item.index,
        item.inquiry_id,
        "created",
        details={"matched_reasons": list(matched), "new_reasons": new},
    )


async def project_inquiries(conn: Any, events: list[Envelope], rows: dict[str, InquiryRow]) -> None:
    for env in events:
        if env.type != "PersonInquired":
            continue
        d = env.data
        row = rows[d["inquiry_id"]]
        await conn.execute(
            """
            INSERT INTO inquiries (id, subject_id, household_id, travel, close_contact, symptoms,
                temperature, inquirer, occurred_at, day, matched_reasons, new_reasons,
                travel_resolution, version)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
            ON CONFLICT (id) DO NOTHING
            """,
            d["inquiry_id"],
            d["subject_id"],
            d["household_id"],
            d["travel"],
            d["close_contact"],
            d["symptoms"],
            d["temperature"],
            d["inquirer"],
            env.occurred_at,
            row.day,
            row.matched,
            row.new,
            row.travel_resolution,
            env.version,
        )


INQUIRY_COLUMNS = (
    "id, subject_id, household_id, travel, close_contact, symptoms, temperature, inquirer,"
    " occurred_at, day, matched_reasons, new_reasons, travel_resolution, version"
)


async def get_inquiry(conn: Any, inquiry_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {INQUIRY_COLUMNS} FROM inquiries WHERE id = $1", inquiry_id)
    return dict(row) if row else None


# -- key persons -----------------------------------------------------------------------------


async def subject_node(conn: Any, subject_id: str) -> str | None:
    """Where a subject is for jurisdiction: a person's household as it is now; for `h:`
    subjects, the node their flag named."""
    if not domain.is_hmac_subject(subject_id):
        value = await conn.fetchval("SELECT household_id FROM persons WHERE id = $1", subject_id)
        if value is not None:
            return str(value)
    value = await conn.fetchval("SELECT node_id FROM key_persons WHERE subject_id = $1", subject_id)
    return str(value) if value is not None else None


async def flag_key_person(
    pool: Any,
    subject_id: str,
    reasons: Sequence[str],
    source: FlagSource,
    source_id: str | None,
    node_id: str | None = None,
    *,
    id_hmac: str | None = None,
    document_masked: str | None = None,
    name_masked: str | None = None,
    ctx: CommandContext,
    occurred_at: datetime | None = None,
) -> Outcome[KeyPerson | None]:
    """Flag a subject as a key person (no new event when no reason is new).

    For a registered person the node and masked values are screening's view of the person;
    for an `h:<id_hmac>` subject (a checkpoint referral of someone not registered) they are
    what the caller passes. Unknown or voided persons are refused (`subject_id`).
    """
    domain.check_subject_id(subject_id)
    async with pool.acquire() as conn:
        if domain.is_hmac_subject(subject_id):
            node = node_id or await subject_node(conn, subject_id)
            masked = (
                id_hmac or subject_id.removeprefix(domain.HMAC_PREFIX),
                document_masked,
                name_masked,
            )
        else:
            facts = await person_facts(conn, [subject_id])
            person = active_person(facts.get(subject_id), subject_id, "subject_id")
            node = person.household_id
            masked = (person.id_hmac, person.document_masked, person.name_masked)
    cmd = Flag(subject_id, tuple(reasons), source, source_id, node, *masked)
    return await execute(
        pool,
        KEY_PERSON,
        domain.key_person_stream(subject_id),
        decide=lambda state: domain.decide_flag(state, cmd),
        ctx=ctx,
        occurred_at=occurred_at or utc_now(),
        node_id=node,
        project=project_key_persons,
    )


async def clear_key_person(
    pool: Any, subject_id: str, reason: str, ctx: CommandContext, expected: int | None
) -> Outcome[KeyPerson | None]:
    async with pool.acquire() as conn:
        node = await subject_node(conn, subject_id)
    return await execute(
        pool,
        KEY_PERSON,
        domain.key_person_stream(subject_id),
        decide=lambda state: domain.decide_clear(state, reason),
        ctx=ctx,
        occurred_at=utc_now(),
        node_id=node,
        expected_version=expected,
        project=project_key_persons,
    )


async def project_key_persons(conn: Any, events: list[Envelope]) -> None:
    for env in events:
        d = env.data
        if env.type == "KeyPersonFlagged":
            await conn.execute(
                """
                INSERT INTO key_persons (subject_id, node_id, status, reasons, flagged_since,
                    last_flagged_at, id_hmac, document_masked, name_masked, version)
                VALUES ($1, $2, 'flagged', $3, $4, $4, $5, $6, $7, $8)
                ON CONFLICT (subject_id) DO UPDATE SET
                    node_id = COALESCE(EXCLUDED.node_id, key_persons.node_id),
                    reasons = CASE WHEN key_persons.status = 'flagged'
                        THEN ARRAY(SELECT DISTINCT r
                                   FROM unnest(key_persons.reasons || EXCLUDED.reasons) AS r)
                        ELSE EXCLUDED.reasons END,
                    flagged_since = CASE WHEN key_persons.status = 'flagged'
                        THEN key_persons.flagged_since ELSE EXCLUDED.flagged_since END,
                    status = 'flagged',
                    last_flagged_at = EXCLUDED.last_flagged_at,
                    cleared_at = NULL,
                    clear_reason = NULL,
                    id_hmac = COALESCE(EXCLUDED.id_hmac, key_persons.id_hmac),
                    document_masked = COALESCE(EXCLUDED.document_masked,
                                               key_persons.document_masked),
                    name_masked = COALESCE(EXCLUDED.name_masked, key_persons.name_masked),
                    version = EXCLUDED.version
                """,
                d["subject_id"],
                d["node_id"],
                d["reasons"],
                env.occurred_at,
                d["id_hmac"],
                d["document_masked"],
                d["name_masked"],
                env.version,
            )
        elif env.type == "KeyPersonCleared":
            await conn.execute(
                "UPDATE key_persons SET status = 'cleared', cleared_at = $2, clear_reason = $3,"
                " version = $4 WHERE subject_id = $1",
                d["subject_id"],
                env.occurred_at,
                d["reason"],
                env.version,
            )


KEY_PERSON_COLUMNS = (
    "k.subject_id, COALESCE(p.household_id, k.node_id) AS node_id, k.status, k.reasons,"
    " k.flagged_since, k.last_flagged_at, k.cleared_at, k.clear_reason, k.document_masked,"
    " k.name_masked, k.version"
)
KEY_PERSON_FROM = (
    "key_persons k LEFT JOIN persons p ON p.id = k.subject_id"
    " LEFT JOIN places pl ON pl.id = COALESCE(p.household_id, k.node_id)"
)


async def get_key_person(conn: Any, subject_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {KEY_PERSON_COLUMNS} FROM {KEY_PERSON_FROM} WHERE k.subject_id = $1", subject_id
    )
    return dict(row) if row else None


async def list_key_persons(
    conn: Any,
    *,
    node_id: str | None,
    reason: str | None,
    include_cleared: bool,
    scope: tuple[str, ...] | None,
    after: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Key persons under `node_id` (all of the caller's scope when absent), by subject id."""
    rows = await conn.fetch(
        f"""
        SELECT {KEY_PERSON_COLUMNS} FROM {KEY_PERSON_FROM}
        WHERE ($1::text IS NULL OR pl.path <@ (SELECT path FROM places WHERE id = $1))
          AND ($2::text IS NULL OR $2 = ANY(k.reasons))
          AND ($3 OR k.status = 'flagged')
          AND ($4::text[] IS NULL OR EXISTS (
                SELECT 1 FROM places s WHERE s.id = ANY($4::text[]) AND pl.path <@ s.path))
          AND ($5::text IS NULL OR k.subject_id > $5)
        ORDER BY k.subject_id
        LIMIT $6
        """,
        node_id,
        reason,
        include_cleared,
        list(scope) if scope is not None else None,
        after,
        limit + 1,
    )
    return [dict(r) for r in rows]


async def key_person_history(conn: Any, subject_id: str) -> list[Envelope]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM events WHERE stream_id = $1 ORDER BY version",
        domain.key_person_stream(subject_id),
    )
    return [row_to_envelope(r) for r in rows]
