"""Care tasks (五个每日: 电话, 生活物资, 垃圾, 消毒; 代购, 心理疏导) and public places' care plans.

| endpoint | admin | medic | grid_worker | command | auditor | integrator |
|---|:-:|:-:|:-:|:-:|:-:|:-:|
| `POST /v1/care-tasks` | ✓ | ✓ | ✓ |  |  |  |
| `POST /v1/care-tasks:batch` | ✓ | ✓ | ✓ |  |  |  |
| `POST /v1/place-care-plans` | ✓ | ✓ | ✓ |  |  |  |
| `GET /v1/care/{target_id}` | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |

Registrar and gatekeeper have none of these. The scope is checked at the target's node: a
subject's household (or watch node), or the public place itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError

from services.screening.api.watch import (
    Reader,
    batch_out,
    guarded,
    invalid,
    item_errors,
    result_of,
)
from services.screening.commands.care import (
    CareOut,
    PlacePlanCreate,
    PlacePlanOut,
    TaskBatch,
    TaskCreate,
    TaskItem,
    TaskOut,
)
from services.screening.commands.watch import BatchOut, ItemResult
from services.screening.config import ScreeningSettings
from services.screening.domain import care as domain
from services.screening.domain import slots as slot_math
from services.screening.handlers import care as handlers
from services.screening.handlers import watch as watch_handlers
from services.screening.handlers.care import Target, TaskInput
from shared.auth import Principal, check_scope
from shared.envelope import utc_now
from shared.eventstore import CommandContext
from shared.places import covers
from shared.problems import Problem
from shared.requests import answer_once, command_context, etag, json_answer, new_id
from shared.roles import allow

Carer = Annotated[Principal, Depends(allow("care.write"))]

care_tasks = APIRouter(prefix="/v1/care-tasks", tags=["care"])
place_plans = APIRouter(prefix="/v1/place-care-plans", tags=["care"])
care = APIRouter(prefix="/v1/care", tags=["care"])
ROUTERS = [care_tasks, place_plans, care]


def _pool(request: Request) -> Any:
    return request.app.state.pool


def _settings(request: Request) -> ScreeningSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def _target(
    request: Request, principal: Principal, target_id: str, in_url: bool = False
) -> Target:
    async with _pool(request).acquire() as conn:
        target = (await handlers.resolve_targets(conn, [target_id])).get(target_id)
        if target is None:
            if in_url:
                raise Problem(404, f"{target_id} is no known subject or place")
            raise invalid(
                "body.target_id", str(handlers.unknown_target(target_id)), "unknown-target"
            )
        await check_scope(principal, target.node_id, covers(conn))
    return target


@care_tasks.post(
    "",
    status_code=201,
    response_model=TaskOut,
    summary="Record a care task done for a subject or a public place",
)
async def complete_task(
    body: TaskCreate, request: Request, response: Response, principal: Carer
) -> TaskOut:
    target = await _target(request, principal, body.target_id)
    ctx = command_context(request, principal)
    task_id = new_id("care-task", body.id, ctx)
    cmd = domain.CompleteTask(
        task_id, body.target_id, body.task, body.occurred_at or utc_now(), principal.sub, body.notes
    )
    await guarded(handlers.complete_task(_pool(request), cmd, target, _settings(request), ctx))
    async with _pool(request).acquire() as conn:
        row = await handlers.get_task(conn, task_id)
    assert row is not None
    response.headers["Location"] = f"/v1/care/{body.target_id}"
    return TaskOut(id=row.pop("task_id"), **row)


@care_tasks.post(
    ":batch",
    response_model=BatchOut,
    summary="Upload up to 5000 care tasks (offline field apps); a result per item",
)
async def complete_task_batch(body: TaskBatch, request: Request, principal: Carer) -> Response:
    results: list[ItemResult] = []
    inputs: list[TaskInput] = []
    for index, raw in enumerate(body.items):
        try:
            item = TaskItem.model_validate(raw)
        except ValidationError as exc:
            results.append(
                item_errors(index, raw.get("id") if isinstance(raw, dict) else None, exc)
            )
            continue
        inputs.append(
            TaskInput(index, item.id, item.target_id, item.task, item.occurred_at, item.notes)
        )
    scope = None if principal.everywhere else principal.scope

    async def record(ctx: CommandContext) -> Response:
        outcomes = await handlers.complete_task_batch(
            _pool(request), inputs, _settings(request), scope, ctx
        )
        return json_answer(batch_out(len(body.items), results + [result_of(o) for o in outcomes]))

    return await answer_once(request, principal, record)


@place_plans.post(
    "",
    status_code=201,
    response_model=PlacePlanOut,
    summary="Set a public place's daily disinfection (or garbage) plan",
)
async def set_place_plan(
    body: PlacePlanCreate, request: Request, response: Response, principal: Carer
) -> PlacePlanOut:
    async with _pool(request).acquire() as conn:
        if not await conn.fetchval(
            "SELECT true FROM places WHERE id = $1 AND NOT retired", body.node_id
        ):
            raise invalid("body.node_id", f"place {body.node_id} does not exist", "unknown-node")
        await check_scope(principal, body.node_id, covers(conn))
        if body.party_id is not None and not await conn.fetchval(
            "SELECT true FROM parties WHERE id = $1", body.party_id
        ):
            raise invalid("body.party_id", f"party {body.party_id} does not exist", "unknown-party")
    windows = _windows(body, _settings(request))
    cmd = domain.SetPlacePlan(
        body.node_id, body.task, windows, body.party_id, body.effective_from or utc_now()
    )
    await guarded(handlers.set_place_plan(_pool(request), cmd, command_context(request, principal)))
    async with _pool(request).acquire() as conn:
        plans = {p["task"]: p for p in await handlers.get_place_plans(conn, body.node_id)}
    plan = plans.get(body.task)
    if plan is None:  # ending a plan that never was: nothing recorded
        raise Problem(404, f"no {body.task} plan for {body.node_id}")
    response.headers["ETag"] = etag(plan["version"])
    return PlacePlanOut(**plan)


def _windows(body: PlacePlanCreate, settings: ScreeningSettings) -> tuple[slot_math.Slot, ...]:
    if body.windows is not None:
        try:
            windows = slot_math.parse_slots(body.windows)
        except ValueError as exc:
            raise invalid("body.windows", str(exc)) from exc
        if len(windows) != body.times_per_day:
            raise invalid("body.windows", "give one window per time of the day")
        return windows
    return slot_math.split_day(slot_math.parse_slot(settings.place_care_day), body.times_per_day)


@care.get(
    "/{target_id}",
    response_model=CareOut,
    summary="A subject's or a place's care plan, tasks done and windows missed, newest first",
)
async def get_care(
    target_id: str,
    request: Request,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> CareOut:
    target = await _target(request, principal, target_id, in_url=True)
    settings = _settings(request)
    async with _pool(request).acquire() as conn:
        found = await handlers.care_of(conn, target_id, limit)
        if target.kind == "place":
            plan = {
                p["task"]: list(p["slots"])
                for p in await handlers.get_place_plans(conn, target_id)
                if p["slots"]
            }
        else:
            row = await watch_handlers.get_watch(conn, target_id)
            live = row is not None and row["status"] in ("under_observation", "quarantined")
            kind_plan = settings.parsed_care_plans.get(row["kind"], {}) if live and row else {}
            plan = {task: [w.label for w in windows] for task, windows in kind_plan.items()}
    return CareOut(
        target_id=target_id,
        target_kind=target.kind,
        plan=plan,
        done=found["done"],
        missed=found["missed"],
    )
