"""Parties and chains (包保) command handlers and queries.

Each handler looks up what the decision needs in the query tables, runs it through
`shared.commands.execute`, and keeps `parties`, `chain_templates`, `chain_instances` and
`assignments` current in the command's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import asyncpg

from services.registry import pii_store
from services.registry.domain import chains as domain
from services.registry.domain.chains import (
    AssignmentFacts,
    AssignParty,
    ChainInstance,
    ChainTemplate,
    DefineTemplate,
    EndPeriod,
    NodeFacts,
    Party,
    PersonFacts,
    RegisterParty,
    StartInstance,
)
from services.registry.pii import PiiCipher
from shared import identity
from shared.commands import Aggregate, Outcome, execute
from shared.contracts import EventPayload
from shared.contracts.registry import ChainTier
from shared.envelope import Envelope, utc_now
from shared.errors import DomainError, Refusal
from shared.eventstore import CommandContext

log = logging.getLogger(__name__)

PARTY: Aggregate[Party | None] = Aggregate(domain.PARTY, None, domain.evolve_party)
TEMPLATE: Aggregate[ChainTemplate | None] = Aggregate(
    domain.CHAIN_TEMPLATE, None, domain.evolve_template
)
INSTANCE: Aggregate[ChainInstance | None] = Aggregate(
    domain.CHAIN_INSTANCE, None, domain.evolve_instance
)
ASSIGNMENT: Aggregate[domain.Assignment | None] = Aggregate(
    domain.ASSIGNMENT, None, domain.evolve_assignment
)


# -- commands ----------------------------------------------------------------------------------


async def register_party(
    pool: Any,
    party_id: str,
    kind: domain.PartyKind,
    name: str,
    role: str,
    node_id: str | None,
    sub: str | None,
    ctx: CommandContext,
    phone: str | None = None,
    cipher: PiiCipher | None = None,
) -> Outcome[Party | None]:
    """A party's phone is kept like a resident's: encrypted here, masked in events."""
    phone = identity.validate_phone(phone) if phone else None
    async with pool.acquire() as conn:
        node = await node_facts(conn, node_id) if node_id else None
    cmd = RegisterParty(
        party_id,
        kind,
        name,
        role,
        node_id,
        sub,
        node,
        identity.mask_phone(phone) if phone else None,
    )

    async def project(conn: Any, events: list[Envelope]) -> None:
        await project_chains(conn, events)
        if phone and events and cipher is not None:
            await pii_store.store(conn, cipher, f"party:{party_id}", {"phone": phone})

    return await execute(
        pool,
        PARTY,
        domain.party_stream(party_id),
        decide=lambda state: domain.decide_register_party(state, cmd),
        ctx=ctx,
        occurred_at=utc_now(),
        node_id=node_id,
        project=project,
    )


async def define_template(
    pool: Any, cmd: DefineTemplate, ctx: CommandContext, kinds: tuple[str, ...] | None
) -> Outcome[ChainTemplate | None]:
    return await execute(
        pool,
        TEMPLATE,
        domain.template_stream(cmd.template_id),
        decide=lambda state: domain.decide_define_template(state, cmd, kinds),
        ctx=ctx,
        occurred_at=utc_now(),
        project=project_chains,
    )


async def ensure_builtin_templates(pool: Any) -> None:
    """Define the shipped templates (四级包保, 六级包保) unless they exist. Fixed command ids
    make concurrent or repeated starts write them once; they reach Kafka like any event."""
    for cmd in domain.BUILTIN_TEMPLATES:
        await execute(
            pool,
            TEMPLATE,
            domain.template_stream(cmd.template_id),
            decide=_define_once(cmd),
            ctx=CommandContext.internal("system", f"builtin:{cmd.template_id}"),
            occurred_at=utc_now(),
            project=project_chains,
        )


def _define_once(cmd: DefineTemplate) -> Callable[[ChainTemplate | None], list[EventPayload]]:
    """Whatever a template with this id holds now stays; only a missing one is defined."""

    def decide(state: ChainTemplate | None) -> list[EventPayload]:
        return [] if state is not None else domain.decide_define_template(None, cmd, None)

    return decide


async def start_instance(
    pool: Any,
    instance_id: str,
    template_id: str,
    root_node_id: str,
    valid_from: date,
    valid_to: date | None,
    ctx: CommandContext,
) -> Outcome[ChainInstance | None]:
    async with pool.acquire() as conn:
        template = await get_template(conn, template_id)
        root = await node_facts(conn, root_node_id)
    cmd = StartInstance(
        instance_id, template_id, root_node_id, valid_from, valid_to, template, root
    )
    return await execute(
        pool,
        INSTANCE,
        domain.instance_stream(instance_id),
        decide=lambda state: domain.decide_start_instance(state, cmd),
        ctx=ctx,
        occurred_at=utc_now(),
        node_id=root_node_id,
        project=project_chains,
    )


async def end_instance(
    pool: Any,
    instance: ChainInstance,
    cmd: EndPeriod,
    ctx: CommandContext,
    expected_version: int | None,
) -> Outcome[ChainInstance | None]:
    return await execute(
        pool,
        INSTANCE,
        domain.instance_stream(instance.id),
        decide=lambda state: domain.decide_end_instance(state, cmd),
        ctx=ctx,
        occurred_at=utc_now(),
        node_id=instance.root_node_id,
        expected_version=expected_version,
        project=project_chains,
    )


async def assign_party(
    pool: Any, cmd: AssignParty, ctx: CommandContext
) -> tuple[Outcome[domain.Assignment | None], domain.Assignment | None]:
    """Run the assignment; the second item is the assignment this one duplicates, if any.

    A concurrent writer of an overlapping binding is stopped by the table's exclusion
    constraint; the decision then runs again on what that writer committed.
    """
    for attempt in range(2):
        async with pool.acquire() as conn:
            facts = await assignment_facts(conn, cmd)
        try:
            outcome = await execute(
                pool,
                ASSIGNMENT,
                domain.assignment_stream(cmd.assignment_id),
                decide=_assign(cmd, facts),
                ctx=ctx,
                occurred_at=utc_now(),
                node_id=_assignment_node(cmd, facts),
                project=project_chains,
            )
        except asyncpg.ExclusionViolationError as exc:
            if attempt == 0:
                continue
            raise DomainError(
                "overlapping-assignment",
                "another assignment of this party to this target and tier overlaps",
                refusal=Refusal.CONFLICT,
                field="valid_from",
            ) from exc
        duplicate = domain.duplicate_of(cmd, facts.others) if outcome.state is None else None
        return outcome, duplicate
    raise AssertionError("unreachable")


def _assign(
    cmd: AssignParty, facts: AssignmentFacts
) -> Callable[[domain.Assignment | None], list[EventPayload]]:
    return lambda state: domain.decide_assign(state, cmd, facts)


def _assignment_node(cmd: AssignParty, facts: AssignmentFacts) -> str | None:
    """The place the assignment concerns: its node, a person's household, or the root."""
    if cmd.target_type == "node":
        return cmd.target_id
    if facts.target_person is not None and facts.target_person.household_id:
        return facts.target_person.household_id
    return facts.instance.root_node_id if facts.instance is not None else None


async def end_assignment(
    pool: Any,
    assignment: domain.Assignment,
    node_id: str | None,
    cmd: EndPeriod,
    ctx: CommandContext,
    expected_version: int | None,
) -> Outcome[domain.Assignment | None]:
    return await execute(
        pool,
        ASSIGNMENT,
        domain.assignment_stream(assignment.id),
        decide=lambda state: domain.decide_end_assignment(state, cmd),
        ctx=ctx,
        occurred_at=utc_now(),
        node_id=node_id,
        expected_version=expected_version,
        project=project_chains,
    )


# -- projection --------------------------------------------------------------------------------


def _day(value: str | None) -> date | None:
    """A date as the stored event's JSON carries it."""
    return date.fromisoformat(value) if value is not None else None


async def _party_registered(conn: Any, env: Envelope) -> None:
    d = env.data
    await conn.execute(
        "INSERT INTO parties (id, kind, name, role, node_id, sub, version, phone_masked)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        d["party_id"],
        d["kind"],
        d["name"],
        d["role"],
        d.get("node_id"),
        d.get("sub"),
        env.version,
        d.get("phone_masked"),
    )


async def _template_defined(conn: Any, env: Envelope) -> None:
    d = env.data
    await conn.execute(
        "INSERT INTO chain_templates (id, name, tiers, version) VALUES ($1, $2, $3, $4)",
        d["template_id"],
        d["name"],
        d["tiers"],
        env.version,
    )


async def _instance_started(conn: Any, env: Envelope) -> None:
    d = env.data
    await conn.execute(
        "INSERT INTO chain_instances"
        " (id, template_id, root_node_id, valid_from, planned_to, valid_to, version)"
        " VALUES ($1, $2, $3, $4, $5, $5, $6)",
        d["instance_id"],
        d["template_id"],
        d["root_node_id"],
        _day(d["valid_from"]),
        _day(d.get("valid_to")),
        env.version,
    )


async def _instance_ended(conn: Any, env: Envelope) -> None:
    d = env.data
    await conn.execute(
        "UPDATE chain_instances SET valid_to = $2, ended = true, end_reason = $3,"
        " version = $4 WHERE id = $1",
        d["instance_id"],
        _day(d["valid_to"]),
        d["reason"],
        env.version,
    )


async def _party_assigned(conn: Any, env: Envelope) -> None:
    d = env.data
    await conn.execute(
        "INSERT INTO assignments (id, instance_id, level, party_id, target_type, target_id,"
        " node_id, valid_from, planned_to, valid_to, version)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
        d["assignment_id"],
        d["instance_id"],
        d["level"],
        d["party_id"],
        d["target_type"],
        d["target_id"],
        env.node_id,
        _day(d["valid_from"]),
        _day(d.get("valid_to")),
        env.version,
    )


async def _assignment_ended(conn: Any, env: Envelope) -> None:
    d = env.data
    await conn.execute(
        "UPDATE assignments SET valid_to = $2, ended = true, end_reason = $3,"
        " version = $4 WHERE id = $1",
        d["assignment_id"],
        _day(d["valid_to"]),
        d["reason"],
        env.version,
    )


PROJECTIONS: dict[str, Callable[[Any, Envelope], Awaitable[None]]] = {
    "PartyRegistered": _party_registered,
    "ChainTemplateDefined": _template_defined,
    "ChainInstanceStarted": _instance_started,
    "ChainInstanceEnded": _instance_ended,
    "PartyAssigned": _party_assigned,
    "AssignmentEnded": _assignment_ended,
}


async def project_chains(conn: Any, events: list[Envelope]) -> None:
    """The registry's own query tables, written in the command's transaction."""
    for env in events:
        apply = PROJECTIONS.get(env.type)
        if apply is not None:
            await apply(conn, env)


# -- queries -----------------------------------------------------------------------------------


async def node_facts(conn: Any, node_id: str) -> NodeFacts | None:
    row = await conn.fetchrow(
        "SELECT id, kind, path::text AS path, retired FROM nodes WHERE id = $1", node_id
    )
    return NodeFacts(**dict(row)) if row else None


async def person_facts(conn: Any, person_id: str) -> PersonFacts | None:
    """A registered, non-voided person and where their household is in the tree.

    `persons` belongs to the people vertical; until its migration has run there is nobody.
    """
    try:
        row = await conn.fetchrow(
            "SELECT p.id, p.household_id, n.path::text AS household_path FROM persons p"
            " LEFT JOIN nodes n ON n.id = p.household_id WHERE p.id = $1 AND NOT p.voided",
            person_id,
        )
    except asyncpg.UndefinedTableError:
        return None
    return PersonFacts(**dict(row)) if row else None


async def get_party(conn: Any, party_id: str) -> Party | None:
    row = await conn.fetchrow(
        "SELECT id, kind, name, role, node_id, sub, version, phone_masked FROM parties"
        " WHERE id = $1",
        party_id,
    )
    return Party(**dict(row)) if row else None


def _template(row: Any) -> ChainTemplate:
    tiers = tuple(ChainTier.model_validate(t) for t in row["tiers"])
    return ChainTemplate(row["id"], row["name"], tiers, row["version"])


async def get_template(conn: Any, template_id: str) -> ChainTemplate | None:
    row = await conn.fetchrow(
        "SELECT id, name, tiers, version FROM chain_templates WHERE id = $1", template_id
    )
    return _template(row) if row else None


async def list_templates(conn: Any, after: str | None, limit: int) -> list[ChainTemplate]:
    rows = await conn.fetch(
        "SELECT id, name, tiers, version FROM chain_templates"
        " WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2",
        after,
        limit,
    )
    return [_template(r) for r in rows]


INSTANCE_COLUMNS = (
    "id, template_id, root_node_id, valid_from, planned_to, valid_to, ended, end_reason, version"
)


async def get_instance(conn: Any, instance_id: str) -> ChainInstance | None:
    row = await conn.fetchrow(
        f"SELECT {INSTANCE_COLUMNS} FROM chain_instances WHERE id = $1", instance_id
    )
    return ChainInstance(**dict(row)) if row else None


ASSIGNMENT_COLUMNS = (
    "a.id, a.instance_id, a.level, a.party_id, a.target_type, a.target_id, a.valid_from,"
    " a.planned_to, a.valid_to, a.ended, a.end_reason, a.version"
)


def _assignment(row: Any) -> domain.Assignment:
    return domain.Assignment(**{k: row[k] for k in row.keys() if k != "node_id"})


async def get_assignment(
    conn: Any, assignment_id: str
) -> tuple[domain.Assignment, str | None] | None:
    """The assignment and the place it concerns."""
    row = await conn.fetchrow(
        f"SELECT {ASSIGNMENT_COLUMNS}, a.node_id FROM assignments a WHERE a.id = $1",
        assignment_id,
    )
    return (_assignment(row), row["node_id"]) if row else None


async def list_assignments(
    conn: Any,
    *,
    instance_id: str | None,
    party_id: str | None,
    target_id: str | None,
    after: str | None,
    limit: int,
    scope: tuple[str, ...] | None,
) -> list[domain.Assignment]:
    """Assignments matching the filters, ordered by id.

    `scope` (node ids) keeps only assignments of instances whose root lies in the caller's
    jurisdiction; None: everything.
    """
    rows = await conn.fetch(
        f"""
        SELECT {ASSIGNMENT_COLUMNS} FROM assignments a
        WHERE ($1::text IS NULL OR a.instance_id = $1)
          AND ($2::text IS NULL OR a.party_id = $2)
          AND ($3::text IS NULL OR a.target_id = $3)
          AND ($4::text IS NULL OR a.id > $4)
          AND ($6::text[] IS NULL OR EXISTS (
                SELECT 1 FROM chain_instances i
                JOIN nodes r ON r.id = i.root_node_id
                JOIN nodes s ON r.path <@ s.path
                WHERE i.id = a.instance_id AND s.id = ANY($6)))
        ORDER BY a.id
        LIMIT $5
        """,
        instance_id,
        party_id,
        target_id,
        after,
        limit,
        list(scope) if scope is not None else None,
    )
    return [_assignment(r) for r in rows]


async def assignment_facts(conn: Any, cmd: AssignParty) -> AssignmentFacts:
    instance = await get_instance(conn, cmd.instance_id)
    template = root = None
    if instance is not None:
        template = await get_template(conn, instance.template_id)
        root = await node_facts(conn, instance.root_node_id)
    rows = await conn.fetch(
        f"SELECT {ASSIGNMENT_COLUMNS} FROM assignments a"
        " WHERE a.instance_id = $1 AND a.level = $2 AND a.party_id = $3"
        " AND a.target_type = $4 AND a.target_id = $5 AND a.id <> $6",
        cmd.instance_id,
        cmd.level,
        cmd.party_id,
        cmd.target_type,
        cmd.target_id,
        cmd.assignment_id,
    )
    return AssignmentFacts(
        instance=instance,
        template=template,
        root=root,
        party=await get_party(conn, cmd.party_id),
        target_node=await node_facts(conn, cmd.target_id) if cmd.target_type == "node" else None,
        target_person=(
            await person_facts(conn, cmd.target_id) if cmd.target_type == "person" else None
        ),
        others=tuple(_assignment(r) for r in rows),
    )
