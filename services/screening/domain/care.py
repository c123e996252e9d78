"""Care tasks, the "five dailies" (五个每日) and public-place disinfection. Pure.

* A **care plan** per kind of watch (observation, home, home_medical, centralized) lists the
  tasks due every day and their windows: e.g. home: a call, supplies, garbage once, and
  disinfection three times. The twice-daily temperature is not in it: it is the follow-up
  slots of the watch itself. A planned task is due from the quarantine's carer in each
  window that lies wholly inside a segment of that kind; a window that closes undone is a
  `CareTaskMissed`, detected by the scheduler once.
* Tasks done for a subject go on the subject's watch stream (`watch:<subject>`), beside the
  follow-ups; a task with no plan at that moment (代购 shopping, 心理疏导 counselling for the
  vulnerable, or a call to someone not under watch) is recorded against the whole day
  (`00:00-24:00`) and is never missed.
* A **public place** (a node: stairwell, lift, garbage point, market) gets its own plan by
  command, stream `placecare:<node>`: a task `times_per_day` times in windows that split the
  configured day evenly, or in windows given explicitly.

Slot attribution is the follow-ups' rule (`slots.slot_of`): a task done before the first
window of the day opens is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from typing import get_args

from services.screening.domain import slots as slot_math
from services.screening.domain.slots import Period, Slot, SlotRef
from services.screening.domain.watch import (
    CareKey,
    Miss,
    Watch,
    WatchKind,
    check_not_future,
)
from shared.contracts import EventPayload
from shared.contracts.screening import (
    CareTaskCompleted,
    CareTaskMissed,
    PlaceCarePlanned,
    TaskKind,
)
from shared.errors import DomainError, Refusal

PLACE_STREAM = "placecare"
PLANNABLE: tuple[TaskKind, ...] = ("call", "supplies", "garbage", "disinfection")
WATCH_KINDS: tuple[WatchKind, ...] = get_args(WatchKind)
WHOLE_DAY = slot_math.parse_slot(slot_math.WHOLE_DAY)

CarePlan = Mapping[TaskKind, tuple[Slot, ...]]
CarePlans = Mapping[WatchKind, CarePlan]

DEFAULT_CARE_PLANS: dict[str, dict[str, list[str]]] = {
    "observation": {"call": ["08:00-20:00"]},
    "home": {
        "call": ["08:00-20:00"],
        "supplies": ["09:00-18:00"],
        "garbage": ["17:00-21:00"],
        "disinfection": ["07:00-09:00", "12:00-14:00", "18:00-20:00"],
    },
    "home_medical": {
        "call": ["08:00-20:00"],
        "supplies": ["09:00-18:00"],
        "garbage": ["17:00-21:00"],
        "disinfection": ["07:00-09:00", "12:00-14:00", "18:00-20:00"],
    },
    "centralized": {"call": ["08:00-20:00"]},
}


def place_stream_id(node_id: str) -> str:
    return f"{PLACE_STREAM}:{node_id}"


def parse_plans(raw: Mapping[str, Mapping[str, Sequence[str]]]) -> dict[WatchKind, CarePlan]:
    """Validate a configured plan: known kinds and plannable tasks, well-formed windows."""
    plans: dict[WatchKind, CarePlan] = {}
    for kind, tasks in raw.items():
        if kind not in WATCH_KINDS:
            raise ValueError(f"care plan for unknown watch kind {kind!r}; one of {WATCH_KINDS}")
        plan: dict[TaskKind, tuple[Slot, ...]] = {}
        for task, windows in tasks.items():
            if task not in PLANNABLE:
                raise ValueError(f"task {task!r} cannot be planned; one of {PLANNABLE}")
            plan[task] = slot_math.parse_slots(windows)
        plans[kind] = plan
    return plans


@dataclass(frozen=True)
class CompleteTask:
    task_id: str
    target_id: str
    task: TaskKind
    occurred_at: datetime
    done_by: str
    notes: str | None = None


def _attribute(windows: tuple[Slot, ...] | None, at: datetime, zone: tzinfo) -> SlotRef:
    if not windows:
        return SlotRef(slot_math.local_day(at, zone), WHOLE_DAY)
    ref = slot_math.slot_of(at, windows, zone)
    if ref is None:
        raise DomainError(
            "before-first-slot",
            "occurred_at is before the day's first window for this task opens",
            field="occurred_at",
        )
    return ref


def _same_again(prior: CareKey | None, cmd: CompleteTask, ref: SlotRef) -> bool:
    """A retried upload of a task already recorded (or a conflicting reuse of its id)."""
    if prior is None:
        return False
    if prior == (cmd.task, ref.day, ref.label):
        return True
    raise DomainError(
        "task-exists",
        f"care task {cmd.task_id} was recorded with other values",
        refusal=Refusal.CONFLICT,
        field="id",
    )


def _completed(cmd: CompleteTask, ref: SlotRef, late: bool) -> CareTaskCompleted:
    return CareTaskCompleted(
        task_id=cmd.task_id,
        target_id=cmd.target_id,
        task=cmd.task,
        slot_day=ref.day,
        slot=ref.label,
        done_by=cmd.done_by,
        notes=cmd.notes,
        late=late,
    )


# -- tasks for a subject (on the watch stream) -----------------------------------------------


def subject_windows(
    state: Watch, task: TaskKind, at: datetime, plans: CarePlans
) -> tuple[Slot, ...] | None:
    kind = state.kind_at(at)
    return plans.get(kind, {}).get(task) if kind is not None else None


def decide_subject_task(
    state: Watch, cmd: CompleteTask, plans: CarePlans, zone: tzinfo, now: datetime
) -> list[EventPayload]:
    check_not_future(cmd.occurred_at, now)
    ref = _attribute(
        subject_windows(state, cmd.task, cmd.occurred_at, plans), cmd.occurred_at, zone
    )
    if _same_again(state.tasks.get(cmd.task_id), cmd, ref):
        return []
    late = (cmd.task, ref.day, ref.label) in state.care_missed
    return [_completed(cmd, ref, late)]


def subject_care_due(
    state: Watch, plans: CarePlans, zone: tzinfo, after: datetime, until: datetime
) -> list[tuple[TaskKind, SlotRef]]:
    """Planned task windows that closed in `(after, until]` inside a segment of their plan's
    kind, with the task neither done nor missed."""
    due: set[tuple[TaskKind, SlotRef]] = set()
    for segment in state.segments:
        if segment.end is not None and segment.end <= after:
            continue
        span = [Period(segment.start, segment.end)]
        for task, windows in plans.get(segment.kind, {}).items():
            for ref in slot_math.closed_between(after, until, windows, zone):
                key = (task, ref.day, ref.label)
                if (
                    slot_math.due_in(span, ref, zone)
                    and key not in state.care_done
                    and key not in state.care_missed
                ):
                    due.add((task, ref))
    return sorted(due, key=lambda d: (d[1].closes_at(zone), d[0]))


def subject_care_missed(
    state: Watch, plans: CarePlans, zone: tzinfo, after: datetime, until: datetime
) -> list[Miss]:
    """The misses of the planned tasks due in `(after, until]`, owed by the carer."""
    return [
        Miss(
            ref.closes_at(zone),
            CareTaskMissed(
                target_id=state.subject_id,
                task=task,
                slot_day=ref.day,
                slot=ref.label,
                party_id=state.carer_party_id,
            ),
            state.opened_by_at(ref.opens_at(zone)),
        )
        for task, ref in subject_care_due(state, plans, zone, after, until)
    ]


# -- public places ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlacePlan:
    task: TaskKind
    slots: tuple[Slot, ...]
    since: datetime
    party_id: str | None
    until: datetime | None = None
    opened_by: int = 0  # the version of the event that planned it

    def in_force(self, opens: datetime, closes: datetime) -> bool:
        return self.since <= opens and (self.until is None or closes <= self.until)


@dataclass(frozen=True)
class PlaceCare:
    node_id: str = ""
    plans: tuple[PlacePlan, ...] = ()
    tasks: Mapping[str, CareKey] = field(default_factory=dict)
    done: frozenset[CareKey] = frozenset()
    missed: frozenset[CareKey] = frozenset()
    version: int = 0

    def current(self, task: TaskKind) -> PlacePlan | None:
        for p in reversed(self.plans):
            if p.task == task:
                return p if p.until is None else None
        return None

    def plan_at(self, task: TaskKind, at: datetime) -> PlacePlan | None:
        for p in reversed(self.plans):
            if p.task == task and p.since <= at and (p.until is None or at < p.until):
                return p
        return None


PLACE_EMPTY = PlaceCare()


@dataclass(frozen=True)
class SetPlacePlan:
    node_id: str
    task: TaskKind
    slots: tuple[Slot, ...]
    party_id: str | None
    effective_from: datetime


def decide_place_plan(state: PlaceCare, cmd: SetPlacePlan) -> list[EventPayload]:
    if cmd.task not in ("disinfection", "garbage"):
        raise DomainError(
            "not-a-place-task", "a place plan is for disinfection or garbage", field="task"
        )
    current = state.current(cmd.task)
    if current is not None and (current.slots, current.party_id) == (cmd.slots, cmd.party_id):
        return []  # the same plan again
    if current is None and not cmd.slots:
        return []  # ending a plan that is not in force
    if current is not None and cmd.effective_from < current.since:
        raise DomainError(
            "before-current-plan",
            "a new plan cannot take effect before the current one did",
            field="effective_from",
        )
    return [
        PlaceCarePlanned(
            node_id=cmd.node_id,
            task=cmd.task,
            times_per_day=len(cmd.slots),
            slots=[s.label for s in cmd.slots],
            party_id=cmd.party_id,
            effective_from=cmd.effective_from,
        )
    ]


def decide_place_task(
    state: PlaceCare, cmd: CompleteTask, zone: tzinfo, now: datetime
) -> list[EventPayload]:
    check_not_future(cmd.occurred_at, now)
    plan = state.plan_at(cmd.task, cmd.occurred_at)
    ref = _attribute(plan.slots if plan else None, cmd.occurred_at, zone)
    if _same_again(state.tasks.get(cmd.task_id), cmd, ref):
        return []
    return [_completed(cmd, ref, (cmd.task, ref.day, ref.label) in state.missed)]


def place_care_due(
    state: PlaceCare, zone: tzinfo, after: datetime, until: datetime
) -> list[tuple[TaskKind, SlotRef]]:
    due: set[tuple[TaskKind, SlotRef]] = set()
    for plan in state.plans:
        if plan.until is not None and plan.until <= after:
            continue
        for ref in slot_math.closed_between(after, until, plan.slots, zone):
            key = (plan.task, ref.day, ref.label)
            if (
                plan.in_force(ref.opens_at(zone), ref.closes_at(zone))
                and key not in state.done
                and key not in state.missed
            ):
                due.add((plan.task, ref))
    return sorted(due, key=lambda d: (d[1].closes_at(zone), d[0]))


def place_care_missed(
    state: PlaceCare, zone: tzinfo, after: datetime, until: datetime
) -> list[Miss]:
    """The misses of a place's tasks due in `(after, until]`, owed by the plan's party."""
    misses: list[Miss] = []
    for task, ref in place_care_due(state, zone, after, until):
        plan = state.plan_at(task, ref.opens_at(zone))
        misses.append(
            Miss(
                ref.closes_at(zone),
                CareTaskMissed(
                    target_id=state.node_id,
                    task=task,
                    slot_day=ref.day,
                    slot=ref.label,
                    party_id=plan.party_id if plan else None,
                ),
                plan.opened_by if plan else 0,
            )
        )
    return misses


def evolve_place(state: PlaceCare, event: EventPayload, version: int) -> PlaceCare:
    match event:
        case PlaceCarePlanned():
            plans = tuple(
                replace(p, until=event.effective_from)
                if p.task == event.task and p.until is None
                else p
                for p in state.plans
            )
            new = PlacePlan(
                event.task,
                slot_math.parse_slots(event.slots),
                event.effective_from,
                event.party_id,
                opened_by=version,
            )
            return replace(
                state,
                node_id=event.node_id,
                plans=(*plans, new) if new.slots else plans,
                version=version,
            )
        case CareTaskCompleted():
            key = (event.task, event.slot_day, event.slot)
            return replace(
                state,
                node_id=state.node_id or event.target_id,
                tasks={**state.tasks, event.task_id: key},
                done=state.done | {key},
                version=version,
            )
        case CareTaskMissed():
            key = (event.task, event.slot_day, event.slot)
            return replace(state, missed=state.missed | {key}, version=version)
    return replace(state, version=version)
