"""What every command endpoint reads from the request: who, which retry, which version."""

from __future__ import annotations

import uuid

from fastapi import Request

from shared.auth import Principal
from shared.eventstore import CommandContext
from shared.logs import correlation_id
from shared.problems import Problem

MAX_KEY_LENGTH = 200


def command_context(request: Request, principal: Principal) -> CommandContext:
    key = request.headers.get("idempotency-key")
    if key is not None and not (0 < len(key) <= MAX_KEY_LENGTH):
        raise Problem(
            422,
            f"Idempotency-Key: must be 1-{MAX_KEY_LENGTH} characters",
            slug="validation-error",
            errors=[{"field": "header.Idempotency-Key", "reason": "bad length"}],
        )
    cid = correlation_id.get()
    return CommandContext(
        actor=principal.sub,
        command_id=f"{principal.sub}:{key}" if key else None,
        correlation_id=uuid.UUID(cid) if cid else None,
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
