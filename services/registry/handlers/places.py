"""Registry command handlers: look up what the decision needs, run it, keep `nodes` current."""

from __future__ import annotations

import uuid
from typing import Any

from services.registry.domain import places as domain
from services.registry.domain.places import CreateNode, Node
from shared.commands import Aggregate, Outcome, execute
from shared.envelope import Envelope, utc_now
from shared.eventstore import CommandContext

NODE: Aggregate[Node | None] = Aggregate(domain.STREAM_TYPE, None, domain.evolve)


async def create_node(
    pool: Any,
    body_id: str | None,
    parent_id: str | None,
    kind: str,
    name: str,
    ctx: CommandContext,
    kinds: tuple[str, ...],
) -> Outcome[Node | None]:
    node_id = body_id or (ctx.command_id and _id_from_key(ctx.command_id)) or str(uuid.uuid4())
    parent_path = None
    if parent_id is not None:
        parent_path = await pool.fetchval("SELECT path::text FROM nodes WHERE id = $1", parent_id)
    cmd = CreateNode(node_id, parent_id, kind, name, parent_path)
    return await execute(
        pool,
        NODE,
        node_id,
        decide=lambda state: domain.decide_create(state, cmd, kinds),
        ctx=ctx,
        occurred_at=utc_now(),
        node_id=node_id,
        project=project_nodes,
    )


def _id_from_key(key: str) -> str:
    """A stable node id for an idempotency key, so a retry names the same node."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"grid-epi:node:{key}"))


async def project_nodes(conn: Any, events: list[Envelope]) -> None:
    """The registry's own query table, written in the command's transaction."""
    for env in events:
        if env.type == "NodeCreated":
            d = env.data
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


async def get_node(conn: Any, node_id: str) -> Node | None:
    row = await conn.fetchrow(
        "SELECT id, parent_id, kind, name, path::text AS path, version FROM nodes WHERE id = $1",
        node_id,
    )
    return Node(**dict(row)) if row else None
