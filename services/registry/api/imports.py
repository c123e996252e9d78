"""Registry HTTP API: roster imports (花名册导入)."""

from __future__ import annotations

import tempfile
from typing import Annotated, Any, BinaryIO, Literal, cast

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from services.registry.handlers import imports as handlers
from services.registry.handlers.places import get_node
from services.registry.roster import RosterFormatError
from shared.auth import Principal, check_scope, ltree_covers
from shared.eventstore import CommandContext
from shared.problems import Problem
from shared.requests import answer_once, json_answer
from shared.roles import allow

covers = ltree_covers("nodes")
imports = APIRouter(prefix="/v1/imports", tags=["imports"])
SPOOL_BYTES = 8 * 1024 * 1024


class RowOut(BaseModel):
    row: int
    status: Literal["created", "unchanged", "error"]
    person_id: str | None = None
    household_id: str | None = None
    field: str | None = None
    reason: str | None = None


class ImportOut(BaseModel):
    rows: int
    created: int
    unchanged: int
    errors: int
    places_created: int
    results: list[RowOut]


@imports.post(
    "/households",
    response_model=ImportOut,
    summary="Import a household roster (CSV or XLSX with Chinese headers)",
    description=(
        "The body is the file itself (`Content-Type: text/csv` or the XLSX type). Headers such"
        " as 小区, 楼栋, 单元, 楼层, 门牌号, 姓名, 证件类型, 身份证号, 联系电话, 人员类别 are"
        " recognised. Missing places are created under `parent_id` down to the household."
        " Rows commit in chunks; importing the same file again changes nothing."
    ),
)
async def import_households(
    request: Request,
    principal: Annotated[Principal, Depends(allow("people.write"))],
    parent_id: Annotated[str, Query(description="the place the roster's buildings belong to")],
    filename: Annotated[str | None, Query(description="original file name")] = None,
) -> Response:
    pool: Any = request.app.state.pool
    async with pool.acquire() as conn:
        if await get_node(conn, parent_id) is None:
            raise Problem(
                422,
                f"query.parent_id: place {parent_id} does not exist",
                slug="unknown-parent",
                errors=[{"field": "query.parent_id", "reason": "unknown place"}],
            )
        await check_scope(principal, parent_id, covers(conn))
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        async for part in request.stream():
            spool.write(part)
        spool.seek(0)

        async def record(ctx: CommandContext) -> Response:
            try:
                report = await handlers.import_roster(
                    pool,
                    request.app.state.keys,
                    parent_id,
                    cast(BinaryIO, spool),
                    filename,
                    request.headers.get("content-type"),
                    ctx,
                )
            except RosterFormatError as exc:
                raise Problem(
                    422,
                    f"body: {exc}",
                    slug="roster-format",
                    errors=[{"field": "body", "reason": str(exc)}],
                ) from exc
            return json_answer(
                ImportOut(
                    rows=report.rows,
                    created=report.created,
                    unchanged=report.unchanged,
                    errors=report.errors,
                    places_created=report.places_created,
                    results=[RowOut(**r.__dict__) for r in report.results],
                )
            )

        # the whole file has streamed in, so the request's fingerprint is complete
        return await answer_once(request, principal, record)
