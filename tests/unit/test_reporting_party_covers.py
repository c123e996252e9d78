"""What a responsibility-chain party's figures count: a minimal cover of subtrees, and within
a place asked about, the part of each target inside it."""

from __future__ import annotations

from typing import Literal

from services.reporting.party_covers import Cover, Target, minimal_cover


def target(
    target_id: str,
    path: str | None,
    party: str = "p",
    target_type: Literal["node", "person"] = "node",
    place_id: str | None = None,
) -> Target:
    return Target("i", 1, party, target_type, target_id, None, None, place_id or target_id, path)


def test_a_node_under_another_covered_node_counts_once() -> None:
    nodes = [("b3", "d.s.c.b3"), ("c", "d.s.c"), ("b9", "d.x.b9"), ("c", "d.s.c")]
    assert minimal_cover(nodes) == ["c", "b9"]


def test_a_label_prefix_is_not_an_ancestor() -> None:
    assert minimal_cover([("c1", "d.c1"), ("c10", "d.c10")]) == ["c1", "c10"]


def test_shared_targets_count_once_and_persons_once() -> None:
    ts = [
        target("b3", "d.c.b3", party="p1"),
        target("b3", "d.c.b3", party="p2"),
        target("per1", "d.c.b3.h1", party="p1", target_type="person", place_id="h1"),
        target("per1", "d.c.b3.h1", party="p2", target_type="person", place_id="h1"),
    ]
    cover = Cover.of(ts)
    assert cover.nodes == ["b3"]
    assert cover.persons == {"per1"}
    assert cover.people({"per1"}).model_dump() == {"persons": 1, "key_persons": 1}


def test_within_a_place_targets_above_count_the_place_and_others_nothing() -> None:
    within = ("c", "d.s.c")
    ts = [
        target("s", "d.s"),  # above: counts the place
        target("b3", "d.s.c.b3"),  # inside: itself, but under the place already counted
        target("other", "d.t"),  # elsewhere: nothing
        target("per9", "d.t.h9", target_type="person", place_id="h9"),  # lives elsewhere
        target("per1", None, target_type="person", place_id=None),  # not placed yet
    ]
    cover = Cover.of(ts, within)
    assert cover.nodes == ["c"]
    assert cover.persons == set()
    assert Cover.of(ts[1:3], within).nodes == ["b3"]
