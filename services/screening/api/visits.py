"""Screening HTTP API: campaigns, household visits (入户排查), offline uploads, audits (核查)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from services.screening.commands.visits import (
    AuditCreate,
    AuditOut,
    BatchOut,
    CampaignCreate,
    CampaignOut,
    ItemResult,
    VisitBatch,
    VisitCreate,
    VisitItem,
    VisitOut,
    VoidVisit,
)
from services.screening.config import ScreeningSettings
from services.screening.domain.visits import AuditVisit, RecordVisit, StartCampaign
from services.screening.handlers import visits as handlers
from services.screening.handlers.visits import Refused
from shared.auth import Principal, check_scope
from shared.envelope import utc_now
from shared.eventstore import CommandContext
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

FieldWorker = Annotated[Principal, Depends(allow("visits.write"))]
Auditor = Annotated[Principal, Depends(allow("visits.audit"))]
Reader = Annotated[Principal, Depends(allow("visits.read"))]

campaigns = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])
visits = APIRouter(prefix="/v1/visits", tags=["visits"])
household_visits = APIRouter(prefix="/v1/households", tags=["visits"])
audits = APIRouter(prefix="/v1/audits", tags=["audits"])


def _pool(request: Request) -> Any:
    return request.app.state.pool


def _settings(request: Request) -> ScreeningSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def clock(request: Request) -> Callable[[], datetime]:
    """The server's clock: `app.state.clock` when a test or an operator set one, else UTC now."""
    return getattr(request.app.state, "clock", None) or utc_now


def _unknown(field: str, detail: str, slug: str) -> Problem:
    return Problem(
        422,
        f"body.{field}: {detail}",
        slug=slug,
        errors=[{"field": f"body.{field}", "reason": detail}],
    )


# -- campaigns -------------------------------------------------------------------------------


async def _campaign_out(request: Request, campaign_id: str, response: Response) -> CampaignOut:
    today = clock(request)().astimezone(_settings(request).zone).date()
    async with _pool(request).acquire() as conn:
        row = await handlers.get_campaign(conn, campaign_id, today)
    if row is None:
        raise Problem(404, f"campaign {campaign_id} does not exist")
    response.headers["ETag"] = etag(row["version"])
    return CampaignOut(**row)


@campaigns.post(
    "",
    status_code=201,
    response_model=CampaignOut,
    summary="Start a screening campaign over a place (拉网式排查)",
)
async def start_campaign(
    body: CampaignCreate, request: Request, response: Response, principal: FieldWorker
) -> CampaignOut:
    async with _pool(request).acquire() as conn:
        if not await handlers.place_known(conn, body.node_id):
            raise _unknown("node_id", f"place {body.node_id} does not exist", "unknown-node")
        await check_scope(principal, body.node_id, covers(conn))
    ctx = command_context(request, principal)
    campaign_id = new_id("campaign", body.id, ctx)
    await handlers.start_campaign(
        _pool(request),
        StartCampaign(
            campaign_id, body.node_id, body.name, body.starts_on, body.due_on, body.goal, True
        ),
        ctx,
        clock(request)(),
    )
    response.headers["Location"] = f"/v1/campaigns/{campaign_id}"
    return await _campaign_out(request, campaign_id, response)


@campaigns.get(
    "/{campaign_id}",
    response_model=CampaignOut,
    summary="A campaign and its coverage: screened, absent, refused, vacant, not yet visited",
)
async def get_campaign(
    campaign_id: str, request: Request, response: Response, principal: Reader
) -> CampaignOut:
    async with _pool(request).acquire() as conn:
        node_id = await conn.fetchval("SELECT node_id FROM campaigns WHERE id = $1", campaign_id)
        if node_id is None:
            raise Problem(404, f"campaign {campaign_id} does not exist")
        await check_scope(principal, node_id, covers(conn))
    return await _campaign_out(request, campaign_id, response)


# -- visits ----------------------------------------------------------------------------------


async def _visit_out(request: Request, visit_id: str, response: Response) -> VisitOut:
    async with _pool(request).acquire() as conn:
        row = await handlers.get_visit(conn, visit_id)
    if row is None:
        raise Problem(404, f"visit {visit_id} does not exist")
    response.headers["ETag"] = etag(row["version"])
    return VisitOut(**row)


async def _visit_in_scope(request: Request, principal: Principal, visit_id: str) -> str:
    """The visit's household; 404 for an unknown visit, 403 outside the jurisdiction."""
    async with _pool(request).acquire() as conn:
        household = await conn.fetchval("SELECT household_id FROM visits WHERE id = $1", visit_id)
        if household is None:
            raise Problem(404, f"visit {visit_id} does not exist")
        await check_scope(principal, household, covers(conn))
    return str(household)


def _skew(request: Request) -> timedelta:
    return timedelta(seconds=_settings(request).visit_clock_skew_seconds)


@visits.post(
    "",
    status_code=201,
    response_model=VisitOut,
    summary="Record a household visit (door, phone or notice)",
    responses={409: {"description": "the visit id was used for another visit"}},
)
async def record_visit(
    body: VisitCreate, request: Request, response: Response, principal: FieldWorker
) -> VisitOut:
    async with _pool(request).acquire() as conn:
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM households WHERE id = $1)", body.household_id
        ):
            raise _unknown(
                "household_id",
                f"household {body.household_id} does not exist",
                "unknown-household",
            )
        await check_scope(principal, body.household_id, covers(conn))
    ctx = command_context(request, principal)
    now = clock(request)()
    visit_id = new_id("visit", body.id, ctx)
    await handlers.record_visit(
        _pool(request),
        RecordVisit(
            visit_id,
            body.household_id,
            body.campaign_id,
            body.method,
            body.outcome,
            tuple(body.steps),
            body.commitment_signed,
            principal.sub,
            body.notes,
            body.occurred_at or now,
        ),
        ctx,
        now,
        _skew(request),
        _settings(request).timezone,
    )
    response.headers["Location"] = f"/v1/visits/{visit_id}"
    return await _visit_out(request, visit_id, response)


def _parse_item(index: int, raw: Any, visitor: str) -> tuple[int, RecordVisit] | Refused:
    item_id = raw.get("id") if isinstance(raw, dict) else None
    item_id = item_id if isinstance(item_id, str) else None
    try:
        item = VisitItem.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "item"
        return Refused(index, item_id, "validation-error", "invalid", field, first["msg"])
    return index, RecordVisit(
        item.id,
        item.household_id,
        item.campaign_id,
        item.method,
        item.outcome,
        tuple(item.steps),
        item.commitment_signed,
        visitor,
        item.notes,
        item.occurred_at,
    )


@visits.post(
    ":batch",
    response_model=BatchOut,
    summary="Upload visits recorded offline (up to 5000), with a result per item",
    description=(
        "Each item carries the field app's own `id` and the time of the visit in the field"
        " (`occurred_at`, possibly days ago, not in the future). Items are committed in chunks;"
        " a bad item is an `error` in the results and does not stop the others. Sending the"
        " same upload again records nothing twice: its items come back `unchanged`; an id"
        " already used for other content is an error with refusal `conflict`."
    ),
)
async def record_visit_batch(
    body: VisitBatch, request: Request, principal: FieldWorker
) -> Response:
    items = [_parse_item(i, raw, principal.sub) for i, raw in enumerate(body.items)]
    settings = _settings(request)

    async def record(ctx: CommandContext) -> Response:
        outcomes = await handlers.record_visit_batch(
            _pool(request),
            items,
            None if principal.everywhere else principal.scope,
            ctx,
            clock(request),
            _skew(request),
            settings.timezone,
            settings.visit_batch_chunk,
        )
        results = [ItemResult(**o.__dict__) for o in outcomes]
        return json_answer(
            BatchOut(
                received=len(results),
                created=sum(1 for r in results if r.status == "created"),
                unchanged=sum(1 for r in results if r.status == "unchanged"),
                errors=sum(1 for r in results if r.status == "error"),
                results=results,
            )
        )

    return await answer_once(request, principal, record)


@visits.get("/{visit_id}", response_model=VisitOut, summary="A visit, its audit verdict, voided")
async def get_visit(
    visit_id: str, request: Request, response: Response, principal: Reader
) -> VisitOut:
    await _visit_in_scope(request, principal, visit_id)
    return await _visit_out(request, visit_id, response)


@visits.post(
    "/{visit_id}/void",
    response_model=VisitOut,
    summary="Void a visit entered by mistake; it no longer counts in coverage",
)
async def void_visit(
    visit_id: str, body: VoidVisit, request: Request, response: Response, principal: Auditor
) -> VisitOut:
    await _visit_in_scope(request, principal, visit_id)
    await handlers.void_visit(
        _pool(request),
        visit_id,
        body.reason,
        command_context(request, principal),
        clock(request)(),
        _settings(request).timezone,
        expected_version(request),
    )
    return await _visit_out(request, visit_id, response)


@household_visits.get(
    "/{household_id}/visits",
    response_model=Page[VisitOut],
    summary="A household's visits, newest first",
)
async def list_household_visits(
    household_id: str,
    request: Request,
    principal: Reader,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[VisitOut]:
    async with _pool(request).acquire() as conn:
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM households WHERE id = $1)", household_id
        ):
            raise Problem(404, f"household {household_id} does not exist")
        await check_scope(principal, household_id, covers(conn))
        position = decode_cursor(request, cursor)
        after = None
        if position:
            try:
                after = (datetime.fromisoformat(position["at"]), str(position["id"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise Problem(
                    422,
                    "query.cursor: not a cursor this API issued",
                    slug="validation-error",
                    errors=[{"field": "query.cursor", "reason": "malformed"}],
                ) from exc
        rows = await handlers.household_visits(conn, household_id, limit + 1, after)
    return page_of(
        request,
        [VisitOut(**r) for r in rows],
        limit,
        lambda v: {"at": v.occurred_at.isoformat(), "id": v.id},
    )


# -- audits ----------------------------------------------------------------------------------


@audits.post(
    "",
    status_code=201,
    response_model=AuditOut,
    summary="Record an unannounced re-check of a visit (核查)",
    responses={409: {"description": "the visit was voided, or the auditor made the visit"}},
)
async def audit_visit(
    body: AuditCreate, request: Request, response: Response, principal: Auditor
) -> AuditOut:
    async with _pool(request).acquire() as conn:
        household = await conn.fetchval(
            "SELECT household_id FROM visits WHERE id = $1", body.visit_id
        )
        if household is None:
            raise _unknown("visit_id", f"visit {body.visit_id} does not exist", "unknown-visit")
        await check_scope(principal, household, covers(conn))
    ctx = command_context(request, principal)
    audit_id = new_id("audit", body.id, ctx)
    await handlers.audit_visit(
        _pool(request),
        AuditVisit(audit_id, body.visit_id, body.verdict, body.discrepancies, principal.sub),
        ctx,
        clock(request)(),
        _settings(request).timezone,
        expected_version(request),
    )
    async with _pool(request).acquire() as conn:
        row = await handlers.get_audit(conn, audit_id)
    assert row is not None
    response.headers["ETag"] = etag(row["visit_version"])
    response.headers["Location"] = f"/v1/visits/{body.visit_id}"
    return AuditOut(**row)


ROUTERS = [campaigns, visits, household_visits, audits]
