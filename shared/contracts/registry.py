"""Events published by the registry on `registry.events`: places, people, parties, chains.

Clear PII (names of residents, document numbers, phone numbers) never appears here: persons
carry masked values and `id_hmac`, the keyed HMAC of the normalised document number, so a
service holding the key can recognise a document without ever holding it.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts import Catalog, EventPayload

TOPIC = "registry.events"

Residency = Literal["resident", "temporary", "visitor"]
DocumentType = Literal["resident_id", "passport", "hk_macao_permit", "taiwan_permit"]
CoverKind = Literal["node", "person"]
AgeBand = Literal["0-17", "18-59", "60+"]
"""Minors (未成年人), working age, elderly (老年人): each band spans enough birth dates that a
masked resident ID still has hundreds of candidate numbers (see docs/security.md)."""

# -- places (区 → 街道/乡镇 → 社区/村 → 网格 → 小区/楼栋 → 单元 → 楼层 → 户) --------


class NodeCreated(EventPayload):
    """A place was added to the tree."""

    event_type = "NodeCreated"
    schema_version = 1

    node_id: str
    parent_id: str | None
    kind: str
    name: str
    path: str = Field(description="ltree path of labels derived from node ids, root first")


class NodeRenamed(EventPayload):
    event_type = "NodeRenamed"

    node_id: str
    name: str
    previous_name: str


class NodeMoved(EventPayload):
    """A place and its whole subtree moved: every path starting with `old_path` now starts
    with `new_path` instead."""

    event_type = "NodeMoved"

    node_id: str
    old_parent_id: str
    new_parent_id: str
    old_path: str
    new_path: str


class NodeRetired(EventPayload):
    """A place no longer exists (merged, demolished, entered by mistake); history stays."""

    event_type = "NodeRetired"

    node_id: str
    reason: str


# -- households, people, vehicles ------------------------------------------------------------


class HouseholdRegistered(EventPayload):
    """A household (户). The household is also a place node of kind `household` (same id),
    created by a `NodeCreated` in the same command."""

    event_type = "HouseholdRegistered"

    household_id: str
    node_id: str = Field(description="the household's own place node (= household_id)")
    door_number: str | None = None
    address: str | None = None


class PersonRegistered(EventPayload):
    """A person joined the roster of a household.

    Nothing here narrows `document_masked` back to the number: the 8 hidden digits of a
    resident ID are the birth date, so the person carries only a wide age band, computed once
    on the day of registration (`age_band_on`) and never recomputed — a band that changed
    later would date the birthday it crossed. (`sex` is the 17th digit, already shown.)"""

    event_type = "PersonRegistered"
    schema_version = 2

    person_id: str
    household_id: str
    residency: Residency
    tags: list[str] = Field(
        default_factory=list, description="特困, 低保, 残疾, 孤寡老人, free tags"
    )
    document_type: DocumentType
    document_masked: str = Field(examples=["110105********1234"])
    name_masked: str = Field(examples=["张*"])
    phone_masked: str | None = Field(default=None, examples=["138****5678"])
    id_hmac: str = Field(description="hex HMAC-SHA256 of the normalised document number")
    age_band: AgeBand | None = Field(
        default=None,
        description="age on `age_band_on` (resident IDs only; none for other documents and "
        "for persons registered before bands existed)",
    )
    age_band_on: date | None = Field(
        default=None, description="the day (in China) the band was computed: the registration"
    )
    sex: Literal["male", "female"] | None = None


class PersonRegisteredV1(EventPayload):
    """A person joined the roster of a household."""

    # As first published, kept for the contract files and the upcaster; never produced: its
    # birth year beside `document_masked` narrowed a resident ID to about 33 candidates.
    model_config = ConfigDict(frozen=True, extra="ignore", title="PersonRegistered")
    event_type = "PersonRegistered"
    schema_version = 1

    person_id: str
    household_id: str
    residency: Residency
    tags: list[str] = Field(
        default_factory=list, description="特困, 低保, 残疾, 孤寡老人, free tags"
    )
    document_type: DocumentType
    document_masked: str = Field(examples=["110105********1234"])
    name_masked: str = Field(examples=["张*"])
    phone_masked: str | None = Field(default=None, examples=["138****5678"])
    id_hmac: str = Field(description="hex HMAC-SHA256 of the normalised document number")
    birth_year: int | None = None
    sex: Literal["male", "female"] | None = None


def person_registered_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Drop the birth year. No band is made from it: the event does not say on which day the
    band would hold, and an upcast must not depend on when it runs."""
    return {k: v for k, v in data.items() if k != "birth_year"}


class PersonMoved(EventPayload):
    event_type = "PersonMoved"

    person_id: str
    from_household_id: str
    to_household_id: str


class PersonResidencyChanged(EventPayload):
    event_type = "PersonResidencyChanged"

    person_id: str
    residency: Residency
    previous: Residency


class PersonTagsChanged(EventPayload):
    event_type = "PersonTagsChanged"

    person_id: str
    tags: list[str] = Field(description="the full set after the change")
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)


class PersonContactChanged(EventPayload):
    """Name or phone corrected; the clear values changed in the PII store."""

    event_type = "PersonContactChanged"

    person_id: str
    name_masked: str
    phone_masked: str | None = None


class PersonVoided(EventPayload):
    """The registration was a mistake (duplicate, wrong person); every read model drops it."""

    event_type = "PersonVoided"

    person_id: str
    reason: str


class VehicleRegistered(EventPayload):
    event_type = "VehicleRegistered"

    vehicle_id: str
    household_id: str
    plate: str = Field(examples=["吉A12345"])


# -- responsible parties and chains (包保) ----------------------------------------------------


class PartyRegistered(EventPayload):
    """Someone who answers for places or people: a cadre, a department, a police station, a
    medic. `sub` links the party to a login."""

    event_type = "PartyRegistered"

    party_id: str
    kind: Literal["person", "unit"]
    name: str = Field(description="the party's public name or title (a unit, or an official)")
    role: str
    node_id: str | None = Field(default=None, description="where the party belongs")
    phone_masked: str | None = None
    sub: str | None = None


class ChainTier(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    level: int = Field(ge=1, description="1 is the top of the chain")
    name: str = Field(examples=["领导包片"])
    party_role: str = Field(examples=["leader"])
    covers: CoverKind = "node"
    node_kinds: list[str] = Field(
        default_factory=list, description="kinds of node this tier covers (empty for persons)"
    )


class ChainTemplateDefined(EventPayload):
    event_type = "ChainTemplateDefined"

    template_id: str
    name: str
    tiers: list[ChainTier]


class ChainInstanceStarted(EventPayload):
    """A template applied to a root node for a period (普阳街道 uses baobao-4)."""

    event_type = "ChainInstanceStarted"

    instance_id: str
    template_id: str
    root_node_id: str
    valid_from: date
    valid_to: date | None = None


class ChainInstanceEnded(EventPayload):
    event_type = "ChainInstanceEnded"

    instance_id: str
    valid_to: date
    reason: str


class PartyAssigned(EventPayload):
    """A party answers for a node or a person at a tier of a chain instance (多对一 allowed)."""

    event_type = "PartyAssigned"

    assignment_id: str
    instance_id: str
    level: int
    party_id: str
    target_type: CoverKind
    target_id: str
    valid_from: date
    valid_to: date | None = None


class AssignmentEnded(EventPayload):
    event_type = "AssignmentEnded"

    assignment_id: str
    valid_to: date
    reason: str


CATALOG = Catalog(
    TOPIC,
    [
        NodeCreated,
        NodeRenamed,
        NodeMoved,
        NodeRetired,
        HouseholdRegistered,
        PersonRegistered,
        PersonMoved,
        PersonResidencyChanged,
        PersonTagsChanged,
        PersonContactChanged,
        PersonVoided,
        VehicleRegistered,
        PartyRegistered,
        ChainTemplateDefined,
        ChainInstanceStarted,
        ChainInstanceEnded,
        PartyAssigned,
        AssignmentEnded,
    ],
    upcasters={("PersonRegistered", 1): person_registered_v1_to_v2},
    earlier=[PersonRegisteredV1],
)
