"""Published event contracts: decoding, upcasting, naming, exported schemas."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.contracts import Catalog, EventPayload, UnknownEvent
from shared.contracts.checkpoint import CheckpointOpened, CheckpointPolicyChanged
from shared.contracts.export import contract_files, schemas
from shared.contracts.published import CATALOGS, decode
from shared.contracts.registry import NodeCreated
from shared.contracts.screening import HouseholdVisited
from shared.envelope import Envelope

DOCS = Path(__file__).resolve().parents[2] / "docs" / "contracts"


def envelope(type_: str, data: dict[str, Any], schema_version: int = 1) -> Envelope:
    now = datetime(2026, 1, 29, 8, 0, tzinfo=UTC)
    return Envelope(
        type=type_,
        schema_version=schema_version,
        stream_id="s",
        stream_type="t",
        version=1,
        occurred_at=now,
        recorded_at=now,
        data=data,
    )


def test_a_published_event_decodes_to_its_payload() -> None:
    data = {
        "node_id": "n1",
        "parent_id": None,
        "kind": "district",
        "name": "金堂县",
        "path": "n1",
        "added_later": "ignored",
    }
    payload = decode(envelope("NodeCreated", data))
    assert payload == NodeCreated(
        node_id="n1", parent_id=None, kind="district", name="金堂县", path="n1"
    )


def test_unknown_types_and_future_versions_are_refused() -> None:
    with pytest.raises(UnknownEvent):
        decode(envelope("SomethingElse", {}))
    with pytest.raises(UnknownEvent):
        decode(envelope("NodeCreated", {}, schema_version=99))


class Renamed(EventPayload):
    event_type = "Renamed"
    schema_version = 3

    title: str
    note: str


def test_old_payloads_are_upcast_step_by_step_to_the_current_schema() -> None:
    catalog = Catalog(
        "t.events",
        [Renamed],
        {
            ("Renamed", 1): lambda d: {"title": d["name"]},
            ("Renamed", 2): lambda d: {**d, "note": "none"},
        },
    )
    assert catalog.decode(envelope("Renamed", {"name": "x"}, 1)) == Renamed(title="x", note="none")
    assert catalog.decode(envelope("Renamed", {"title": "y"}, 2)) == Renamed(title="y", note="none")


def test_event_type_names_are_unique_across_topics_and_past_tense() -> None:
    names = [name for c in CATALOGS for name in c.events]
    assert len(names) == len(set(names))
    for name in names:
        assert name[0].isupper() and name.endswith(("ed", "en")), name


def test_exported_json_schemas_match_the_published_contract_files() -> None:
    """`make contracts` regenerates docs/contracts; a changed payload must be re-exported."""
    for topic, events in schemas().items():
        stored = json.loads((DOCS / f"{topic}.json").read_text())
        assert stored == json.loads(json.dumps(events, ensure_ascii=False)), topic


def test_every_generated_contract_file_is_committed_as_generated() -> None:
    """Record schemas per type and version included (`make contracts`)."""
    stored = {str(p.relative_to(DOCS)): p.read_text() for p in DOCS.rglob("*.json") if p.is_file()}
    assert stored == contract_files()


def test_envelope_round_trips_through_json() -> None:
    e = envelope("NodeCreated", {"a": "甲"})
    assert Envelope.from_json(e.to_json()) == e


def test_the_published_contract_files_keep_every_version_of_every_event() -> None:
    """A record on a topic may hold any version ever produced; an integrator needs each."""
    for catalog in CATALOGS:
        stored = json.loads((DOCS / f"{catalog.topic}.json").read_text())
        for name, cls in catalog.events.items():
            versions = {stored[name]["schema_version"], *map(int, stored[name].get("earlier", {}))}
            assert versions == set(range(1, cls.schema_version + 1)), name
            for version in range(1, cls.schema_version):
                assert (name, version) in catalog.upcasters, (name, version)


def test_a_policy_published_before_residency_types_counts_residents_and_temporary_ones() -> None:
    """Version 1 of the events carrying a gate's policy did not name residency types: they
    are read with the default, so a registered visitor is an outsider at every such gate."""
    policy = {"residents_only": True, "health_code_colours": ["green"]}
    opened = decode(
        envelope(
            "CheckpointOpened",
            {
                "checkpoint_id": "north-gate",
                "node_id": "xingfu",
                "name": "幸福小区北门",
                "level": "compound",
                "policy": policy,
            },
        )
    )
    changed = decode(
        envelope(
            "CheckpointPolicyChanged",
            {
                "checkpoint_id": "north-gate",
                "policy": policy,
                "effective_from": "2020-02-05T08:00:00+08:00",
            },
        )
    )
    for payload in (opened, changed):
        assert isinstance(payload, CheckpointOpened | CheckpointPolicyChanged)
        assert payload.policy.residents_only
        assert payload.policy.resident_types == ["resident", "temporary"]


@pytest.mark.parametrize(
    ("outcome", "signed", "screens"),
    [("screened", True, True), ("screened", False, True), ("absent", False, False),
     ("refused", False, False), ("vacant", False, False)],
)  # fmt: skip
def test_a_visit_published_before_it_said_so_screens_its_household_by_the_one_rule(
    outcome: str, signed: bool, screens: bool
) -> None:
    data = {
        "visit_id": "v1",
        "household_id": "h1",
        "method": "door",
        "outcome": outcome,
        "commitment_signed": signed,
        "visitor": "w",
    }
    visited = decode(envelope("HouseholdVisited", data))
    assert isinstance(visited, HouseholdVisited) and visited.screens_household is screens
