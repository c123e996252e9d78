"""Registry HTTP API: the place tree."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from services.registry.commands.places import NodeCreate, NodeOut
from services.registry.handlers import places as handlers
from shared.auth import Principal, Role, check_scope, ltree_covers, require
from shared.problems import Problem
from shared.requests import command_context, etag

READERS = tuple(Role)
WRITERS = (Role.ADMIN, Role.REGISTRAR)
covers = ltree_covers("nodes")

nodes = APIRouter(prefix="/v1/nodes", tags=["places"])


def _pool(request: Request) -> Any:
    return request.app.state.pool


@nodes.post("", status_code=201, response_model=NodeOut, summary="Create a place")
async def create_node(
    body: NodeCreate,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(require(*WRITERS))],
) -> NodeOut:
    pool = _pool(request)
    if body.parent_id is None:
        if Role.ADMIN not in principal.roles:
            raise Problem(403, "only admin may create a root node", slug="forbidden-role")
    else:
        async with pool.acquire() as conn:
            if await handlers.get_node(conn, body.parent_id) is None:
                raise Problem(
                    422,
                    f"body.parent_id: node {body.parent_id} does not exist",
                    slug="unknown-parent",
                    errors=[{"field": "body.parent_id", "reason": "unknown node"}],
                )
            await check_scope(principal, body.parent_id, covers(conn))
    outcome = await handlers.create_node(
        pool,
        body.id,
        body.parent_id,
        body.kind,
        body.name,
        command_context(request, principal),
        request.app.state.settings.node_kinds,
    )
    node = outcome.state
    assert node is not None
    response.headers["ETag"] = etag(node.version)
    response.headers["Location"] = f"/v1/nodes/{node.id}"
    return NodeOut(**node.__dict__)


@nodes.get("/{node_id}", response_model=NodeOut, summary="A place")
async def get_node(
    node_id: str,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(require(*READERS))],
) -> NodeOut:
    async with _pool(request).acquire() as conn:
        node = await handlers.get_node(conn, node_id)
        if node is None:
            raise Problem(404, f"node {node_id} does not exist")
        await check_scope(principal, node_id, covers(conn))
    response.headers["ETag"] = etag(node.version)
    return NodeOut(**node.__dict__)
