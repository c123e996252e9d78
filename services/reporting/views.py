"""Queries over the reporting read models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class PlaceSummary(BaseModel):
    id: str
    parent_id: str | None
    kind: str
    name: str
    path: str
    version: int
    children: int
    descendants_by_kind: dict[str, int]


async def place_summary(conn: Any, node_id: str) -> PlaceSummary | None:
    node = await conn.fetchrow(
        "SELECT id, parent_id, kind, name, path, path::text AS path_text, version"
        " FROM places WHERE id = $1",
        node_id,
    )
    if node is None:
        return None
    rows = await conn.fetch(
        "SELECT kind, count(*) AS n, count(*) FILTER (WHERE parent_id = $2) AS direct"
        " FROM places WHERE path <@ $1::ltree AND id <> $2 GROUP BY kind",
        node["path_text"],
        node_id,
    )
    return PlaceSummary(
        id=node["id"],
        parent_id=node["parent_id"],
        kind=node["kind"],
        name=node["name"],
        path=node["path_text"],
        version=node["version"],
        children=sum(r["direct"] for r in rows),
        descendants_by_kind={r["kind"]: r["n"] for r in rows},
    )
