"""Reporting HTTP API: a node, what lies under it, and its figures for a day."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from services.reporting.api.figures import Day, NodeSummary, known_in_scope, node_summary, today
from shared.auth import Principal, Role, require
from shared.problems import Problem

READERS = tuple(Role)

summaries = APIRouter(prefix="/v1/nodes", tags=["figures"])


@summaries.get(
    "/{node_id}/summary",
    response_model=NodeSummary,
    summary="A place, what lies under it, its flows of the day and stocks at the day's end",
)
async def node_summary_route(
    node_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require(*READERS))],
    date: Day = None,
) -> NodeSummary:
    day = date or today(request)
    async with request.app.state.pool.acquire() as conn:
        await known_in_scope(conn, principal, node_id)
        summary = await node_summary(conn, node_id, day)
        if summary is None:
            raise Problem(404, f"node {node_id} is not known to reporting (yet)")
    return summary
