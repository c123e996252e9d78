"""Care tasks (五个每日, 代购, 心理疏导) for subjects and public places, and place care plans.

A subject's tasks go on its watch stream (`watch:<subject>`), a place's on
`placecare:<node>`; both are projected by `handlers.watch.project_watch`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from services.screening.config import ScreeningSettings
from services.screening.domain import care as domain
from services.screening.domain import watch as watch_domain
from services.screening.domain.care import CompleteTask, PlaceCare, SetPlacePlan
from services.screening.handlers.watch import (
    RETRIES,
    WATCH,
    ChunkItem,
    ItemOutcome,
    change_watch,
    commit_chunk,
    covered_nodes,
    is_hmac_subject,
    project_watch,
)
from shared.commands import Aggregate, Outcome, execute
from shared.contracts import EventPayload
from shared.envelope import utc_now
from shared.errors import DomainError, Refusal
from shared.eventstore import CommandContext, ConcurrencyError

PLACE: Aggregate[PlaceCare] = Aggregate(
    domain.PLACE_STREAM, domain.PLACE_EMPTY, domain.evolve_place
)
AGGREGATES: dict[str, Aggregate[Any]] = {watch_domain.STREAM: WATCH, domain.PLACE_STREAM: PLACE}


@dataclass(frozen=True)
class Target:
    """Whom or what a care task is for, and where its jurisdiction is checked."""

    kind: Literal["subject", "place"]
    target_id: str
    node_id: str

    @property
    def stream_id(self) -> str:
        if self.kind == "subject":
            return watch_domain.stream_id(self.target_id)
        return domain.place_stream_id(self.target_id)


async def resolve_targets(conn: Any, target_ids: list[str]) -> dict[str, Target]:
    """Registered persons (not voided) first, then h: subjects under watch, then places."""
    rows = await conn.fetch(
        """
        SELECT id AS target_id, 'subject' AS kind, household_id AS node_id, 1 AS rank
        FROM persons WHERE id = ANY($1::text[]) AND NOT voided
        UNION ALL
        SELECT subject_id, 'subject', node_id, 2 FROM watch_subjects
        WHERE subject_id = ANY($1::text[]) AND subject_id LIKE 'h:%' AND node_id IS NOT NULL
        UNION ALL
        SELECT id, 'place', id, 3 FROM places WHERE id = ANY($1::text[]) AND NOT retired
        ORDER BY rank DESC
        """,
        target_ids,
    )
    return {r["target_id"]: Target(r["kind"], r["target_id"], r["node_id"]) for r in rows}


def unknown_target(target_id: str) -> DomainError:
    what = "subject under watch" if is_hmac_subject(target_id) else "person or place"
    return DomainError("unknown-target", f"{target_id} is no known {what}", field="target_id")


async def _task_id_free(conn: Any, task_id: str, target_id: str) -> None:
    holder = await conn.fetchval("SELECT target_id FROM care_tasks WHERE task_id = $1", task_id)
    if holder is not None and holder != target_id:
        raise DomainError(
            "task-id-taken",
            f"care task {task_id} belongs to another target",
            refusal=Refusal.CONFLICT,
            field="id",
        )


def _decide(
    target: Target, cmd: CompleteTask, settings: ScreeningSettings, now: datetime
) -> Callable[[Any], list[EventPayload]]:
    plans = settings.parsed_care_plans
    if target.kind == "subject":
        return lambda s: domain.decide_subject_task(s, cmd, plans, settings.zone, now)
    return lambda s: domain.decide_place_task(s, cmd, settings.zone, now)


async def complete_task(
    pool: Any,
    cmd: CompleteTask,
    target: Target,
    settings: ScreeningSettings,
    ctx: CommandContext,
) -> Outcome[Any]:
    async def prepare(conn: Any) -> Callable[[Any], list[EventPayload]]:
        await _task_id_free(conn, cmd.task_id, cmd.target_id)
        return _decide(target, cmd, settings, utc_now())

    if target.kind == "subject":
        return await change_watch(
            pool,
            target.target_id,
            ctx,
            occurred_at=cmd.occurred_at,
            node_id=target.node_id,
            prepare=prepare,
        )
    return await _change_place(
        pool, target.target_id, ctx, occurred_at=cmd.occurred_at, prepare=prepare
    )


async def _change_place(
    pool: Any,
    node_id: str,
    ctx: CommandContext,
    *,
    occurred_at: datetime,
    prepare: Any = None,
    decide: Any = None,
) -> Outcome[PlaceCare]:
    for attempt in range(1, RETRIES + 1):
        try:
            return await execute(
                pool,
                PLACE,
                domain.place_stream_id(node_id),
                decide=decide,
                prepare=prepare,
                ctx=ctx,
                occurred_at=occurred_at,
                node_id=node_id,
                project=project_watch,
            )
        except ConcurrencyError:
            if attempt == RETRIES:
                raise
    raise AssertionError("unreachable")


async def get_task(conn: Any, task_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT task_id, target_id, target_kind, task, slot_day, slot, occurred_at, done_by,"
        " notes, late FROM care_tasks WHERE task_id = $1",
        task_id,
    )
    return dict(row) if row else None


# -- batches ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskInput:
    index: int
    task_id: str
    target_id: str
    task: Any
    occurred_at: datetime
    notes: str | None


async def complete_task_batch(
    pool: Any,
    inputs: list[TaskInput],
    settings: ScreeningSettings,
    scope: tuple[str, ...] | None,
    ctx: CommandContext,
) -> list[ItemOutcome]:
    outcomes: list[ItemOutcome] = []
    async with pool.acquire() as conn:
        targets = await resolve_targets(conn, sorted({i.target_id for i in inputs}))
        inside = await covered_nodes(conn, sorted({t.node_id for t in targets.values()}), scope)
    items: list[ChunkItem] = []
    for i in inputs:
        target = targets.get(i.target_id)
        if target is None:
            outcomes.append(ItemOutcome.refused(i.index, i.task_id, unknown_target(i.target_id)))
        elif target.node_id not in inside:
            outcome = ItemOutcome.forbidden(i.index, i.task_id, target.node_id)
            outcome.field = "target_id"
            outcomes.append(outcome)
        else:
            cmd = CompleteTask(
                i.task_id, i.target_id, i.task, i.occurred_at, ctx.actor or "", i.notes
            )
            items.append(
                ChunkItem(i.index, i.task_id, target.stream_id, i.occurred_at, target.node_id, cmd)
            )
    now = utc_now()
    plans, zone = settings.parsed_care_plans, settings.zone

    def decide(state: Any, item: ChunkItem) -> list[EventPayload]:
        if item.stream_id.startswith(f"{domain.PLACE_STREAM}:"):
            return domain.decide_place_task(state, item.command, zone, now)
        return domain.decide_subject_task(state, item.command, plans, zone, now)

    size = settings.watch_batch_chunk
    for start in range(0, len(items), size):
        outcomes.extend(
            await commit_chunk(
                pool, items[start : start + size], AGGREGATES, decide, _describe, ctx, _check
            )
        )
    return sorted(outcomes, key=lambda o: o.index)


def _describe(state: Any, item: ChunkItem, payloads: list[EventPayload]) -> ItemOutcome:
    _, day, slot = state.tasks[item.item_id]
    late = payloads[0].late if payloads else None  # type: ignore[attr-defined]
    return ItemOutcome(
        item.index,
        item.item_id,
        "created" if payloads else "unchanged",
        slot_day=day,
        slot=slot,
        late=late,
    )


async def _check(conn: Any, items: list[ChunkItem]) -> dict[int, DomainError]:
    rows = await conn.fetch(
        "SELECT task_id, target_id FROM care_tasks WHERE task_id = ANY($1::text[])",
        [i.item_id for i in items],
    )
    holders = {r["task_id"]: r["target_id"] for r in rows}
    refused: dict[int, DomainError] = {}
    for i in items:
        if holders.setdefault(i.item_id, i.command.target_id) != i.command.target_id:
            refused[i.index] = DomainError(
                "task-id-taken",
                f"care task {i.item_id} belongs to another target",
                refusal=Refusal.CONFLICT,
                field="id",
            )
    return refused


# -- place plans -----------------------------------------------------------------------------


async def set_place_plan(pool: Any, cmd: SetPlacePlan, ctx: CommandContext) -> Outcome[PlaceCare]:
    return await _change_place(
        pool,
        cmd.node_id,
        ctx,
        occurred_at=cmd.effective_from,
        decide=lambda s: domain.decide_place_plan(s, cmd),
    )


async def get_place_plans(conn: Any, node_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT node_id, task, times_per_day, slots, party_id, effective_from, version"
        " FROM place_care_plans WHERE node_id = $1 ORDER BY task",
        node_id,
    )
    return [dict(r) for r in rows]


async def care_of(conn: Any, target_id: str, limit: int) -> dict[str, list[dict[str, Any]]]:
    done = await conn.fetch(
        "SELECT task_id, task, slot_day, slot, occurred_at, done_by, notes, late"
        " FROM care_tasks WHERE target_id = $1"
        " ORDER BY slot_day DESC, occurred_at DESC LIMIT $2",
        target_id,
        limit,
    )
    missed = await conn.fetch(
        "SELECT task, slot_day, slot, party_id, closed_at FROM care_misses"
        " WHERE target_id = $1 ORDER BY slot_day DESC, slot DESC, task LIMIT $2",
        target_id,
        limit,
    )
    return {"done": [dict(r) for r in done], "missed": [dict(r) for r in missed]}
