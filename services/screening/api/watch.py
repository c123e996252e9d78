"""Watch and quarantine (居家观察 / 隔离) and follow-up temperatures (每日两次体温) over HTTP.

Who may call what (deny by default; every call also checks the caller's scope against the
subject's node: a registered person's household, or the node given for an `h:` subject):

| endpoint | admin | medic | grid_worker | command | auditor | integrator |
|---|:-:|:-:|:-:|:-:|:-:|:-:|
| `POST /v1/observations` | ✓ | ✓ | ✓ |  |  |  |
| `POST /v1/observations/{subject_id}/release` | ✓ | ✓ |  |  |  |  |
| `POST /v1/observations/{subject_id}/transfer` | ✓ | ✓ |  |  |  |  |
| `POST /v1/quarantines` | ✓ | ✓ |  |  |  |  |
| `GET /v1/quarantines/{quarantine_id}` | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
| `POST /v1/quarantines/{quarantine_id}/extend` | ✓ | ✓ |  |  |  |  |
| `POST /v1/quarantines/{quarantine_id}/release` | ✓ | ✓ |  |  |  |  |
| `POST /v1/quarantines/{quarantine_id}/transfer` | ✓ | ✓ |  |  |  |  |
| `GET /v1/watch/{subject_id}` | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
| `GET /v1/watch/{subject_id}/follow-ups` | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
| `POST /v1/temperatures` | ✓ | ✓ |  |  |  |  |
| `POST /v1/temperatures:batch` | ✓ | ✓ |  |  |  |  |

Registrar and gatekeeper have none of these. A grid worker may *start* an observation: the
door-to-door screening is where returnees are found, and the seeds show village cadres
placing them under home observation (居家观察) with the village doctor; ordering, extending,
ending or transferring a quarantine stays with medics.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError

from services.screening.commands.watch import (
    BatchOut,
    Extension,
    FollowUpsOut,
    ItemResult,
    ObservationCreate,
    QuarantineCreate,
    QuarantineOut,
    ReadingBatch,
    ReadingCreate,
    ReadingItem,
    ReadingOut,
    Release,
    Transfer,
    Transition,
    WatchOut,
)
from services.screening.config import ScreeningSettings
from services.screening.domain import watch as domain
from services.screening.domain.watch import IllegalTransition
from services.screening.handlers import watch as handlers
from services.screening.handlers.watch import ItemOutcome, ReadingInput
from services.screening.views import person_node
from shared.auth import Principal, check_scope
from shared.envelope import utc_now
from shared.eventstore import CommandContext
from shared.places import covers
from shared.problems import Problem
from shared.requests import (
    answer_once,
    command_context,
    etag,
    expected_version,
    json_answer,
    new_id,
)
from shared.roles import allow

Writer = Annotated[Principal, Depends(allow("watch.write"))]
Observer = Annotated[Principal, Depends(allow("watch.observe"))]
Reader = Annotated[Principal, Depends(allow("watch.read"))]

observations = APIRouter(prefix="/v1/observations", tags=["watch"])
quarantines = APIRouter(prefix="/v1/quarantines", tags=["watch"])
watch = APIRouter(prefix="/v1/watch", tags=["watch"])
temperatures = APIRouter(prefix="/v1/temperatures", tags=["follow-ups"])
ROUTERS = [observations, quarantines, watch, temperatures]

T = TypeVar("T")
ILLEGAL: dict[int | str, dict[str, Any]] = {
    409: {"description": "not allowed in the current state (`current_state` says which)"}
}


def _pool(request: Request) -> Any:
    return request.app.state.pool


def _settings(request: Request) -> ScreeningSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def invalid(field: str, detail: str, slug: str = "validation-error") -> Problem:
    return Problem(
        422, f"{field}: {detail}", slug=slug, errors=[{"field": field, "reason": detail}]
    )


async def guarded(call: Awaitable[T]) -> T:
    """Run a command; an illegal transition answers 409 naming the current state."""
    try:
        return await call
    except IllegalTransition as exc:
        raise Problem(
            409, str(exc), slug=exc.code, code=exc.code, current_state=exc.current_state
        ) from exc


async def subject_for_command(
    request: Request, principal: Principal, subject_id: str, node_id: str | None
) -> str:
    """The node of a subject named in a body (422 if unknown), after the scope check."""
    async with _pool(request).acquire() as conn:
        if handlers.is_hmac_subject(subject_id):
            if len(subject_id) < 3:
                raise invalid("body.subject_id", "h: must be followed by the document HMAC")
            existing = await handlers.watch_node(conn, subject_id)
            if node_id is not None and not await conn.fetchval(
                "SELECT true FROM places WHERE id = $1 AND NOT retired", node_id
            ):
                raise invalid("body.node_id", f"place {node_id} does not exist", "unknown-node")
            node = node_id or existing
            if node is None:
                raise invalid(
                    "body.node_id", "a subject known only by document needs the node it is at"
                )
            if existing is not None and existing != node:
                await check_scope(principal, existing, covers(conn))
        else:
            found = await person_node(conn, subject_id)
            if found is None:
                raise invalid(
                    "body.subject_id",
                    f"person {subject_id} does not exist or was voided",
                    "unknown-person",
                )
            node = found
        await check_scope(principal, node, covers(conn))
    return node


async def subject_in_url(request: Request, principal: Principal, subject_id: str) -> str:
    """The node of a subject named in the URL (404 if unknown), after the scope check."""
    async with _pool(request).acquire() as conn:
        node = await handlers.subject_node(conn, subject_id)
        if node is None:
            raise Problem(404, f"subject {subject_id} is not known here")
        await check_scope(principal, node, covers(conn))
    return node


async def _check_party(request: Request, party_id: str | None) -> None:
    if party_id is None:
        return
    async with _pool(request).acquire() as conn:
        if not await conn.fetchval("SELECT true FROM parties WHERE id = $1", party_id):
            raise invalid(
                "body.carer_party_id", f"party {party_id} does not exist", "unknown-party"
            )


async def watch_out(
    request: Request, subject_id: str, response: Response | None = None
) -> WatchOut:
    async with _pool(request).acquire() as conn:
        row = await handlers.get_watch(conn, subject_id)
        history = await handlers.watch_history(conn, subject_id)
        version = await handlers.watch_version(conn, subject_id)
    if response is not None:
        response.headers["ETag"] = etag(version)
    base: dict[str, Any] = {"subject_id": subject_id, "state": "none"}
    if row is not None:
        base = {**row, "state": row["status"]}
        base.pop("status")
    return WatchOut(**base, version=version, history=[Transition(**h) for h in history])


async def quarantine_out(
    request: Request, quarantine_id: str, response: Response | None = None
) -> QuarantineOut:
    async with _pool(request).acquire() as conn:
        row = await handlers.get_quarantine(conn, quarantine_id)
        if row is None:
            raise Problem(404, f"quarantine {quarantine_id} does not exist")
        version = await handlers.watch_version(conn, row["subject_id"])
    if response is not None:
        response.headers["ETag"] = etag(version)
    return QuarantineOut(**row, version=version)


async def quarantine_in_scope(
    request: Request, principal: Principal, quarantine_id: str
) -> tuple[str, str]:
    """(subject, node) of a quarantine named in the URL: 404 if unknown, 403 out of scope."""
    async with _pool(request).acquire() as conn:
        row = await handlers.get_quarantine(conn, quarantine_id)
        if row is None:
            raise Problem(404, f"quarantine {quarantine_id} does not exist")
        subject = row["subject_id"]
        node = await handlers.subject_node(conn, subject) or row["node_id"]
        await check_scope(principal, node, covers(conn))
    return subject, node


# -- observation -----------------------------------------------------------------------------


@observations.post(
    "",
    status_code=201,
    response_model=WatchOut,
    summary="Start home observation (居家观察) of a subject",
    responses=ILLEGAL,
)
async def start_observation(
    body: ObservationCreate, request: Request, response: Response, principal: Observer
) -> WatchOut:
    node = await subject_for_command(request, principal, body.subject_id, body.node_id)
    await _check_party(request, body.carer_party_id)
    cmd = domain.Observe(
        body.subject_id, node, body.starts_at or utc_now(), body.planned_end, body.carer_party_id
    )
    await guarded(
        handlers.start_observation(
            _pool(request), cmd, _settings(request), command_context(request, principal)
        )
    )
    response.headers["Location"] = f"/v1/watch/{body.subject_id}"
    return await watch_out(request, body.subject_id, response)


async def _change_watch(
    request: Request,
    principal: Principal,
    subject_id: str,
    node: str,
    now: datetime,
    decide: Any,
) -> None:
    """One transition of a subject's watch, decided against its current state."""
    await guarded(
        handlers.change_watch(
            _pool(request),
            subject_id,
            command_context(request, principal),
            occurred_at=now,
            node_id=node,
            decide=decide,
            expected=expected_version(request),
        )
    )


@observations.post(
    "/{subject_id}/release",
    response_model=WatchOut,
    summary="End an observation (解除观察)",
    responses=ILLEGAL,
)
async def release_observation(
    subject_id: str, body: Release, request: Request, response: Response, principal: Writer
) -> WatchOut:
    node = await subject_in_url(request, principal, subject_id)
    now = utc_now()
    await _change_watch(
        request,
        principal,
        subject_id,
        node,
        now,
        lambda s: domain.decide_release(s, None, body.reason, now),
    )
    return await watch_out(request, subject_id, response)


@observations.post(
    "/{subject_id}/transfer",
    response_model=WatchOut,
    summary="Send someone under observation to hospital (转送医院)",
    responses=ILLEGAL,
)
async def transfer_observation(
    subject_id: str, body: Transfer, request: Request, response: Response, principal: Writer
) -> WatchOut:
    node = await subject_in_url(request, principal, subject_id)
    now = utc_now()
    await _change_watch(
        request,
        principal,
        subject_id,
        node,
        now,
        lambda s: domain.decide_transfer(s, None, body.to, body.destination, now),
    )
    return await watch_out(request, subject_id, response)


# -- quarantine ------------------------------------------------------------------------------


@quarantines.post(
    "",
    status_code=201,
    response_model=QuarantineOut,
    summary="Order a quarantine: home, home medical observation, or centralized",
    responses=ILLEGAL,
)
async def order_quarantine(
    body: QuarantineCreate, request: Request, response: Response, principal: Writer
) -> QuarantineOut:
    node = await subject_for_command(request, principal, body.subject_id, body.node_id)
    await _check_party(request, body.carer_party_id)
    ctx = command_context(request, principal)
    quarantine_id = new_id("quarantine", body.id, ctx)
    cmd = domain.OrderQuarantine(
        quarantine_id,
        body.subject_id,
        node,
        body.type,
        body.place,
        body.starts_at or utc_now(),
        body.planned_end,
        body.carer_party_id,
    )
    await guarded(handlers.order_quarantine(_pool(request), cmd, _settings(request), ctx))
    response.headers["Location"] = f"/v1/quarantines/{quarantine_id}"
    return await quarantine_out(request, quarantine_id, response)


@quarantines.get("/{quarantine_id}", response_model=QuarantineOut, summary="A quarantine")
async def get_quarantine(
    quarantine_id: str, request: Request, response: Response, principal: Reader
) -> QuarantineOut:
    await quarantine_in_scope(request, principal, quarantine_id)
    return await quarantine_out(request, quarantine_id, response)


async def _change_quarantine(
    request: Request,
    principal: Principal,
    quarantine_id: str,
    decide: Any,
) -> None:
    subject, node = await quarantine_in_scope(request, principal, quarantine_id)
    await _change_watch(request, principal, subject, node, utc_now(), decide)


@quarantines.post(
    "/{quarantine_id}/extend",
    response_model=QuarantineOut,
    summary="Extend a quarantine to a later planned end",
    responses=ILLEGAL,
)
async def extend_quarantine(
    quarantine_id: str, body: Extension, request: Request, response: Response, principal: Writer
) -> QuarantineOut:
    await _change_quarantine(
        request,
        principal,
        quarantine_id,
        lambda s: domain.decide_extend(s, quarantine_id, body.planned_end, body.reason),
    )
    return await quarantine_out(request, quarantine_id, response)


@quarantines.post(
    "/{quarantine_id}/release",
    response_model=QuarantineOut,
    summary="Release from quarantine (解除隔离)",
    responses=ILLEGAL,
)
async def release_quarantine(
    quarantine_id: str, body: Release, request: Request, response: Response, principal: Writer
) -> QuarantineOut:
    now = utc_now()
    await _change_quarantine(
        request,
        principal,
        quarantine_id,
        lambda s: domain.decide_release(s, quarantine_id, body.reason, now),
    )
    return await quarantine_out(request, quarantine_id, response)


@quarantines.post(
    "/{quarantine_id}/transfer",
    response_model=QuarantineOut,
    summary="Transfer to a hospital or a centralized quarantine site",
    responses=ILLEGAL,
)
async def transfer_quarantine(
    quarantine_id: str, body: Transfer, request: Request, response: Response, principal: Writer
) -> QuarantineOut:
    now = utc_now()
    await _change_quarantine(
        request,
        principal,
        quarantine_id,
        lambda s: domain.decide_transfer(s, quarantine_id, body.to, body.destination, now),
    )
    return await quarantine_out(request, quarantine_id, response)


# -- the watch of a subject ------------------------------------------------------------------


@watch.get(
    "/{subject_id}",
    response_model=WatchOut,
    summary="A subject's watch state and every transition so far",
)
async def get_watch(
    subject_id: str, request: Request, response: Response, principal: Reader
) -> WatchOut:
    await subject_in_url(request, principal, subject_id)
    return await watch_out(request, subject_id, response)


@watch.get(
    "/{subject_id}/follow-ups",
    response_model=FollowUpsOut,
    summary="A subject's temperature readings and missed slots, newest first",
)
async def get_follow_ups(
    subject_id: str,
    request: Request,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> FollowUpsOut:
    await subject_in_url(request, principal, subject_id)
    async with _pool(request).acquire() as conn:
        found = await handlers.follow_ups(conn, subject_id, limit)
    return FollowUpsOut(
        subject_id=subject_id,
        slots=[s.label for s in _settings(request).follow_up_slots],
        readings=found["readings"],
        missed=found["missed"],
    )


# -- temperatures ----------------------------------------------------------------------------


@temperatures.post(
    "",
    status_code=201,
    response_model=ReadingOut,
    summary="Record a temperature reading for its follow-up slot",
    responses={
        409: {"description": "the subject was not under watch then (`current_state`)"},
        422: {"description": "implausible temperature, future time, or before the first slot"},
    },
)
async def record_temperature(
    body: ReadingCreate, request: Request, response: Response, principal: Writer
) -> ReadingOut:
    async with _pool(request).acquire() as conn:
        node = await handlers.subject_node(conn, body.subject_id)
        if node is None:
            raise invalid("body.subject_id", str(handlers.unknown_subject(body)), "unknown-subject")
        await check_scope(principal, node, covers(conn))
    if not domain.MIN_CELSIUS <= body.celsius <= domain.MAX_CELSIUS:
        raise invalid(
            "body.celsius", f"must be {domain.MIN_CELSIUS}-{domain.MAX_CELSIUS} °C", "invalid"
        )
    ctx = command_context(request, principal)
    reading_id = new_id("reading", body.id, ctx)
    cmd = domain.RecordReading(
        reading_id, body.subject_id, body.celsius, body.occurred_at or utc_now(), principal.sub
    )
    await guarded(handlers.record_reading(_pool(request), cmd, node, _settings(request), ctx))
    async with _pool(request).acquire() as conn:
        row = await handlers.get_reading(conn, reading_id)
    assert row is not None
    response.headers["Location"] = f"/v1/watch/{body.subject_id}/follow-ups"
    return ReadingOut(id=row.pop("reading_id"), **row)


def item_errors(index: int, item_id: Any, exc: ValidationError) -> ItemResult:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ()))
    return ItemResult(
        index=index,
        id=item_id if isinstance(item_id, str) else None,
        status="error",
        code="validation-error",
        refusal="invalid",
        field=field or None,
        reason=first.get("msg", "invalid"),
    )


def batch_out(received: int, results: list[ItemResult]) -> BatchOut:
    results.sort(key=lambda r: r.index)
    return BatchOut(
        received=received,
        created=sum(1 for r in results if r.status == "created"),
        unchanged=sum(1 for r in results if r.status == "unchanged"),
        errors=sum(1 for r in results if r.status == "error"),
        results=results,
    )


def result_of(o: ItemOutcome) -> ItemResult:
    return ItemResult(
        index=o.index,
        id=o.id,
        status=o.status,
        slot_day=o.slot_day,
        slot=o.slot,
        late=o.late,
        code=o.code,
        refusal=o.refusal,
        field=o.field,
        reason=o.reason,
    )


@temperatures.post(
    ":batch",
    response_model=BatchOut,
    summary="Upload up to 5000 readings (offline field apps); a result per item",
)
async def record_temperature_batch(
    body: ReadingBatch, request: Request, principal: Writer
) -> Response:
    results: list[ItemResult] = []
    inputs: list[ReadingInput] = []
    for index, raw in enumerate(body.items):
        try:
            item = ReadingItem.model_validate(raw)
        except ValidationError as exc:
            results.append(
                item_errors(index, raw.get("id") if isinstance(raw, dict) else None, exc)
            )
            continue
        inputs.append(ReadingInput(index, item.id, item.subject_id, item.celsius, item.occurred_at))
    scope = None if principal.everywhere else principal.scope

    async def record(ctx: CommandContext) -> Response:
        outcomes = await handlers.record_reading_batch(
            _pool(request), inputs, _settings(request), scope, ctx
        )
        return json_answer(batch_out(len(body.items), results + [result_of(o) for o in outcomes]))

    return await answer_once(request, principal, record)
