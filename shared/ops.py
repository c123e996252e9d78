"""Operator routes every service has: lag, and the dead letters of its consumers.

They answer for the whole system, so besides the role they need a token scoped to `*`.
Everything comes from the service's PostgreSQL schema (and Kafka's high watermarks for the
lag), so any replica answers the same.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field, field_validator

from shared.auth import Principal
from shared.dead_letters import (
    AlreadyResolved,
    DeadLetter,
    RetryRequest,
    get_dead_letter,
    list_dead_letters,
    list_retries,
    request_retry,
)
from shared.eventstore import CommandContext
from shared.lag import LagReport
from shared.problems import Problem
from shared.requests import answer_once, json_answer
from shared.roles import allow

router = APIRouter(tags=["ops"])

observer = allow("ops.observe")
operator = allow("ops.operate")


@router.get(
    "/v1/lag",
    response_model=LagReport,
    summary="Relay backlog and consumer lag of this service, from its database",
    description="The relay part (services that publish) counts the store's events not yet on "
    "Kafka and shows who holds the relay's lease; it needs PostgreSQL only. Consumer lag is "
    "Kafka's high watermark minus the offset stored with each read model, with open dead "
    "letters and held streams; when Kafka does not answer within a few seconds it is `null` "
    "with `status: unknown` (never 0) and the report still answers 200.",
)
async def lag(request: Request, _: Annotated[Principal, Depends(observer)]) -> LagReport:
    report: LagReport = await request.app.state.lag_watch.measure()
    return report


# -- dead letters ----------------------------------------------------------------------------

MAX_PAGE = 500
MAX_ID = 2**63 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    next_after: int | None = Field(
        None, description="pass as `after` for the next page; null: this is the last page"
    )


class DeadLetterDetail(DeadLetter):
    retries: list[RetryRequest] = Field(
        description="re-drive requests, oldest first: who asked, why, and how it ended"
    )


class RetryBody(BaseModel):
    reason: str = Field(
        min_length=1,
        max_length=500,
        description="why it can be re-driven now (what was fixed); kept in the audit",
        examples=["handler fixed in 1.4.2"],
    )

    @field_validator("reason")
    @classmethod
    def _plain_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        if _CONTROL.search(value):
            raise ValueError("must not contain control characters")
        return value


DeadLetterId = Annotated[int, Path(ge=1, le=MAX_ID, description="the dead letter's id")]


@router.get(
    "/v1/admin/dead-letters",
    response_model=DeadLetterPage,
    summary="Events this service's consumers parked, in id order",
    description="Open ones (not resolved) unless `include_resolved`. Page on with `after` = "
    "the previous page's `next_after`.",
)
async def dead_letters(
    request: Request,
    _: Annotated[Principal, Depends(operator)],
    consumer: Annotated[
        str | None,
        Query(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$",
              description="only this consumer's (its group name, as `GET /v1/lag` shows it)"),
    ] = None,
    include_resolved: Annotated[bool, Query(description="resolved ones too")] = False,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="ids after this one")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")] = 100,
) -> DeadLetterPage:  # fmt: skip
    async with request.app.state.pool.acquire() as conn:
        found = await list_dead_letters(
            conn,
            consumer=consumer,
            open_only=not include_resolved,
            after_id=after,
            limit=limit + 1,
        )
    page = found[:limit]
    return DeadLetterPage(items=page, next_after=page[-1].id if len(found) > limit else None)


@router.get(
    "/v1/admin/dead-letters/{dead_letter_id}",
    response_model=DeadLetterDetail,
    summary="One dead letter and its re-drive requests",
    responses={404: {"description": "no dead letter with this id"}},
)
async def dead_letter(
    dead_letter_id: DeadLetterId, request: Request, _: Annotated[Principal, Depends(operator)]
) -> DeadLetterDetail:
    async with request.app.state.pool.acquire() as conn:
        found = await get_dead_letter(conn, dead_letter_id)
        if found is None:
            raise Problem(404, f"dead letter {dead_letter_id} is not known")
        retries = await list_retries(conn, dead_letter_id)
    return DeadLetterDetail(**found.model_dump(), retries=retries)


@router.post(
    "/v1/admin/dead-letters/{dead_letter_id}/retry",
    status_code=202,
    response_model=DeadLetter,
    summary="Ask the consumer that parked it to re-drive a dead letter",
    description="Accepted, not done: the consumer (any replica running it) re-applies the "
    "stream's parked events from this one on within about a second; "
    "`GET /v1/admin/dead-letters/{id}` (see `Location`) shows the outcome. Who asked and why "
    "are kept in the audit. 409 if it is resolved already.",
    responses={
        404: {"description": "no dead letter with this id"},
        409: {"description": "the dead letter is resolved already"},
    },
)
async def retry_dead_letter(
    dead_letter_id: DeadLetterId,
    body: Annotated[RetryBody, Body()],
    request: Request,
    principal: Annotated[Principal, Depends(operator)],
) -> Response:
    async def ask(_: CommandContext) -> Response:
        async with request.app.state.pool.acquire() as conn:
            try:
                asked = await request_retry(
                    conn, dead_letter_id, requested_by=principal.sub, reason=body.reason
                )
            except AlreadyResolved as exc:
                raise Problem(409, str(exc), slug="already-resolved") from exc
        if asked is None:
            raise Problem(404, f"dead letter {dead_letter_id} is not known")
        location = f"/v1/admin/dead-letters/{dead_letter_id}"
        return json_answer(asked, 202, {"Location": location})

    # a retry with the same Idempotency-Key does not ask twice
    return await answer_once(request, principal, ask)
