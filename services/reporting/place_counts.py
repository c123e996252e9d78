"""How many active places of each kind lie under each place (`place_kind_counts`).

A place's `descendants_by_kind` is then a key lookup instead of a GROUP BY over its
subtree (~45k places for a district). A row (label, kind, places) counts the places of
`kind`, not retired, whose path has the place labelled `label` as a proper ancestor. Rows are
keyed by the place's ltree label (derived from its id), not by its path: a moved subtree
keeps its own rows, and only the ancestors it leaves and the ones it joins change.

Reporting's places handlers wrap the shared ones (shared/places.py) and keep the counts in
the same transaction:

* created: +1 of its kind on every ancestor, unless the place was already there (the shared
  insert then does nothing);
* retired: -1 on every ancestor, taken while the row still says active (a second retire of
  the same place changes nothing);
* moved: the subtree's counts by kind, read at the old prefix before the move, leave the old
  ancestors and join the new ones (ancestors of both are left alone). Read before: a place
  created under the new prefix while the move was still on its way (its parent unknown here
  yet) is already counted on the new ancestors and must not be counted twice.

A move's subtree read is a scan of the subtree, as the move's own path rewrite already is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared import places
from shared.contracts.registry import NodeCreated, NodeMoved, NodeRetired
from shared.envelope import Envelope

# (label, kind, $2) for every proper ancestor of the place $1, if it is active
COUNT_ON_ANCESTORS = (
    "INSERT INTO place_kind_counts AS c (label, kind, places)"
    " SELECT subpath(p.path, i, 1)::text, p.kind, $2::bigint"
    " FROM places p, generate_series(0, nlevel(p.path) - 2) AS i"
    " WHERE p.id = $1 AND NOT p.retired"
    " ON CONFLICT (label, kind) DO UPDATE SET places = c.places + EXCLUDED.places"
)
ADD_DELTAS = (
    "INSERT INTO place_kind_counts AS c (label, kind, places)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])"
    " ON CONFLICT (label, kind) DO UPDATE SET places = c.places + EXCLUDED.places"
)
ACTIVE_UNDER = (
    "SELECT kind, count(*) AS n FROM places WHERE path <@ $1::ltree AND NOT retired GROUP BY kind"
)


def ancestors(path: str) -> list[str]:
    """The labels above the last one in an ltree path."""
    return path.split(".")[:-1]


def moved_counts(
    old_path: str, new_path: str, subtree: Sequence[tuple[str, int]]
) -> list[tuple[str, str, int]]:
    """(label, kind, delta) when a subtree with `subtree` (kind, places) moves."""
    left, joined = ancestors(old_path), ancestors(new_path)
    out = [(label, kind, -n) for label in left if label not in joined for kind, n in subtree]
    out += [(label, kind, n) for label in joined if label not in left for kind, n in subtree]
    return out


async def on_node_created(conn: Any, env: Envelope, e: NodeCreated) -> None:
    known = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM places WHERE id = $1)", e.node_id)
    await places.insert_node(conn, env, e)
    if not known:
        await conn.execute(COUNT_ON_ANCESTORS, e.node_id, 1)
    # children that came first under a path an ancestor's move has changed since
    for child in await conn.fetch(places.STALE_CHILDREN, e.node_id):
        subtree = await active_under(conn, child["old"])
        await conn.execute(places.MOVE_PLACES, child["old"], child["new"])
        await shift(conn, child["old"], child["new"], subtree)


async def on_node_retired(conn: Any, env: Envelope, e: NodeRetired) -> None:
    await conn.execute(COUNT_ON_ANCESTORS, e.node_id, -1)
    await places.on_node_retired(conn, env, e)


async def on_node_moved(conn: Any, env: Envelope, e: NodeMoved) -> None:
    current = await conn.fetchval("SELECT path::text FROM places WHERE id = $1", e.node_id)
    old = current or e.old_path
    subtree = await active_under(conn, old)
    await places.on_node_moved(conn, env, e)
    await shift(conn, old, e.new_path, subtree)


async def active_under(conn: Any, path: str) -> list[tuple[str, int]]:
    return [(r["kind"], r["n"]) for r in await conn.fetch(ACTIVE_UNDER, path)]


async def shift(conn: Any, old: str, new: str, subtree: Sequence[tuple[str, int]]) -> None:
    """Move a subtree's counts from the ancestors of `old` to those of `new`."""
    deltas = moved_counts(old, new, subtree)
    if deltas:
        await conn.execute(ADD_DELTAS, *(list(column) for column in zip(*deltas, strict=True)))


HANDLERS: dict[type[Any], Any] = {
    **places.HANDLERS,
    NodeCreated: on_node_created,
    NodeRetired: on_node_retired,
    NodeMoved: on_node_moved,
}
