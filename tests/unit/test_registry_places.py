"""Places, as given / when / then."""

from __future__ import annotations

import pytest

from services.registry.config import DEFAULT_NODE_KINDS
from services.registry.domain.places import (
    CreateNode,
    MoveNode,
    Node,
    Parent,
    RenameNode,
    RetireNode,
    decide_create,
    decide_move,
    decide_rename,
    decide_retire,
    evolve,
    label_of,
    moved_path,
)
from shared.contracts.registry import NodeCreated, NodeMoved, NodeRenamed, NodeRetired
from shared.errors import DomainError, Refusal

JINTANG = Parent("jintang", "jintang", retired=False)
SANXI = Node("sanxi", "jintang", "township", "三溪镇", "jintang.sanxi", 1)


def create(
    node_id: str = "sanxi",
    parent_id: str | None = "jintang",
    kind: str = "township",
    name: str = "三溪镇",
    parent: Parent | None = JINTANG,
) -> CreateNode:
    return CreateNode(node_id, parent_id, kind, name, parent)


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
    assert isinstance(event, NodeCreated) and event.path == "d_1"


def test_creating_the_same_place_again_changes_nothing() -> None:
    assert decide_create(SANXI, create(), DEFAULT_NODE_KINDS) == []


def test_reusing_an_id_for_another_place_is_a_conflict() -> None:
    with pytest.raises(DomainError) as info:
        decide_create(SANXI, create(name="别的镇"), DEFAULT_NODE_KINDS)
    assert info.value.refusal is Refusal.CONFLICT


@pytest.mark.parametrize(
    ("cmd", "field"),
    [
        (create(kind="planet"), "kind"),
        (create(parent=None), "parent_id"),
        (create(parent=Parent("jintang", "jintang", retired=True)), "parent_id"),
        (create(node_id="bad_id"), "id"),
    ],
)
def test_invalid_places_are_refused_naming_the_field(cmd: CreateNode, field: str) -> None:
    with pytest.raises(DomainError) as info:
        decide_create(None, cmd, DEFAULT_NODE_KINDS)
    assert info.value.field == field and info.value.refusal is Refusal.INVALID


def test_renaming_records_the_old_name_and_the_same_name_is_a_no_op() -> None:
    assert decide_rename(SANXI, RenameNode("三溪镇人民政府")) == [
        NodeRenamed(node_id="sanxi", name="三溪镇人民政府", previous_name="三溪镇")
    ]
    assert decide_rename(SANXI, RenameNode("三溪镇")) == []


def test_moving_a_place_names_the_old_and_new_subtree_paths() -> None:
    community = Node("c1", "sanxi", "community", "社区", "jintang.sanxi.c1", 1)
    target = Parent("guancang", "jintang.guancang", retired=False)
    assert decide_move(community, MoveNode("jintang.sanxi.c1", target)) == [
        NodeMoved(
            node_id="c1",
            old_parent_id="sanxi",
            new_parent_id="guancang",
            old_path="jintang.sanxi.c1",
            new_path="jintang.guancang.c1",
        )
    ]


def test_a_place_cannot_move_under_itself_or_its_descendants() -> None:
    with pytest.raises(DomainError) as info:
        decide_move(SANXI, MoveNode("jintang.sanxi", Parent("sanxi", "jintang.sanxi", False)))
    assert info.value.field == "parent_id"
    with pytest.raises(DomainError):
        decide_move(SANXI, MoveNode("jintang.sanxi", Parent("g1", "jintang.sanxi.g1", False)))


def test_moving_to_the_current_parent_is_a_no_op_and_roots_do_not_move() -> None:
    assert decide_move(SANXI, MoveNode("jintang.sanxi", JINTANG)) == []
    root = Node("jintang", None, "district", "金堂县", "jintang", 1)
    with pytest.raises(DomainError):
        decide_move(root, MoveNode("jintang", JINTANG))


def test_retiring_needs_the_children_gone_first_and_twice_is_a_no_op() -> None:
    with pytest.raises(DomainError) as info:
        decide_retire(SANXI, RetireNode("合并", active_children=2, households=0, persons=0))
    assert info.value.refusal is Refusal.CONFLICT
    assert decide_retire(SANXI, RetireNode("合并", 0, 0, 0)) == [
        NodeRetired(node_id="sanxi", reason="合并")
    ]
    retired = evolve(SANXI, NodeRetired(node_id="sanxi", reason="合并"), 2)
    assert retired is not None and retired.retired
    assert decide_retire(retired, RetireNode("合并", 0, 0, 0)) == []
    with pytest.raises(DomainError):
        decide_rename(retired, RenameNode("x"))


@pytest.mark.parametrize(
    ("households", "persons", "named"),
    [
        (0, 3, "0 active households and 3 registered persons"),
        (1, 1, "1 active household and 1 registered person"),
    ],
)
def test_a_place_people_live_in_is_not_retired(households: int, persons: int, named: str) -> None:
    household = Node("h301", "b3", "household", "301", "jintang.sanxi.b3.h301", 2)
    with pytest.raises(DomainError) as info:
        decide_retire(household, RetireNode("拆除", 0, households, persons))
    assert (info.value.refusal, info.value.code) == (Refusal.CONFLICT, "node-occupied")
    assert named in str(info.value)


def test_an_unknown_place_is_not_found() -> None:
    with pytest.raises(DomainError) as info:
        decide_rename(None, RenameNode("x"))
    assert info.value.refusal is Refusal.NOT_FOUND


def test_labels_are_injective_over_valid_ids() -> None:
    assert label_of("a-b") != label_of("ab") and label_of("a-b") == "a_b"


def test_paths_under_a_moved_subtree_follow_it() -> None:
    assert moved_path("a.b.c", "a.b", "x.b") == "x.b.c"
    assert moved_path("a.b", "a.b", "x.b") == "x.b"
    assert moved_path("a.bc", "a.b", "x.b") == "a.bc"
