"""Registry HTTP API: responsible parties and chains (包保责任链).

Jurisdiction: an instance, and everything assigned in it, belongs to the instance's root node;
a party belongs to its node, if it has one. Templates are shared data, readable by everyone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response

from services.registry.commands.chains import (
    AssignmentCreate,
    AssignmentOut,
    ChainInstanceCreate,
    ChainInstanceOut,
    ChainTemplateCreate,
    ChainTemplateOut,
    PartyCreate,
    PartyOut,
    PeriodEnd,
)
from services.registry.domain.chains import (
    Assignment,
    AssignParty,
    ChainInstance,
    ChainTemplate,
    DefineTemplate,
    EndPeriod,
    Party,
)
from services.registry.handlers import chains as handlers
from shared.auth import Principal, check_root_scope, check_scope, ltree_covers
from shared.errors import DomainError
from shared.pagination import Cursor, Limit, Page, decode_cursor, page_of
from shared.problems import Problem
from shared.requests import command_context, etag, expected_version, new_id
from shared.roles import allow

covers = ltree_covers("nodes")

Reader = Annotated[Principal, Depends(allow("chains.read"))]
Writer = Annotated[Principal, Depends(allow("chains.write"))]
TemplateReader = Annotated[Principal, Depends(allow("chain_templates.read"))]
TemplateWriter = Annotated[Principal, Depends(allow("chain_templates.write"))]

templates = APIRouter(prefix="/v1/chain-templates", tags=["chains"])
instances = APIRouter(prefix="/v1/chain-instances", tags=["chains"])
parties = APIRouter(prefix="/v1/parties", tags=["chains"])
assignments = APIRouter(prefix="/v1/assignments", tags=["chains"])
ROUTERS = [templates, instances, parties, assignments]


@asynccontextmanager
async def builtin_templates(app: FastAPI) -> AsyncIterator[None]:
    """Lifespan part: define the built-in templates once the pool is up."""
    await handlers.ensure_builtin_templates(app.state.pool)
    yield


def _pool(request: Request) -> Any:
    return request.app.state.pool


def _scope_filter(principal: Principal) -> tuple[str, ...] | None:
    return None if principal.everywhere else principal.scope


async def _node_in_scope(request: Request, principal: Principal, node_id: str, field: str) -> None:
    """The caller must cover `node_id`, named by the body's `field` (422 if unknown)."""
    async with _pool(request).acquire() as conn:
        if await handlers.node_facts(conn, node_id) is None:
            raise DomainError("unknown-node", f"node {node_id} does not exist", field=field)
        await check_scope(principal, node_id, covers(conn))


async def _instance_in_scope(
    request: Request, principal: Principal, instance_id: str, field: str | None = None
) -> ChainInstance:
    """The instance, if the caller covers its root; unknown: 404, or 422 naming `field`."""
    async with _pool(request).acquire() as conn:
        instance = await handlers.get_instance(conn, instance_id)
        if instance is None:
            message = f"chain instance {instance_id} does not exist"
            if field is not None:
                raise DomainError("unknown-instance", message, field=field)
            raise Problem(404, message)
        await check_scope(principal, instance.root_node_id, covers(conn))
    return instance


# -- templates ---------------------------------------------------------------------------------


def _template_out(template: ChainTemplate | None, response: Response) -> ChainTemplateOut:
    assert template is not None
    response.headers["ETag"] = etag(template.version)
    response.headers["Location"] = f"/v1/chain-templates/{template.id}"
    return ChainTemplateOut(
        id=template.id, name=template.name, tiers=list(template.tiers), version=template.version
    )


@templates.get("", response_model=Page[ChainTemplateOut], summary="Chain templates")
async def list_templates(
    request: Request, principal: TemplateReader, limit: Limit = 100, cursor: Cursor = None
) -> Page[ChainTemplateOut]:
    async with _pool(request).acquire() as conn:
        found = await handlers.list_templates(
            conn, decode_cursor(request, cursor).get("after"), limit + 1
        )
    items = [
        ChainTemplateOut(id=t.id, name=t.name, tiers=list(t.tiers), version=t.version)
        for t in found
    ]
    return page_of(request, items, limit, lambda t: {"after": t.id})


@templates.get("/{template_id}", response_model=ChainTemplateOut, summary="A chain template")
async def get_template(
    template_id: str, request: Request, response: Response, principal: TemplateReader
) -> ChainTemplateOut:
    async with _pool(request).acquire() as conn:
        template = await handlers.get_template(conn, template_id)
    if template is None:
        raise Problem(404, f"chain template {template_id} does not exist")
    return _template_out(template, response)


@templates.post(
    "", status_code=201, response_model=ChainTemplateOut, summary="Define a chain template"
)
async def define_template(
    body: ChainTemplateCreate, request: Request, response: Response, principal: TemplateWriter
) -> ChainTemplateOut:
    ctx = command_context(request, principal)
    cmd = DefineTemplate(
        new_id("chain-template", body.id, ctx),
        body.name,
        tuple(t.to_tier() for t in body.tiers),
    )
    outcome = await handlers.define_template(
        _pool(request), cmd, ctx, request.app.state.settings.node_kinds
    )
    return _template_out(outcome.state, response)


# -- instances ---------------------------------------------------------------------------------


def _instance_out(instance: ChainInstance | None, response: Response) -> ChainInstanceOut:
    assert instance is not None
    response.headers["ETag"] = etag(instance.version)
    response.headers["Location"] = f"/v1/chain-instances/{instance.id}"
    return ChainInstanceOut(
        id=instance.id,
        template_id=instance.template_id,
        root_node_id=instance.root_node_id,
        valid_from=instance.valid_from,
        valid_to=instance.valid_to,
        ended=instance.ended,
        end_reason=instance.end_reason,
        version=instance.version,
    )


@instances.post(
    "", status_code=201, response_model=ChainInstanceOut, summary="Apply a template to a place"
)
async def start_instance(
    body: ChainInstanceCreate, request: Request, response: Response, principal: Writer
) -> ChainInstanceOut:
    await _node_in_scope(request, principal, body.root_node_id, "root_node_id")
    ctx = command_context(request, principal)
    outcome = await handlers.start_instance(
        _pool(request),
        new_id("chain-instance", body.id, ctx),
        body.template_id,
        body.root_node_id,
        body.valid_from,
        body.valid_to,
        ctx,
    )
    return _instance_out(outcome.state, response)


@instances.get("/{instance_id}", response_model=ChainInstanceOut, summary="A chain instance")
async def get_instance(
    instance_id: str, request: Request, response: Response, principal: Reader
) -> ChainInstanceOut:
    return _instance_out(await _instance_in_scope(request, principal, instance_id), response)


@instances.post("/{instance_id}/end", response_model=ChainInstanceOut, summary="End a chain")
async def end_instance(
    instance_id: str, body: PeriodEnd, request: Request, response: Response, principal: Writer
) -> ChainInstanceOut:
    instance = await _instance_in_scope(request, principal, instance_id)
    outcome = await handlers.end_instance(
        _pool(request),
        instance,
        EndPeriod(body.valid_to, body.reason),
        command_context(request, principal),
        expected_version(request),
    )
    return _instance_out(outcome.state, response)


# -- parties -----------------------------------------------------------------------------------


def _party_out(party: Party | None, response: Response) -> PartyOut:
    assert party is not None
    response.headers["ETag"] = etag(party.version)
    response.headers["Location"] = f"/v1/parties/{party.id}"
    return PartyOut(**party.__dict__)


@parties.post("", status_code=201, response_model=PartyOut, summary="Register a party")
async def register_party(
    body: PartyCreate, request: Request, response: Response, principal: Writer
) -> PartyOut:
    if body.node_id is None:
        check_root_scope(principal, "a party without a node")
    else:
        await _node_in_scope(request, principal, body.node_id, "node_id")
    ctx = command_context(request, principal)
    outcome = await handlers.register_party(
        _pool(request),
        new_id("party", body.id, ctx),
        body.kind,
        body.name,
        body.role,
        body.node_id,
        body.sub,
        ctx,
        phone=body.phone,
        cipher=request.app.state.keys.cipher,
    )
    return _party_out(outcome.state, response)


@parties.get("/{party_id}", response_model=PartyOut, summary="A party")
async def get_party(
    party_id: str, request: Request, response: Response, principal: Reader
) -> PartyOut:
    async with _pool(request).acquire() as conn:
        party = await handlers.get_party(conn, party_id)
        if party is None:
            raise Problem(404, f"party {party_id} does not exist")
        if party.node_id is None:
            check_root_scope(principal, f"party {party_id} belongs to no node")
        else:
            await check_scope(principal, party.node_id, covers(conn))
    return _party_out(party, response)


# -- assignments -------------------------------------------------------------------------------


def _assignment_out(assignment: Assignment | None, response: Response) -> AssignmentOut:
    assert assignment is not None
    response.headers["ETag"] = etag(assignment.version)
    response.headers["Location"] = f"/v1/assignments/{assignment.id}"
    return _as_out(assignment)


def _as_out(a: Assignment) -> AssignmentOut:
    return AssignmentOut(
        id=a.id,
        instance_id=a.instance_id,
        level=a.level,
        party_id=a.party_id,
        target_type=a.target_type,
        target_id=a.target_id,
        valid_from=a.valid_from,
        valid_to=a.valid_to,
        ended=a.ended,
        end_reason=a.end_reason,
        version=a.version,
    )


@assignments.post(
    "",
    status_code=201,
    response_model=AssignmentOut,
    summary="Assign a party to a node or person at a tier (多对一 allowed)",
)
async def assign_party(
    body: AssignmentCreate, request: Request, response: Response, principal: Writer
) -> AssignmentOut:
    await _instance_in_scope(request, principal, body.instance_id, "instance_id")
    ctx = command_context(request, principal)
    cmd = AssignParty(
        new_id("assignment", body.id, ctx),
        body.instance_id,
        body.level,
        body.party_id,
        body.target_type,
        body.target_id,
        body.valid_from,
        body.valid_to,
    )
    outcome, duplicate = await handlers.assign_party(_pool(request), cmd, ctx)
    return _assignment_out(outcome.state or duplicate, response)


@assignments.get("", response_model=Page[AssignmentOut], summary="Assignments")
async def list_assignments(
    request: Request,
    principal: Reader,
    instance_id: Annotated[str | None, Query(description="only this chain instance")] = None,
    party_id: Annotated[str | None, Query(description="only this party")] = None,
    target_id: Annotated[str | None, Query(description="only this node or person")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[AssignmentOut]:
    """Only assignments of instances whose root lies in the caller's jurisdiction."""
    if instance_id is not None:
        await _instance_in_scope(request, principal, instance_id)
    async with _pool(request).acquire() as conn:
        found = await handlers.list_assignments(
            conn,
            instance_id=instance_id,
            party_id=party_id,
            target_id=target_id,
            after=decode_cursor(request, cursor).get("after"),
            limit=limit + 1,
            scope=_scope_filter(principal),
        )
    return page_of(request, [_as_out(a) for a in found], limit, lambda a: {"after": a.id})


async def _assignment_in_scope(
    request: Request, principal: Principal, assignment_id: str
) -> tuple[Assignment, str | None]:
    async with _pool(request).acquire() as conn:
        found = await handlers.get_assignment(conn, assignment_id)
    if found is None:
        raise Problem(404, f"assignment {assignment_id} does not exist")
    await _instance_in_scope(request, principal, found[0].instance_id)
    return found


@assignments.get("/{assignment_id}", response_model=AssignmentOut, summary="An assignment")
async def get_assignment(
    assignment_id: str, request: Request, response: Response, principal: Reader
) -> AssignmentOut:
    assignment, _ = await _assignment_in_scope(request, principal, assignment_id)
    return _assignment_out(assignment, response)


@assignments.post("/{assignment_id}/end", response_model=AssignmentOut, summary="End an assignment")
async def end_assignment(
    assignment_id: str, body: PeriodEnd, request: Request, response: Response, principal: Writer
) -> AssignmentOut:
    assignment, node_id = await _assignment_in_scope(request, principal, assignment_id)
    outcome = await handlers.end_assignment(
        _pool(request),
        assignment,
        node_id,
        EndPeriod(body.valid_to, body.reason),
        command_context(request, principal),
        expected_version(request),
    )
    return _assignment_out(outcome.state, response)
