"""Blind spots of a chain tier: uncovered targets are listed, 多对一 counts once."""

from __future__ import annotations

from typing import Any

from services.reporting.chains import BlindSpot, judge
from shared.contracts.registry import ChainTier

BUILDINGS = ChainTier(level=4, name="社区包楼栋", party_role="community", node_kinds=["building"])
MEDICS = ChainTier(level=6, name="医护人员包人", party_role="medic", covers="person")


def target(target_id: str, parties: int, kind: str = "building", **extra: Any) -> dict[str, Any]:
    return {
        "target_id": target_id,
        "kind": kind,
        "name": extra.get("name", target_id),
        "place_id": extra.get("place_id", target_id),
        "parties": parties,
    }


def test_a_target_with_several_parties_counts_once_and_one_with_none_is_blind() -> None:
    coverage, blind = judge("puyang-2020", BUILDINGS, [target("b-3", 2), target("b-5", 0)])
    assert (coverage.targets, coverage.covered, coverage.blind) == (2, 1, 1)
    assert (coverage.instance_id, coverage.level, coverage.tier) == ("puyang-2020", 4, "社区包楼栋")
    assert blind == [
        BlindSpot(
            instance_id="puyang-2020",
            level=4,
            tier="社区包楼栋",
            target_type="node",
            target_id="b-5",
            kind="building",
            name="b-5",
            place_id="b-5",
        )
    ]


def test_key_persons_of_a_person_tier_are_located_at_their_household() -> None:
    coverage, blind = judge(
        "gc-2020",
        MEDICS,
        [
            target("per-1", 0, "person", name="赵*", place_id="h-1"),
            target("per-2", 1, "person", name="钱*", place_id="h-2"),
        ],
    )
    assert (coverage.targets, coverage.covered, coverage.blind) == (2, 1, 1)
    [spot] = blind
    assert (spot.target_type, spot.target_id, spot.kind, spot.place_id, spot.name) == (
        "person",
        "per-1",
        "person",
        "h-1",
        "赵*",
    )


def test_a_tier_with_no_targets_has_no_blind_spots() -> None:
    coverage, blind = judge("puyang-2020", BUILDINGS, [])
    assert (coverage.targets, coverage.covered, coverage.blind, blind) == (0, 0, 0, [])
