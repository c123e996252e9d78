"""A service's local copy of the place tree, built from `registry.events`.

Screening, checkpoint and reporting need the tree to answer "is node X in the caller's
jurisdiction" and "everything under X" without reading the registry's tables.

Events of different nodes travel in different partitions, so a child's `NodeCreated` may
arrive before or after an ancestor's `NodeMoved`. A new node therefore takes its path from its
parent's current row when the parent is known, and a move rewrites every path under the old
prefix; either order ends in the tree as the registry has it.
"""

from __future__ import annotations

from typing import Any

from shared.auth import ltree_covers
from shared.contracts.registry import NodeCreated, NodeMoved, NodeRenamed, NodeRetired
from shared.envelope import Envelope

PLACES_DDL = """
CREATE TABLE IF NOT EXISTS places (
    id          text PRIMARY KEY,
    parent_id   text,
    kind        text NOT NULL,
    name        text NOT NULL,
    path        ltree NOT NULL,
    retired     boolean NOT NULL DEFAULT false,
    version     integer NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS places_path_gist ON places USING gist (path);
CREATE INDEX IF NOT EXISTS places_parent_idx ON places (parent_id);
"""

covers = ltree_covers("places")


def move_subtree_sql(table: str) -> str:
    """Rewrite every path under prefix $1 to start with $2 instead."""
    return (
        f"UPDATE {table} SET path = $2::ltree || CASE WHEN nlevel(path) > nlevel($1::ltree)"
        " THEN subpath(path, nlevel($1::ltree)) ELSE ''::ltree END"
        " WHERE path <@ $1::ltree"
    )


MOVE_PLACES = move_subtree_sql("places")


async def on_node_created(conn: Any, env: Envelope, e: NodeCreated) -> None:
    label = e.path.rsplit(".", 1)[-1]
    await conn.execute(
        """
        INSERT INTO places (id, parent_id, kind, name, path, version, updated_at)
        VALUES ($1, $2, $3, $4,
                COALESCE((SELECT p.path FROM places p WHERE p.id = $2) || $8::ltree, $5::ltree),
                $6, $7)
        ON CONFLICT (id) DO NOTHING
        """,
        e.node_id, e.parent_id, e.kind, e.name, e.path, env.version, env.recorded_at, label,
    )


async def on_node_renamed(conn: Any, env: Envelope, e: NodeRenamed) -> None:
    await conn.execute(
        "UPDATE places SET name = $2, version = $3, updated_at = $4 WHERE id = $1",
        e.node_id, e.name, env.version, env.recorded_at,
    )


async def on_node_moved(conn: Any, env: Envelope, e: NodeMoved) -> None:
    current = await conn.fetchval("SELECT path::text FROM places WHERE id = $1", e.node_id)
    old = current or e.old_path
    await conn.execute(MOVE_PLACES, old, e.new_path)
    await conn.execute(
        "UPDATE places SET parent_id = $2, version = $3, updated_at = $4 WHERE id = $1",
        e.node_id, e.new_parent_id, env.version, env.recorded_at,
    )


async def on_node_retired(conn: Any, env: Envelope, e: NodeRetired) -> None:
    await conn.execute(
        "UPDATE places SET retired = true, version = $2, updated_at = $3 WHERE id = $1",
        e.node_id, env.version, env.recorded_at,
    )


HANDLERS: dict[type[Any], Any] = {
    NodeCreated: on_node_created,
    NodeRenamed: on_node_renamed,
    NodeMoved: on_node_moved,
    NodeRetired: on_node_retired,
}
