"""Roster import (花名册导入), planned chunk by chunk. Pure: no I/O, no keys.

Every id an import creates is derived from what the row says (a place from its parent and
name, a person from the document's HMAC), so importing the same file again finds everything
in place and changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from services.registry.domain.people import (
    PERSON_STREAM,
    Holder,
    Identity,
    person_stream,
    registered,
)
from services.registry.domain.places import STREAM_TYPE, Parent, label_of, node_stream
from shared.contracts import EventPayload
from shared.contracts.registry import HouseholdRegistered, NodeCreated, Residency

# the place levels a roster row names, in order, with the kind of node each becomes
LEVELS: tuple[tuple[str, str], ...] = (
    ("compound", "compound"),
    ("building", "building"),
    ("unit", "unit"),
    ("floor", "floor"),
)

Status = Literal["created", "unchanged", "error"]


def place_id(parent_id: str, kind: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"grid-epi:place:{parent_id}/{kind}/{name}"))


def person_id(id_hmac: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"grid-epi:person:{id_hmac}"))


@dataclass(frozen=True)
class ImportRow:
    """A roster row whose document was checked and masked by the handler."""

    row_number: int
    places: tuple[tuple[str, str], ...]  # (kind, name) from the top, household last
    door_number: str
    address: str | None
    residency: Residency
    tags: tuple[str, ...]
    identity: Identity


@dataclass(frozen=True)
class RowResult:
    row: int
    status: Status
    person_id: str | None = None
    household_id: str | None = None
    field: str | None = None
    reason: str | None = None


@dataclass
class Planned:
    """What one chunk adds: events per new stream, in order, and a result per row."""

    streams: list[tuple[str, str, list[EventPayload]]] = field(default_factory=list)
    results: list[RowResult] = field(default_factory=list)
    persons: dict[str, str] = field(default_factory=dict)  # new person id -> id_hmac


def household_path(row: ImportRow) -> tuple[tuple[str, str], ...]:
    return (*row.places, ("household", row.door_number))


Children = dict[tuple[str, str, str], tuple[str, str]]
"""(parent id, kind, name) -> (node id, path) of the active places under the import root."""


def plan_chunk(
    root: Parent,
    rows: list[ImportRow],
    children: Children,
    holders: dict[str, Holder],
) -> Planned:
    """Plan a chunk. A row's places are matched by name under their parent, so rows find the
    buildings and households already registered by hand or by an earlier import; `holders`
    maps id_hmac -> the person holding that document. Both maps are updated in place, so
    later rows and chunks see what this one adds.

    Each row is decided whole: a row whose person is refused adds none of its places
    either (its household would stand empty)."""
    out = Planned()
    for row in rows:
        places = _places_of(root, row, children)
        household = places[-1]
        holder = holders.get(row.identity.id_hmac)
        if holder is not None:
            out.results.append(_already_registered(row, holder, household))
            continue
        for place in places:
            if not place.known:
                out.streams.append(
                    (node_stream(place.node_id), STREAM_TYPE, _created(place, row.address))
                )
                children[(place.parent_id, place.kind, place.name)] = (place.node_id, place.path)
        out.results.append(_registered(row, household.node_id, holders, out))
    return out


@dataclass(frozen=True)
class _Place:
    node_id: str
    path: str
    parent_id: str
    kind: str
    name: str
    known: bool  # in the tree already, or added by an earlier row


def _places_of(root: Parent, row: ImportRow, children: Children) -> list[_Place]:
    """The row's places from the top, household last, as found or as they would be created
    (ids are derived from parent and name, so this is known before anything is added)."""
    places: list[_Place] = []
    parent_id, parent_path = root.id, root.path
    for kind, name in household_path(row):
        known = children.get((parent_id, kind, name))
        if known is None:
            node_id = place_id(parent_id, kind, name)
            place = _Place(
                node_id, f"{parent_path}.{label_of(node_id)}", parent_id, kind, name, False
            )
        else:
            place = _Place(known[0], known[1], parent_id, kind, name, True)
        places.append(place)
        parent_id, parent_path = place.node_id, place.path
    return places


def _created(place: _Place, address: str | None) -> list[EventPayload]:
    events: list[EventPayload] = [
        NodeCreated(
            node_id=place.node_id,
            parent_id=place.parent_id,
            kind=place.kind,
            name=place.name,
            path=place.path,
        )
    ]
    if place.kind == "household":
        events.append(
            HouseholdRegistered(
                household_id=place.node_id,
                node_id=place.node_id,
                door_number=place.name,
                address=address,
            )
        )
    return events


def _already_registered(row: ImportRow, holder: Holder, household: _Place) -> RowResult:
    if holder.household_id == household.node_id:
        return RowResult(row.row_number, "unchanged", holder.person_id, household.node_id)
    return RowResult(
        row.row_number,
        "error",
        holder.person_id,
        household.node_id if household.known else None,
        field="身份证号",
        reason=f"document already registered to person {holder.person_id} in household "
        f"{holder.household_id}; move that person instead",
    )


def _registered(
    row: ImportRow, household_id: str, holders: dict[str, Holder], out: Planned
) -> RowResult:
    i = row.identity
    pid = person_id(i.id_hmac)
    out.streams.append(
        (
            person_stream(pid),
            PERSON_STREAM,
            [registered(pid, household_id, row.residency, row.tags, i)],
        )
    )
    out.persons[pid] = i.id_hmac
    holders[i.id_hmac] = Holder(pid, household_id)
    return RowResult(row.row_number, "created", pid, household_id)
