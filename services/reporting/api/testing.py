"""Reporting HTTP API: mass-testing coverage per round and node (应检尽检), the persons not
sampled yet (masked; the doors a grid worker knocks on), vaccination coverage by dose.

Who is due, and where a person counts, is defined in `services.reporting.testing`. Every
figure is a key lookup in `round_figures` / a range over one node in `vaccination_node_days`.
The node asked about must be in the caller's jurisdiction; sums under it never include its
siblings.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from services.reporting import testing
from services.reporting.api.figures import Day, known_in_scope, today
from shared.auth import Principal
from shared.pagination import Cursor, Limit, Page, decode_cursor, page_of
from shared.problems import Problem
from shared.roles import allow

router = APIRouter(tags=["testing"])

NodeQuery = Annotated[
    str | None,
    Query(description="a place under (or above) the round's place; default the round's place"),
]


class Counts(BaseModel):
    due: int = Field(description="persons due in the round under the node", examples=[120])
    sampled: int = Field(examples=[117])
    not_sampled: int = Field(examples=[3])
    resulted: int = Field(description="with a negative or positive result", examples=[110])
    positive: int = Field(examples=[0])
    coverage_pct: float | None = Field(
        description="sampled / due x 100 (None when nobody is due)", examples=[97.5]
    )


class RoundCoverage(Counts):
    round_id: str = Field(examples=["yutun-r3"])
    number: int = Field(examples=[3])
    place_id: str = Field(description="the round's place", examples=["yutun"])
    starts_on: date
    ends_on: date
    node_id: str = Field(examples=["yutun-g1"])


class ChildCoverage(Counts):
    node_id: str
    kind: str
    name: str


class RoundChildren(BaseModel):
    round_id: str
    node_id: str
    children: list[ChildCoverage]


class UnsampledPerson(BaseModel):
    person_id: str
    name_masked: str = Field(examples=["张*"])
    document_masked: str = Field(examples=["110105********1234"])
    household_id: str
    door_number: str | None = Field(examples=["1-2-301"])
    address: str | None = None


class Vaccination(BaseModel):
    id: str = Field(examples=["comm"])
    date: date
    persons: int = Field(description="persons living under the node that day", examples=[200])
    dose_1: int = Field(description="persons with at least dose 1 by that day", examples=[190])
    dose_2: int = Field(examples=[180])
    booster: int = Field(description="persons with dose 3 (booster) or later", examples=[120])
    by_dose: dict[int, int] = Field(
        description="persons with at least dose n, for every n given", examples=[{1: 190}]
    )
    coverage_pct: dict[str, float | None] = Field(
        description="dose_1, dose_2, booster as % of persons",
        examples=[{"dose_1": 95.0, "dose_2": 90.0, "booster": 60.0}],
    )


# -- lookups --------------------------------------------------------------------------------


def counts(row: Any) -> dict[str, Any]:
    due, sampled = (row["due"], row["sampled"]) if row else (0, 0)
    return {
        "due": due,
        "sampled": sampled,
        "not_sampled": due - sampled,
        "resulted": row["resulted"] if row else 0,
        "positive": row["positive"] if row else 0,
        "coverage_pct": testing.coverage_pct(sampled, due),
    }


async def round_of(conn: Any, round_id: str) -> Any:
    row = await conn.fetchrow(
        "SELECT round_id, node_id, number, starts_on, ends_on FROM testing_rounds"
        " WHERE round_id = $1",
        round_id,
    )
    if row is None:
        raise Problem(404, f"test round {round_id} is not known to reporting (yet)")
    return row


async def node_in_round(conn: Any, principal: Principal, rnd: Any, node_id: str | None) -> str:
    """The node asked about: known, in the caller's jurisdiction, and inside the round (under
    or above its place, or holding persons counted in it)."""
    node = node_id or rnd["node_id"]
    await known_in_scope(conn, principal, node)
    inside = await conn.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM round_figures WHERE round_id = $1 AND node_id = $2)
            OR EXISTS (SELECT 1 FROM testing_places n, testing_places p
                       WHERE n.id = $2 AND p.id = $3 AND (n.path <@ p.path OR n.path @> p.path))
        """,
        rnd["round_id"],
        node,
        rnd["node_id"],
    )
    if not inside:
        raise Problem(
            404,
            f"query.node_id: {node} is not inside test round {rnd['round_id']}",
            errors=[{"field": "query.node_id", "reason": "outside the round's place"}],
        )
    return node


async def figures_of(conn: Any, round_id: str, node_ids: list[str]) -> dict[str, Any]:
    rows = await conn.fetch(
        "SELECT node_id, due, sampled, resulted, positive FROM round_figures"
        " WHERE round_id = $1 AND node_id = ANY($2::text[])",
        round_id,
        node_ids,
    )
    return {r["node_id"]: r for r in rows}


async def vaccination_of(conn: Any, node_id: str, day: date) -> Vaccination:
    rows = await conn.fetch(
        "SELECT metric, sum(value)::bigint AS value FROM vaccination_node_days"
        " WHERE node_id = $1 AND day <= $2 GROUP BY metric",
        node_id,
        day,
    )
    stock = {r["metric"]: r["value"] for r in rows}
    persons = stock.get(testing.PERSONS, 0)
    by_dose = {
        int(m.removeprefix("dose.")): v for m, v in sorted(stock.items()) if m.startswith("dose.")
    }
    headline = {
        "dose_1": by_dose.get(1, 0),
        "dose_2": by_dose.get(2, 0),
        "booster": by_dose.get(testing.BOOSTER_DOSE, 0),
    }
    return Vaccination(
        id=node_id,
        date=day,
        persons=persons,
        **headline,
        by_dose={n: v for n, v in by_dose.items() if v},
        coverage_pct={k: testing.coverage_pct(v, persons) for k, v in headline.items()},
    )


# -- routes ---------------------------------------------------------------------------------

Reader = Annotated[Principal, Depends(allow("testing.read"))]
FigureReader = Annotated[Principal, Depends(allow("figures.read"))]


@router.get(
    "/v1/testing-rounds/{round_id}/coverage",
    response_model=RoundCoverage,
    summary="Persons due, sampled, resulted and positive in a test round under a place",
)
async def coverage(
    round_id: str, request: Request, principal: Reader, node_id: NodeQuery = None
) -> RoundCoverage:
    async with request.app.state.pool.acquire() as conn:
        rnd = await round_of(conn, round_id)
        node = await node_in_round(conn, principal, rnd, node_id)
        row = (await figures_of(conn, round_id, [node])).get(node)
    return RoundCoverage(
        round_id=round_id,
        number=rnd["number"],
        place_id=rnd["node_id"],
        starts_on=rnd["starts_on"],
        ends_on=rnd["ends_on"],
        node_id=node,
        **counts(row),
    )


@router.get(
    "/v1/testing-rounds/{round_id}/children",
    response_model=RoundChildren,
    summary="A test round's figures for each child of a place inside the round (drill-down)",
)
async def children(
    round_id: str, request: Request, principal: Reader, node_id: NodeQuery = None
) -> RoundChildren:
    async with request.app.state.pool.acquire() as conn:
        rnd = await round_of(conn, round_id)
        node = await node_in_round(conn, principal, rnd, node_id)
        # children inside the round: under or above its place, or holding persons counted in it
        rows = await conn.fetch(
            """
            SELECT c.id, c.kind, c.name FROM places c
            WHERE c.parent_id = $1 AND NOT c.retired AND (
                EXISTS (SELECT 1 FROM testing_places n, testing_places p
                        WHERE n.id = c.id AND p.id = $3
                          AND (n.path <@ p.path OR n.path @> p.path))
                OR EXISTS (SELECT 1 FROM round_figures f
                           WHERE f.round_id = $2 AND f.node_id = c.id AND f.due <> 0))
            ORDER BY c.id
            """,
            node,
            round_id,
            rnd["node_id"],
        )
        figures = await figures_of(conn, round_id, [r["id"] for r in rows])
    return RoundChildren(
        round_id=round_id,
        node_id=node,
        children=[
            ChildCoverage(
                node_id=r["id"], kind=r["kind"], name=r["name"], **counts(figures.get(r["id"]))
            )
            for r in rows
        ],
    )


@router.get(
    "/v1/testing-rounds/{round_id}/unsampled",
    response_model=Page[UnsampledPerson],
    summary="Persons due in a test round under a place and not sampled yet (masked), by door",
    description="Cursor pages ordered by household and person; names and document numbers "
    "are masked, never clear.",
)
async def unsampled(
    round_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(allow("testing.read"))],
    node_id: NodeQuery = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[UnsampledPerson]:
    after = decode_cursor(request, cursor)
    position = (str(after.get("household_id", "")), str(after.get("person_id", "")))
    async with request.app.state.pool.acquire() as conn:
        rnd = await round_of(conn, round_id)
        node = await node_in_round(conn, principal, rnd, node_id)
        rows = await conn.fetch(
            """
            SELECT m.person_id, p.name_masked, p.document_masked, m.household_id,
                   h.door_number, h.address
            FROM round_persons m
            JOIN testing_places hp ON hp.id = m.household_id
            JOIN testing_persons p ON p.id = m.person_id
            LEFT JOIN testing_households h ON h.id = m.household_id
            WHERE m.round_id = $1 AND NOT m.sampled
              AND hp.path <@ (SELECT path FROM testing_places WHERE id = $2)
              AND (m.household_id, m.person_id) > ($3, $4)
            ORDER BY m.household_id, m.person_id
            LIMIT $5
            """,
            round_id,
            node,
            *position,
            limit + 1,
        )
    items = [UnsampledPerson(**dict(r)) for r in rows]
    return page_of(
        request, items, limit, lambda p: {"household_id": p.household_id, "person_id": p.person_id}
    )


@router.get(
    "/v1/nodes/{node_id}/vaccination",
    response_model=Vaccination,
    summary="Vaccination coverage under a place by dose, at the end of a day",
)
async def vaccination(
    node_id: str, request: Request, principal: FigureReader, date: Day = None
) -> Vaccination:
    day = date or today(request)
    async with request.app.state.pool.acquire() as conn:
        await known_in_scope(conn, principal, node_id)
        return await vaccination_of(conn, node_id, day)
