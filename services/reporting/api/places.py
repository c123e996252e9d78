"""Reporting HTTP API: a node, what lies under it, and its figures for a day."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from services.reporting.api.figures import Day, NodeSummary, node_summary, today
from shared.auth import Principal
from shared.roles import allow

summaries = APIRouter(prefix="/v1/nodes", tags=["figures"])


@summaries.get(
    "/{node_id}/summary",
    response_model=NodeSummary,
    summary="A place, what lies under it, its flows of the day and stocks at the day's end",
)
async def node_summary_route(
    node_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(allow("figures.read"))],
    date: Day = None,
) -> NodeSummary:
    day = date or today(request)
    async with request.app.state.pool.acquire() as conn:
        return await node_summary(conn, principal, node_id, day)
