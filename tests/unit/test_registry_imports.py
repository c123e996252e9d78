"""Roster import planning: each row is decided whole, places and person together."""

from __future__ import annotations

from services.registry.domain.imports import Children, ImportRow, plan_chunk
from services.registry.domain.people import Holder, Identity
from services.registry.domain.places import Parent

COMMUNITY = Parent("comm", "root.comm", retired=False)


def row(number: int, door: str, id_hmac: str) -> ImportRow:
    return ImportRow(
        row_number=number,
        places=(("building", "1栋"),),
        door_number=door,
        address=None,
        residency="resident",
        tags=(),
        identity=Identity(
            document_type="resident_id",
            document_masked="110105********1237",
            id_hmac=id_hmac,
            name_masked="张*",
            phone_masked=None,
            age_band=None,
            age_band_on=None,
            sex=None,
        ),
    )


def test_a_new_person_brings_the_places_of_the_row() -> None:
    children: Children = {}
    planned = plan_chunk(COMMUNITY, [row(3, "301", "h-zhang")], children, {})
    assert [(r.row, r.status) for r in planned.results] == [(3, "created")]
    kinds = [stream_type for _, stream_type, _ in planned.streams]
    assert kinds == ["node", "node", "person"]  # building, household, then the person
    assert len(children) == 2


def test_a_refused_person_adds_no_household_and_no_building() -> None:
    children: Children = {}
    holders = {"h-zhang": Holder("p-zhang", "elsewhere")}
    planned = plan_chunk(COMMUNITY, [row(4, "302", "h-zhang")], children, holders)
    (result,) = planned.results
    assert (result.status, result.field, result.household_id) == ("error", "身份证号", None)
    assert "already registered" in (result.reason or "")
    assert planned.streams == [] and children == {}


def test_a_later_row_of_the_same_household_finds_it_and_a_repeat_is_unchanged() -> None:
    children: Children = {}
    holders: dict[str, Holder] = {}
    planned = plan_chunk(
        COMMUNITY,
        [row(3, "301", "h-zhang"), row(4, "301", "h-li"), row(5, "301", "h-zhang")],
        children,
        holders,
    )
    assert [r.status for r in planned.results] == ["created", "created", "unchanged"]
    assert len({r.household_id for r in planned.results}) == 1
    assert [t for _, t, _ in planned.streams] == ["node", "node", "person", "person"]
