"""The B2 baseline: reporting's `summary` and `children/summary`, answered in full by GROUP BY
and window queries over the raw events in PostgreSQL, served the same way (FastAPI on
uvicorn, the services' app shell with bearer-token auth, the same response models).

    uvicorn --factory bench.query_baseline:app   (BASELINE_DATABASE_URL, BASELINE_DB_SCHEMA)

The schema holds `raw_events` (every envelope of the data set: type, stream, version,
occurred_at, node_id, data) and `raw_places` (the place tree from its `NodeCreated` events,
with an ltree path); see `bench.query`. Each request runs ONE statement that scans the events
under the place up to the end of the day once (a CTE) and derives from it:
flows of the day by metric, stocks at the day's end (households, persons by residency,
vulnerable, screened households = distinct households with a screened visit, key persons by
reason) and "under quarantine now" by type = subjects whose latest watch event (a window
over each subject's events) is an order.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic_settings import SettingsConfigDict

from services.reporting import figures
from services.reporting.api.figures import (
    CORE_STOCKS,
    READERS,
    ChildFigures,
    ChildrenSummary,
    Figures,
    NodeSummary,
)
from shared.auth import Principal, require
from shared.http import build_app
from shared.problems import Problem
from shared.runtime import database
from shared.settings import ServiceSettings


class BaselineSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BASELINE_", extra="ignore")

    service: str = "baseline"


# `$1`: the place; `$2`, `$3`: the day's start and end. `under` maps every place in the
# answer's subtrees to the answer it counts for (the place itself, or each child).
FIGURES_SQL = """
WITH under AS ({under}),
ev AS (
    SELECT u.answer, e.type, e.version, e.occurred_at, e.data
    FROM raw_events e JOIN under u ON u.id = e.node_id
    WHERE e.occurred_at < $3
),
tagged AS (
    SELECT answer, unnest(ARRAY['crossings', 'crossings.' || (data->>'decision')]) AS metric
    FROM ev WHERE type = 'CrossingRecorded' AND occurred_at >= $2
    UNION ALL
    SELECT answer, unnest(
        ARRAY['visits', 'visits.' || (data->>'method'), 'visits.outcome.' || (data->>'outcome')]
        || CASE WHEN (data->>'commitment_signed')::bool
                THEN ARRAY['visits.signed'] ELSE '{{}}'::text[] END)
    FROM ev WHERE type = 'HouseholdVisited' AND occurred_at >= $2
    UNION ALL
    SELECT answer, unnest(
        ARRAY['followups.done']
        || CASE WHEN (data->>'late')::bool THEN ARRAY['followups.late'] ELSE '{{}}'::text[] END
        || CASE WHEN (data->>'celsius')::float8 >= 37.3
                THEN ARRAY['fevers'] ELSE '{{}}'::text[] END)
    FROM ev WHERE type = 'TemperatureRecorded' AND occurred_at >= $2
    UNION ALL
    SELECT answer, unnest(ARRAY['quarantines.ordered', 'quarantines.ordered.' || (data->>'type')])
    FROM ev WHERE type = 'QuarantineOrdered' AND occurred_at >= $2
    UNION ALL
    SELECT answer, 'quarantines.released'
    FROM ev WHERE type = 'QuarantineReleased' AND occurred_at >= $2
    UNION ALL
    SELECT answer, unnest(ARRAY['key_persons.flagged',
                                'key_persons.flagged.' || (data->'reasons'->>0)])
    FROM ev WHERE type = 'KeyPersonFlagged' AND occurred_at >= $2
    UNION ALL
    SELECT answer, 'stock.households' FROM ev WHERE type = 'HouseholdRegistered'
    UNION ALL
    SELECT answer, unnest(
        ARRAY['stock.persons', 'stock.persons.' || (data->>'residency')]
        || CASE WHEN data->'tags' ?| ARRAY['特困', '低保', '残疾', '孤寡老人']
                THEN ARRAY['stock.vulnerable'] ELSE '{{}}'::text[] END)
    FROM ev WHERE type = 'PersonRegistered'
    UNION ALL
    SELECT answer, unnest(ARRAY['stock.key_persons',
                                'stock.key_persons.' || (data->'reasons'->>0)])
    FROM ev WHERE type = 'KeyPersonFlagged'
),
watch AS (
    SELECT answer, type,
           max(data->>'type') OVER subject AS quarantine_type,
           row_number() OVER (subject ORDER BY occurred_at DESC, version DESC) AS newest
    FROM ev WHERE type IN ('QuarantineOrdered', 'QuarantineReleased')
    WINDOW subject AS (PARTITION BY data->>'subject_id')
)
SELECT answer, metric, count(*) AS value FROM tagged GROUP BY answer, metric
UNION ALL
SELECT answer, 'stock.screened_households', count(DISTINCT data->>'household_id')
FROM ev
WHERE type = 'HouseholdVisited'
  -- version 1 of the event did not say; it is read by the same rule (outcome screened)
  AND COALESCE((data->>'screens_household')::bool, data->>'outcome' = 'screened')
GROUP BY answer
UNION ALL
SELECT answer, 'stock.under_quarantine.' || quarantine_type, count(*)
FROM watch WHERE newest = 1 AND type = 'QuarantineOrdered'
GROUP BY answer, quarantine_type
"""

UNDER_NODE = """
SELECT p.id, $1::text AS answer FROM raw_places p
WHERE p.path <@ (SELECT path FROM raw_places WHERE id = $1)
"""
UNDER_CHILDREN = """
SELECT p.id, c.id AS answer FROM raw_places c JOIN raw_places p ON p.path <@ c.path
WHERE c.parent_id = $1
"""
SUMMARY_SQL = FIGURES_SQL.format(under=UNDER_NODE)
CHILDREN_SQL = FIGURES_SQL.format(under=UNDER_CHILDREN)


def day_bounds(request: Request, day: date) -> tuple[datetime, datetime]:
    zone = request.app.state.settings.zone
    start = datetime.combine(day, time.min, zone)
    return start, datetime.combine(day + timedelta(days=1), time.min, zone)


def assemble(day: date, rows: list[Any], answers: list[str]) -> dict[str, Figures]:
    """Reporting's shape: flows non-zero, core stocks always, quarantine total from types."""
    flows: defaultdict[str, dict[str, int]] = defaultdict(dict)
    stocks: dict[str, dict[str, int]] = {a: dict.fromkeys(CORE_STOCKS, 0) for a in answers}
    for r in rows:
        metric, value = r["metric"], int(r["value"])
        if figures.is_stock(metric):
            name = metric.removeprefix(figures.STOCK)
            stocks[r["answer"]][name] = value
            if name.startswith("under_quarantine."):
                stocks[r["answer"]]["under_quarantine"] += value
        elif value:
            flows[r["answer"]][metric] = value
    return {
        a: Figures(
            date=day,
            flows=dict(sorted(flows[a].items())),
            stocks=dict(sorted(stocks[a].items())),
            coverage_pct=figures.coverage_pct(stocks[a]),
        )
        for a in answers
    }


router = APIRouter(prefix="/v1/nodes", tags=["baseline"])
Day = Annotated[date, Query(description="YYYY-MM-DD")]


@router.get("/{node_id}/summary", response_model=NodeSummary)
async def summary(
    node_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require(*READERS))],
    date: Day,
) -> NodeSummary:
    async with request.app.state.pool.acquire() as conn:
        node = await conn.fetchrow(
            "SELECT id, parent_id, kind, name, path::text AS path FROM raw_places WHERE id = $1",
            node_id,
        )
        if node is None:
            raise Problem(404, f"node {node_id} is not known")
        kinds = await conn.fetch(
            "SELECT kind, count(*) AS n, count(*) FILTER (WHERE parent_id = $2) AS direct"
            " FROM raw_places WHERE path <@ $1::ltree AND id <> $2 GROUP BY kind",
            node["path"],
            node_id,
        )
        rows = await conn.fetch(SUMMARY_SQL, node_id, *day_bounds(request, date))
    figs = assemble(date, rows, [node_id])[node_id]
    return NodeSummary(
        id=node["id"],
        parent_id=node["parent_id"],
        kind=node["kind"],
        name=node["name"],
        path=node["path"],
        version=1,
        children=sum(r["direct"] for r in kinds),
        descendants_by_kind={r["kind"]: r["n"] for r in kinds},
        **figs.model_dump(),
    )


@router.get("/{node_id}/children/summary", response_model=ChildrenSummary)
async def children_summary(
    node_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require(*READERS))],
    date: Day,
) -> ChildrenSummary:
    async with request.app.state.pool.acquire() as conn:
        children = await conn.fetch(
            "SELECT id, kind, name FROM raw_places WHERE parent_id = $1 ORDER BY id", node_id
        )
        rows = await conn.fetch(CHILDREN_SQL, node_id, *day_bounds(request, date))
    figs = assemble(date, rows, [c["id"] for c in children])
    return ChildrenSummary(
        id=node_id,
        date=date,
        children=[
            ChildFigures(id=c["id"], kind=c["kind"], name=c["name"], **figs[c["id"]].model_dump())
            for c in children
        ],
    )


def create_app(settings: BaselineSettings | None = None) -> FastAPI:
    settings = settings or BaselineSettings()
    return build_app(
        settings,
        title="B2 baseline: figures by GROUP BY over raw events",
        routers=[router],
        parts=[database(settings)],
    )


def app() -> FastAPI:
    return create_app()
