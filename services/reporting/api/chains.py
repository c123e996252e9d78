"""Reporting HTTP API: responsibility chains (包保): blind spots, a party's figures, a place's
chain tree."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from services.reporting import chains, ledgers, party_covers
from services.reporting.api import party_figures
from services.reporting.api.ledgers import now_of, place_in_scope, settings_of
from shared.auth import Principal
from shared.horizon import CalendarDay
from shared.problems import Problem
from shared.roles import allow

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
    principal: Annotated[Principal, Depends(allow("key_persons.read"))],
    node_id: Annotated[str, Query(min_length=1, examples=["puyang"])],
    chain: Annotated[
        str, Query(min_length=1, description="an instance or template id", examples=["baobao-4"])
    ],
    day: Annotated[CalendarDay | None, Query(alias="date", description="default: today")] = None,
) -> chains.BlindSpots:
    zone = settings_of(request).zone
    day = day or now_of(request).astimezone(zone).date()
    _, end = ledgers.day_bounds(day, zone)
    async with request.app.state.pool.acquire() as conn:
        place = await place_in_scope(conn, principal, node_id)
        return await chains.blind_spots(conn, place.id, place.path, chain, day, end)


def unknown(field: str, detail: str) -> Problem:
    return Problem(404, f"{field}: {detail}", errors=[{"field": field, "reason": "unknown"}])


async def known_chain(conn: Any, chain: str) -> None:
    if not await party_covers.chain_known(conn, chain):
        raise unknown("path.template", f"chain {chain} is not known to reporting (yet)")


async def party_in_scope(
    conn: Any, principal: Principal, party_id: str, ts: list[party_covers.Target]
) -> None:
    """A caller sees a party when every place it covers on the day (a person's household for
    a person) lies in the caller's jurisdiction; a party covering nothing that day is seen
    from its home node, and one without a home node from the whole system only."""
    if principal.everywhere:
        return
    places: list[str | None] = [t.place_id for t in ts]
    if not places:
        places = [await party_covers.home_node(conn, party_id)]
    known = [p for p in places if p is not None]
    if len(known) < len(places) or await party_covers.places_outside(conn, known, principal.scope):
        raise Problem(
            403,
            f"party {party_id} covers places outside the caller's jurisdiction",
            slug="out-of-scope",
        )


@router.get(
    "/v1/chains/{template}/parties/{party_id}/summary",
    response_model=party_figures.PartySummary,
    summary="The figures of a node summary over what a party covers on a day",
    description="`template` is a template or an instance id. The party's targets valid on the "
    "day in the chain's instances valid on the day are reduced to a minimal cover (a node under "
    "another covered node counts once) and the nodes' figures added up. Covered persons are "
    "counted in `people`, never added to the node figures. The caller must hold every covered "
    "place (a person's household) in scope.",
)
async def party_summary(
    template: str,
    party_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(allow("figures.read"))],
    day: Annotated[CalendarDay | None, Query(alias="date", description="default: today")] = None,
) -> party_figures.PartySummary:
    zone = settings_of(request).zone
    day = day or now_of(request).astimezone(zone).date()
    _, end = ledgers.day_bounds(day, zone)
    async with request.app.state.pool.acquire() as conn:
        await known_chain(conn, template)
        if not await party_covers.party_known(conn, party_id):
            raise unknown("path.party_id", f"party {party_id} is not known to reporting (yet)")
        of = await party_covers.instances(conn, template, day)
        ts = await party_covers.targets(conn, of, day, party_id)
        await party_in_scope(conn, principal, party_id, ts)
        return await party_figures.party_summary(conn, template, party_id, of, ts, day, end)


@router.get(
    "/v1/chains/{template}/tree",
    response_model=party_figures.ChainTree,
    summary="A place's responsibility chain from the top tier down, with each party's figures",
    description="`template` is a template or an instance id. The chain's instances valid on the "
    "day rooted at or above the place; per tier, the parties answering for the place, a place "
    "above it or one under it, with their figures within the place (a party covering a place "
    "above it counts the place itself), and the tier's total over its cover (多对一 once).",
)
async def chain_tree(
    template: str,
    request: Request,
    principal: Annotated[Principal, Depends(allow("figures.read"))],
    node_id: Annotated[str, Query(min_length=1, examples=["c-1"])],
    day: Annotated[CalendarDay | None, Query(alias="date", description="default: today")] = None,
) -> party_figures.ChainTree:
    zone = settings_of(request).zone
    day = day or now_of(request).astimezone(zone).date()
    _, end = ledgers.day_bounds(day, zone)
    async with request.app.state.pool.acquire() as conn:
        place = await place_in_scope(conn, principal, node_id)
        await known_chain(conn, template)
        return await party_figures.chain_tree(conn, template, place.id, place.path, day, end)
