"""Reporting HTTP API: flows and stocks per node and day, its children, and trends.

Every answer is a key lookup in `node_day_metrics`: flows of a day are the rows of
(node, day); a stock at the end of day D is the sum of its deltas over days <= D (a range
scan of one node's `stock.*` rows on the partial index), never a scan of events.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from services.reporting import figures, views
from shared import places
from shared.auth import Principal, check_scope
from shared.horizon import CalendarDay
from shared.problems import Problem
from shared.roles import allow

MAX_TREND_DAYS = 366
# stocks always reported, 0 when nothing has been counted; other metrics appear when non-zero
CORE_STOCKS = (
    "households",
    "persons",
    "vulnerable",
    "screened_households",
    "key_persons",
    "under_observation",
    "under_quarantine",
)

FLOWS_EXAMPLE: dict[str, Any] = {
    "visits": 3,
    "visits.door": 2,
    "visits.phone": 1,
    "visits.outcome.screened": 2,
    "visits.outcome.absent": 1,
    "quarantines.ordered": 1,
    "quarantines.ordered.home": 1,
    "crossings": 4,
    "crossings.admit": 3,
    "crossings.deny": 1,
}
STOCKS_EXAMPLE: dict[str, Any] = {
    "households": 4,
    "persons": 9,
    "persons.resident": 9,
    "vulnerable": 1,
    "screened_households": 2,
    "key_persons": 1,
    "key_persons.fever": 1,
    "under_observation": 0,
    "under_quarantine": 1,
    "under_quarantine.home": 1,
}

figures_router = APIRouter(prefix="/v1/nodes", tags=["figures"])


class Figures(BaseModel):
    """Flows of a day and stocks at its end, for a node and everything under it."""

    date: date
    flows: dict[str, int] = Field(
        description="new that day (absent keys are 0)", examples=[FLOWS_EXAMPLE]
    )
    stocks: dict[str, int] = Field(
        description="at the end of the day (core keys always, others when non-zero)",
        examples=[STOCKS_EXAMPLE],
    )
    coverage_pct: float | None = Field(
        description="screened households / households x 100 (None without households)",
        examples=[50.0],
    )


class NodeSummary(views.PlaceSummary, Figures):
    """A place, what lies under it, and its figures for the day."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "comm",
                    "parent_id": "street-a",
                    "kind": "community",
                    "name": "幸福社区",
                    "path": "root.street_a.comm",
                    "version": 1,
                    "children": 2,
                    "descendants_by_kind": {"grid": 2, "building": 2, "household": 4},
                    "date": "2020-02-03",
                    "flows": FLOWS_EXAMPLE,
                    "stocks": STOCKS_EXAMPLE,
                    "coverage_pct": 50.0,
                }
            ]
        }
    )


class ChildFigures(Figures):
    id: str
    kind: str
    name: str


class ChildrenSummary(BaseModel):
    id: str = Field(examples=["comm"])
    date: date
    children: list[ChildFigures]


class TrendPoint(BaseModel):
    date: date
    value: int = Field(examples=[3])


class Trend(BaseModel):
    id: str = Field(examples=["comm"])
    metric: str = Field(examples=["visits.door"])
    points: list[TrendPoint]


# -- queries --------------------------------------------------------------------------------


# the day's flows, then each stock summed over its deltas up to the day
FIGURES_OF = (
    "SELECT node_id, metric, value FROM node_day_metrics"
    " WHERE node_id = ANY($1::text[]) AND day = $2 AND metric NOT LIKE 'stock.%' AND value <> 0"
    " UNION ALL"
    " SELECT node_id, metric, sum(value)::bigint FROM node_day_metrics"
    " WHERE node_id = ANY($1::text[]) AND metric LIKE 'stock.%' AND day <= $2"
    " GROUP BY node_id, metric"
)


async def figures_of(conn: Any, node_ids: list[str], day: date) -> dict[str, Figures]:
    """Flows of `day` and stocks at its end for each node: two index lookups, one round trip."""
    rows = await conn.fetch(FIGURES_OF, node_ids, day)
    flow_of: defaultdict[str, dict[str, int]] = defaultdict(dict)
    stock_of: dict[str, dict[str, int]] = {n: dict.fromkeys(CORE_STOCKS, 0) for n in node_ids}
    for r in rows:
        metric = r["metric"]
        if not metric.startswith(figures.STOCK):
            flow_of[r["node_id"]][metric] = r["value"]
            continue
        name = metric.removeprefix(figures.STOCK)
        if r["value"] or name in CORE_STOCKS:
            stock_of[r["node_id"]][name] = r["value"]
    return {
        n: Figures(
            date=day,
            flows=dict(sorted(flow_of[n].items())),
            stocks=dict(sorted(stock_of[n].items())),
            coverage_pct=figures.coverage_pct(stock_of[n]),
        )
        for n in node_ids
    }


async def trend_of(conn: Any, node_id: str, metric: str, start: date, end: date) -> Trend:
    if figures.is_stock(metric):
        rows = await conn.fetch(
            "SELECT day, value FROM node_day_metrics"
            " WHERE node_id = $1 AND metric = $2 AND day <= $3 ORDER BY day",
            node_id,
            metric,
            end,
        )
        running, by_day = 0, {}
        for r in rows:
            running += r["value"]
            by_day[r["day"]] = running
        points, value = [], sum(r["value"] for r in rows if r["day"] < start)
        for i in range((end - start).days + 1):
            day = start + timedelta(days=i)
            value = by_day.get(day, value)
            points.append(TrendPoint(date=day, value=value))
    else:
        rows = await conn.fetch(
            "SELECT day, value FROM node_day_metrics"
            " WHERE node_id = $1 AND metric = $2 AND day BETWEEN $3 AND $4",
            node_id,
            metric,
            start,
            end,
        )
        found = {r["day"]: r["value"] for r in rows}
        points = [
            TrendPoint(date=d, value=found.get(d, 0))
            for d in (start + timedelta(days=i) for i in range((end - start).days + 1))
        ]
    return Trend(id=node_id, metric=metric, points=points)


def today(request: Request) -> date:
    return datetime.now(request.app.state.settings.zone).date()


async def known_in_scope(conn: Any, principal: Principal, node_id: str) -> None:
    """404 for a node reporting does not know, 403 outside the caller's jurisdiction."""
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM places WHERE id = $1)", node_id):
        raise Problem(404, f"node {node_id} is not known to reporting (yet)")
    await check_scope(principal, node_id, places.covers(conn))


async def node_summary(conn: Any, principal: Principal, node_id: str, day: date) -> NodeSummary:
    """As `known_in_scope` then the lookups, but the place's own row says whether it is known:
    one round trip fewer on the busiest read."""
    place = await views.place_summary(conn, node_id)
    if place is None:
        raise Problem(404, f"node {node_id} is not known to reporting (yet)")
    await check_scope(principal, node_id, places.covers(conn))
    figs = (await figures_of(conn, [node_id], day))[node_id]
    return NodeSummary(**place.model_dump(), **figs.model_dump())


# -- routes ---------------------------------------------------------------------------------

Day = Annotated[CalendarDay | None, Query(description="YYYY-MM-DD; default today in the zone")]


@figures_router.get(
    "/{node_id}/children/summary",
    response_model=ChildrenSummary,
    summary="Figures of each child of a place (the drill-down)",
)
async def children_summary(
    node_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(allow("figures.read"))],
    date: Day = None,
) -> ChildrenSummary:
    day = date or today(request)
    async with request.app.state.pool.acquire() as conn:
        await known_in_scope(conn, principal, node_id)
        rows = await conn.fetch(
            "SELECT id, kind, name FROM places WHERE parent_id = $1 AND NOT retired ORDER BY id",
            node_id,
        )
        figs = await figures_of(conn, [r["id"] for r in rows], day)
    children = [
        ChildFigures(id=r["id"], kind=r["kind"], name=r["name"], **figs[r["id"]].model_dump())
        for r in rows
    ]
    return ChildrenSummary(id=node_id, date=day, children=children)


@figures_router.get(
    "/{node_id}/trend",
    response_model=Trend,
    summary="One metric of a place day by day (flows per day, stocks at each day's end)",
)
async def trend(
    node_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(allow("figures.read"))],
    metric: Annotated[str, Query(min_length=1, examples=["visits.door"])],
    start: Annotated[CalendarDay, Query(alias="from", description="first day, YYYY-MM-DD")],
    end: Annotated[CalendarDay, Query(alias="to", description="last day, YYYY-MM-DD")],
) -> Trend:
    if end < start:
        raise Problem(
            422,
            "query.to: before `from`",
            errors=[{"field": "query.to", "reason": "before `from`"}],
        )
    if (end - start).days >= MAX_TREND_DAYS:
        raise Problem(
            422,
            f"query.to: at most {MAX_TREND_DAYS} days from `from`",
            errors=[{"field": "query.to", "reason": "range too long"}],
        )
    async with request.app.state.pool.acquire() as conn:
        await known_in_scope(conn, principal, node_id)
        return await trend_of(conn, node_id, metric, start, end)
