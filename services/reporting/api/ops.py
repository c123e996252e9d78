"""Reporting HTTP API: how far the read models are behind, and rebuilding them.

These answer for the whole system, so besides the role they need a token scoped to `*`.
"""

from __future__ import annotations

from typing import Annotated

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Request, Response

from shared.auth import Principal, Role, require
from shared.lag import LagReport
from shared.problems import Problem
from shared.rebuild import RebuildRunning, RebuildStatus

router = APIRouter(tags=["ops"])

OBSERVERS = (Role.ADMIN, Role.AUDITOR)


def whole_system(principal: Principal) -> None:
    if not principal.everywhere:
        raise Problem(
            403, "operational endpoints need a token scoped to the whole system (*)",
            slug="out-of-scope",
        )  # fmt: skip


@router.get(
    "/v1/lag",
    response_model=LagReport,
    summary="Per read model, topic and partition: stored offset, high watermark, lag, "
    "dead-lettered events",
)
async def lag(
    request: Request, principal: Annotated[Principal, Depends(require(*OBSERVERS))]
) -> LagReport:
    whole_system(principal)
    try:
        report: LagReport = await request.app.state.lag_watch.measure()
    except (KafkaError, OSError) as exc:
        raise Problem(503, f"Kafka did not answer: {exc}", slug="unavailable") from exc
    return report


@router.post(
    "/v1/admin/rebuild",
    status_code=202,
    response_model=RebuildStatus,
    summary="Rebuild every read model from the start of the topics and swap it in",
    description="Queries keep answering from the current tables meanwhile; live consumers "
    "pause only for the swap. 409 while a rebuild runs. Follow `Location`.",
)
async def start_rebuild(
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(require(Role.ADMIN))],
) -> RebuildStatus:
    whole_system(principal)
    try:
        status: RebuildStatus = await request.app.state.start_rebuild()
    except RebuildRunning as exc:
        raise Problem(409, str(exc), slug="rebuild-running") from exc
    response.headers["Location"] = f"/v1/admin/rebuild/{status.id}"
    return status


@router.get(
    "/v1/admin/rebuild/{rebuild_id}",
    response_model=RebuildStatus,
    summary="A rebuild started by this instance: phase, records read, pause, error",
    description="`latest` is the one this instance started last.",
)
async def rebuild_status(
    rebuild_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.ADMIN))],
) -> RebuildStatus:
    whole_system(principal)
    rebuilds = request.app.state.rebuilds
    status: RebuildStatus | None = (
        rebuilds.latest() if rebuild_id == "latest" else rebuilds.get(rebuild_id)
    )
    if status is None:
        raise Problem(404, f"rebuild_id {rebuild_id} is not known to this instance")
    return status
