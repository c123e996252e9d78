"""Watch and quarantine (居家观察 / 隔离) of one subject, with its follow-up readings. Pure.

One stream per subject, `watch:<subject>`, holds the transitions, the temperature readings
and the misses the scheduler detects, so that a reading and a miss for the same slot can
never both win: they race on the stream's version.

States and transitions (anything else is refused with 409 and the current state):

    none ─┬─ observe ──> under_observation ─┬─ order quarantine ─┐
          └─ order quarantine ──────────────┼───────────────────┴─> quarantined(type)
                                            ├─ release ─> released
                                            └─ transfer(hospital) ─> transferred
    quarantined ─┬─ extend (later planned end) ─> quarantined
                 ├─ transfer(centralized) ─> quarantined(centralized, new site)
                 ├─ transfer(hospital) ─> transferred
                 └─ release ─> released
    released | transferred ─> a new episode may start (observe or order quarantine)

`flagged` (a key person) lives on the key-person stream; a watch does not need it first.

The watch is a list of *segments* (observation, or a quarantine of a type) in time; the
merged segments are the periods in which follow-up slots are due (see `slots.due_in`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, Literal

from services.screening.domain import slots as slot_math
from services.screening.domain.slots import Period, Slot, SlotRef
from shared.contracts import EventPayload
from shared.contracts.screening import (
    CareTaskCompleted,
    CareTaskMissed,
    FollowUpMissed,
    ObservationStarted,
    QuarantineExtended,
    QuarantineOrdered,
    QuarantineReleased,
    QuarantineTransferred,
    QuarantineType,
    TaskKind,
    TemperatureRecorded,
)
from shared.errors import DomainError, Refusal

STREAM = "watch"
Status = Literal["none", "under_observation", "quarantined", "released", "transferred"]
WatchKind = Literal["observation", "home", "home_medical", "centralized"]
SlotKey = tuple[date, str]
CareKey = tuple[str, date, str]

MIN_CELSIUS = 30.0
MAX_CELSIUS = 45.0
CLOCK_SKEW = timedelta(minutes=5)


def stream_id(subject_id: str) -> str:
    return f"{STREAM}:{subject_id}"


class IllegalTransition(DomainError):
    """A command the current state does not allow (409, naming the state)."""

    def __init__(self, code: str, message: str, current_state: str) -> None:
        super().__init__(code, message, refusal=Refusal.CONFLICT)
        self.current_state = current_state


@dataclass(frozen=True)
class Segment:
    kind: WatchKind
    start: datetime
    end: datetime | None = None
    opened_by: int = 0  # the version of the event that began it


@dataclass(frozen=True)
class Reading:
    celsius: float
    slot: SlotKey
    late: bool = False


@dataclass(frozen=True)
class Watch:
    subject_id: str = ""
    status: Status = "none"
    node_id: str | None = None
    quarantine_id: str | None = None
    quarantine_type: QuarantineType | None = None
    place: str | None = None
    planned_end: date | None = None
    carer_party_id: str | None = None
    segments: tuple[Segment, ...] = ()
    orders: Mapping[str, QuarantineType] = field(default_factory=dict)  # id -> type ordered
    readings: Mapping[str, Reading] = field(default_factory=dict)
    read_slots: frozenset[SlotKey] = frozenset()
    missed: frozenset[SlotKey] = frozenset()
    tasks: Mapping[str, CareKey] = field(default_factory=dict)
    care_done: frozenset[CareKey] = frozenset()
    care_missed: frozenset[CareKey] = frozenset()
    version: int = 0

    @property
    def open_segment(self) -> Segment | None:
        if self.segments and self.segments[-1].end is None:
            return self.segments[-1]
        return None

    @property
    def since(self) -> datetime | None:
        """Start of the current (or last) period."""
        periods = self.periods
        return periods[-1].start if periods else None

    @property
    def ended_at(self) -> datetime | None:
        periods = self.periods
        return periods[-1].end if periods else None

    @property
    def periods(self) -> list[Period]:
        return slot_math.merge(Period(s.start, s.end) for s in self.segments)

    def kind_at(self, at: datetime) -> WatchKind | None:
        """The kind of watch at a time; at a boundary, the segment that begins there."""
        for s in reversed(self.segments):
            if s.start <= at and (s.end is None or at <= s.end):
                return s.kind
        return None

    def opened_by_at(self, at: datetime) -> int:
        """The version of the event that began the segment in force at a time (0: none)."""
        for s in reversed(self.segments):
            if s.start <= at and (s.end is None or at <= s.end):
                return s.opened_by
        return 0

    def watched_at(self, at: datetime) -> bool:
        return any(p.contains(at) for p in self.periods)


EMPTY = Watch()


# -- transitions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Observe:
    subject_id: str
    node_id: str | None
    starts_at: datetime
    planned_end: date | None
    carer_party_id: str | None


def _check_new_episode(state: Watch, starts_at: datetime) -> None:
    last_end = state.ended_at
    if state.open_segment is None and last_end is not None and starts_at < last_end:
        raise DomainError(
            "overlaps-previous-watch",
            f"starts_at is before the previous watch ended ({last_end.isoformat()})",
            field="starts_at",
        )


def _check_planned_end(planned_end: date | None, starts_at: datetime, zone: tzinfo) -> None:
    if planned_end is not None and planned_end < slot_math.local_day(starts_at, zone):
        raise DomainError(
            "planned-end-before-start", "planned_end is before the start", field="planned_end"
        )


def decide_observe(state: Watch, cmd: Observe, zone: tzinfo) -> list[EventPayload]:
    if state.status == "under_observation":
        if (state.planned_end, state.carer_party_id) == (cmd.planned_end, cmd.carer_party_id):
            return []  # the same observation again: a retried upload
        raise IllegalTransition(
            "already-under-observation",
            f"{cmd.subject_id} is already under observation",
            state.status,
        )
    if state.status == "quarantined":
        raise IllegalTransition(
            "already-quarantined",
            f"{cmd.subject_id} is quarantined; an observation cannot start",
            state.status,
        )
    _check_new_episode(state, cmd.starts_at)
    _check_planned_end(cmd.planned_end, cmd.starts_at, zone)
    return [
        ObservationStarted(
            subject_id=cmd.subject_id,
            node_id=cmd.node_id,
            starts_at=cmd.starts_at,
            planned_end=cmd.planned_end,
            carer_party_id=cmd.carer_party_id,
        )
    ]


@dataclass(frozen=True)
class OrderQuarantine:
    quarantine_id: str
    subject_id: str
    node_id: str | None
    type: QuarantineType
    place: str | None
    starts_at: datetime
    planned_end: date
    carer_party_id: str | None


def decide_quarantine(state: Watch, cmd: OrderQuarantine, zone: tzinfo) -> list[EventPayload]:
    ordered = state.orders.get(cmd.quarantine_id)
    if ordered is not None:
        if ordered == cmd.type:
            return []  # a retry of the order that made this quarantine
        raise IllegalTransition(
            "quarantine-exists",
            f"quarantine {cmd.quarantine_id} was already ordered as {ordered}",
            state.status,
        )
    if state.status == "quarantined":
        raise IllegalTransition(
            "already-quarantined",
            f"{cmd.subject_id} is already in quarantine {state.quarantine_id}",
            state.status,
        )
    current = state.open_segment
    if current is not None and cmd.starts_at < current.start:
        raise DomainError(
            "starts-before-observation",
            "starts_at is before the observation it follows began",
            field="starts_at",
        )
    _check_new_episode(state, cmd.starts_at)
    _check_planned_end(cmd.planned_end, cmd.starts_at, zone)
    carer = cmd.carer_party_id
    if carer is None and state.status == "under_observation":
        carer = state.carer_party_id
    return [
        QuarantineOrdered(
            quarantine_id=cmd.quarantine_id,
            subject_id=cmd.subject_id,
            node_id=cmd.node_id,
            type=cmd.type,
            place=cmd.place,
            starts_at=cmd.starts_at,
            planned_end=cmd.planned_end,
            carer_party_id=carer,
        )
    ]


def _current_quarantine(state: Watch, quarantine_id: str, verb: str) -> None:
    if state.status != "quarantined" or state.quarantine_id != quarantine_id:
        raise IllegalTransition(
            "quarantine-not-active",
            f"quarantine {quarantine_id} is not in force; cannot {verb} it",
            state.status,
        )


def decide_extend(
    state: Watch, quarantine_id: str, planned_end: date, reason: str
) -> list[EventPayload]:
    _current_quarantine(state, quarantine_id, "extend")
    assert state.planned_end is not None
    if planned_end <= state.planned_end:
        raise DomainError(
            "not-later",
            f"the new planned end must be later than {state.planned_end.isoformat()}",
            field="planned_end",
        )
    return [
        QuarantineExtended(
            quarantine_id=quarantine_id,
            subject_id=state.subject_id,
            planned_end=planned_end,
            previous_end=state.planned_end,
            reason=reason,
        )
    ]


def _ends_at(state: Watch, at: datetime) -> datetime:
    """An end no earlier than the current segment's start (a quarantine not begun yet)."""
    current = state.open_segment
    return max(at, current.start) if current is not None else at


def decide_release(
    state: Watch, quarantine_id: str | None, reason: str, at: datetime
) -> list[EventPayload]:
    """Release from quarantine `quarantine_id`, or from observation when it is None."""
    if quarantine_id is None:
        if state.status != "under_observation":
            raise IllegalTransition(
                "not-under-observation",
                f"{state.subject_id or 'the subject'} is not under observation",
                state.status,
            )
    else:
        _current_quarantine(state, quarantine_id, "release")
    return [
        QuarantineReleased(
            quarantine_id=quarantine_id,
            subject_id=state.subject_id,
            released_at=_ends_at(state, at),
            reason=reason,
        )
    ]


def decide_transfer(
    state: Watch,
    quarantine_id: str | None,
    to: Literal["hospital", "centralized"],
    destination: str,
    at: datetime,
) -> list[EventPayload]:
    if quarantine_id is None:
        if state.status != "under_observation":
            raise IllegalTransition(
                "not-under-observation",
                f"{state.subject_id or 'the subject'} is not under observation",
                state.status,
            )
        if to != "hospital":
            raise DomainError(
                "order-a-quarantine",
                "from observation only a hospital transfer; order a centralized quarantine",
                field="to",
            )
    else:
        _current_quarantine(state, quarantine_id, "transfer")
        if (
            to == "centralized"
            and state.quarantine_type == "centralized"
            and (state.place == destination)
        ):
            raise DomainError(
                "same-site",
                f"already in centralized quarantine at {destination}",
                field="destination",
            )
    return [
        QuarantineTransferred(
            quarantine_id=quarantine_id,
            subject_id=state.subject_id,
            to=to,
            destination=destination,
            transferred_at=_ends_at(state, at),
        )
    ]


# -- follow-up readings ----------------------------------------------------------------------


@dataclass(frozen=True)
class RecordReading:
    reading_id: str
    subject_id: str
    celsius: float
    occurred_at: datetime
    recorded_by: str


def check_celsius(celsius: float) -> None:
    if not MIN_CELSIUS <= celsius <= MAX_CELSIUS:
        raise DomainError(
            "implausible-temperature",
            f"celsius must be {MIN_CELSIUS}-{MAX_CELSIUS}, got {celsius}",
            field="celsius",
        )


def check_not_future(occurred_at: datetime, now: datetime) -> None:
    if occurred_at > now + CLOCK_SKEW:
        raise DomainError("in-the-future", "occurred_at is in the future", field="occurred_at")


def decide_reading(
    state: Watch, cmd: RecordReading, slots: Sequence[Slot], zone: tzinfo, now: datetime
) -> list[EventPayload]:
    check_celsius(cmd.celsius)
    check_not_future(cmd.occurred_at, now)
    ref = slot_math.slot_of(cmd.occurred_at, slots, zone)
    prior = state.readings.get(cmd.reading_id)
    if prior is not None:
        if ref is not None and (prior.celsius, prior.slot) == (cmd.celsius, (ref.day, ref.label)):
            return []  # the same reading uploaded again
        raise DomainError(
            "reading-exists",
            f"reading {cmd.reading_id} was recorded with other values",
            refusal=Refusal.CONFLICT,
            field="id",
        )
    if not state.watched_at(cmd.occurred_at):
        raise IllegalTransition(
            "not-under-watch",
            f"{cmd.subject_id} was not under observation or quarantine at "
            f"{cmd.occurred_at.isoformat()}",
            state.status,
        )
    if ref is None:
        raise DomainError(
            "before-first-slot",
            "occurred_at is before the day's first follow-up slot opens",
            field="occurred_at",
        )
    return [
        TemperatureRecorded(
            reading_id=cmd.reading_id,
            subject_id=cmd.subject_id,
            celsius=cmd.celsius,
            slot_day=ref.day,
            slot=ref.label,
            late=(ref.day, ref.label) in state.missed,
            recorded_by=cmd.recorded_by,
        )
    ]


def follow_ups_due(
    state: Watch, slots: Sequence[Slot], zone: tzinfo, after: datetime, until: datetime
) -> list[SlotRef]:
    """Slots that closed in `(after, until]`, were due, and have neither reading nor miss."""
    periods = state.periods
    return [
        ref
        for ref in slot_math.closed_between(after, until, slots, zone)
        if slot_math.due_in(periods, ref, zone)
        and (ref.day, ref.label) not in state.read_slots
        and (ref.day, ref.label) not in state.missed
    ]


@dataclass(frozen=True)
class Miss:
    """A window that closed undone: the event saying so, dated when the window closed, and
    the version of the event that opened the window's watch or plan (what caused the miss)."""

    closed_at: datetime
    event: EventPayload
    opened_by: int = 0


def follow_ups_missed(
    state: Watch, slots: Sequence[Slot], zone: tzinfo, after: datetime, until: datetime
) -> list[Miss]:
    """The misses of the follow-ups due in `(after, until]`, decided on one fold: each slot's
    miss once, never one a reading filled."""
    return [
        Miss(
            ref.closes_at(zone),
            FollowUpMissed(subject_id=state.subject_id, slot_day=ref.day, slot=ref.label),
            state.opened_by_at(ref.opens_at(zone)),
        )
        for ref in follow_ups_due(state, slots, zone, after, until)
    ]


def first_misses(misses: Iterable[Miss], limit: int) -> list[Miss]:
    """The oldest misses, at most `limit` of them (see `slots.settle_count`): a stream far
    behind is caught up over several passes, so it cannot hold the others back."""
    ordered = sorted(misses, key=lambda m: m.closed_at)
    return ordered[: slot_math.settle_count([m.closed_at for m in ordered], limit)]


# -- the fold --------------------------------------------------------------------------------


def _closed(segments: tuple[Segment, ...], at: datetime) -> tuple[Segment, ...]:
    if segments and segments[-1].end is None:
        last = segments[-1]
        return (*segments[:-1], replace(last, end=max(at, last.start)))
    return segments


def evolve(state: Watch, event: EventPayload, version: int) -> Watch:
    match event:
        case ObservationStarted():
            return replace(
                state,
                subject_id=event.subject_id,
                status="under_observation",
                node_id=event.node_id or state.node_id,
                quarantine_id=None,
                quarantine_type=None,
                place=None,
                planned_end=event.planned_end,
                carer_party_id=event.carer_party_id,
                segments=(
                    *state.segments,
                    Segment("observation", event.starts_at, opened_by=version),
                ),
                version=version,
            )
        case QuarantineOrdered():
            return replace(
                state,
                subject_id=event.subject_id,
                status="quarantined",
                node_id=event.node_id or state.node_id,
                quarantine_id=event.quarantine_id,
                quarantine_type=event.type,
                place=event.place,
                planned_end=event.planned_end,
                carer_party_id=event.carer_party_id,
                segments=(
                    *_closed(state.segments, event.starts_at),
                    Segment(event.type, event.starts_at, opened_by=version),
                ),
                orders={**state.orders, event.quarantine_id: event.type},
                version=version,
            )
        case QuarantineExtended():
            return replace(state, planned_end=event.planned_end, version=version)
        case QuarantineReleased():
            return replace(
                state,
                status="released",
                segments=_closed(state.segments, event.released_at),
                version=version,
            )
        case QuarantineTransferred():
            segments = _closed(state.segments, event.transferred_at)
            if event.to == "hospital":
                return replace(state, status="transferred", segments=segments, version=version)
            return replace(
                state,
                quarantine_type="centralized",
                place=event.destination,
                segments=(
                    *segments,
                    Segment("centralized", event.transferred_at, opened_by=version),
                ),
                version=version,
            )
        case TemperatureRecorded():
            key = (event.slot_day, event.slot)
            return _changed(
                state,
                subject_id=state.subject_id or event.subject_id,
                readings={
                    **state.readings,
                    event.reading_id: Reading(event.celsius, key, event.late),
                },
                read_slots=state.read_slots | {key},
                version=version,
            )
        case FollowUpMissed():
            return _changed(
                state, missed=state.missed | {(event.slot_day, event.slot)}, version=version
            )
        case CareTaskCompleted():
            care = (event.task, event.slot_day, event.slot)
            return _changed(
                state,
                subject_id=state.subject_id or event.target_id,
                tasks={**state.tasks, event.task_id: care},
                care_done=state.care_done | {care},
                version=version,
            )
        case CareTaskMissed():
            care = (event.task, event.slot_day, event.slot)
            return _changed(state, care_missed=state.care_missed | {care}, version=version)
    return _changed(state, version=version)


def _changed(state: Watch, **changes: Any) -> Watch:
    """`replace` for the frequent events (readings, misses, tasks), without re-running
    `__init__`: folding long streams in batches spends most of its time here otherwise."""
    new = object.__new__(Watch)
    new.__dict__.update(state.__dict__, **changes)
    return new


def care_key(task: TaskKind, ref: SlotRef) -> CareKey:
    return (task, ref.day, ref.label)
