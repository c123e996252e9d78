"""The crossing ledger (卡口登记): one person or vehicle at a gate, with the server's decision.
Pure decide/evolve.

A crossing is one stream (`crossing:<id>`, the id chosen by the gate's device): its
`CrossingRecorded` and, when a quarantined person tried to go out, one
`QuarantineBreachAttempted` per such person, appended together. Recording the same id again
is a retry and records nothing; the same id for another crossing is a conflict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from services.checkpoint.domain.decisions import Judgement
from shared.contracts import EventPayload
from shared.contracts.checkpoint import (
    CrossingRecorded,
    Decision,
    HealthCode,
    Passenger,
    QuarantineBreachAttempted,
)
from shared.contracts.registry import DocumentType
from shared.divisions import DIVISION_CODE
from shared.errors import DomainError, Refusal

CROSSING_STREAM = "crossing"
HMAC_PREFIX = "h:"
TEMPERATURE_RANGE = (34.0, 43.0)
_PLATE_NOISE = re.compile(r"[\s·•.\-]")
_FULL_WIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}


def crossing_stream(crossing_id: str) -> str:
    return f"crossing:{crossing_id}"


def normalise_plate(plate: str) -> str:
    """The registry's plate form (no spaces, dots or dashes, upper case), also from full-width
    characters a scanner may produce."""
    return _PLATE_NOISE.sub("", plate.translate(_FULL_WIDTH)).upper()


@dataclass(frozen=True)
class GatePerson:
    """A document checked at the gate: only its HMAC and masked form are kept."""

    document_type: DocumentType
    id_hmac: str
    document_masked: str
    subject_id: str | None = None  # the registry person id, when the views recognise it

    @property
    def subject(self) -> str:
        """Who screening's records are about: the person id, else `h:<id_hmac>`."""
        return self.subject_id or f"{HMAC_PREFIX}{self.id_hmac}"


@dataclass(frozen=True)
class RecordCrossing:
    crossing_id: str
    checkpoint_id: str
    node_id: str
    kind: Literal["person", "vehicle"]
    direction: Literal["in", "out"]
    person: GatePerson | None
    plate: str | None
    passengers: tuple[GatePerson, ...]
    temperature: float | None
    health_code: HealthCode | None
    test_report_at: datetime | None
    origin: str | None
    origin_region_code: str | None
    occurred_at: datetime
    recorded_by: str

    @property
    def people(self) -> tuple[GatePerson, ...]:
        return (self.person,) if self.person is not None else self.passengers

    def at(
        self, node_id: str, person: GatePerson | None, passengers: tuple[GatePerson, ...]
    ) -> RecordCrossing:
        """The crossing at its gate's node, with its people as the views recognise them
        (what `dataclasses.replace` does, without its per-call introspection)."""
        return RecordCrossing(
            self.crossing_id,
            self.checkpoint_id,
            node_id,
            self.kind,
            self.direction,
            person,
            self.plate,
            passengers,
            self.temperature,
            self.health_code,
            self.test_report_at,
            self.origin,
            self.origin_region_code,
            self.occurred_at,
            self.recorded_by,
        )

    @property
    def identity(self) -> tuple[str, str, str, str | None, str | None]:
        """What makes a retried upload the same crossing."""
        hmac = self.person.id_hmac if self.person is not None else None
        return (self.checkpoint_id, self.kind, self.direction, hmac, self.plate)


@dataclass(frozen=True)
class Crossing:
    id: str
    identity: tuple[str, str, str, str | None, str | None]
    decision: Decision
    reasons: tuple[str, ...]
    views_as_of: datetime | None
    breaches: tuple[str, ...]
    version: int


def check_crossing(cmd: RecordCrossing, now: datetime, clock_skew: timedelta) -> None:
    """Refuse readings no gate can have taken, naming the field."""
    if cmd.occurred_at > now + clock_skew:
        raise DomainError("in-the-future", "occurred_at lies in the future", field="occurred_at")
    if cmd.kind == "person" and cmd.person is None:
        raise DomainError(
            "document-missing", "a person crossing needs a document", field="document_number"
        )
    if cmd.kind == "vehicle" and not cmd.plate:
        raise DomainError("plate-missing", "a vehicle crossing needs a plate", field="plate")
    if cmd.plate is not None and not 5 <= len(cmd.plate) <= 12:
        raise DomainError("invalid-plate", f"{cmd.plate} is not a number plate", field="plate")
    low, high = TEMPERATURE_RANGE
    if cmd.temperature is not None and not low <= cmd.temperature <= high:
        raise DomainError(
            "invalid-temperature",
            f"a body temperature lies within {low}-{high} °C",
            field="temperature",
        )
    if cmd.test_report_at is not None and cmd.test_report_at > cmd.occurred_at + clock_skew:
        raise DomainError(
            "report-after-crossing",
            "the test report is dated after the crossing",
            field="test_report_at",
        )
    if cmd.origin_region_code is not None and not DIVISION_CODE.match(cmd.origin_region_code):
        raise DomainError(
            "invalid-region-code",
            "an administrative division code is 2-12 digits",
            field="origin_region_code",
        )


def check_retry(state: Crossing, cmd: RecordCrossing) -> None:
    """A crossing id seen before: the same crossing again records nothing; another crossing
    under that id is a conflict."""
    if state.identity != cmd.identity:
        raise DomainError(
            "crossing-exists",
            f"crossing {cmd.crossing_id} was recorded for another person, vehicle or gate",
            refusal=Refusal.CONFLICT,
            field="id",
        )


def decide_record(
    cmd: RecordCrossing, judgement: Judgement, views_as_of: datetime | None
) -> list[EventPayload]:
    """A new crossing with the server's decision, and a breach per quarantined person that
    tried to go out."""
    person = cmd.person
    recorded = CrossingRecorded(
        crossing_id=cmd.crossing_id,
        checkpoint_id=cmd.checkpoint_id,
        node_id=cmd.node_id,
        kind=cmd.kind,
        direction=cmd.direction,
        id_hmac=person.id_hmac if person else None,
        document_type=person.document_type if person else None,
        document_masked=person.document_masked if person else None,
        subject_id=person.subject_id if person else None,
        plate=cmd.plate,
        passengers=[
            Passenger(
                id_hmac=p.id_hmac,
                document_type=p.document_type,
                document_masked=p.document_masked,
                subject_id=p.subject_id,
            )
            for p in cmd.passengers
        ],
        temperature=cmd.temperature,
        health_code=cmd.health_code,
        test_report_at=cmd.test_report_at,
        origin=cmd.origin,
        origin_region_code=cmd.origin_region_code,
        decision=judgement.decision,
        reasons=list(judgement.reasons),
        views_as_of=views_as_of,
        recorded_by=cmd.recorded_by,
    )
    by_subject = {p.subject: p for p in cmd.people}
    breaches: list[EventPayload] = [
        QuarantineBreachAttempted(
            crossing_id=cmd.crossing_id,
            checkpoint_id=cmd.checkpoint_id,
            subject_id=subject,
            id_hmac=by_subject[subject].id_hmac,
        )
        for subject in judgement.breaches
        if subject in by_subject
    ]
    return [recorded, *breaches]


def evolve(state: Crossing | None, event: EventPayload, version: int) -> Crossing | None:
    if isinstance(event, CrossingRecorded):
        return Crossing(
            event.crossing_id,
            (event.checkpoint_id, event.kind, event.direction, event.id_hmac, event.plate),
            event.decision,
            tuple(event.reasons),
            event.views_as_of,
            (),
            version,
        )
    if state is None:
        return None
    if isinstance(event, QuarantineBreachAttempted):
        return replace(state, breaches=(*state.breaches, event.subject_id), version=version)
    return replace(state, version=version)
