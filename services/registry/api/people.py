"""Registry HTTP API: households (户), persons, vehicles, PII reads and their audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from services.registry import pii_store
from services.registry.commands.people import (
    AccessLogEntry,
    HouseholdCreate,
    HouseholdOut,
    PersonContact,
    PersonCreate,
    PersonLookup,
    PersonMove,
    PersonOut,
    PersonResidency,
    PersonTags,
    Reason,
    VehicleCreate,
    VehicleOut,
)
from services.registry.domain import people as domain
from services.registry.handlers import people as handlers
from services.registry.handlers.people import ClearPerson, Keys
from services.registry.handlers.places import get_node
from shared import identity
from shared.auth import Principal, check_scope, ltree_covers
from shared.logs import correlation_id
from shared.pagination import Cursor, Limit, Page, decode_cursor, page_of
from shared.problems import Problem
from shared.requests import command_context, etag, expected_version, new_id
from shared.roles import allow, check
from shared.scrub import scrub

covers = ltree_covers("nodes")

Reader = Annotated[Principal, Depends(allow("people.read"))]
Writer = Annotated[Principal, Depends(allow("people.write"))]

households = APIRouter(prefix="/v1/households", tags=["households"])
persons = APIRouter(prefix="/v1/persons", tags=["persons"])
vehicles = APIRouter(prefix="/v1/vehicles", tags=["vehicles"])
audit = APIRouter(prefix="/v1/pii-access-log", tags=["audit"])


def _pool(request: Request) -> Any:
    return request.app.state.pool


def _keys(request: Request) -> Keys:
    return request.app.state.keys  # type: ignore[no-any-return]


async def _in_scope(request: Request, principal: Principal, node_id: str, what: str) -> None:
    async with _pool(request).acquire() as conn:
        if await get_node(conn, node_id) is None:
            raise Problem(404, f"{what} {node_id} does not exist")
        await check_scope(principal, node_id, covers(conn))


async def _known_household(request: Request, principal: Principal, household_id: str) -> None:
    """422 for a household named in a body that does not exist; 403 outside the scope."""
    async with _pool(request).acquire() as conn:
        known = await conn.fetchval("SELECT true FROM households WHERE id = $1", household_id)
        if not known:
            raise Problem(
                422,
                f"body.household_id: household {household_id} does not exist",
                slug="unknown-household",
                errors=[{"field": "body.household_id", "reason": "unknown household"}],
            )
        await check_scope(principal, household_id, covers(conn))


# -- households ------------------------------------------------------------------------------


async def _household_out(request: Request, household_id: str) -> HouseholdOut:
    async with _pool(request).acquire() as conn:
        row = await conn.fetchrow(
            "SELECT h.id, n.parent_id, n.path::text AS path, h.door_number, h.address, n.version"
            " FROM households h JOIN nodes n ON n.id = h.id WHERE h.id = $1",
            household_id,
        )
        if row is None:
            raise Problem(404, f"household {household_id} does not exist")
        people = await conn.fetch(
            f"SELECT {handlers.PERSON_COLUMNS} FROM persons"
            " WHERE household_id = $1 AND NOT voided ORDER BY id",
            household_id,
        )
        cars = await conn.fetch(
            "SELECT id, household_id, plate, version FROM vehicles"
            " WHERE household_id = $1 ORDER BY id",
            household_id,
        )
    return HouseholdOut(
        **dict(row),
        persons=[PersonOut(**dict(p)) for p in people],
        vehicles=[VehicleOut(**dict(v)) for v in cars],
    )


@households.post("", status_code=201, response_model=HouseholdOut, summary="Register a household")
async def create_household(
    body: HouseholdCreate, request: Request, response: Response, principal: Writer
) -> HouseholdOut:
    async with _pool(request).acquire() as conn:
        if await get_node(conn, body.parent_id) is None:
            raise Problem(
                422,
                f"body.parent_id: place {body.parent_id} does not exist",
                slug="unknown-parent",
                errors=[{"field": "body.parent_id", "reason": "unknown place"}],
            )
        await check_scope(principal, body.parent_id, covers(conn))
    ctx = command_context(request, principal)
    household_id = new_id("household", body.id, ctx)
    await handlers.register_household(
        _pool(request), household_id, body.parent_id, body.door_number, body.address, ctx
    )
    out = await _household_out(request, household_id)
    response.headers["ETag"] = etag(out.version)
    response.headers["Location"] = f"/v1/households/{household_id}"
    return out


@households.get(
    "/{household_id}",
    response_model=HouseholdOut,
    summary="A household with its people (masked) and vehicles",
)
async def get_household(
    household_id: str, request: Request, response: Response, principal: Reader
) -> HouseholdOut:
    await _in_scope(request, principal, household_id, "household")
    out = await _household_out(request, household_id)
    response.headers["ETag"] = etag(out.version)
    return out


# -- persons ---------------------------------------------------------------------------------


async def _person_out(
    request: Request, person_id: str, response: Response | None = None, status: int | None = None
) -> PersonOut:
    async with _pool(request).acquire() as conn:
        row = await handlers.get_person(conn, person_id)
    if row is None:
        raise Problem(404, f"person {person_id} does not exist")
    if response is not None:
        response.headers["ETag"] = etag(row["version"])
        if status is not None:
            response.status_code = status
    return PersonOut(**row)


async def _person_in_scope(request: Request, principal: Principal, person_id: str) -> None:
    async with _pool(request).acquire() as conn:
        household = await handlers.household_node_of_person(conn, person_id)
        if household is None:
            raise Problem(404, f"person {person_id} does not exist")
        await check_scope(principal, household, covers(conn))


@persons.post(
    "",
    status_code=201,
    response_model=PersonOut,
    summary="Register a person",
    responses={409: {"description": "the document is registered to another person"}},
)
async def create_person(
    body: PersonCreate, request: Request, response: Response, principal: Writer
) -> PersonOut:
    await _known_household(request, principal, body.household_id)
    ctx = command_context(request, principal)
    person_id = await handlers.register_person(
        _pool(request),
        _keys(request),
        new_id("person", body.id, ctx),
        body.household_id,
        body.residency,
        body.tags,
        ClearPerson(body.name, body.document_type, body.document_number, body.phone),
        ctx,
    )
    response.headers["Location"] = f"/v1/persons/{person_id}"
    return await _person_out(request, person_id, response)


@persons.post(
    ":lookup", response_model=PersonOut, summary="Find a person by document number (masked answer)"
)
async def lookup(
    body: PersonLookup,
    request: Request,
    principal: Annotated[Principal, Depends(allow("people.lookup"))],
) -> PersonOut:
    number = identity.validate_document(body.document_type, body.number)
    digest = identity.id_hmac(_keys(request).hmac_key, body.document_type, number)
    async with _pool(request).acquire() as conn:
        holder = await handlers.holder_of(conn, digest)
        # outside the caller's jurisdiction the answer is the same as for nobody
        if holder is None or not (
            principal.everywhere or await covers(conn)(holder.household_id, principal.scope)
        ):
            raise Problem(404, "no person with this document in your jurisdiction")
    return await _person_out(request, holder.person_id)


@persons.get("/{person_id}", response_model=PersonOut, summary="A person, masked by default")
async def get_person(
    person_id: str,
    request: Request,
    response: Response,
    principal: Reader,
    reveal: Annotated[bool, Query(description="include clear PII (logged)")] = False,
    reason: Annotated[
        str | None,
        Query(min_length=2, max_length=500, description="why the clear values are needed"),
    ] = None,
) -> PersonOut:
    await _person_in_scope(request, principal, person_id)
    out = await _person_out(request, person_id, response)
    if not reveal:
        return out
    check(principal, "people.reveal")
    if not reason:
        raise Problem(
            422,
            "query.reason: a reason is required to reveal PII",
            slug="validation-error",
            errors=[{"field": "query.reason", "reason": "required with reveal"}],
        )
    async with _pool(request).acquire() as conn, conn.transaction():
        clear = await pii_store.reveal(
            conn,
            _keys(request).cipher,
            person_id,
            actor=principal.sub,
            roles=sorted(r.value for r in principal.roles),
            reason=scrub(reason),
            correlation_id=correlation_id.get(),
        )
    response.headers["Cache-Control"] = "no-store"
    return out.model_copy(update={"clear": clear})


@persons.post(
    "/{person_id}/move", response_model=PersonOut, summary="Move a person to another household"
)
async def move_person(
    person_id: str, body: PersonMove, request: Request, response: Response, principal: Writer
) -> PersonOut:
    await _person_in_scope(request, principal, person_id)
    await _known_household(request, principal, body.household_id)
    await handlers.move_person(
        _pool(request),
        person_id,
        body.household_id,
        command_context(request, principal),
        expected_version(request),
    )
    return await _person_out(request, person_id, response)


@persons.post("/{person_id}/residency", response_model=PersonOut)
async def change_residency(
    person_id: str, body: PersonResidency, request: Request, response: Response, principal: Writer
) -> PersonOut:
    await _person_in_scope(request, principal, person_id)
    await handlers.change_person(
        _pool(request),
        person_id,
        command_context(request, principal),
        expected_version(request),
        decide=lambda s: domain.decide_residency(s, body.residency),
    )
    return await _person_out(request, person_id, response)


@persons.post(
    "/{person_id}/tags",
    response_model=PersonOut,
    summary="Add or remove tags (特困, 低保, 残疾, 孤寡老人, free tags)",
)
async def change_tags(
    person_id: str, body: PersonTags, request: Request, response: Response, principal: Writer
) -> PersonOut:
    await _person_in_scope(request, principal, person_id)
    await handlers.change_person(
        _pool(request),
        person_id,
        command_context(request, principal),
        expected_version(request),
        decide=lambda s: domain.decide_tags(s, body.add, body.remove),
    )
    return await _person_out(request, person_id, response)


@persons.post("/{person_id}/contact", response_model=PersonOut, summary="Correct the name or phone")
async def change_contact(
    person_id: str, body: PersonContact, request: Request, response: Response, principal: Writer
) -> PersonOut:
    await _person_in_scope(request, principal, person_id)
    phone = identity.validate_phone(body.phone) if body.phone else None
    name_masked = identity.mask_name(body.name.strip())
    phone_masked = identity.mask_phone(phone) if phone else None
    keys = _keys(request)
    await handlers.change_person(
        _pool(request),
        person_id,
        command_context(request, principal),
        expected_version(request),
        decide=lambda s: domain.decide_contact(s, name_masked, phone_masked, True),
        pii=(keys.cipher, {"name": body.name.strip(), "phone": phone}),
    )
    return await _person_out(request, person_id, response)


@persons.post(
    "/{person_id}/void", response_model=PersonOut, summary="Void a registration made by mistake"
)
async def void_person(
    person_id: str, body: Reason, request: Request, response: Response, principal: Writer
) -> PersonOut:
    await _person_in_scope(request, principal, person_id)
    await handlers.change_person(
        _pool(request),
        person_id,
        command_context(request, principal),
        expected_version(request),
        decide=lambda s: domain.decide_void(s, body.reason),
    )
    return await _person_out(request, person_id, response)


# -- vehicles --------------------------------------------------------------------------------


@vehicles.post("", status_code=201, response_model=VehicleOut, summary="Register a vehicle")
async def create_vehicle(
    body: VehicleCreate, request: Request, response: Response, principal: Writer
) -> VehicleOut:
    await _known_household(request, principal, body.household_id)
    ctx = command_context(request, principal)
    vehicle_id = new_id("vehicle", body.id, ctx)
    await handlers.register_vehicle(_pool(request), vehicle_id, body.household_id, body.plate, ctx)
    async with _pool(request).acquire() as conn:
        row = await conn.fetchrow(
            "SELECT id, household_id, plate, version FROM vehicles WHERE id = $1", vehicle_id
        )
    assert row is not None
    response.headers["ETag"] = etag(row["version"])
    return VehicleOut(**dict(row))


# -- the PII access log ----------------------------------------------------------------------


@audit.get("", response_model=Page[AccessLogEntry], summary="Who read clear PII, when and why")
async def access_log(
    request: Request,
    principal: Annotated[Principal, Depends(allow("pii_log.read"))],
    person_id: str | None = None,
    actor: str | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[AccessLogEntry]:
    after = decode_cursor(request, cursor).get("after")
    scope = None if principal.everywhere else list(principal.scope)
    async with _pool(request).acquire() as conn:
        rows = await conn.fetch(
            """
            SELECT l.id, l.at, l.actor, l.roles, l.person_id, l.fields, l.reason,
                   l.correlation_id
            FROM pii_access_log l LEFT JOIN persons p ON p.id = l.person_id
            WHERE ($1::text IS NULL OR l.person_id = $1)
              AND ($2::text IS NULL OR l.actor = $2)
              AND ($3::bigint IS NULL OR l.id > $3)
              AND ($5::text[] IS NULL OR EXISTS (
                    SELECT 1 FROM nodes n JOIN nodes s ON n.path <@ s.path
                    WHERE n.id = p.household_id AND s.id = ANY($5)))
            ORDER BY l.id LIMIT $4
            """,
            person_id,
            actor,
            after,
            limit + 1,
            scope,
        )
    entries = [
        AccessLogEntry(
            id=r["id"],
            at=r["at"].isoformat(),
            actor=r["actor"],
            roles=r["roles"],
            person_id=r["person_id"],
            fields=r["fields"],
            reason=r["reason"],
            correlation_id=str(r["correlation_id"]) if r["correlation_id"] else None,
        )
        for r in rows
    ]
    return page_of(request, entries, limit, lambda e: {"after": e.id})
