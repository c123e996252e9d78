"""Mass testing (应检尽检, numbered rounds, "7天1检") and vaccination. Pure decide/evolve.

* A **test round** covers a place for a period; its number is unique at that place.
* A **sample** (`sample:<id>`) is collected from a registered person, within the period of
  its round when it names one; it gets one result: the same result again changes nothing,
  another result is a conflict (a new sample is taken instead).
* **Doses** (`vaccination:<subject>`) are given in order: dose n+1 follows dose n. The same
  dose sent again (same number and vaccine, under its id or another) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from shared.contracts import EventPayload
from shared.contracts.screening import (
    SampleCollected,
    TestResulted,
    TestRoundStarted,
    VaccineDoseGiven,
)
from shared.errors import DomainError, Refusal

ROUND_STREAM = "test_round"
SAMPLE_STREAM = "sample"
VACCINATION_STREAM = "vaccination"
MAX_DOSES = 5
MAX_ROUND_DAYS = 31

Result = Literal["negative", "positive", "invalid"]


def round_stream(round_id: str) -> str:
    return f"test-round:{round_id}"


def sample_stream(sample_id: str) -> str:
    return f"sample:{sample_id}"


def vaccination_stream(subject_id: str) -> str:
    return f"vaccination:{subject_id}"


# -- test rounds -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TestRound:
    __test__ = False  # not a pytest class

    id: str
    node_id: str
    number: int
    starts_on: date
    ends_on: date
    version: int

    def includes(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on


@dataclass(frozen=True)
class StartRound:
    round_id: str
    node_id: str
    number: int
    starts_on: date
    ends_on: date
    node_known: bool
    number_taken_by: str | None = None


def decide_start_round(state: TestRound | None, cmd: StartRound) -> list[EventPayload]:
    if state is not None:
        if (state.node_id, state.number, state.starts_on, state.ends_on) == (
            cmd.node_id,
            cmd.number,
            cmd.starts_on,
            cmd.ends_on,
        ):
            return []
        raise DomainError(
            "round-exists",
            f"test round {cmd.round_id} was started with other values",
            refusal=Refusal.CONFLICT,
            field="id",
        )
    if not cmd.node_known:
        raise DomainError("unknown-node", f"place {cmd.node_id} does not exist", field="node_id")
    if cmd.number < 1:
        raise DomainError("invalid-number", "rounds are numbered from 1", field="number")
    if cmd.ends_on < cmd.starts_on:
        raise DomainError("invalid-period", "ends_on is before starts_on", field="ends_on")
    if (cmd.ends_on - cmd.starts_on).days >= MAX_ROUND_DAYS:
        raise DomainError(
            "round-too-long", f"a round lasts at most {MAX_ROUND_DAYS} days", field="ends_on"
        )
    if cmd.number_taken_by is not None and cmd.number_taken_by != cmd.round_id:
        raise DomainError(
            "round-number-taken",
            f"round {cmd.number} of {cmd.node_id} is {cmd.number_taken_by}",
            refusal=Refusal.CONFLICT,
            field="number",
        )
    return [
        TestRoundStarted(
            round_id=cmd.round_id,
            node_id=cmd.node_id,
            number=cmd.number,
            starts_on=cmd.starts_on,
            ends_on=cmd.ends_on,
        )
    ]


def evolve_round(state: TestRound | None, event: EventPayload, version: int) -> TestRound | None:
    if isinstance(event, TestRoundStarted):
        return TestRound(
            event.round_id, event.node_id, event.number, event.starts_on, event.ends_on, version
        )
    return replace(state, version=version) if state is not None else None


# -- samples and results ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    id: str
    subject_id: str
    round_id: str | None
    result: Result | None
    version: int


@dataclass(frozen=True)
class CollectSample:
    """`round` is the round named by `round_id` (None when unknown); `day` is the local day
    the sample was taken."""

    sample_id: str
    subject_id: str
    round_id: str | None
    round: TestRound | None
    day: date
    collected_by: str


def decide_collect(state: Sample | None, cmd: CollectSample) -> list[EventPayload]:
    if state is not None:
        if (state.subject_id, state.round_id) == (cmd.subject_id, cmd.round_id):
            return []
        raise DomainError(
            "sample-exists",
            f"sample {cmd.sample_id} was taken from someone else or in another round",
            refusal=Refusal.CONFLICT,
            field="id",
        )
    if cmd.round_id is not None:
        if cmd.round is None:
            raise DomainError(
                "unknown-round", f"test round {cmd.round_id} does not exist", field="round_id"
            )
        if not cmd.round.includes(cmd.day):
            raise DomainError(
                "outside-round",
                f"round {cmd.round.number} runs {cmd.round.starts_on} to {cmd.round.ends_on},"
                f" the sample was taken on {cmd.day}",
                field="round_id",
            )
    return [
        SampleCollected(
            sample_id=cmd.sample_id,
            subject_id=cmd.subject_id,
            round_id=cmd.round_id,
            collected_by=cmd.collected_by,
        )
    ]


def decide_result(state: Sample | None, result: Result) -> list[EventPayload]:
    if state is None:
        raise DomainError("unknown-sample", "no such sample", refusal=Refusal.NOT_FOUND)
    if state.result is not None:
        if state.result == result:
            return []
        raise DomainError(
            "already-resulted",
            f"sample {state.id} already has the result {state.result}; take a new sample",
            refusal=Refusal.CONFLICT,
            field="result",
        )
    return [TestResulted(sample_id=state.id, subject_id=state.subject_id, result=result)]


def evolve_sample(state: Sample | None, event: EventPayload, version: int) -> Sample | None:
    if isinstance(event, SampleCollected):
        return Sample(event.sample_id, event.subject_id, event.round_id, None, version)
    if state is None:
        return None
    if isinstance(event, TestResulted):
        return replace(state, result=event.result, version=version)
    return replace(state, version=version)


# -- vaccination -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Dose:
    id: str
    number: int
    vaccine: str


@dataclass(frozen=True)
class Vaccination:
    subject_id: str
    doses: tuple[Dose, ...]
    version: int

    def dose(self, number: int) -> Dose | None:
        return next((d for d in self.doses if d.number == number), None)


@dataclass(frozen=True)
class GiveDose:
    dose_id: str
    subject_id: str
    dose_number: int
    vaccine: str
    given_by: str


def decide_dose(state: Vaccination | None, cmd: GiveDose) -> list[EventPayload]:
    vaccine = cmd.vaccine.strip()
    if not vaccine:
        raise DomainError("vaccine-empty", "name the vaccine", field="vaccine")
    doses = state.doses if state is not None else ()
    same_id = next((d for d in doses if d.id == cmd.dose_id), None)
    if same_id is not None and same_id != Dose(cmd.dose_id, cmd.dose_number, vaccine):
        raise DomainError(
            "dose-exists",
            f"dose {cmd.dose_id} was recorded as dose {same_id.number} of {same_id.vaccine}",
            refusal=Refusal.CONFLICT,
            field="id",
        )
    given = next((d for d in doses if d.number == cmd.dose_number), None)
    if given is not None:
        if given.vaccine == vaccine:
            return []  # the same dose sent again
        raise DomainError(
            "dose-given",
            f"dose {cmd.dose_number} was given with {given.vaccine}",
            refusal=Refusal.CONFLICT,
            field="vaccine",
        )
    expected = len(doses) + 1
    if cmd.dose_number != expected or expected > MAX_DOSES:
        raise DomainError(
            "dose-out-of-order",
            f"the next dose of this person is dose {expected}",
            field="dose_number",
        )
    return [
        VaccineDoseGiven(
            dose_id=cmd.dose_id,
            subject_id=cmd.subject_id,
            dose_number=cmd.dose_number,
            vaccine=vaccine,
            given_by=cmd.given_by,
        )
    ]


def evolve_vaccination(
    state: Vaccination | None, event: EventPayload, version: int
) -> Vaccination | None:
    if isinstance(event, VaccineDoseGiven):
        doses = state.doses if state is not None else ()
        dose = Dose(event.dose_id, event.dose_number, event.vaccine)
        return Vaccination(event.subject_id, (*doses, dose), version)
    return replace(state, version=version) if state is not None else None
