"""A service's local copy of the place tree, built from `registry.events`.

Screening, checkpoint and reporting need the tree to answer "is node X in the caller's
jurisdiction" and "everything under X" without reading the registry's tables.
"""

from __future__ import annotations

from typing import Any

from shared.auth import ltree_covers
from shared.contracts.registry import NodeCreated
from shared.envelope import Envelope

PLACES_DDL = """
CREATE TABLE IF NOT EXISTS places (
    id          text PRIMARY KEY,
    parent_id   text,
    kind        text NOT NULL,
    name        text NOT NULL,
    path        ltree NOT NULL,
    version     integer NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS places_path_gist ON places USING gist (path);
CREATE INDEX IF NOT EXISTS places_parent_idx ON places (parent_id);
"""

covers = ltree_covers("places")


async def on_node_created(conn: Any, env: Envelope, e: NodeCreated) -> None:
    await conn.execute(
        """
        INSERT INTO places (id, parent_id, kind, name, path, version, updated_at)
        VALUES ($1, $2, $3, $4, $5::ltree, $6, $7)
        ON CONFLICT (id) DO NOTHING
        """,
        e.node_id,
        e.parent_id,
        e.kind,
        e.name,
        e.path,
        env.version,
        env.recorded_at,
    )


HANDLERS: dict[type[Any], Any] = {NodeCreated: on_node_created}
