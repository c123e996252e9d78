"""Reporting HTTP API: figures for a node and everything under it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from services.reporting import views
from shared import places
from shared.auth import Principal, Role, check_scope, require
from shared.problems import Problem

READERS = tuple(Role)

summaries = APIRouter(prefix="/v1/nodes", tags=["figures"])


@summaries.get(
    "/{node_id}/summary",
    response_model=views.PlaceSummary,
    summary="A place and what lies under it",
)
async def node_summary(
    node_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require(*READERS))],
) -> views.PlaceSummary:
    async with request.app.state.pool.acquire() as conn:
        summary = await views.place_summary(conn, node_id)
        if summary is None:
            raise Problem(404, f"node {node_id} is not known to reporting (yet)")
        await check_scope(principal, node_id, places.covers(conn))
    return summary
