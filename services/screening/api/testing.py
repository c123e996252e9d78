"""Screening HTTP API: mass-testing rounds (应检尽检), samples and results (核酸), vaccination.

Rounds, samples, results and doses are recorded by `medic` and `admin`; rounds and samples
are read by `admin`, `medic`, `grid_worker`, `command`, `auditor` and `integrator`. The node
concerned (the round's place, the person's household) must be in the caller's scope.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from services.screening.api.key_persons import (
    batch_out,
    invalid_item,
    not_in_future,
    person_in_scope,
    pool_of,
    scope_of,
    setting,
    single,
)
from services.screening.commands.key_persons import BatchOut
from services.screening.commands.testing import (
    Coverage,
    DoseCreate,
    DoseOut,
    RoundCreate,
    RoundOut,
    SampleBatch,
    SampleCreate,
    SampleItem,
    SampleOut,
    SampleResult,
)
from services.screening.handlers import testing as handlers
from services.screening.handlers.key_persons import ItemResult
from services.screening.handlers.testing import SampleInput
from shared.auth import Principal, check_root_scope, check_scope
from shared.errors import DomainError
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

rounds = APIRouter(prefix="/v1/test-rounds", tags=["tests"])
samples = APIRouter(prefix="/v1/samples", tags=["tests"])
vaccinations = APIRouter(prefix="/v1/vaccinations", tags=["vaccination"])
ROUTERS = [rounds, samples, vaccinations]

Medic = Annotated[Principal, Depends(allow("testing.write"))]
Reader = Annotated[Principal, Depends(allow("testing.read"))]


# -- test rounds -----------------------------------------------------------------------------


async def _round(request: Request, round_id: str, response: Response) -> RoundOut:
    async with pool_of(request).acquire() as conn:
        row = await handlers.round_coverage(conn, round_id)
    if row is None:
        raise Problem(404, f"test round {round_id} does not exist")
    response.headers["ETag"] = etag(row["version"])
    persons, sampled = row["persons"], row["sampled"]
    return RoundOut(
        id=row["id"],
        node_id=row["node_id"],
        number=row["number"],
        starts_on=row["starts_on"],
        ends_on=row["ends_on"],
        version=row["version"],
        coverage=Coverage(
            persons=persons,
            sampled=sampled,
            not_sampled=persons - sampled,
            coverage_pct=round(100 * sampled / persons, 1) if persons else 0.0,
            samples=row["samples"],
            resulted=row["resulted"],
            positive=row["positive"],
        ),
    )


@rounds.post(
    "",
    status_code=201,
    response_model=RoundOut,
    summary="Start a numbered round of mass testing over a place (第N轮全员核酸检测)",
)
async def start_round(
    body: RoundCreate, request: Request, response: Response, principal: Medic
) -> RoundOut:
    async with pool_of(request).acquire() as conn:
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM places WHERE id = $1)", body.node_id
        ):
            raise DomainError(
                "unknown-node", f"place {body.node_id} does not exist", field="node_id"
            )
        await check_scope(principal, body.node_id, covers(conn))
    ctx = command_context(request, principal)
    round_id = new_id("test-round", body.id, ctx)
    await handlers.start_round(
        pool_of(request), round_id, body.node_id, body.number, body.starts_on, body.ends_on, ctx
    )
    response.headers["Location"] = f"/v1/test-rounds/{round_id}"
    return await _round(request, round_id, response)


@rounds.get(
    "/{round_id}",
    response_model=RoundOut,
    summary="A round with its coverage: persons living under the place sampled or not",
)
async def get_round(
    round_id: str, request: Request, response: Response, principal: Reader
) -> RoundOut:
    out = await _round(request, round_id, response)
    async with pool_of(request).acquire() as conn:
        await check_scope(principal, out.node_id, covers(conn))
    return out


# -- samples ---------------------------------------------------------------------------------


async def _sample(request: Request, sample_id: str, response: Response) -> SampleOut:
    async with pool_of(request).acquire() as conn:
        row = await handlers.get_sample(conn, sample_id)
    if row is None:
        raise Problem(404, f"sample {sample_id} does not exist")
    response.headers["ETag"] = etag(row["version"])
    return SampleOut(
        **{k: v for k, v in row.items() if k != "subject_id"}, person_id=row["subject_id"]
    )


async def _sample_in_scope(request: Request, principal: Principal, sample_id: str) -> None:
    async with pool_of(request).acquire() as conn:
        row = await conn.fetchrow(
            "SELECT s.id, p.household_id FROM samples s LEFT JOIN persons p ON p.id = s.subject_id"
            " WHERE s.id = $1",
            sample_id,
        )
        if row is None:
            raise Problem(404, f"sample {sample_id} does not exist")
        if row["household_id"] is None:
            check_root_scope(principal, "the sample's person is placed nowhere")
            return
        await check_scope(principal, row["household_id"], covers(conn))


@samples.post("", status_code=201, response_model=SampleOut, summary="Record a sample taken (采样)")
async def collect_sample(
    body: SampleCreate, request: Request, response: Response, principal: Medic
) -> SampleOut:
    await person_in_scope(request, principal, body.person_id)
    ctx = command_context(request, principal)
    sample_id = new_id("sample", body.id, ctx)
    occurred_at = not_in_future(body.occurred_at or datetime.now(UTC), request, "body.occurred_at")
    [result] = await handlers.collect(
        pool_of(request),
        [SampleInput(0, sample_id, body.person_id, body.round_id, occurred_at)],
        zone=request.app.state.settings.zone,
        scope=scope_of(principal),
        ctx=ctx,
    )
    single(result)
    response.headers["Location"] = f"/v1/samples/{sample_id}"
    return await _sample(request, sample_id, response)


@samples.post(
    ":batch",
    response_model=BatchOut,
    summary="Upload samples taken offline (up to 5000), with a result per item",
    description=(
        "Each item carries its client id and when it was taken. A bad item is an `error` in"
        " its result; the others are recorded. Sending the same batch again records nothing"
        " twice."
    ),
)
async def batch_samples(body: SampleBatch, request: Request, principal: Medic) -> Response:
    early: list[ItemResult] = []
    inputs: list[SampleInput] = []
    for index, raw in enumerate(body.items):
        try:
            item = SampleItem.model_validate(raw)
            not_in_future(item.occurred_at, request)
        except ValidationError as exc:
            early.append(invalid_item(index, raw, exc))
            continue
        except DomainError as exc:
            early.append(ItemResult.refused(index, item.id, exc))
            continue
        inputs.append(SampleInput(index, item.id, item.person_id, item.round_id, item.occurred_at))

    async def record(ctx: CommandContext) -> Response:
        results = await handlers.collect(
            pool_of(request),
            inputs,
            zone=request.app.state.settings.zone,
            scope=scope_of(principal),
            ctx=ctx,
            chunk_size=setting(request, "sample_batch_chunk", 500),
        )
        return json_answer(batch_out(early + results))

    return await answer_once(request, principal, record)


@samples.get("/{sample_id}", response_model=SampleOut, summary="A sample and its result")
async def get_sample(
    sample_id: str, request: Request, response: Response, principal: Reader
) -> SampleOut:
    await _sample_in_scope(request, principal, sample_id)
    return await _sample(request, sample_id, response)


@samples.post(
    "/{sample_id}/result",
    response_model=SampleOut,
    summary="Record the result of a sample: once (the same again is a no-op, another is 409)",
)
async def record_result(
    sample_id: str, body: SampleResult, request: Request, response: Response, principal: Medic
) -> SampleOut:
    await _sample_in_scope(request, principal, sample_id)
    await handlers.record_result(
        pool_of(request),
        sample_id,
        body.result,
        command_context(request, principal),
        expected_version(request),
    )
    return await _sample(request, sample_id, response)


# -- vaccination -----------------------------------------------------------------------------


@vaccinations.post(
    "",
    status_code=201,
    response_model=DoseOut,
    summary="Record a vaccine dose (the person's next dose; the same dose again is a no-op)",
)
async def give_dose(body: DoseCreate, request: Request, principal: Medic) -> DoseOut:
    await person_in_scope(request, principal, body.person_id)
    ctx = command_context(request, principal)
    occurred_at = not_in_future(body.occurred_at or datetime.now(UTC), request, "body.occurred_at")
    dose_id, _ = await handlers.give_dose(
        pool_of(request),
        new_id("dose", body.id, ctx),
        body.person_id,
        body.dose_number,
        body.vaccine,
        ctx,
        occurred_at,
    )
    async with pool_of(request).acquire() as conn:
        row: dict[str, Any] | None = await handlers.get_dose(conn, dose_id)
    assert row is not None
    return DoseOut(
        **{k: v for k, v in row.items() if k != "subject_id"}, person_id=row["subject_id"]
    )
