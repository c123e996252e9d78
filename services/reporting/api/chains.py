"""Reporting HTTP API: blind spots of responsibility chains (包保)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from services.reporting import chains, ledgers
from services.reporting.api.ledgers import now_of, place_in_scope, settings_of
from shared.auth import Principal, Role, require

READERS = tuple(Role)

router = APIRouter(tags=["chains"])


@router.get(
    "/v1/blind-spots",
    response_model=chains.BlindSpots,
    summary="Places and key persons inside a chain instance that lack a party at some tier",
    description="A chain reporting does not know (yet), or one not valid on the day, has no "
    "tiers and no blind spots.",
)
async def blind_spots(
    request: Request,
    principal: Annotated[Principal, Depends(require(*READERS))],
    node_id: Annotated[str, Query(min_length=1, examples=["puyang"])],
    chain: Annotated[
        str, Query(min_length=1, description="an instance or template id", examples=["baobao-4"])
    ],
    day: Annotated[date | None, Query(alias="date", description="default: today")] = None,
) -> chains.BlindSpots:
    zone = settings_of(request).zone
    day = day or now_of(request).astimezone(zone).date()
    _, end = ledgers.day_bounds(day, zone)
    async with request.app.state.pool.acquire() as conn:
        place = await place_in_scope(conn, principal, node_id)
        return await chains.blind_spots(conn, place.id, place.path, chain, day, end)
