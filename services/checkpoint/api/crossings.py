"""Crossing HTTP API: record a crossing or an offline upload and get the server's decision;
read a gate's register of a day (卡口登记表) as pages or CSV."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from services.checkpoint.api.common import (
    LedgerReader,
    Recorder,
    clock,
    gate_in_scope,
    pool,
    settings,
    today,
)
from services.checkpoint.commands.crossings import (
    BatchOut,
    CrossingBatch,
    CrossingCreate,
    CrossingFields,
    CrossingItem,
    CrossingOut,
)
from services.checkpoint.domain.crossings import RecordCrossing
from services.checkpoint.domain.ledger import to_csv
from services.checkpoint.handlers import crossings as handlers
from services.checkpoint.handlers.crossings import (
    Caller,
    Clock,
    CrossingInput,
    Document,
    ItemOutcome,
)
from shared.auth import Principal, check_scope
from shared.errors import DomainError
from shared.eventstore import CommandContext
from shared.horizon import CalendarDay
from shared.identity import china_today, hmac_key
from shared.pagination import Cursor, Limit, Page, decode_cursor, page_of
from shared.places import covers
from shared.problems import Problem
from shared.requests import answer_once, command_context, etag, json_answer, new_id
from shared.roles import holds

crossings = APIRouter(prefix="/v1/crossings", tags=["crossings"])
ledgers = APIRouter(prefix="/v1/checkpoints", tags=["crossings"])

_STATUS = {"invalid": 422, "not_found": 404, "conflict": 409, "forbidden": 403}


def _caller(principal: Principal) -> Caller:
    return Caller(
        sub=principal.sub,
        scope=None if principal.everywhere else principal.scope,
        needs_shift=not holds(principal, "crossings.any_gate"),
    )


def _clock(request: Request) -> Clock:
    s = settings(request)
    return Clock(
        now=clock(request)(),
        clock_skew=timedelta(seconds=s.clock_skew_seconds),
        live_window=timedelta(seconds=s.live_window_seconds),
        zone=s.zone,
    )


def _input(body: CrossingFields, crossing_id: str, occurred_at: datetime) -> CrossingInput:
    document = Document(body.document_type, body.document_number) if body.document_number else None
    return CrossingInput(
        crossing_id=crossing_id,
        checkpoint_id=body.checkpoint_id,
        kind=body.kind,
        direction=body.direction,
        document=document,
        plate=body.plate,
        passengers=tuple(Document(p.document_type, p.document_number) for p in body.passengers),
        temperature=body.temperature,
        health_code=body.health_code,
        test_report_at=body.test_report_at,
        origin=body.origin,
        origin_region_code=body.origin_region_code,
        occurred_at=occurred_at,
    )


def _key(request: Request) -> bytes:
    return hmac_key(settings(request).id_hmac_key)


def _out(row: dict[str, Any]) -> CrossingOut:
    return CrossingOut(**row)


@crossings.post(
    "",
    status_code=201,
    response_model=CrossingOut,
    summary="Record a person or vehicle at a gate and get the server's decision",
    description="The decision is `admit`, `deny`, `persuade_return` or `refer`, with "
    "machine-readable reasons; see the precedence in the service docs. A gatekeeper records "
    "only at a checkpoint where they hold a shift at the crossing's time. Retrying with the "
    "same `id` or `Idempotency-Key` returns the first decision and records nothing.",
    responses={
        403: {"description": "no shift at this gate, or the gate is outside the jurisdiction"},
        409: {"description": "the id names another crossing, or the gate is closed"},
    },
)
async def record_crossing(body: CrossingCreate, request: Request, principal: Recorder) -> Response:
    crossing_id = new_id("crossing", body.id, command_context(request, principal))
    item = _input(body, crossing_id, body.occurred_at or clock(request)())
    try:
        cmd = handlers.to_command(_key(request), item, principal.sub)
    except DomainError as exc:
        raise _problem(handlers.refused(0, crossing_id, exc)) from exc

    async def record(ctx: CommandContext) -> Response:
        [outcome] = await handlers.record_crossings(
            pool(request),
            [(0, cmd)],
            _caller(principal),
            ctx,
            _clock(request),
            settings(request).crossing_batch_chunk,
        )
        if outcome.status == "error":
            raise _problem(outcome)
        async with pool(request).acquire() as conn:
            row = await handlers.get_crossing(conn, crossing_id)
        assert row is not None
        headers = {"ETag": etag(row["version"]), "Location": f"/v1/crossings/{crossing_id}"}
        return json_answer(_out(row), 201, headers)

    # the crossing's id makes a retry record nothing; the key also refuses another request
    return await answer_once(request, principal, record)


def _problem(outcome: ItemOutcome) -> Problem:
    field = f"body.{outcome.field}" if outcome.field else None
    detail = outcome.reason or "refused"
    return Problem(
        _STATUS.get(outcome.refusal or "invalid", 422),
        f"{field}: {detail}" if field and outcome.refusal == "invalid" else detail,
        slug=outcome.code,
        code=outcome.code,
        errors=[{"field": field, "reason": detail}] if field else [],
    )


@crossings.post(
    ":batch",
    response_model=BatchOut,
    summary="Upload crossings recorded offline (up to 5000), each decided as of its own time",
    description="Each item carries the device's id and the time at the gate. Items are "
    "judged by the policy in force at their time and by the risk areas and watch states of "
    "that time; residency and vehicles are known only as they are now, so an item older "
    "than the live window says so in `views_as_of`. Sending the same upload again records "
    "nothing twice: its items come back `unchanged` with their first decisions.",
)
async def record_batch(body: CrossingBatch, request: Request, principal: Recorder) -> Response:
    key = _key(request)
    today = china_today()  # bounds birth dates in resident IDs, once per upload
    results: list[ItemOutcome] = []
    ready: list[tuple[int, RecordCrossing]] = []
    for index, raw in enumerate(body.items):
        item_id = raw.get("id") if isinstance(raw, dict) else None
        try:
            parsed = CrossingItem.model_validate(raw)
            ready.append(
                (
                    index,
                    handlers.to_command(
                        key, _input(parsed, parsed.id, parsed.occurred_at), principal.sub, today
                    ),
                )
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ())) or None
            results.append(
                ItemOutcome(
                    index,
                    item_id if isinstance(item_id, str) else None,
                    "error",
                    code="validation-error",
                    refusal="invalid",
                    field=field,
                    reason=first.get("msg", "invalid"),
                )
            )
        except DomainError as exc:
            results.append(handlers.refused(index, item_id, exc))

    async def record(ctx: CommandContext) -> Response:
        recorded = await handlers.record_crossings(
            pool(request),
            ready,
            _caller(principal),
            ctx,
            _clock(request),
            settings(request).crossing_batch_chunk,
        )
        outcomes = sorted(results + recorded, key=lambda r: r.index)
        return Response(batch_json(len(body.items), outcomes), media_type="application/json")

    return await answer_once(request, principal, record)


def batch_json(received: int, results: list[ItemOutcome]) -> bytes:
    """The `BatchOut` document of an upload's outcomes, as pydantic would serialise it, in
    one orjson call: a pydantic model per item, validated and dumped, costs more than the
    rest of the response together."""
    return orjson.dumps(
        {
            "received": received,
            "created": sum(r.status == "created" for r in results),
            "unchanged": sum(r.status == "unchanged" for r in results),
            "errors": sum(r.status == "error" for r in results),
            "results": [
                {
                    "index": r.index,
                    "id": r.id,
                    "status": r.status,
                    "code": r.code,
                    "refusal": r.refusal,
                    "field": r.field,
                    "reason": r.reason,
                    "decision": r.decision,
                    "reasons": r.reasons,
                    "views_as_of": r.views_as_of,
                    "breaches": r.breaches,
                }
                for r in results
            ],
        },
        option=orjson.OPT_UTC_Z,
    )


@crossings.get("/{crossing_id}", response_model=CrossingOut, summary="One crossing")
async def get_crossing(
    crossing_id: str, request: Request, response: Response, principal: LedgerReader
) -> CrossingOut:
    async with pool(request).acquire() as conn:
        row = await handlers.get_crossing(conn, crossing_id)
        if row is None:
            raise Problem(404, f"crossing {crossing_id} does not exist")
        await check_scope(principal, row["node_id"], covers(conn))
    response.headers["ETag"] = etag(row["version"])
    return _out(row)


# -- the gate's register ---------------------------------------------------------------------

Day = Annotated[
    CalendarDay | None,
    Query(alias="date", description="YYYY-MM-DD in the system zone; default today"),
]


def _csv(request: Request, checkpoint_id: str, day: date, rows: list[dict[str, Any]]) -> Response:
    return Response(
        to_csv(rows, settings(request).zone),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="crossings-{checkpoint_id}-{day}.csv"'
        },
    )


@ledgers.get(
    "/{checkpoint_id}/crossings",
    response_model=Page[CrossingOut],
    summary="A gate's register of a day (卡口登记表), in time order; `format=csv` for CSV",
    responses={200: {"content": {"text/csv": {}}}},
)
async def gate_ledger(
    checkpoint_id: str,
    request: Request,
    principal: LedgerReader,
    day: Day = None,
    format: Annotated[
        Literal["json", "csv"], Query(description="csv: the whole day, Chinese headers")
    ] = "json",
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Any:
    await gate_in_scope(request, principal, checkpoint_id)
    day = day or today(request)
    if format == "csv":
        return await _whole_day(request, checkpoint_id, day)
    position = decode_cursor(request, cursor)
    after = None
    if position:
        try:
            after = (datetime.fromisoformat(position["t"]), str(position["id"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise Problem(422, "query.cursor: not a cursor this API issued") from exc
    async with pool(request).acquire() as conn:
        rows = await handlers.ledger(conn, checkpoint_id, day, limit + 1, after)
    return page_of(
        request,
        [_out(r) for r in rows],
        limit,
        lambda c: {"t": c.occurred_at.isoformat(), "id": c.id},
    )


async def _whole_day(request: Request, checkpoint_id: str, day: date) -> Response:
    async with pool(request).acquire() as conn:
        rows = await handlers.ledger(conn, checkpoint_id, day, None, None)
    return _csv(request, checkpoint_id, day, rows)


@ledgers.get(
    "/{checkpoint_id}/crossings.csv",
    summary="A gate's register of a day as CSV with Chinese headers (卡口登记表)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def gate_ledger_csv(
    checkpoint_id: str, request: Request, principal: LedgerReader, day: Day = None
) -> Response:
    await gate_in_scope(request, principal, checkpoint_id)
    return await _whole_day(request, checkpoint_id, day or today(request))
