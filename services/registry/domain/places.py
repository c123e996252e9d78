"""Places: the tree of nodes (区 → 街道 → 社区 → 网格 → 楼栋 → 户 …). Pure decide/evolve.

A node's id is its identity; its path (root first, one ltree label per node, derived from the
id) is where it sits now, and changes when it or an ancestor moves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from shared.contracts import EventPayload
from shared.contracts.registry import NodeCreated, NodeMoved, NodeRenamed, NodeRetired
from shared.errors import DomainError, Refusal

STREAM_TYPE = "node"
NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")


def node_stream(node_id: str) -> str:
    """A place's stream (households included: a household is a node)."""
    return f"{STREAM_TYPE}:{node_id}"


def label_of(node_id: str) -> str:
    """The ltree label of a node id (labels allow only [A-Za-z0-9_]; ids have no `_`)."""
    return node_id.replace("-", "_")


@dataclass(frozen=True)
class Node:
    """A place as its own events leave it; `path` is current only until an ancestor moves,
    so decisions take the current path from the tree (`MoveNode.node_path`)."""

    id: str
    parent_id: str | None
    kind: str
    name: str
    path: str
    version: int
    retired: bool = False


@dataclass(frozen=True)
class Parent:
    """What a decision needs to know about a prospective parent."""

    id: str
    path: str
    retired: bool


@dataclass(frozen=True)
class CreateNode:
    node_id: str
    parent_id: str | None
    kind: str
    name: str
    parent: Parent | None  # the parent as it is now, looked up by the handler


@dataclass(frozen=True)
class RenameNode:
    name: str


@dataclass(frozen=True)
class MoveNode:
    node_path: str  # where the node sits now (an ancestor may have moved since its own events)
    new_parent: Parent | None  # None: the named parent does not exist


@dataclass(frozen=True)
class RetireNode:
    reason: str
    active_children: int
    households: int  # active households strictly under the node
    persons: int  # registered persons living in it or under it


def _existing(state: Node | None, node_id: str = "") -> Node:
    if state is None:
        raise DomainError(
            "unknown-node", f"node {node_id} does not exist", refusal=Refusal.NOT_FOUND
        )
    if state.retired:
        raise DomainError("node-retired", f"node {state.id} is retired", refusal=Refusal.CONFLICT)
    return state


def decide_create(
    state: Node | None, cmd: CreateNode, kinds: tuple[str, ...]
) -> list[EventPayload]:
    if state is not None:
        if (state.parent_id, state.kind, state.name) == (cmd.parent_id, cmd.kind, cmd.name):
            return []  # the same creation again: nothing new happened
        raise DomainError(
            "node-exists",
            f"node {cmd.node_id} already exists",
            refusal=Refusal.CONFLICT,
            field="id",
        )
    if not NODE_ID.match(cmd.node_id):
        raise DomainError("invalid-id", "id must be 1-63 letters, digits or dashes", field="id")
    if cmd.kind not in kinds:
        raise DomainError("unknown-kind", f"kind must be one of {', '.join(kinds)}", field="kind")
    if cmd.parent_id is not None:
        if cmd.parent is None:
            raise DomainError(
                "unknown-parent", f"parent {cmd.parent_id} does not exist", field="parent_id"
            )
        if cmd.parent.retired:
            raise DomainError(
                "parent-retired", f"parent {cmd.parent_id} is retired", field="parent_id"
            )
    label = label_of(cmd.node_id)
    path = f"{cmd.parent.path}.{label}" if cmd.parent else label
    return [
        NodeCreated(
            node_id=cmd.node_id, parent_id=cmd.parent_id, kind=cmd.kind, name=cmd.name, path=path
        )
    ]


def decide_rename(state: Node | None, cmd: RenameNode) -> list[EventPayload]:
    node = _existing(state)
    if node.name == cmd.name:
        return []
    return [NodeRenamed(node_id=node.id, name=cmd.name, previous_name=node.name)]


def decide_move(state: Node | None, cmd: MoveNode) -> list[EventPayload]:
    node = _existing(state)
    if node.parent_id is None:
        raise DomainError("root-immovable", "a root node cannot be moved", field="node_id")
    target = cmd.new_parent
    if target is None:
        raise DomainError("unknown-parent", "the new parent does not exist", field="parent_id")
    if target.retired:
        raise DomainError("parent-retired", f"parent {target.id} is retired", field="parent_id")
    if target.id == node.parent_id:
        return []
    if target.path == cmd.node_path or target.path.startswith(cmd.node_path + "."):
        raise DomainError(
            "move-into-own-subtree",
            f"{target.id} lies under {node.id}; a place cannot move under itself",
            field="parent_id",
        )
    new_path = f"{target.path}.{label_of(node.id)}"
    return [
        NodeMoved(
            node_id=node.id,
            old_parent_id=node.parent_id,
            new_parent_id=target.id,
            old_path=cmd.node_path,
            new_path=new_path,
        )
    ]


def decide_retire(state: Node | None, cmd: RetireNode) -> list[EventPayload]:
    if state is not None and state.retired:
        return []
    node = _existing(state)
    if cmd.households or cmd.persons:
        raise DomainError(
            "node-occupied",
            f"node {node.id} still has {_counted(cmd.households, 'active household')} and "
            f"{_counted(cmd.persons, 'registered person')} under it; move them out or retire "
            "and void them first",
            refusal=Refusal.CONFLICT,
        )
    if cmd.active_children:
        raise DomainError(
            "node-has-children",
            f"node {node.id} still has {cmd.active_children} active children; "
            "move or retire them first",
            refusal=Refusal.CONFLICT,
        )
    return [NodeRetired(node_id=node.id, reason=cmd.reason)]


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def evolve(state: Node | None, event: EventPayload, version: int) -> Node | None:
    match event:
        case NodeCreated():
            return Node(event.node_id, event.parent_id, event.kind, event.name, event.path, version)
        case NodeRenamed() if state is not None:
            return replace(state, name=event.name, version=version)
        case NodeMoved() if state is not None:
            return replace(
                state, parent_id=event.new_parent_id, path=event.new_path, version=version
            )
        case NodeRetired() if state is not None:
            return replace(state, retired=True, version=version)
    return state if state is None else replace(state, version=version)


def moved_path(path: str, old_prefix: str, new_prefix: str) -> str:
    """Where a node at `path` sits after the subtree at `old_prefix` moved to `new_prefix`."""
    if path == old_prefix:
        return new_prefix
    if path.startswith(old_prefix + "."):
        return new_prefix + path[len(old_prefix) :]
    return path
