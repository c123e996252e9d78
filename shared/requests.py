"""What every command endpoint reads from the request: who, which retry, which version."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from pydantic import BaseModel

from shared.auth import Principal
from shared.eventstore import CommandContext, command_causation
from shared.idempotency import once, request_key
from shared.logs import correlation_id
from shared.problems import Problem


def command_context(request: Request, principal: Principal) -> CommandContext:
    """The caller, the request's `Idempotency-Key` (shared/idempotency.py), its correlation id
    (shared/http.py) and the command's id as the cause of its events: derived from the command
    id, so a retry names the same command; a request without a key is one command of its own."""
    key = request_key(request, principal.sub)
    cid = correlation_id.get()
    return CommandContext(
        actor=principal.sub,
        command_id=key.command_id if key else None,
        correlation_id=uuid.UUID(cid) if cid else uuid.uuid4(),
        causation_id=command_causation(key.command_id) if key else uuid.uuid4(),
        idempotency=key,
    )


def expected_version(request: Request) -> int | None:
    """The version named by `If-Match: "<version>"`, if the client sent one."""
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    tag = raw.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise Problem(
            412, f"If-Match must be an ETag of this API, got {raw!r}", slug="precondition-failed"
        )
    return int(tag)


def etag(version: int) -> str:
    return f'"{version}"'


def new_id(kind: str, body_id: str | None, ctx: CommandContext) -> str:
    """The id a create command gives its new thing: the client's own id; else one derived
    from the idempotency key, so a retry names the same thing; else a fresh one."""
    if body_id:
        return body_id
    if ctx.command_id:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"grid-epi:{kind}:{ctx.command_id}"))
    return str(uuid.uuid4())


async def answer_once(
    request: Request,
    principal: Principal,
    answer: Callable[[CommandContext], Awaitable[Response]],
) -> Response:
    """For a write answered by more than one transaction (a batch, an upload, an operation):
    with an `Idempotency-Key`, run at most once per key and answer retries with the first
    answer (shared/idempotency.py `once`). `answer` gets a context without a command id:
    the items' own ids are their idempotency."""
    ctx = command_context(request, principal)
    return await once(request.app.state.pool, ctx.idempotency, lambda: answer(ctx.unkeyed()))


def json_answer(
    model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A model as the JSON response a route would have made of it."""
    return Response(
        model.model_dump_json(by_alias=True).encode(),  # as FastAPI serialises a response_model
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )
