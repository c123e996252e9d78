"""Places, as given / when / then."""

from __future__ import annotations

import pytest

from services.registry.config import DEFAULT_NODE_KINDS
from services.registry.domain.places import CreateNode, Node, decide_create, evolve, label_of
from shared.contracts.registry import NodeCreated
from shared.errors import DomainError, Refusal


def create(
    node_id: str = "sanxi",
    parent: str | None = "jintang",
    kind: str = "township",
    name: str = "三溪镇",
    parent_path: str | None = "jintang",
) -> CreateNode:
    return CreateNode(node_id, parent, kind, name, parent_path)


def test_a_new_place_is_created_under_its_parents_path() -> None:
    assert decide_create(None, create(), DEFAULT_NODE_KINDS) == [
        NodeCreated(
            node_id="sanxi",
            parent_id="jintang",
            kind="township",
            name="三溪镇",
            path="jintang.sanxi",
        )
    ]


def test_a_root_has_its_own_label_as_path() -> None:
    [event] = decide_create(
        None, create("d-1", None, "district", "金堂县", None), DEFAULT_NODE_KINDS
    )
    assert event.path == "d_1"


def test_creating_the_same_place_again_changes_nothing() -> None:
    existing = Node("sanxi", "jintang", "township", "三溪镇", "jintang.sanxi", 1)
    assert decide_create(existing, create(), DEFAULT_NODE_KINDS) == []


def test_reusing_an_id_for_another_place_is_a_conflict() -> None:
    existing = Node("sanxi", "jintang", "township", "三溪镇", "jintang.sanxi", 1)
    with pytest.raises(DomainError) as info:
        decide_create(existing, create(name="别的镇"), DEFAULT_NODE_KINDS)
    assert info.value.refusal is Refusal.CONFLICT


@pytest.mark.parametrize(
    ("cmd", "field"),
    [
        (create(kind="planet"), "kind"),
        (create(parent_path=None), "parent_id"),
        (create(node_id="bad_id"), "id"),
    ],
)
def test_invalid_places_are_refused_naming_the_field(cmd: CreateNode, field: str) -> None:
    with pytest.raises(DomainError) as info:
        decide_create(None, cmd, DEFAULT_NODE_KINDS)
    assert info.value.field == field and info.value.refusal is Refusal.INVALID


def test_labels_are_injective_over_valid_ids() -> None:
    assert label_of("a-b") != label_of("ab") and label_of("a-b") == "a_b"


def test_evolve_builds_the_node() -> None:
    [event] = decide_create(None, create(), DEFAULT_NODE_KINDS)
    assert evolve(None, event, 1) == Node(
        "sanxi", "jintang", "township", "三溪镇", "jintang.sanxi", 1
    )
