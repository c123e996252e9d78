"""Checkpoint HTTP API: gates and their policies (卡口), duty shifts (值守) and coverage."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.checkpoint.api.common import (
    Admin,
    GateReader,
    clock,
    gate_in_scope,
    invalid,
    pool,
    settings,
    today,
)
from services.checkpoint.commands.checkpoints import (
    CheckpointCreate,
    CheckpointOut,
    CoverageOut,
    PolicyChange,
    PolicyPeriodOut,
    Reason,
    ShiftCreate,
    ShiftOut,
    Span,
)
from services.checkpoint.domain.checkpoints import policy_at
from services.checkpoint.domain.shifts import Interval, ScheduleShift, Shift, coverage
from services.checkpoint.handlers import checkpoints as handlers
from services.checkpoint.handlers import shifts as shift_handlers
from shared.auth import check_scope
from shared.horizon import CalendarDay
from shared.places import covers
from shared.problems import Problem
from shared.requests import command_context, etag, expected_version, new_id

checkpoints = APIRouter(prefix="/v1/checkpoints", tags=["checkpoints"])


async def _checkpoint_out(
    request: Request, checkpoint_id: str, response: Response
) -> CheckpointOut:
    async with pool(request).acquire() as conn:
        row = await handlers.get_checkpoint(conn, checkpoint_id)
    if row is None:
        raise Problem(404, f"checkpoint {checkpoint_id} does not exist")
    periods = row.pop("periods")
    response.headers["ETag"] = etag(row["version"])
    return CheckpointOut(
        **row,
        policy=policy_at(periods, clock(request)()),
        policies=[PolicyPeriodOut(**vars(p)) for p in periods],
    )


@checkpoints.post(
    "",
    status_code=201,
    response_model=CheckpointOut,
    summary="Open a checkpoint on a place with its policy (设卡)",
)
async def open_checkpoint(
    body: CheckpointCreate, request: Request, response: Response, principal: Admin
) -> CheckpointOut:
    async with pool(request).acquire() as conn:
        if not await handlers.place_known(conn, body.node_id):
            raise invalid("node_id", f"place {body.node_id} does not exist", "unknown-node")
        await check_scope(principal, body.node_id, covers(conn))
    ctx = command_context(request, principal)
    checkpoint_id = new_id("checkpoint", body.id, ctx)
    await handlers.open_checkpoint(
        pool(request),
        checkpoint_id,
        body.node_id,
        body.name,
        body.level,
        body.policy,
        body.opened_at or clock(request)(),
        ctx,
    )
    response.headers["Location"] = f"/v1/checkpoints/{checkpoint_id}"
    return await _checkpoint_out(request, checkpoint_id, response)


@checkpoints.get(
    "/{checkpoint_id}",
    response_model=CheckpointOut,
    summary="A checkpoint, the policy in force now and every policy with when it applies",
)
async def get_checkpoint(
    checkpoint_id: str, request: Request, response: Response, principal: GateReader
) -> CheckpointOut:
    await gate_in_scope(request, principal, checkpoint_id)
    return await _checkpoint_out(request, checkpoint_id, response)


@checkpoints.post(
    "/{checkpoint_id}/policy",
    response_model=CheckpointOut,
    summary="Change the policy from a moment on (earlier crossings keep their decisions)",
    responses={412: {"description": "If-Match names another version"}},
)
async def change_policy(
    checkpoint_id: str, body: PolicyChange, request: Request, response: Response, principal: Admin
) -> CheckpointOut:
    await gate_in_scope(request, principal, checkpoint_id)
    now = clock(request)()
    await handlers.change_policy(
        pool(request),
        checkpoint_id,
        body.policy,
        body.effective_from or now,
        now,
        command_context(request, principal),
        expected_version(request),
    )
    return await _checkpoint_out(request, checkpoint_id, response)


@checkpoints.post(
    "/{checkpoint_id}/close",
    response_model=CheckpointOut,
    summary="Close a checkpoint (撤卡); later crossings are refused",
)
async def close_checkpoint(
    checkpoint_id: str, body: Reason, request: Request, response: Response, principal: Admin
) -> CheckpointOut:
    await gate_in_scope(request, principal, checkpoint_id)
    await handlers.close_checkpoint(
        pool(request),
        checkpoint_id,
        body.reason,
        clock(request)(),
        command_context(request, principal),
        expected_version(request),
    )
    return await _checkpoint_out(request, checkpoint_id, response)


# -- duty shifts -----------------------------------------------------------------------------


def _shift_out(shift: Shift) -> ShiftOut:
    return ShiftOut(**{k: v for k, v in vars(shift).items()})


@checkpoints.post(
    "/{checkpoint_id}/shifts",
    status_code=201,
    response_model=ShiftOut,
    summary="Put someone on duty at the gate in a role, from and to (值守排班)",
    responses={409: {"description": "the person holds another shift then, or the gate closed"}},
)
async def schedule_shift(
    checkpoint_id: str, body: ShiftCreate, request: Request, response: Response, principal: Admin
) -> ShiftOut:
    node_id = await gate_in_scope(request, principal, checkpoint_id)
    ctx = command_context(request, principal)
    shift_id = new_id("duty-shift", body.id, ctx)
    cmd = ScheduleShift(
        shift_id,
        checkpoint_id,
        body.sub,
        body.party_id,
        body.role,
        body.starts_at,
        body.ends_at,
        True,
        None,
        settings(request).max_shift_hours,
    )
    outcome = await shift_handlers.schedule_shift(
        pool(request), cmd, node_id, clock(request)(), ctx
    )
    assert outcome.state is not None
    response.headers["ETag"] = etag(outcome.state.version)
    response.headers["Location"] = f"/v1/checkpoints/{checkpoint_id}/shifts/{shift_id}"
    return _shift_out(outcome.state)


@checkpoints.post(
    "/{checkpoint_id}/shifts/{shift_id}/cancel",
    response_model=ShiftOut,
    summary="Cancel a shift (it no longer counts for coverage or for recording crossings)",
)
async def cancel_shift(
    checkpoint_id: str,
    shift_id: str,
    body: Reason,
    request: Request,
    response: Response,
    principal: Admin,
) -> ShiftOut:
    node_id = await gate_in_scope(request, principal, checkpoint_id)
    outcome = await shift_handlers.cancel_shift(
        pool(request),
        checkpoint_id,
        shift_id,
        body.reason,
        node_id,
        clock(request)(),
        command_context(request, principal),
        expected_version(request),
    )
    assert outcome.state is not None
    response.headers["ETag"] = etag(outcome.state.version)
    return _shift_out(outcome.state)


@checkpoints.get(
    "/{checkpoint_id}/coverage",
    response_model=CoverageOut,
    summary="A day's staffing: hours nobody is on duty, required roles missing (24小时值守)",
)
async def get_coverage(
    checkpoint_id: str,
    request: Request,
    principal: GateReader,
    day: Annotated[
        CalendarDay | None,
        Query(alias="date", description="YYYY-MM-DD in the system zone; default today"),
    ] = None,
) -> CoverageOut:
    await gate_in_scope(request, principal, checkpoint_id)
    day = day or today(request)
    zone = settings(request).zone
    start = datetime.combine(day, time(), zone)
    end = datetime.combine(day + timedelta(days=1), time(), zone)
    async with pool(request).acquire() as conn:
        shifts = await shift_handlers.shifts_between(conn, checkpoint_id, start, end)
    required = settings(request).required_roles
    covered = coverage(shifts, Interval(start, end), required)

    def spans(intervals: list[Interval]) -> list[Span]:
        return [Span(start=i.start.astimezone(zone), end=i.end.astimezone(zone)) for i in intervals]

    return CoverageOut(
        checkpoint_id=checkpoint_id,
        date=day,
        start=start,
        end=end,
        complete=covered.complete,
        gaps=spans(covered.gaps),
        required_roles=list(required),
        missing_roles=covered.missing_roles,
        role_gaps={role: spans(gaps) for role, gaps in covered.role_gaps.items()},
        shifts=[_shift_out(s) for s in shifts],
    )
