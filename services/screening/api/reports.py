"""Screening HTTP API: daily reports (日报告), zero reports (零报告) and their completeness."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from services.screening.api.visits import clock
from services.screening.commands.reports import (
    CompletenessItem,
    CompletenessOut,
    DailyReportCreate,
    DailyReportOut,
)
from services.screening.config import ScreeningSettings
from services.screening.domain.reports import SubmitReport
from services.screening.handlers import reports as handlers
from services.screening.handlers.reports import Deadlines
from shared.auth import Principal, check_scope
from shared.horizon import CalendarDay
from shared.input_limits import INT4_MAX
from shared.places import covers
from shared.problems import Problem
from shared.requests import command_context, etag, expected_version, new_id
from shared.roles import allow

# a node's daily report is compiled by its grid worker (or an admin)
Reporter = Annotated[Principal, Depends(allow("daily_reports.write"))]
Reader = Annotated[Principal, Depends(allow("daily_reports.read"))]

daily_reports = APIRouter(prefix="/v1/daily-reports", tags=["daily reports"])


def _pool(request: Request) -> Any:
    return request.app.state.pool


def _deadlines(request: Request) -> Deadlines:
    s: ScreeningSettings = request.app.state.settings
    return Deadlines(s.report_deadlines, s.report_default_deadline, s.zone)


async def _kind_in_scope(
    request: Request, principal: Principal, node_id: str, *, in_body: bool
) -> str:
    """The node's kind; an unknown node is 422 when named in a body, 404 in the URL."""
    async with _pool(request).acquire() as conn:
        kind = await handlers.node_kind(conn, node_id)
        if kind is None:
            if in_body:
                raise Problem(
                    422,
                    f"body.node_id: place {node_id} does not exist",
                    slug="unknown-node",
                    errors=[{"field": "body.node_id", "reason": "unknown place"}],
                )
            raise Problem(404, f"place {node_id} does not exist")
        await check_scope(principal, node_id, covers(conn))
    return kind


async def _report_out(
    request: Request,
    node_id: str,
    day: date,
    kind: str,
    response: Response,
    revision: int | None = None,
    report_id: str | None = None,
) -> DailyReportOut:
    async with _pool(request).acquire() as conn:
        if report_id is not None:
            revision = await conn.fetchval(
                "SELECT revision FROM daily_report_revisions WHERE report_id = $1", report_id
            )
        row = await handlers.get_report(conn, node_id, day, revision)
    if row is None:
        raise Problem(404, f"no report from {node_id} for {day}")
    response.headers["ETag"] = etag(row["revision"])
    return DailyReportOut(**row, deadline=_deadlines(request).of(kind, day))


@daily_reports.post(
    "",
    status_code=201,
    response_model=DailyReportOut,
    summary="Submit or amend a node's daily report, or a zero report (零报告)",
    description=(
        "The first report of a node for a day is revision 1; each later one with a new `id`"
        " amends it (revision 2, 3, ...). `late` is decided by the server's clock against the"
        " deadline of the node's level (`SCREENING_REPORT_DEADLINES`) in the system zone."
        ' Sending the same `id` again changes nothing. `If-Match: "<revision>"` makes an'
        " amendment conditional."
    ),
    responses={409: {"description": "the report id was used for other content"}},
)
async def submit_report(
    body: DailyReportCreate, request: Request, response: Response, principal: Reporter
) -> DailyReportOut:
    kind = await _kind_in_scope(request, principal, body.node_id, in_body=True)
    settings: ScreeningSettings = request.app.state.settings
    now = clock(request)()
    ctx = command_context(request, principal)
    report_id = new_id("daily-report", body.id, ctx)
    await handlers.submit_report(
        _pool(request),
        SubmitReport(
            report_id=report_id,
            node_id=body.node_id,
            day=body.day,
            zero=body.zero,
            figures=body.figures,
            submitted_by=principal.sub,
            submitted_at=now,
            deadline=_deadlines(request).of(kind, body.day),
            today=now.astimezone(settings.zone).date(),
        ),
        ctx,
        expected_version(request),
    )
    response.headers["Location"] = (
        f"/v1/daily-reports?node_id={body.node_id}&day={body.day.isoformat()}"
    )
    return await _report_out(request, body.node_id, body.day, kind, response, report_id=report_id)


@daily_reports.get(
    "",
    response_model=DailyReportOut,
    summary="A node's report for a day: the latest revision, or the one asked for",
)
async def get_report(
    request: Request,
    response: Response,
    principal: Reader,
    node_id: Annotated[str, Query(min_length=1)],
    day: Annotated[CalendarDay, Query()],
    revision: Annotated[int | None, Query(ge=1, le=INT4_MAX)] = None,
) -> DailyReportOut:
    kind = await _kind_in_scope(request, principal, node_id, in_body=False)
    return await _report_out(request, node_id, day, kind, response, revision)


@daily_reports.get(
    "/completeness",
    response_model=CompletenessOut,
    summary="Which nodes of a level under a place reported for a day",
    description=(
        "For every node of `kind` under `node_id`: `submitted` (with figures), `zero` (零报告),"
        " `late` (its first report came after the deadline, zero or not), `missing`, or"
        " `pending` while the deadline has not passed. Zero is a report; missing is not."
    ),
)
async def completeness(
    request: Request,
    principal: Reader,
    node_id: Annotated[str, Query(min_length=1)],
    day: Annotated[CalendarDay, Query()],
    kind: Annotated[str, Query(min_length=1, max_length=40)] = "grid",
) -> CompletenessOut:
    await _kind_in_scope(request, principal, node_id, in_body=False)
    async with _pool(request).acquire() as conn:
        result = await handlers.completeness(
            conn, node_id, day, kind, _deadlines(request), clock(request)()
        )
    return CompletenessOut(
        node_id=node_id,
        day=day,
        kind=kind,
        deadline=result.deadline,
        counts=result.counts,
        items=[CompletenessItem(**i) for i in result.items],
    )


ROUTERS = [daily_reports]
