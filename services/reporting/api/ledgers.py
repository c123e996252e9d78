"""Reporting HTTP API: ledgers across a jurisdiction (CSV / XLSX) and daily-report
completeness per level."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response

from services.reporting import ledgers
from services.reporting.config import ReportingSettings
from shared import places
from shared.auth import Principal, check_scope
from shared.horizon import CalendarDay
from shared.problems import Problem
from shared.roles import allow, allow_by

# each ledger is read with the group of the service that owns its rows
LEDGER_GROUPS = {
    "key-persons": "key_persons.read",
    "screening": "visits.read",
    "crossings": "crossings.read",
}
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

router = APIRouter(tags=["ledgers"])


def settings_of(request: Request) -> ReportingSettings:
    settings: ReportingSettings = request.app.state.settings
    return settings


def now_of(request: Request) -> datetime:
    """The service's clock (`app.state.clock` when a test sets one)."""
    clock: Callable[[], datetime] | None = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else datetime.now(UTC)


async def place_in_scope(conn: Any, principal: Principal, node_id: str) -> ledgers.Place:
    await check_scope(principal, node_id, places.covers(conn))
    place = await ledgers.find_place(conn, node_id)
    if place is None:
        raise Problem(404, f"node {node_id} is not known to reporting (yet)")
    return place


@router.get(
    "/v1/ledgers/{name}.{fmt}",
    summary="A ledger over a place's subtree (重点人员台账, 排查统计表, 卡口登记表)",
    response_class=Response,
    responses={
        200: {
            "description": "The ledger with Chinese column headers; masked PII only.",
            "content": {MEDIA["csv"]: {}, MEDIA["xlsx"]: {}},
        }
    },
)
async def ledger(
    name: ledgers.LedgerName,
    fmt: Literal["csv", "xlsx"],
    request: Request,
    principal: Annotated[Principal, Depends(allow_by("name", LEDGER_GROUPS))],
    node_id: Annotated[str, Query(min_length=1, examples=["comm"])],
    day: Annotated[CalendarDay | None, Query(alias="date", description="default: today")] = None,
) -> Response:
    zone = settings_of(request).zone
    day = day or now_of(request).astimezone(zone).date()
    async with request.app.state.pool.acquire() as conn:
        place = await place_in_scope(conn, principal, node_id)
        table = await ledgers.LEDGERS[name](conn, place, day, zone)
    body = ledgers.to_csv(table) if fmt == "csv" else ledgers.to_xlsx(table)
    filename = f"{table.title}-{place.id}-{day.isoformat()}.{fmt}"
    return Response(
        body,
        media_type=MEDIA[fmt],
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
        },
    )


@router.get(
    "/v1/daily-reports/completeness",
    response_model=ledgers.Completeness,
    summary="Which nodes of a level submitted figures, a zero report, late, or nothing yet",
)
async def completeness(
    request: Request,
    principal: Annotated[Principal, Depends(allow("daily_reports.read"))],
    node_id: Annotated[str, Query(min_length=1, examples=["comm"])],
    level: Annotated[str, Query(min_length=1, description="a node kind", examples=["grid"])],
    day: Annotated[CalendarDay | None, Query(alias="date", description="default: today")] = None,
) -> ledgers.Completeness:
    settings = settings_of(request)
    now = now_of(request)
    day = day or now.astimezone(settings.zone).date()
    deadline = datetime.combine(day, settings.report_deadline(level), tzinfo=settings.zone)
    async with request.app.state.pool.acquire() as conn:
        place = await place_in_scope(conn, principal, node_id)
        return await ledgers.completeness(conn, place, day, level, deadline, now)
