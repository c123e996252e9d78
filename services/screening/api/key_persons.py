"""Screening HTTP API: risk areas (中高风险地区), key-person rules, person inquiries and key
persons (重点人员).

Who may call what (every call also needs the node concerned inside the caller's `scope`):

* risk areas and rules concern the whole system, so changing them needs a token scoped to
  `*`: risk areas are declared and lifted by `admin` and `command` (the command centre,
  指挥部, publishes the list); the rules are changed by `admin`. Every role reads both.
* inquiries are asked by `grid_worker`, `medic` and `admin`;
* key persons are read by `admin`, `grid_worker`, `medic`, `command`, `auditor` and
  `integrator` (masked values only) and cleared by `admin` and `medic`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError

from services.screening.commands.key_persons import (
    BatchOut,
    InquiryBatch,
    InquiryCreate,
    InquiryItem,
    InquiryOut,
    ItemOut,
    KeyPersonClear,
    KeyPersonDetail,
    KeyPersonEntry,
    KeyPersonOut,
    RiskAreaCreate,
    RiskAreaLift,
    RiskAreaOut,
    RulesChange,
    RulesOut,
)
from services.screening.domain import key_persons as domain
from services.screening.handlers import key_persons as handlers
from services.screening.handlers.key_persons import InquiryInput, ItemResult, PersonFacts
from shared.auth import Principal, check_root_scope, check_scope
from shared.contracts.screening import KeyReason
from shared.errors import DomainError
from shared.eventstore import CommandContext
from shared.horizon import CalendarDay
from shared.pagination import Cursor, Limit, Page, decode_cursor, page_of
from shared.places import covers
from shared.problems import Problem
from shared.requests import (
    answer_once,
    command_context,
    etag,
    expected_version,
    json_answer,
    new_id,
)
from shared.roles import allow

DEFAULT_CLOCK_SKEW = 300

risk_areas = APIRouter(prefix="/v1/risk-areas", tags=["risk areas"])
rules = APIRouter(prefix="/v1/key-person-rules", tags=["key persons"])
inquiries = APIRouter(prefix="/v1/inquiries", tags=["inquiries"])
key_persons = APIRouter(prefix="/v1/key-persons", tags=["key persons"])
ROUTERS = [risk_areas, rules, inquiries, key_persons]


# -- shared by the screening API modules -----------------------------------------------------


def pool_of(request: Request) -> Any:
    return request.app.state.pool


def setting(request: Request, name: str, default: Any) -> Any:
    return getattr(request.app.state.settings, name, default)


def scope_of(principal: Principal) -> tuple[str, ...] | None:
    """The caller's scope for queries: None when it is the whole system."""
    return None if principal.everywhere else principal.scope


def not_in_future(moment: datetime, request: Request, field: str = "occurred_at") -> datetime:
    skew = timedelta(seconds=setting(request, "field_clock_skew_seconds", DEFAULT_CLOCK_SKEW))
    if moment > datetime.now(UTC) + skew:
        raise DomainError("occurred-in-future", "the time lies in the future", field=field)
    return moment


async def person_in_scope(
    request: Request, principal: Principal, person_id: str, field: str = "body.person_id"
) -> PersonFacts:
    """A registered, non-voided person named in a body (422 otherwise) in the caller's scope."""
    async with pool_of(request).acquire() as conn:
        facts = (await handlers.person_facts(conn, [person_id])).get(person_id)
        person = handlers.active_person(facts, person_id, field)
        await check_scope(principal, person.household_id, covers(conn))
    return person


async def subject_in_scope(request: Request, principal: Principal, subject_id: str) -> None:
    """404 for a subject screening has never heard of; 403 outside the caller's scope."""
    async with pool_of(request).acquire() as conn:
        node = await handlers.subject_node(conn, subject_id)
        if node is None:
            known = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM key_persons WHERE subject_id = $1)"
                " OR EXISTS (SELECT 1 FROM persons WHERE id = $1)",
                subject_id,
            )
            if not known:
                raise Problem(404, f"subject {subject_id} is unknown")
            check_root_scope(principal, f"subject {subject_id} has no place")  # an h: subject
            return
        await check_scope(principal, node, covers(conn))


def batch_out(results: list[ItemResult]) -> BatchOut:
    ordered = sorted(results, key=lambda r: r.index)
    return BatchOut(
        created=sum(r.status == "created" for r in ordered),
        unchanged=sum(r.status == "unchanged" for r in ordered),
        errors=sum(r.status == "error" for r in ordered),
        results=[
            ItemOut(
                index=r.index,
                id=r.id,
                status=r.status,
                code=r.code,
                field=r.field,
                reason=r.reason,
                flagged_reasons=r.details.get("new_reasons"),
            )
            for r in ordered
        ],
    )


def invalid_item(index: int, raw: Any, exc: ValidationError) -> ItemResult:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
    where = ".".join(str(p) for p in first.get("loc", ())) or "item"
    item_id = raw.get("id") if isinstance(raw, dict) else None
    return ItemResult(
        index,
        item_id if isinstance(item_id, str) else None,
        "error",
        "validation-error",
        where,
        str(first.get("msg", "invalid")),
    )


def single(result: ItemResult) -> None:
    """Answer a one-item command's refusal as the error it is."""
    if result.status != "error":
        return
    if result.error is not None:
        raise result.error
    raise Problem(403, result.reason or "refused", slug=result.code or "forbidden")


# -- risk areas ------------------------------------------------------------------------------


def _area_out(row: dict[str, Any]) -> RiskAreaOut:
    return RiskAreaOut(**{k: v for k, v in row.items() if k != "declared_at"})


async def _area(request: Request, area_id: str, response: Response | None = None) -> RiskAreaOut:
    async with pool_of(request).acquire() as conn:
        row = await handlers.get_risk_area(conn, area_id)
    if row is None:
        raise Problem(404, f"risk area {area_id} does not exist")
    if response is not None:
        response.headers["ETag"] = etag(row["version"])
    return _area_out(row)


@risk_areas.post(
    "",
    status_code=201,
    response_model=RiskAreaOut,
    summary="Declare a risk area (中高风险地区) by division code prefixes",
)
async def declare_risk_area(
    body: RiskAreaCreate,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(allow("risk_areas.write"))],
) -> RiskAreaOut:
    ctx = command_context(request, principal)
    area_id = new_id("risk-area", body.id, ctx)
    await handlers.declare_risk_area(
        pool_of(request),
        domain.DeclareRiskArea(
            area_id,
            body.name,
            body.level,
            tuple(body.region_codes),
            body.valid_from,
            body.valid_to,
        ),
        ctx,
    )
    response.headers["Location"] = f"/v1/risk-areas/{area_id}"
    return await _area(request, area_id, response)


@risk_areas.post("/{area_id}/lift", response_model=RiskAreaOut, summary="Lift a risk area")
async def lift_risk_area(
    area_id: str,
    body: RiskAreaLift,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(allow("risk_areas.write"))],
) -> RiskAreaOut:
    await handlers.lift_risk_area(
        pool_of(request),
        area_id,
        body.lifted_on,
        body.reason,
        command_context(request, principal),
        expected_version(request),
    )
    return await _area(request, area_id, response)


@risk_areas.get(
    "", response_model=Page[RiskAreaOut], summary="Risk areas, or those active on a day"
)
async def list_risk_areas(
    request: Request,
    principal: Annotated[Principal, Depends(allow("risk_areas.read"))],
    active_on: Annotated[
        CalendarDay | None, Query(description="only areas active that day")
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[RiskAreaOut]:
    after = decode_cursor(request, cursor).get("after")
    async with pool_of(request).acquire() as conn:
        rows = await handlers.list_risk_areas(conn, active_on, after, limit)
    return page_of(request, [_area_out(r) for r in rows], limit, lambda a: {"after": a.id})


@risk_areas.get("/{area_id}", response_model=RiskAreaOut, summary="A risk area")
async def get_risk_area(
    area_id: str,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(allow("risk_areas.read"))],
) -> RiskAreaOut:
    return await _area(request, area_id, response)


# -- rules -----------------------------------------------------------------------------------


async def _rules(request: Request, response: Response) -> RulesOut:
    async with pool_of(request).acquire() as conn:
        row = await conn.fetchrow(
            "SELECT fever_threshold, look_back_days, version, changed_at, changed_by"
            " FROM key_person_rules WHERE id = 'current'"
        )
    out = (
        RulesOut(**dict(row))
        if row is not None
        else RulesOut(
            fever_threshold=domain.DEFAULT_RULES.fever_threshold,
            look_back_days=domain.DEFAULT_RULES.look_back_days,
            version=0,
        )
    )
    response.headers["ETag"] = etag(out.version)
    return out


@rules.get("", response_model=RulesOut, summary="The rules that flag key persons")
async def get_rules(
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(allow("key_person_rules.read"))],
) -> RulesOut:
    return await _rules(request, response)


@rules.put(
    "",
    response_model=RulesOut,
    summary="Change the fever threshold and look-back window (applies to what comes next)",
)
async def change_rules(
    body: RulesChange,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(allow("key_person_rules.write"))],
) -> RulesOut:
    await handlers.change_rules(
        pool_of(request),
        body.fever_threshold,
        body.look_back_days,
        command_context(request, principal),
        expected_version(request),
    )
    return await _rules(request, response)


# -- inquiries -------------------------------------------------------------------------------


async def _inquiry(request: Request, inquiry_id: str, response: Response) -> InquiryOut:
    async with pool_of(request).acquire() as conn:
        row = await handlers.get_inquiry(conn, inquiry_id)
    if row is None:
        raise Problem(404, f"inquiry {inquiry_id} does not exist")
    response.headers["ETag"] = etag(row["version"])
    return InquiryOut(
        **{k: v for k, v in row.items() if k not in ("subject_id", "new_reasons")},
        person_id=row["subject_id"],
        flagged_reasons=row["new_reasons"],
    )


@inquiries.post(
    "",
    status_code=201,
    response_model=InquiryOut,
    summary="Record a person inquiry (询问登记); the rules may flag a key person",
)
async def create_inquiry(
    body: InquiryCreate,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(allow("inquiries.write"))],
) -> InquiryOut:
    await person_in_scope(request, principal, body.person_id)
    ctx = command_context(request, principal)
    inquiry_id = new_id("inquiry", body.id, ctx)
    occurred_at = not_in_future(body.occurred_at or datetime.now(UTC), request, "body.occurred_at")
    [result] = await handlers.inquire(
        pool_of(request),
        [
            InquiryInput(
                0,
                inquiry_id,
                body.person_id,
                tuple(body.travel),
                body.close_contact,
                tuple(body.symptoms),
                body.temperature,
                occurred_at,
            )
        ],
        zone=request.app.state.settings.zone,
        scope=scope_of(principal),
        ctx=ctx,
    )
    single(result)
    response.headers["Location"] = f"/v1/inquiries/{inquiry_id}"
    return await _inquiry(request, inquiry_id, response)


@inquiries.post(
    ":batch",
    response_model=BatchOut,
    summary="Upload inquiries made offline (up to 5000), with a result per item",
    description=(
        "Each item carries its client id and when it was asked. Items are checked one by one:"
        " a bad item is an `error` in its result and does not stop the others. Sending the"
        " same batch again records nothing twice (`unchanged`)."
    ),
)
async def batch_inquiries(
    body: InquiryBatch,
    request: Request,
    principal: Annotated[Principal, Depends(allow("inquiries.write"))],
) -> Response:
    early: list[ItemResult] = []
    inputs: list[InquiryInput] = []
    for index, raw in enumerate(body.items):
        try:
            item = InquiryItem.model_validate(raw)
            not_in_future(item.occurred_at, request)
        except ValidationError as exc:
            early.append(invalid_item(index, raw, exc))
            continue
        except DomainError as exc:
            early.append(ItemResult.refused(index, item.id, exc))
            continue
        inputs.append(
            InquiryInput(
                index,
                item.id,
                item.person_id,
                tuple(item.travel),
                item.close_contact,
                tuple(item.symptoms),
                item.temperature,
                item.occurred_at,
            )
        )

    async def record(ctx: CommandContext) -> Response:
        results = await handlers.inquire(
            pool_of(request),
            inputs,
            zone=request.app.state.settings.zone,
            scope=scope_of(principal),
            ctx=ctx,
            chunk_size=setting(request, "inquiry_batch_chunk", 500),
        )
        return json_answer(batch_out(early + results))

    return await answer_once(request, principal, record)


@inquiries.get("/{inquiry_id}", response_model=InquiryOut, summary="An inquiry as recorded")
async def get_inquiry(
    inquiry_id: str,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(allow("key_persons.read"))],
) -> InquiryOut:
    out = await _inquiry(request, inquiry_id, response)
    if out.household_id is not None:
        async with pool_of(request).acquire() as conn:
            await check_scope(principal, out.household_id, covers(conn))
    return out


# -- key persons -----------------------------------------------------------------------------


def _key_person_out(row: dict[str, Any]) -> KeyPersonOut:
    return KeyPersonOut(**{**row, "reasons": domain.in_reason_order(set(row["reasons"]))})


async def _detail(request: Request, subject_id: str, response: Response) -> KeyPersonDetail:
    async with pool_of(request).acquire() as conn:
        row = await handlers.get_key_person(conn, subject_id)
        history = await handlers.key_person_history(conn, subject_id)
    if row is None:
        raise Problem(404, f"{subject_id} has never been flagged as a key person")
    response.headers["ETag"] = etag(row["version"])
    return KeyPersonDetail(
        **_key_person_out(row).model_dump(),
        history=[
            KeyPersonEntry.of(e.version, e.type, e.occurred_at, e.recorded_at, e.actor, e.data)
            for e in history
        ],
    )


@key_persons.get(
    "",
    response_model=Page[KeyPersonOut],
    summary="Key persons (重点人员台账) under a place, in the caller's jurisdiction",
)
async def list_key_persons(
    request: Request,
    principal: Annotated[Principal, Depends(allow("key_persons.read"))],
    node_id: Annotated[str | None, Query(description="a place; default the whole scope")] = None,
    reason: Annotated[KeyReason | None, Query(description="only those flagged for it")] = None,
    include_cleared: Annotated[bool, Query(description="also those cleared")] = False,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[KeyPersonOut]:
    after = decode_cursor(request, cursor).get("after")
    async with pool_of(request).acquire() as conn:
        if node_id is not None:
            if not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM places WHERE id = $1)", node_id
            ):
                raise Problem(
                    422,
                    f"query.node_id: place {node_id} does not exist",
                    slug="unknown-node",
                    errors=[{"field": "query.node_id", "reason": "unknown place"}],
                )
            await check_scope(principal, node_id, covers(conn))
        rows = await handlers.list_key_persons(
            conn,
            node_id=node_id,
            reason=reason,
            include_cleared=include_cleared,
            scope=scope_of(principal),
            after=after,
            limit=limit,
        )
    return page_of(
        request, [_key_person_out(r) for r in rows], limit, lambda k: {"after": k.subject_id}
    )


@key_persons.get(
    "/{subject_id}",
    response_model=KeyPersonDetail,
    summary="A key person with every flag and clearance",
)
async def get_key_person(
    subject_id: str,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(allow("key_persons.read"))],
) -> KeyPersonDetail:
    await subject_in_scope(request, principal, subject_id)
    return await _detail(request, subject_id, response)


@key_persons.post(
    "/{subject_id}/clear",
    response_model=KeyPersonDetail,
    summary="Clear a key person (409 if not flagged); a later flag makes them one again",
)
async def clear_key_person(
    subject_id: str,
    body: KeyPersonClear,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(allow("key_persons.clear"))],
) -> KeyPersonDetail:
    await subject_in_scope(request, principal, subject_id)
    await handlers.clear_key_person(
        pool_of(request),
        subject_id,
        body.reason,
        command_context(request, principal),
        expected_version(request),
    )
    return await _detail(request, subject_id, response)
