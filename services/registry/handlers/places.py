"""Place-tree command handlers and queries; `nodes` is the registry's own query table.

Changes to the tree's shape (create, move) take one advisory lock per registry, so a node is
never created under a parent whose path is being rewritten. The lock is not a write: the
event append stays the transaction's first write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.registry.domain import places as domain
from services.registry.domain.places import (
    CreateNode,
    MoveNode,
    Node,
    Parent,
    RenameNode,
    RetireNode,
)
from shared.commands import Aggregate, Outcome, execute
from shared.contracts import EventPayload
from shared.envelope import Envelope, utc_now
from shared.eventstore import CommandContext
from shared.places import move_subtree_sql

NODE: Aggregate[Node | None] = Aggregate(domain.STREAM_TYPE, None, domain.evolve)
TREE_LOCK = 0x6E6F646574726565  # "nodetree"
MOVE_NODES = move_subtree_sql("nodes")

Decision = Callable[[Node | None], list[EventPayload]]


async def lock_tree(conn: Any) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", TREE_LOCK)


async def parent_of(conn: Any, node_id: str | None) -> Parent | None:
    if node_id is None:
        return None
    row = await conn.fetchrow(
        "SELECT id, path::text AS path, retired FROM nodes WHERE id = $1", node_id
    )
    return Parent(row["id"], row["path"], row["retired"]) if row else None


async def create_node(
    pool: Any,
    node_id: str,
    parent_id: str | None,
    kind: str,
    name: str,
    ctx: CommandContext,
    kinds: tuple[str, ...],
) -> Outcome[Node | None]:
    async def prepare(conn: Any) -> Decision:
        await lock_tree(conn)
        cmd = CreateNode(node_id, parent_id, kind, name, await parent_of(conn, parent_id))
        return lambda state: domain.decide_create(state, cmd, kinds)

    return await execute(
        pool,
        NODE,
        domain.node_stream(node_id),
        prepare=prepare,
        ctx=ctx,
        occurred_at=utc_now(),
        node_id=node_id,
        project=project_nodes,
    )


async def rename_node(
    pool: Any, node_id: str, name: str, ctx: CommandContext, expected: int | None
) -> Outcome[Node | None]:
    return await execute(
        pool,
        NODE,
        domain.node_stream(node_id),
        decide=lambda s: domain.decide_rename(s, RenameNode(name)),
        ctx=ctx,
        occurred_at=utc_now(),
        node_id=node_id,
        expected_version=expected,
        project=project_nodes,
    )


async def move_node(
    pool: Any, node_id: str, parent_id: str, ctx: CommandContext, expected: int | None
) -> Outcome[Node | None]:
    async def prepare(conn: Any) -> Decision:
        await lock_tree(conn)
        here = await parent_of(conn, node_id)
        cmd = MoveNode(here.path if here else "", await parent_of(conn, parent_id))
        return lambda state: domain.decide_move(state, cmd)

    return await execute(
        pool,
        NODE,
        domain.node_stream(node_id),
        prepare=prepare,
        ctx=ctx,
        occurred_at=utc_now(),
        node_id=node_id,
        expected_version=expected,
        project=project_nodes,
    )


async def retire_node(
    pool: Any, node_id: str, reason: str, ctx: CommandContext, expected: int | None
) -> Outcome[Node | None]:
    async def prepare(conn: Any) -> Decision:
        await lock_tree(conn)
        children = await conn.fetchval(
            "SELECT count(*) FROM nodes WHERE parent_id = $1 AND NOT retired", node_id
        )
        households, persons = await occupants(conn, node_id)
        cmd = RetireNode(reason, children, households, persons)
        return lambda state: domain.decide_retire(state, cmd)

    return await execute(
        pool,
        NODE,
        domain.node_stream(node_id),
        prepare=prepare,
        ctx=ctx,
        occurred_at=utc_now(),
        node_id=node_id,
        expected_version=expected,
        project=project_nodes,
    )


async def occupants(conn: Any, node_id: str) -> tuple[int, int]:
    """(active households strictly under the node, registered persons in it or under it)."""
    row = await conn.fetchrow(
        """
        SELECT
          (SELECT count(*) FROM households h JOIN nodes n ON n.id = h.id
           WHERE n.path <@ t.path AND n.id <> t.id AND NOT n.retired) AS households,
          (SELECT count(*) FROM persons p JOIN nodes n ON n.id = p.household_id
           WHERE n.path <@ t.path AND NOT p.voided) AS persons
        FROM nodes t WHERE t.id = $1
        """,
        node_id,
    )
    return (row["households"], row["persons"]) if row else (0, 0)


async def project_nodes(conn: Any, events: list[Envelope]) -> None:
    """Keep `nodes` current, in the command's transaction."""
    for env in events:
        d = env.data
        match env.type:
            case "NodeCreated":
                await conn.execute(
                    "INSERT INTO nodes (id, parent_id, kind, name, path, version)"
                    " VALUES ($1, $2, $3, $4, $5::ltree, $6)",
                    d["node_id"],
                    d["parent_id"],
                    d["kind"],
                    d["name"],
                    d["path"],
                    env.version,
                )
            case "NodeRenamed":
                await conn.execute(
                    "UPDATE nodes SET name = $2, version = $3 WHERE id = $1",
                    d["node_id"],
                    d["name"],
                    env.version,
                )
            case "NodeMoved":
                await conn.execute(MOVE_NODES, d["old_path"], d["new_path"])
                await conn.execute(
                    "UPDATE nodes SET parent_id = $2, version = $3 WHERE id = $1",
                    d["node_id"],
                    d["new_parent_id"],
                    env.version,
                )
            case "NodeRetired":
                await conn.execute(
                    "UPDATE nodes SET retired = true, version = $2 WHERE id = $1",
                    d["node_id"],
                    env.version,
                )


NODE_COLUMNS = "id, parent_id, kind, name, path::text AS path, version, retired"


async def get_node(conn: Any, node_id: str) -> Node | None:
    row = await conn.fetchrow(f"SELECT {NODE_COLUMNS} FROM nodes WHERE id = $1", node_id)
    return Node(**dict(row)) if row else None


async def list_nodes(
    conn: Any,
    *,
    under: Node,
    depth: int | None,
    kind: str | None,
    include_retired: bool,
    after: str | None,
    limit: int,
    scope: tuple[str, ...] | None,
) -> list[Node]:
    """Nodes strictly under `under` (at `depth` levels below it, if given), ordered by id.

    `scope` (node ids) keeps only what lies in the caller's jurisdiction; None: everything.
    """
    rows = await conn.fetch(
        f"""
        SELECT {NODE_COLUMNS} FROM nodes n
        WHERE n.path <@ $1::ltree AND n.id <> $2
          AND ($3::int IS NULL OR nlevel(n.path) = nlevel($1::ltree) + $3)
          AND ($4::text IS NULL OR n.kind = $4)
          AND ($5 OR NOT n.retired)
          AND ($6::text IS NULL OR n.id > $6)
          AND ($8::text[] IS NULL OR EXISTS (
                SELECT 1 FROM nodes s WHERE s.id = ANY($8) AND n.path <@ s.path))
        ORDER BY n.id
        LIMIT $7
        """,
        under.path,
        under.id,
        depth,
        kind,
        include_retired,
        after,
        limit,
        list(scope) if scope is not None else None,
    )
    return [Node(**dict(r)) for r in rows]
