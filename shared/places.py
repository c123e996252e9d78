"""A service's local copy of the place tree, built from `registry.events`.

Screening, checkpoint and reporting need the tree to answer "is node X in the caller's
jurisdiction" and "everything under X" without reading the registry's tables.

Events of different nodes travel in different partitions, so a child's `NodeCreated` may
arrive before or after an ancestor's `NodeMoved`, and before its parent's `NodeCreated`. A new
node therefore takes its path from its parent's current row when the parent is known; a move
rewrites every path under the old prefix; and a node that arrives after its children re-roots
those whose path it no longer has (an ancestor moved in between: `stale_children_sql`). Any
order ends in the tree as the registry has it.
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


def stale_children_sql(table: str) -> str:
    """Children of node $1 that arrived before it, under a path it no longer has: (id, old
    path, path under $1 now). Re-rooting each as a move keeps any order of arrival exact."""
    return (
        f"SELECT c.id, c.path::text AS old, (p.path || subpath(c.path, nlevel(c.path) - 1))::text"
        f" AS new FROM {table} c JOIN {table} p ON p.id = c.parent_id"
        " WHERE c.parent_id = $1 AND subpath(c.path, 0, nlevel(c.path) - 1) <> p.path"
    )


MOVE_PLACES = move_subtree_sql("places")
STALE_CHILDREN = stale_children_sql("places")


async def on_node_created(conn: Any, env: Envelope, e: NodeCreated) -> None:
    await insert_node(conn, env, e)
    for child in await conn.fetch(STALE_CHILDREN, e.node_id):
        await conn.execute(MOVE_PLACES, child["old"], child["new"])


async def insert_node(conn: Any, env: Envelope, e: NodeCreated) -> None:
    label = e.path.rsplit(".", 1)[-1]
    await conn.execute(
        """
        INSERT INTO places (id, parent_id, kind, name, path, version, updated_at)
        VALUES ($1, $2, $3, $4,
                COALESCE((SELECT p.path FROM places p WHERE p.id = $2) || $8::ltree, $5::ltree),
                $6, $7)
        ON CONFLICT (id) DO NOTHING
        """,
        e.node_id,
        e.parent_id,
        e.kind,
        e.name,
        e.path,
        env.version,
        env.recorded_at,
        label,
    )


async def on_node_renamed(conn: Any, env: Envelope, e: NodeRenamed) -> None:
    await conn.execute(
        "UPDATE places SET name = $2, version = $3, updated_at = $4 WHERE id = $1",
        e.node_id,
        e.name,
        env.version,
        env.recorded_at,
    )


async def on_node_moved(conn: Any, env: Envelope, e: NodeMoved) -> None:
    current = await conn.fetchval("SELECT path::text FROM places WHERE id = $1", e.node_id)
    old = current or e.old_path
    await conn.execute(MOVE_PLACES, old, e.new_path)
    await conn.execute(
        "UPDATE places SET parent_id = $2, version = $3, updated_at = $4 WHERE id = $1",
        e.node_id,
        e.new_parent_id,
        env.version,
        env.recorded_at,
    )


async def on_node_retired(conn: Any, env: Envelope, e: NodeRetired) -> None:
    await conn.execute(
        "UPDATE places SET retired = true, version = $2, updated_at = $3 WHERE id = $1",
        e.node_id,
        env.version,
        env.recorded_at,
    )


HANDLERS: dict[type[Any], Any] = {
    NodeCreated: on_node_created,
    NodeRenamed: on_node_renamed,
    NodeMoved: on_node_moved,
    NodeRetired: on_node_retired,
}
