"""Household, person and vehicle commands; `households`, `persons`, `vehicles` and `pii` are
kept current in each command's transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from services.registry import pii_store
from services.registry.domain import people as domain
from services.registry.domain.people import Holder, Identity, Person, RegisterPerson
from services.registry.domain.places import Node, node_stream
from services.registry.handlers.places import NODE, lock_tree, parent_of, project_nodes
from services.registry.pii import PiiCipher
from shared import identity
from shared.commands import Aggregate, Outcome, execute
from shared.contracts import EventPayload
from shared.contracts.registry import DocumentType, Residency
from shared.envelope import Envelope, utc_now
from shared.errors import DomainError, Refusal
from shared.eventstore import CommandContext

PERSON: Aggregate[Person | None] = Aggregate(
    domain.PERSON_STREAM,
    None,
    domain.evolve_person,
    place=lambda person: person.household_id if person is not None else None,
)
VEHICLE: Aggregate[bool] = Aggregate(domain.VEHICLE_STREAM, False, lambda s, e, v: True)

PersonDecision = Callable[[Person | None], list[EventPayload]]


@dataclass(frozen=True)
class Keys:
    """The secrets the registry's commands need."""

    cipher: PiiCipher
    hmac_key: bytes


@dataclass(frozen=True)
class ClearPerson:
    """What the registering clerk typed; never leaves the registry in clear."""

    name: str
    document_type: DocumentType
    number: str
    phone: str | None


def checked_identity(keys: Keys, clear: ClearPerson) -> tuple[Identity, str, str | None]:
    """Validate and mask: (identity, normalised number, normalised phone)."""
    try:
        number = identity.validate_document(clear.document_type, clear.number)
    except DomainError as exc:
        if exc.field == "number":  # the request calls it document_number
            exc.field = "document_number"
        raise
    phone = identity.validate_phone(clear.phone) if clear.phone else None
    name = clear.name.strip()
    if not name:
        raise DomainError("name-empty", "name must not be empty", field="name")
    band = band_on = sex = None
    if clear.document_type == "resident_id":
        born, sex = identity.birth_date_and_sex(number)
        band_on = identity.china_today()
        band = domain.age_band(born, band_on)
    return (
        Identity(
            document_type=clear.document_type,
            document_masked=identity.mask_document(clear.document_type, number),
            id_hmac=identity.id_hmac(keys.hmac_key, clear.document_type, number),
            name_masked=identity.mask_name(name),
            phone_masked=identity.mask_phone(phone) if phone else None,
            age_band=band,
            age_band_on=band_on,
            sex=sex,
        ),
        number,
        phone,
    )


# -- households ------------------------------------------------------------------------------


async def register_household(
    pool: Any,
    household_id: str,
    parent_id: str,
    door_number: str,
    address: str | None,
    ctx: CommandContext,
) -> Outcome[Node | None]:
    async def prepare(conn: Any) -> Callable[[Node | None], list[EventPayload]]:
        await lock_tree(conn)
        cmd = domain.RegisterHousehold(
            household_id, await parent_of(conn, parent_id), door_number, address
        )

        def decide(state: Node | None) -> list[EventPayload]:
            same = state is not None and (state.kind, state.parent_id, state.name) == (
                "household",
                parent_id,
                door_number,
            )
            return domain.decide_register_household(state is not None, same, cmd)

        return decide

    return await execute(
        pool,
        NODE,
        node_stream(household_id),
        prepare=prepare,
        ctx=ctx,
        occurred_at=utc_now(),
        node_id=household_id,
        project=project_households,
    )


async def project_households(conn: Any, events: list[Envelope]) -> None:
    await project_nodes(conn, events)
    for env in events:
        if env.type == "HouseholdRegistered":
            d = env.data
            await conn.execute(
                "INSERT INTO households (id, door_number, address, version)"
                " VALUES ($1, $2, $3, $4)",
                d["household_id"],
                d["door_number"],
                d["address"],
                env.version,
            )


# -- persons ---------------------------------------------------------------------------------


async def _household_known(conn: Any, household_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM households h JOIN nodes n ON n.id = h.id"
            " WHERE h.id = $1 AND NOT n.retired)",
            household_id,
        )
    )


async def holder_of(conn: Any, id_hmac: str) -> Holder | None:
    row = await conn.fetchrow(
        "SELECT id, household_id FROM persons WHERE id_hmac = $1 AND NOT voided", id_hmac
    )
    return Holder(row["id"], row["household_id"]) if row else None


async def register_person(
    pool: Any,
    keys: Keys,
    person_id: str,
    household_id: str,
    residency: Residency,
    tags: list[str],
    clear: ClearPerson,
    ctx: CommandContext,
) -> str:
    """Register a person; returns the id of the person who now holds the document."""
    checked, number, phone = checked_identity(keys, clear)
    holder_seen: list[Holder | None] = [None]

    async def prepare(conn: Any) -> PersonDecision:
        holder_seen[0] = await holder_of(conn, checked.id_hmac)
        cmd = RegisterPerson(
            person_id,
            await _household_known(conn, household_id),
            household_id,
            residency,
            tuple(tags),
            checked,
            holder_seen[0],
        )
        return lambda state: domain.decide_register_person(state, cmd)

    async def project(conn: Any, events: list[Envelope]) -> None:
        await project_persons(conn, events)
        await pii_store.store(
            conn,
            keys.cipher,
            person_id,
            {"name": clear.name.strip(), "document_number": number, "phone": phone},
        )

    for attempt in (1, 2):
        try:
            await execute(
                pool,
                PERSON,
                domain.person_stream(person_id),
                prepare=prepare,
                ctx=ctx,
                occurred_at=utc_now(),
                node_id=household_id,
                project=project,
            )
            break
        except asyncpg.UniqueViolationError as exc:
            # a concurrent registration of the same document committed first: decide again
            if exc.constraint_name != "persons_id_hmac_key" or attempt == 2:
                raise
    holder = holder_seen[0]
    return holder.person_id if holder is not None else person_id


async def change_person(
    pool: Any,
    person_id: str,
    ctx: CommandContext,
    expected: int | None,
    *,
    decide: PersonDecision | None = None,
    prepare: Callable[[Any], Awaitable[PersonDecision]] | None = None,
    pii: tuple[PiiCipher, dict[str, str | None]] | None = None,
) -> Outcome[Person | None]:
    """Any command on an existing person; `pii` replaces clear values when events result."""

    async def project(conn: Any, events: list[Envelope]) -> None:
        await project_persons(conn, events)
        if pii is not None and events:
            await pii_store.store(conn, pii[0], person_id, pii[1])

    return await execute(
        pool,
        PERSON,
        domain.person_stream(person_id),
        decide=decide,
        prepare=prepare,
        ctx=ctx,
        occurred_at=utc_now(),
        expected_version=expected,
        project=project,
    )


async def move_person(
    pool: Any, person_id: str, household_id: str, ctx: CommandContext, expected: int | None
) -> Outcome[Person | None]:
    async def prepare(conn: Any) -> PersonDecision:
        known = await _household_known(conn, household_id)
        return lambda s: domain.decide_move_person(s, household_id, known)

    return await change_person(pool, person_id, ctx, expected, prepare=prepare)


async def project_persons(conn: Any, events: list[Envelope]) -> None:
    for env in events:
        d = env.data
        match env.type:
            case "PersonRegistered":
                await conn.execute(
                    """
                    INSERT INTO persons (id, household_id, residency, tags, document_type,
                        document_masked, name_masked, phone_masked, id_hmac, age_band,
                        age_band_on, sex, version)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                    """,
                    d["person_id"],
                    d["household_id"],
                    d["residency"],
                    d["tags"],
                    d["document_type"],
                    d["document_masked"],
                    d["name_masked"],
                    d["phone_masked"],
                    d["id_hmac"],
                    d.get("age_band"),
                    stored_date(d.get("age_band_on")),
                    d["sex"],
                    env.version,
                )
            case "PersonMoved":
                await conn.execute(
                    "UPDATE persons SET household_id = $2, version = $3 WHERE id = $1",
                    d["person_id"],
                    d["to_household_id"],
                    env.version,
                )
            case "PersonResidencyChanged":
                await conn.execute(
                    "UPDATE persons SET residency = $2, version = $3 WHERE id = $1",
                    d["person_id"],
                    d["residency"],
                    env.version,
                )
            case "PersonTagsChanged":
                await conn.execute(
                    "UPDATE persons SET tags = $2, version = $3 WHERE id = $1",
                    d["person_id"],
                    d["tags"],
                    env.version,
                )
            case "PersonContactChanged":
                await conn.execute(
                    "UPDATE persons SET name_masked = $2, phone_masked = $3, version = $4"
                    " WHERE id = $1",
                    d["person_id"],
                    d["name_masked"],
                    d["phone_masked"],
                    env.version,
                )
            case "PersonVoided":
                await conn.execute(
                    "UPDATE persons SET voided = true, version = $2 WHERE id = $1",
                    d["person_id"],
                    env.version,
                )


def stored_date(value: str | None) -> date | None:
    """A date as stored in an event's JSON data."""
    return date.fromisoformat(value) if value else None


PERSON_COLUMNS = (
    "id, household_id, residency, tags, document_type, document_masked, name_masked,"
    " phone_masked, age_band, age_band_on, sex, voided, version"
)


async def get_person(conn: Any, person_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {PERSON_COLUMNS} FROM persons WHERE id = $1", person_id)
    return dict(row) if row else None


async def household_node_of_person(conn: Any, person_id: str) -> str | None:
    value = await conn.fetchval("SELECT household_id FROM persons WHERE id = $1", person_id)
    return str(value) if value is not None else None


# -- vehicles --------------------------------------------------------------------------------


async def register_vehicle(
    pool: Any, vehicle_id: str, household_id: str, plate: str, ctx: CommandContext
) -> Outcome[bool]:
    normalised = domain.normalise_plate(plate)

    async def prepare(conn: Any) -> Callable[[bool], list[EventPayload]]:
        known = await _household_known(conn, household_id)
        row = await conn.fetchrow(
            "SELECT id, household_id FROM vehicles WHERE plate = $1", normalised
        )
        same = row is not None and row["id"] == vehicle_id and row["household_id"] == household_id
        holder = row["id"] if row is not None and not same else None
        return lambda exists: domain.decide_register_vehicle(
            vehicle_id, same, normalised, household_id, known, holder
        )

    async def project(conn: Any, events: list[Envelope]) -> None:
        for env in events:
            d = env.data
            await conn.execute(
                "INSERT INTO vehicles (id, household_id, plate, version) VALUES ($1, $2, $3, $4)",
                d["vehicle_id"],
                d["household_id"],
                d["plate"],
                env.version,
            )

    try:
        return await execute(
            pool,
            VEHICLE,
            domain.vehicle_stream(vehicle_id),
            prepare=prepare,
            ctx=ctx,
            occurred_at=utc_now(),
            node_id=household_id,
            project=project,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name in ("vehicles_plate_key", "vehicles_pkey"):
            raise DomainError(
                "plate-registered",
                f"plate {normalised} is already registered",
                refusal=Refusal.CONFLICT,
                field="plate",
            ) from exc
        raise
