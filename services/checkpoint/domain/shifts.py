"""Duty shifts (值守) at a checkpoint and the day's coverage. Pure decide/evolve.

A gate is staffed around the clock by a team (seed 003: 派出所民警、社区干部、物业保安、
社区卫生服务中心人员 — police, community cadre, property guard, health worker). A shift names
who (token `sub`, optionally the registry party), in which role, from when to when. One
person holds one shift at a time. A day's coverage shows the hours nobody holds, the roles
nobody holds at all, and for each required role the hours it is missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.checkpoint.domain.checkpoints import CLIENT_ID
from shared.contracts import EventPayload
from shared.contracts.checkpoint import DutyRole, DutyShiftCancelled, DutyShiftScheduled
from shared.errors import DomainError, Refusal

SHIFT_STREAM = "duty_shift"
TEAM: tuple[DutyRole, ...] = ("police", "community_cadre", "property_guard", "health_worker")


def shift_stream(shift_id: str) -> str:
    return f"shift:{shift_id}"


@dataclass(frozen=True)
class Shift:
    id: str
    checkpoint_id: str
    sub: str
    party_id: str | None
    role: DutyRole
    starts_at: datetime
    ends_at: datetime
    cancelled: bool
    version: int


@dataclass(frozen=True)
class ScheduleShift:
    shift_id: str
    checkpoint_id: str
    sub: str
    party_id: str | None
    role: DutyRole
    starts_at: datetime
    ends_at: datetime
    checkpoint_open: bool
    overlapping: str | None  # a shift of the same person that overlaps this one
    max_hours: int


def decide_schedule(state: Shift | None, cmd: ScheduleShift) -> list[EventPayload]:
    sub = cmd.sub.strip()
    if state is not None:
        same = (state.checkpoint_id, state.sub, state.role, state.starts_at, state.ends_at) == (
            cmd.checkpoint_id,
            sub,
            cmd.role,
            cmd.starts_at,
            cmd.ends_at,
        )
        if same:
            return []
        raise DomainError(
            "shift-exists",
            f"shift {cmd.shift_id} already exists with other values",
            refusal=Refusal.CONFLICT,
            field="id",
        )
    if not CLIENT_ID.match(cmd.shift_id):
        raise DomainError(
            "invalid-id", "id must be 1-100 letters, digits, dashes or underscores", field="id"
        )
    if not sub:
        raise DomainError("sub-empty", "name who is on duty (token sub)", field="sub")
    if cmd.ends_at <= cmd.starts_at:
        raise DomainError("invalid-period", "a shift ends after it starts", field="ends_at")
    if cmd.ends_at - cmd.starts_at > timedelta(hours=cmd.max_hours):
        raise DomainError(
            "shift-too-long", f"a shift lasts at most {cmd.max_hours} hours", field="ends_at"
        )
    if not cmd.checkpoint_open:
        raise DomainError(
            "checkpoint-closed",
            f"checkpoint {cmd.checkpoint_id} is closed",
            refusal=Refusal.CONFLICT,
        )
    if cmd.overlapping is not None:
        raise DomainError(
            "shift-overlap",
            f"{sub} already holds shift {cmd.overlapping} at that time",
            refusal=Refusal.CONFLICT,
            field="starts_at",
        )
    return [
        DutyShiftScheduled(
            shift_id=cmd.shift_id,
            checkpoint_id=cmd.checkpoint_id,
            sub=sub,
            party_id=cmd.party_id,
            role=cmd.role,
            starts_at=cmd.starts_at,
            ends_at=cmd.ends_at,
        )
    ]


def decide_cancel(state: Shift | None, checkpoint_id: str, reason: str) -> list[EventPayload]:
    if state is None or state.checkpoint_id != checkpoint_id:
        raise DomainError("unknown-shift", "shift does not exist", refusal=Refusal.NOT_FOUND)
    if state.cancelled:
        return []
    if not reason.strip():
        raise DomainError("reason-empty", "a reason is required", field="reason")
    return [DutyShiftCancelled(shift_id=state.id, checkpoint_id=state.checkpoint_id, reason=reason)]


def evolve(state: Shift | None, event: EventPayload, version: int) -> Shift | None:
    if isinstance(event, DutyShiftScheduled):
        return Shift(
            event.shift_id,
            event.checkpoint_id,
            event.sub,
            event.party_id,
            event.role,
            event.starts_at,
            event.ends_at,
            False,
            version,
        )
    if state is None:
        return None
    if isinstance(event, DutyShiftCancelled):
        return replace(state, cancelled=True, version=version)
    return replace(state, version=version)


def on_duty(shifts: Iterable[Shift], sub: str, checkpoint_id: str, moment: datetime) -> bool:
    """Whether `sub` holds a shift at the checkpoint at `moment` (start inclusive, end not)."""
    return any(
        s.sub == sub
        and s.checkpoint_id == checkpoint_id
        and not s.cancelled
        and s.starts_at <= moment < s.ends_at
        for s in shifts
    )


# -- coverage of a day ------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime


def uncovered(window: Interval, spans: Iterable[Interval]) -> list[Interval]:
    """The parts of `window` no span covers, in order."""
    gaps: list[Interval] = []
    cursor = window.start
    for span in sorted(spans, key=lambda s: s.start):
        if span.end <= cursor or span.start >= window.end:
            continue
        if span.start > cursor:
            gaps.append(Interval(cursor, span.start))
        cursor = max(cursor, span.end)
        if cursor >= window.end:
            break
    if cursor < window.end:
        gaps.append(Interval(cursor, window.end))
    return gaps


@dataclass(frozen=True)
class Coverage:
    gaps: list[Interval]  # nobody on duty
    missing_roles: list[DutyRole]  # required roles nobody holds at any time of the window
    role_gaps: dict[DutyRole, list[Interval]]  # per required role, when it is not held

    @property
    def complete(self) -> bool:
        return not self.gaps and not any(self.role_gaps.values())


def coverage(shifts: Sequence[Shift], window: Interval, required: Sequence[DutyRole]) -> Coverage:
    """A day's staffing: cancelled shifts do not count."""
    live = [s for s in shifts if not s.cancelled]
    spans = [Interval(s.starts_at, s.ends_at) for s in live]
    role_gaps = {
        role: uncovered(window, [Interval(s.starts_at, s.ends_at) for s in live if s.role == role])
        for role in required
    }
    missing = [role for role, gaps in role_gaps.items() if gaps == [window]]
    return Coverage(uncovered(window, spans), missing, role_gaps)
