"""Households (户), persons and vehicles. Pure decide/evolve.

A household is also a place: its node (kind `household`) and its household facts share one
stream. A person is one stream; one document number is one person, so registering a number
already held by someone is a conflict that names the holder (moving is its own command).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from services.registry.domain.places import NODE_ID, Parent, label_of
from shared.contracts import EventPayload
from shared.contracts.registry import (
    AgeBand,
    DocumentType,
    HouseholdRegistered,
    NodeCreated,
    PersonContactChanged,
    PersonMoved,
    PersonRegistered,
    PersonResidencyChanged,
    PersonTagsChanged,
    PersonVoided,
    Residency,
    VehicleRegistered,
)
from shared.errors import DomainError, Refusal

PERSON_STREAM = "person"
VEHICLE_STREAM = "vehicle"


def person_stream(person_id: str) -> str:
    return f"{PERSON_STREAM}:{person_id}"


def vehicle_stream(vehicle_id: str) -> str:
    return f"{VEHICLE_STREAM}:{vehicle_id}"


VULNERABLE = ("特困", "低保", "残疾", "孤寡老人")
PLATE = re.compile(
    r"^[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领]"
    r"[A-Z][A-HJ-NP-Z0-9]{4,5}[A-HJ-NP-Z0-9挂学警港澳]$"
)


# -- households ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterHousehold:
    household_id: str
    parent: Parent | None
    door_number: str
    address: str | None


def decide_register_household(
    exists: bool, same: bool, cmd: RegisterHousehold
) -> list[EventPayload]:
    """`exists`: the household id is taken; `same`: by this very household."""
    if exists:
        if same:
            return []
        raise DomainError(
            "household-exists",
            f"household {cmd.household_id} already exists",
            refusal=Refusal.CONFLICT,
            field="id",
        )
    if not NODE_ID.match(cmd.household_id):
        raise DomainError("invalid-id", "id must be 1-63 letters, digits or dashes", field="id")
    if cmd.parent is None:
        raise DomainError(
            "unknown-parent", "the place of the household does not exist", field="parent_id"
        )
    if cmd.parent.retired:
        raise DomainError("parent-retired", f"place {cmd.parent.id} is retired", field="parent_id")
    return [
        NodeCreated(
            node_id=cmd.household_id,
            parent_id=cmd.parent.id,
            kind="household",
            name=cmd.door_number,
            path=f"{cmd.parent.path}.{label_of(cmd.household_id)}",
        ),
        HouseholdRegistered(
            household_id=cmd.household_id,
            node_id=cmd.household_id,
            door_number=cmd.door_number,
            address=cmd.address,
        ),
    ]


# -- persons ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    id: str
    household_id: str
    residency: Residency
    tags: tuple[str, ...]
    document_type: DocumentType
    id_hmac: str
    name_masked: str
    phone_masked: str | None
    voided: bool
    version: int


@dataclass(frozen=True)
class Identity:
    """A checked document with its masked forms (computed by the handler, which holds keys)."""

    document_type: DocumentType
    document_masked: str
    id_hmac: str
    name_masked: str
    phone_masked: str | None
    age_band: AgeBand | None
    age_band_on: date | None
    sex: Literal["male", "female"] | None


def age_band(born: date, on: date) -> AgeBand:
    """The band of a person born on `born`, on the day `on`: under 18, 18 to 59, 60 and over
    (a birthday counts from its day; one on 29 February from 1 March in common years)."""
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    if age < 18:
        return "0-17"
    return "18-59" if age < 60 else "60+"


@dataclass(frozen=True)
class Holder:
    """The person already registered with a document number."""

    person_id: str
    household_id: str


@dataclass(frozen=True)
class RegisterPerson:
    person_id: str
    household_known: bool
    household_id: str
    residency: Residency
    tags: tuple[str, ...]
    identity: Identity
    holder: Holder | None


def normalise_tags(tags: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    cleaned = {t.strip() for t in tags if t.strip()}
    for t in cleaned:
        if len(t) > 40:
            raise DomainError("tag-too-long", f"tag {t[:10]}… is over 40 characters", field="tags")
    return tuple(sorted(cleaned))


def decide_register_person(state: Person | None, cmd: RegisterPerson) -> list[EventPayload]:
    if cmd.holder is not None:
        if cmd.holder.person_id == cmd.person_id or (
            state is None and cmd.holder.household_id == cmd.household_id
        ):
            return []  # already registered here: a retried upload changes nothing
        raise DomainError(
            "document-registered",
            f"this document is already registered to person {cmd.holder.person_id} in "
            f"household {cmd.holder.household_id}; move that person instead",
            refusal=Refusal.CONFLICT,
            field="document_number",
        )
    if state is not None:
        raise DomainError(
            "person-exists",
            f"person {cmd.person_id} already exists with another document",
            refusal=Refusal.CONFLICT,
            field="id",
        )
    if not cmd.household_known:
        raise DomainError(
            "unknown-household",
            f"household {cmd.household_id} does not exist",
            field="household_id",
        )
    return [registered(cmd.person_id, cmd.household_id, cmd.residency, cmd.tags, cmd.identity)]


def registered(
    person_id: str,
    household_id: str,
    residency: Residency,
    tags: tuple[str, ...],
    i: Identity,
) -> PersonRegistered:
    """The event that puts a person on a household's roster."""
    return PersonRegistered(
        person_id=person_id,
        household_id=household_id,
        residency=residency,
        tags=list(normalise_tags(tags)),
        document_type=i.document_type,
        document_masked=i.document_masked,
        name_masked=i.name_masked,
        phone_masked=i.phone_masked,
        id_hmac=i.id_hmac,
        age_band=i.age_band,
        age_band_on=i.age_band_on,
        sex=i.sex,
    )


def _active(state: Person | None) -> Person:
    if state is None:
        raise DomainError("unknown-person", "person does not exist", refusal=Refusal.NOT_FOUND)
    if state.voided:
        raise DomainError(
            "person-voided", f"person {state.id} was voided", refusal=Refusal.CONFLICT
        )
    return state


def decide_move_person(
    state: Person | None, to_household_id: str, household_known: bool
) -> list[EventPayload]:
    person = _active(state)
    if not household_known:
        raise DomainError(
            "unknown-household", f"household {to_household_id} does not exist", field="household_id"
        )
    if person.household_id == to_household_id:
        return []
    return [
        PersonMoved(
            person_id=person.id,
            from_household_id=person.household_id,
            to_household_id=to_household_id,
        )
    ]


def decide_residency(state: Person | None, residency: Residency) -> list[EventPayload]:
    person = _active(state)
    if person.residency == residency:
        return []
    return [
        PersonResidencyChanged(person_id=person.id, residency=residency, previous=person.residency)
    ]


def decide_tags(state: Person | None, add: list[str], remove: list[str]) -> list[EventPayload]:
    person = _active(state)
    added, removed = normalise_tags(add), normalise_tags(remove)
    tags = tuple(sorted((set(person.tags) | set(added)) - set(removed)))
    if tags == person.tags:
        return []
    return [
        PersonTagsChanged(
            person_id=person.id,
            tags=list(tags),
            added=sorted(set(tags) - set(person.tags)),
            removed=sorted(set(person.tags) - set(tags)),
        )
    ]


def decide_contact(
    state: Person | None, name_masked: str, phone_masked: str | None, changed: bool
) -> list[EventPayload]:
    person = _active(state)
    if not changed:
        return []
    return [
        PersonContactChanged(
            person_id=person.id, name_masked=name_masked, phone_masked=phone_masked
        )
    ]


def decide_void(state: Person | None, reason: str) -> list[EventPayload]:
    if state is not None and state.voided:
        return []
    person = _active(state)
    return [PersonVoided(person_id=person.id, reason=reason)]


def evolve_person(state: Person | None, event: EventPayload, version: int) -> Person | None:
    match event:
        case PersonRegistered():
            return Person(
                event.person_id,
                event.household_id,
                event.residency,
                tuple(event.tags),
                event.document_type,
                event.id_hmac,
                event.name_masked,
                event.phone_masked,
                False,
                version,
            )
    if state is None:
        return None
    match event:
        case PersonMoved():
            return replace(state, household_id=event.to_household_id, version=version)
        case PersonResidencyChanged():
            return replace(state, residency=event.residency, version=version)
        case PersonTagsChanged():
            return replace(state, tags=tuple(event.tags), version=version)
        case PersonContactChanged():
            return replace(
                state,
                name_masked=event.name_masked,
                phone_masked=event.phone_masked,
                version=version,
            )
        case PersonVoided():
            return replace(state, voided=True, version=version)
    return replace(state, version=version)


# -- vehicles --------------------------------------------------------------------------------


def normalise_plate(plate: str) -> str:
    return re.sub(r"[\s·•.\-]", "", plate).upper()


def decide_register_vehicle(
    vehicle_id: str,
    exists_same: bool,
    plate: str,
    household_id: str,
    household_known: bool,
    plate_holder: str | None,
) -> list[EventPayload]:
    if exists_same:
        return []
    if not PLATE.match(plate):
        raise DomainError("invalid-plate", f"{plate} is not a mainland number plate", field="plate")
    if not household_known:
        raise DomainError(
            "unknown-household", f"household {household_id} does not exist", field="household_id"
        )
    if plate_holder is not None:
        raise DomainError(
            "plate-registered",
            f"plate {plate} is already vehicle {plate_holder}",
            refusal=Refusal.CONFLICT,
            field="plate",
        )
    return [VehicleRegistered(vehicle_id=vehicle_id, household_id=household_id, plate=plate)]
