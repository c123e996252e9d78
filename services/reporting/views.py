"""Queries over the reporting read models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class PlaceSummary(BaseModel):
    id: str
    parent_id: str | None
    kind: str
    name: str
    path: str
    version: int
    children: int = Field(description="active (not retired) places directly under it")
    descendants_by_kind: dict[str, int] = Field(
        description="active places at any depth under it, by kind",
        examples=[{"grid": 2, "building": 2, "household": 4}],
    )


# the place, its active children (parent_id index) and its row per kind in place_kind_counts
PLACE_SUMMARY = """
SELECT p.id, p.parent_id, p.kind, p.name, p.path::text AS path, p.version,
       (SELECT count(*) FROM places c WHERE c.parent_id = p.id AND NOT c.retired) AS children,
       k.kinds, k.counts
FROM places p
CROSS JOIN LATERAL (
    SELECT array_agg(n.kind ORDER BY n.kind) AS kinds, array_agg(n.places ORDER BY n.kind) AS counts
    FROM place_kind_counts n WHERE n.label = subpath(p.path, -1)::text AND n.places > 0
) k
WHERE p.id = $1
"""


async def place_summary(conn: Any, node_id: str) -> PlaceSummary | None:
    """A place and how many active places of each kind lie under it: key lookups only."""
    row = await conn.fetchrow(PLACE_SUMMARY, node_id)
    if row is None:
        return None
    return PlaceSummary(
        id=row["id"],
        parent_id=row["parent_id"],
        kind=row["kind"],
        name=row["name"],
        path=row["path"],
        version=row["version"],
        children=row["children"],
        descendants_by_kind=dict(zip(row["kinds"] or [], row["counts"] or [], strict=True)),
    )
