"""Registry HTTP API: the place tree."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from services.registry.commands.places import NodeCreate, NodeMove, NodeOut, NodeRename, NodeRetire
from services.registry.domain.places import Node
from services.registry.handlers import places as handlers
from shared.auth import Principal, check_scope, ltree_covers
from shared.commands import Outcome
from shared.pagination import Cursor, Limit, Page, decode_cursor, page_of
from shared.problems import Problem
from shared.requests import command_context, etag, expected_version, new_id
from shared.roles import allow, check

covers = ltree_covers("nodes")
MAX_DEPTH = 100  # far deeper than any tree of places

nodes = APIRouter(prefix="/v1/nodes", tags=["places"])

Reader = Annotated[Principal, Depends(allow("places.read"))]
Writer = Annotated[Principal, Depends(allow("places.write"))]


def _pool(request: Request) -> Any:
    return request.app.state.pool


async def _out(request: Request, outcome: Outcome[Node | None], response: Response) -> NodeOut:
    """The node as the tree holds it now (its path follows any move of an ancestor)."""
    assert outcome.state is not None
    async with _pool(request).acquire() as conn:
        node = await handlers.get_node(conn, outcome.state.id)
    assert node is not None
    response.headers["ETag"] = etag(node.version)
    response.headers["Location"] = f"/v1/nodes/{node.id}"
    return NodeOut(**node.__dict__)


async def _node_in_scope(request: Request, principal: Principal, node_id: str) -> Node:
    async with _pool(request).acquire() as conn:
        node = await handlers.get_node(conn, node_id)
        if node is None:
            raise Problem(404, f"node {node_id} does not exist")
        await check_scope(principal, node_id, covers(conn))
    return node


@nodes.post("", status_code=201, response_model=NodeOut, summary="Create a place")
async def create_node(
    body: NodeCreate, request: Request, response: Response, principal: Writer
) -> NodeOut:
    if body.parent_id is None:
        check(principal, "places.root")
    else:
        async with _pool(request).acquire() as conn:
            if await handlers.get_node(conn, body.parent_id) is None:
                raise Problem(
                    422,
                    f"body.parent_id: node {body.parent_id} does not exist",
                    slug="unknown-parent",
                    errors=[{"field": "body.parent_id", "reason": "unknown node"}],
                )
            await check_scope(principal, body.parent_id, covers(conn))
    ctx = command_context(request, principal)
    outcome = await handlers.create_node(
        _pool(request),
        new_id("node", body.id, ctx),
        body.parent_id,
        body.kind,
        body.name,
        ctx,
        request.app.state.settings.node_kinds,
    )
    return await _out(request, outcome, response)


@nodes.get("/{node_id}", response_model=NodeOut, summary="A place")
async def get_node(
    node_id: str, request: Request, response: Response, principal: Reader
) -> NodeOut:
    node = await _node_in_scope(request, principal, node_id)
    response.headers["ETag"] = etag(node.version)
    return NodeOut(**node.__dict__)


@nodes.get("/{node_id}/children", response_model=Page[NodeOut], summary="Direct children")
async def children(
    node_id: str,
    request: Request,
    principal: Reader,
    limit: Limit = 100,
    cursor: Cursor = None,
    include_retired: bool = False,
) -> Page[NodeOut]:
    return await _list(request, principal, node_id, 1, None, include_retired, cursor, limit)


@nodes.get("", response_model=Page[NodeOut], summary="Places under a node")
async def list_nodes(
    request: Request,
    principal: Reader,
    under: Annotated[str, Query(description="node id; only places strictly under it")],
    kind: Annotated[str | None, Query(description="only this kind")] = None,
    level: Annotated[
        int | None, Query(ge=1, le=MAX_DEPTH, description="levels below `under` (1=children)")
    ] = None,
    include_retired: bool = False,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[NodeOut]:
    return await _list(request, principal, under, level, kind, include_retired, cursor, limit)


async def _list(
    request: Request,
    principal: Principal,
    under_id: str,
    depth: int | None,
    kind: str | None,
    include_retired: bool,
    cursor: str | None,
    limit: int,
) -> Page[NodeOut]:
    under = await _node_in_scope(request, principal, under_id)
    async with _pool(request).acquire() as conn:
        found = await handlers.list_nodes(
            conn,
            under=under,
            depth=depth,
            kind=kind,
            include_retired=include_retired,
            after=decode_cursor(request, cursor).get("after"),
            limit=limit + 1,
            scope=None,
        )
    page = page_of(
        request, [NodeOut(**n.__dict__) for n in found], limit, lambda n: {"after": n.id}
    )
    return page


@nodes.post("/{node_id}/rename", response_model=NodeOut, summary="Rename a place")
async def rename(
    node_id: str, body: NodeRename, request: Request, response: Response, principal: Writer
) -> NodeOut:
    await _node_in_scope(request, principal, node_id)
    outcome = await handlers.rename_node(
        _pool(request),
        node_id,
        body.name,
        command_context(request, principal),
        expected_version(request),
    )
    return await _out(request, outcome, response)


@nodes.post(
    "/{node_id}/move",
    response_model=NodeOut,
    summary="Move a place and its whole subtree under another parent",
)
async def move(
    node_id: str, body: NodeMove, request: Request, response: Response, principal: Writer
) -> NodeOut:
    await _node_in_scope(request, principal, node_id)
    async with _pool(request).acquire() as conn:
        if await handlers.get_node(conn, body.parent_id) is None:
            raise Problem(
                422,
                f"body.parent_id: node {body.parent_id} does not exist",
                slug="unknown-parent",
                errors=[{"field": "body.parent_id", "reason": "unknown node"}],
            )
        await check_scope(principal, body.parent_id, covers(conn))
    outcome = await handlers.move_node(
        _pool(request),
        node_id,
        body.parent_id,
        command_context(request, principal),
        expected_version(request),
    )
    return await _out(request, outcome, response)


@nodes.post("/{node_id}/retire", response_model=NodeOut, summary="Retire a place")
async def retire(
    node_id: str, body: NodeRetire, request: Request, response: Response, principal: Writer
) -> NodeOut:
    await _node_in_scope(request, principal, node_id)
    outcome = await handlers.retire_node(
        _pool(request),
        node_id,
        body.reason,
        command_context(request, principal),
        expected_version(request),
    )
    return await _out(request, outcome, response)
