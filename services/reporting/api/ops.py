"""Reporting HTTP API: rebuilding the read models (lag and dead letters: shared/ops.py).

These answer for the whole system, so besides the role they need a token scoped to `*`.
A rebuild's status lives in the schema's `rebuild_runs`: any replica answers for it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from shared.auth import Principal
from shared.eventstore import CommandContext
from shared.ops import operator
from shared.problems import Problem
from shared.rebuild import RebuildRunning, RebuildStatus
from shared.requests import answer_once, json_answer

router = APIRouter(tags=["ops"])

RebuildId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="a rebuild's id, or `latest`")
]


@router.post(
    "/v1/admin/rebuild",
    status_code=202,
    response_model=RebuildStatus,
    summary="Rebuild every read model from the start of the topics and swap it in",
    description="Queries keep answering from the current tables meanwhile; live consumers "
    "pause only for the swap. 409 while a rebuild runs, started by any replica. Follow "
    "`Location`.",
    responses={409: {"description": "a rebuild of the schema is running"}},
)
async def start_rebuild(
    request: Request, principal: Annotated[Principal, Depends(operator)]
) -> Response:
    async def start(_: CommandContext) -> Response:
        try:
            status: RebuildStatus = await request.app.state.start_rebuild()
        except RebuildRunning as exc:
            raise Problem(409, str(exc), slug="rebuild-running") from exc
        return json_answer(status, 202, {"Location": f"/v1/admin/rebuild/{status.id}"})

    # a retry with the same Idempotency-Key answers with the rebuild it started
    return await answer_once(request, principal, start)


@router.get(
    "/v1/admin/rebuild/{rebuild_id}",
    response_model=RebuildStatus,
    summary="A rebuild, started by any replica: phase, records read, pause, error",
    description="`latest` is the one started last. A rebuild whose process ended before it "
    "finished shows as `failed`.",
    responses={404: {"description": "no rebuild with this id"}},
)
async def rebuild_status(
    rebuild_id: RebuildId, request: Request, _: Annotated[Principal, Depends(operator)]
) -> RebuildStatus:
    status: RebuildStatus | None = await request.app.state.rebuilds.get(rebuild_id)
    if status is None:
        raise Problem(404, f"rebuild_id {rebuild_id} is not known")
    return status
