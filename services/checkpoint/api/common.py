"""What the checkpoint routers share: roles, the pool, the clock, jurisdiction of a gate."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, Request

from services.checkpoint.config import CheckpointSettings
from services.checkpoint.handlers.checkpoints import node_of
from shared.auth import Principal, check_scope
from shared.envelope import utc_now
from shared.places import covers
from shared.problems import Problem
from shared.roles import allow

Admin = Annotated[Principal, Depends(allow("checkpoints.write"))]
Recorder = Annotated[Principal, Depends(allow("crossings.write"))]
GateReader = Annotated[Principal, Depends(allow("checkpoints.read"))]
LedgerReader = Annotated[Principal, Depends(allow("crossings.read"))]


def pool(request: Request) -> Any:
    return request.app.state.pool


def settings(request: Request) -> CheckpointSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def clock(request: Request) -> Callable[[], datetime]:
    """The server's clock: `app.state.clock` when a test or an operator set one, else UTC now."""
    return getattr(request.app.state, "clock", None) or utc_now


def today(request: Request) -> date:
    return clock(request)().astimezone(settings(request).zone).date()


async def gate_in_scope(request: Request, principal: Principal, checkpoint_id: str) -> str:
    """The gate's node; 404 for an unknown gate, 403 outside the caller's jurisdiction."""
    async with pool(request).acquire() as conn:
        node_id = await node_of(conn, checkpoint_id)
        if node_id is None:
            raise Problem(404, f"checkpoint {checkpoint_id} does not exist")
        await check_scope(principal, node_id, covers(conn))
    return node_id


def invalid(field: str, detail: str, slug: str) -> Problem:
    return Problem(
        422,
        f"body.{field}: {detail}",
        slug=slug,
        errors=[{"field": f"body.{field}", "reason": detail}],
    )
