"""Roster import (花名册导入), planned chunk by chunk. Pure: no I/O, no keys.

Every id an import creates is derived from what the row says (a place from its parent and
name, a person from the document's HMAC), so importing the same file again finds everything
in place and changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from services.registry.domain.people import Holder, Identity, registered
from services.registry.domain.places import Parent, label_of
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
    later rows and chunks see what this one adds."""
    out = Planned()
    for row in rows:
        parent_id, parent_path = root.id, root.path
        household_id = ""
        for kind, name in household_path(row):
            known = children.get((parent_id, kind, name))
            if known is None:
                node_id = place_id(parent_id, kind, name)
                path = f"{parent_path}.{label_of(node_id)}"
                events: list[EventPayload] = [
                    NodeCreated(
                        node_id=node_id, parent_id=parent_id, kind=kind, name=name, path=path
                    )
                ]
                if kind == "household":
                    events.append(
                        HouseholdRegistered(
                            household_id=node_id,
                            node_id=node_id,
                            door_number=name,
                            address=row.address,
                        )
                    )
                out.streams.append((node_id, "node", events))
                known = children[(parent_id, kind, name)] = (node_id, path)
            parent_id, parent_path = known
            household_id = parent_id
        out.results.append(_plan_person(row, household_id, holders, out))
    return out


def _plan_person(
    row: ImportRow, household_id: str, holders: dict[str, Holder], out: Planned
) -> RowResult:
    i = row.identity
    holder = holders.get(i.id_hmac)
    if holder is not None:
        if holder.household_id == household_id:
            return RowResult(row.row_number, "unchanged", holder.person_id, household_id)
        return RowResult(
            row.row_number,
            "error",
            holder.person_id,
            household_id,
            field="身份证号",
            reason=f"document already registered to person {holder.person_id} in household "
            f"{holder.household_id}; move that person instead",
        )
    pid = person_id(i.id_hmac)
    out.streams.append((pid, "person", [registered(pid, household_id, row.residency, row.tags, i)]))
    out.persons[pid] = i.id_hmac
    holders[i.id_hmac] = Holder(pid, household_id)
    return RowResult(row.row_number, "created", pid, household_id)
