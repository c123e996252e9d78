"""Risk areas, key-person rules, person inquiries and key persons (重点人员). Pure decide/evolve.

* A **risk area** (中高风险地区) names administrative division code prefixes ("4201" is 武汉)
  and covers a place within one of them (`shared.divisions`: 4201 covers 武昌区 420106).
  It is active from `valid_from` through `valid_to` (open when absent) and, once lifted, no
  longer from its `lifted_on` day: `lifted_on` is the first day it is not a risk area.
* The **rules** are a fever threshold (°C, a reading *at* the threshold is a fever) and a
  look-back window in days. They change at runtime by an event, so every change is audited
  and a replay gives the same decisions.
* An **inquiry** (询问) flags its subject when the rules match: a travel stop in an active
  risk area within the window (`returnee_risk_area`), contact with a case (`close_contact`),
  a temperature at or above the threshold (`fever`), any symptom (`symptoms`).
* A **travel stop** is placed by its `region_code`, else by its place name (湖北省武汉市,
  武汉, 武昌区: the rules of `shared.divisions`). A stop that cannot be placed in one
  division (鼓楼区 is in four cities; an unknown name) is never taken as outside every risk
  area: when its stay lies in the window while some risk area was active, it flags
  `unresolved_travel`, for a worker to ask again and clear or re-flag.
* A **key person** (`kp:<subject>`) holds the reasons they were flagged for since they were
  last cleared. A flag that brings no new reason is not recorded again.

The look-back window of an inquiry made on day D with N look-back days is D-N .. D, both ends
included: a stay that ended exactly N days before D still counts, one that ended N+1 days
before does not. A stay without dates is taken to cover the whole window (the field worker
knows the person came from there, not when): it counts if the area was active on any day of
the window. A stay without `left_on` runs up to the inquiry day, and one without `arrived_on`
from the start of the window.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Literal, get_args

from shared import divisions
from shared.contracts import EventPayload
from shared.contracts.screening import (
    KeyPersonCleared,
    KeyPersonFlagged,
    KeyPersonRulesChanged,
    KeyReason,
    PersonInquired,
    RiskAreaDeclared,
    RiskAreaLifted,
    TemperatureRecorded,
    TestResulted,
    TravelStop,
)
from shared.divisions import DIVISION_CODE, Place
from shared.errors import DomainError, Refusal

RISK_AREA_STREAM = "risk_area"
RULES_STREAM = "key_person_rules"
INQUIRY_STREAM = "inquiry"
KEY_PERSON_STREAM = "key_person"
RULES_STREAM_ID = "rules:key-persons"

REASONS: tuple[KeyReason, ...] = get_args(KeyReason)
FlagSource = Literal["inquiry", "checkpoint", "temperature", "test", "manual"]
RiskLevel = Literal["high", "medium", "low"]

SUBJECT_ID = re.compile(r"^(h:[0-9A-Za-z_-]{8,128}|[A-Za-z0-9][A-Za-z0-9-]{0,62})$")
HMAC_PREFIX = "h:"
FEVER_THRESHOLD_RANGE = (36.0, 39.0)
LOOK_BACK_RANGE = (1, 60)
BODY_TEMPERATURE_RANGE = (34.0, 43.0)
MAX_SYMPTOMS = 20
MAX_SYMPTOM_LENGTH = 40


def risk_area_stream(area_id: str) -> str:
    return f"risk-area:{area_id}"


def inquiry_stream(inquiry_id: str) -> str:
    return f"inquiry:{inquiry_id}"


def key_person_stream(subject_id: str) -> str:
    return f"kp:{subject_id}"


def is_hmac_subject(subject_id: str) -> bool:
    """`h:<id_hmac>`: someone known only by a document HMAC (a checkpoint referral)."""
    return subject_id.startswith(HMAC_PREFIX)


def check_subject_id(subject_id: str, field: str = "subject_id") -> str:
    if not SUBJECT_ID.match(subject_id):
        raise DomainError(
            "invalid-subject",
            "a subject is a person id or h:<id_hmac>",
            field=field,
        )
    return subject_id


def in_reason_order(reasons: set[str] | frozenset[str]) -> list[KeyReason]:
    return [r for r in REASONS if r in reasons]


# -- rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    fever_threshold: float = 37.3
    look_back_days: int = 14
    version: int = 0


DEFAULT_RULES = Rules()


def decide_change_rules(
    state: Rules, fever_threshold: float, look_back_days: int
) -> list[EventPayload]:
    low, high = FEVER_THRESHOLD_RANGE
    threshold = round(fever_threshold, 2)
    if not low <= threshold <= high:
        raise DomainError(
            "invalid-threshold",
            f"the fever threshold must be between {low} and {high} °C",
            field="fever_threshold",
        )
    first, last = LOOK_BACK_RANGE
    if not first <= look_back_days <= last:
        raise DomainError(
            "invalid-look-back",
            f"the look-back window must be {first} to {last} days",
            field="look_back_days",
        )
    if (threshold, look_back_days) == (state.fever_threshold, state.look_back_days):
        return []
    return [KeyPersonRulesChanged(fever_threshold=threshold, look_back_days=look_back_days)]


def evolve_rules(state: Rules, event: EventPayload, version: int) -> Rules:
    if isinstance(event, KeyPersonRulesChanged):
        return Rules(event.fever_threshold, event.look_back_days, version)
    return replace(state, version=version)


def is_fever(temperature: float | None, rules: Rules) -> bool:
    return temperature is not None and round(temperature, 2) >= round(rules.fever_threshold, 2)


# -- risk areas ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskArea:
    id: str
    name: str
    level: RiskLevel
    region_codes: tuple[str, ...]
    valid_from: date
    valid_to: date | None
    lifted_on: date | None
    version: int

    @property
    def last_day(self) -> date | None:
        """The last day the area is active; None while it is open-ended."""
        ends = [d for d in (self.valid_to, self.lifted_on and self.lifted_on - timedelta(1)) if d]
        return min(ends) if ends else None

    def active_on(self, day: date) -> bool:
        last = self.last_day
        return self.valid_from <= day and (last is None or day <= last)

    def covers(self, region_code: str) -> bool:
        return divisions.covers(self.region_codes, region_code)


@dataclass(frozen=True)
class DeclareRiskArea:
    area_id: str
    name: str
    level: RiskLevel
    region_codes: tuple[str, ...]
    valid_from: date
    valid_to: date | None


def normalise_codes(codes: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    cleaned = sorted({c.strip() for c in codes if c.strip()})
    if not cleaned:
        raise DomainError(
            "no-region-codes", "name at least one division code prefix", field="region_codes"
        )
    for code in cleaned:
        if not DIVISION_CODE.match(code):
            raise DomainError(
                "invalid-region-code",
                f"{code} is not an administrative division code prefix (2-12 digits)",
                field="region_codes",
            )
    return tuple(cleaned)


def decide_declare_risk_area(state: RiskArea | None, cmd: DeclareRiskArea) -> list[EventPayload]:
    name = cmd.name.strip()
    if not name:
        raise DomainError("name-empty", "a risk area needs a name", field="name")
    codes = normalise_codes(cmd.region_codes)
    if cmd.valid_to is not None and cmd.valid_to < cmd.valid_from:
        raise DomainError("invalid-period", "valid_to is before valid_from", field="valid_to")
    if state is not None:
        same = (state.name, state.level, state.region_codes, state.valid_from, state.valid_to) == (
            name,
            cmd.level,
            codes,
            cmd.valid_from,
            cmd.valid_to,
        )
        if same:
            return []
        raise DomainError(
            "risk-area-exists",
            f"risk area {cmd.area_id} was declared with other values",
            refusal=Refusal.CONFLICT,
            field="id",
        )
    return [
        RiskAreaDeclared(
            area_id=cmd.area_id,
            name=name,
            level=cmd.level,
            region_codes=list(codes),
            valid_from=cmd.valid_from,
            valid_to=cmd.valid_to,
        )
    ]


def decide_lift_risk_area(
    state: RiskArea | None, lifted_on: date, reason: str
) -> list[EventPayload]:
    if state is None:
        raise DomainError("unknown-risk-area", "no such risk area", refusal=Refusal.NOT_FOUND)
    if state.lifted_on is not None:
        if state.lifted_on == lifted_on:
            return []
        raise DomainError(
            "risk-area-lifted",
            f"risk area {state.id} was already lifted on {state.lifted_on}",
            refusal=Refusal.CONFLICT,
            field="lifted_on",
        )
    if lifted_on <= state.valid_from:
        raise DomainError(
            "invalid-lift",
            f"lifted_on must be after valid_from ({state.valid_from})",
            field="lifted_on",
        )
    if not reason.strip():
        raise DomainError("reason-empty", "a reason is required", field="reason")
    return [RiskAreaLifted(area_id=state.id, lifted_on=lifted_on, reason=reason.strip())]


def evolve_risk_area(state: RiskArea | None, event: EventPayload, version: int) -> RiskArea | None:
    if isinstance(event, RiskAreaDeclared):
        return RiskArea(
            event.area_id,
            event.name,
            event.level,
            tuple(event.region_codes),
            event.valid_from,
            event.valid_to,
            None,
            version,
        )
    if state is None:
        return None
    if isinstance(event, RiskAreaLifted):
        return replace(state, lifted_on=event.lifted_on, version=version)
    return replace(state, version=version)


# -- inquiries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inquiry:
    """A person inquiry as asked in the field; `day` is the local day of its `occurred_at`."""

    inquiry_id: str
    subject_id: str
    household_id: str | None
    travel: tuple[TravelStop, ...]
    close_contact: bool
    symptoms: tuple[str, ...]
    temperature: float | None
    inquirer: str
    day: date


def normalise_symptoms(symptoms: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for s in symptoms:
        text = s.strip()
        if not text:
            continue
        if len(text) > MAX_SYMPTOM_LENGTH:
            raise DomainError(
                "symptom-too-long",
                f"a symptom is at most {MAX_SYMPTOM_LENGTH} characters",
                field="symptoms",
            )
        seen[text] = None
    if len(seen) > MAX_SYMPTOMS:
        raise DomainError("too-many-symptoms", f"at most {MAX_SYMPTOMS} symptoms", field="symptoms")
    return tuple(seen)


def check_inquiry(inq: Inquiry) -> Inquiry:
    """The inquiry with its symptoms normalised, or a refusal naming the field."""
    for i, stop in enumerate(inq.travel):
        if stop.arrived_on and stop.left_on and stop.left_on < stop.arrived_on:
            raise DomainError(
                "invalid-stay", "left_on is before arrived_on", field=f"travel.{i}.left_on"
            )
        if stop.region_code is not None and not DIVISION_CODE.match(stop.region_code):
            raise DomainError(
                "invalid-region-code",
                f"{stop.region_code} is not an administrative division code",
                field=f"travel.{i}.region_code",
            )
        if stop.arrived_on and stop.arrived_on > inq.day:
            raise DomainError(
                "future-stay",
                f"arrived_on is after the day of the inquiry ({inq.day})",
                field=f"travel.{i}.arrived_on",
            )
    low, high = BODY_TEMPERATURE_RANGE
    if inq.temperature is not None and not low <= inq.temperature <= high:
        raise DomainError(
            "implausible-temperature",
            f"a body temperature is between {low} and {high} °C",
            field="temperature",
        )
    return replace(inq, symptoms=normalise_symptoms(inq.symptoms))


def located(stop: TravelStop) -> Place:
    """Where a stop was: the division of its code, else of its place name."""
    return divisions.locate(stop.region_code, stop.place) or Place("unknown", None)


def stay_while_active(
    stop: TravelStop, area: RiskArea, inquiry_day: date, look_back_days: int
) -> bool:
    """Whether some day of the stay lies in the window and the area was active on it."""
    window_start = inquiry_day - timedelta(days=look_back_days)
    first = max(d for d in (stop.arrived_on, window_start, area.valid_from) if d is not None)
    ends = [inquiry_day, stop.left_on, area.last_day]
    last = min(d for d in ends if d is not None)
    return first <= last


def stay_in_area(
    stop: TravelStop, place: Place, area: RiskArea, inquiry_day: date, look_back_days: int
) -> bool:
    """Whether the stay lies in the area on a day of the window it was active."""
    return (
        place.code is not None
        and area.covers(place.code)
        and stay_while_active(stop, area, inquiry_day, look_back_days)
    )


def travel_reasons(
    inq: Inquiry, places: Sequence[Place], rules: Rules, areas: Sequence[RiskArea]
) -> set[str]:
    """`returnee_risk_area` for a stay in an active risk area; `unresolved_travel` for a stop
    that could not be placed while it might have lain in one."""
    found: set[str] = set()
    days = rules.look_back_days
    for stop, place in zip(inq.travel, places, strict=True):
        if any(stay_in_area(stop, place, a, inq.day, days) for a in areas):
            found.add("returnee_risk_area")
        if not place.resolved and any(stay_while_active(stop, a, inq.day, days) for a in areas):
            found.add("unresolved_travel")
    return found


def matched_reasons(
    inq: Inquiry,
    rules: Rules,
    areas: Sequence[RiskArea],
    places: Sequence[Place] | None = None,
) -> list[KeyReason]:
    """The reasons the rules find in an inquiry, in the contract's order; `places` are its
    stops located (by `located`) when the caller already has them."""
    where = places if places is not None else [located(s) for s in inq.travel]
    found = travel_reasons(inq, where, rules, areas)
    if inq.close_contact:
        found.add("close_contact")
    if is_fever(inq.temperature, rules):
        found.add("fever")
    if inq.symptoms:
        found.add("symptoms")
    return in_reason_order(found)


def inquired(inq: Inquiry) -> PersonInquired:
    return PersonInquired(
        inquiry_id=inq.inquiry_id,
        subject_id=inq.subject_id,
        household_id=inq.household_id,
        travel=list(inq.travel),
        close_contact=inq.close_contact,
        symptoms=list(inq.symptoms),
        temperature=inq.temperature,
        inquirer=inq.inquirer,
    )


def decide_inquiry(state: PersonInquired | None, inq: Inquiry) -> list[EventPayload]:
    """Record an inquiry once: the same inquiry again changes nothing; its id reused for
    another inquiry is a conflict."""
    event = inquired(check_inquiry(inq))
    if state is not None:
        if state.model_dump(exclude={"inquirer"}) == event.model_dump(exclude={"inquirer"}):
            return []
        raise DomainError(
            "inquiry-exists",
            f"inquiry {inq.inquiry_id} was recorded with other answers",
            refusal=Refusal.CONFLICT,
            field="id",
        )
    return [event]


def evolve_inquiry(
    state: PersonInquired | None, event: EventPayload, version: int
) -> PersonInquired | None:
    return event if isinstance(event, PersonInquired) else state


# -- key persons -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPerson:
    subject_id: str
    flagged: bool
    reasons: frozenset[str]
    node_id: str | None
    version: int


@dataclass(frozen=True)
class Flag:
    """Flag a subject for reasons; masked values come with referrals of unregistered people."""

    subject_id: str
    reasons: tuple[str, ...]
    source: FlagSource
    source_id: str | None
    node_id: str | None
    id_hmac: str | None = None
    document_masked: str | None = None
    name_masked: str | None = None


def decide_flag(state: KeyPerson | None, cmd: Flag) -> list[EventPayload]:
    """A flag is recorded only for reasons the subject is not already flagged for."""
    unknown = [r for r in cmd.reasons if r not in REASONS]
    if unknown:
        raise DomainError("unknown-reason", f"unknown reasons {unknown}", field="reasons")
    held = state.reasons if state is not None and state.flagged else frozenset()
    new = in_reason_order(set(cmd.reasons) - held)
    if not new:
        return []
    return [
        KeyPersonFlagged(
            subject_id=cmd.subject_id,
            node_id=cmd.node_id,
            reasons=new,
            source=cmd.source,
            source_id=cmd.source_id,
            id_hmac=cmd.id_hmac,
            document_masked=cmd.document_masked,
            name_masked=cmd.name_masked,
        )
    ]


def decide_clear(state: KeyPerson | None, reason: str) -> list[EventPayload]:
    if state is None or not state.flagged:
        raise DomainError(
            "not-flagged", "the subject is not flagged as a key person", refusal=Refusal.CONFLICT
        )
    if not reason.strip():
        raise DomainError("reason-empty", "a reason is required", field="reason")
    return [KeyPersonCleared(subject_id=state.subject_id, reason=reason.strip())]


def evolve_key_person(
    state: KeyPerson | None, event: EventPayload, version: int
) -> KeyPerson | None:
    if isinstance(event, KeyPersonFlagged):
        held = state.reasons if state is not None and state.flagged else frozenset()
        node = event.node_id or (state.node_id if state is not None else None)
        return KeyPerson(event.subject_id, True, held | set(event.reasons), node, version)
    if state is None:
        return None
    if isinstance(event, KeyPersonCleared):
        return replace(state, flagged=False, reasons=frozenset(), version=version)
    return replace(state, version=version)


# -- reactions to other facts ----------------------------------------------------------------


@dataclass(frozen=True)
class Reaction:
    """A flag screening raises by itself on one of its own facts."""

    subject_id: str
    reasons: tuple[KeyReason, ...]
    source: FlagSource
    source_id: str


def reaction_to(event: EventPayload, rules: Rules) -> Reaction | None:
    """A reading at or above the fever threshold flags `fever`; a positive test flags
    `positive_test`; nothing else flags anyone."""
    if isinstance(event, TemperatureRecorded) and is_fever(event.celsius, rules):
        return Reaction(event.subject_id, ("fever",), "temperature", event.reading_id)
    if isinstance(event, TestResulted) and event.result == "positive":
        return Reaction(event.subject_id, ("positive_test",), "test", event.sample_id)
    return None
