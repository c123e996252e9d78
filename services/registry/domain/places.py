"""Places: the tree of nodes (区 → 街道 → 社区 → 网格 → 楼栋 → 户 …). Pure decide/evolve."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.contracts import EventPayload
from shared.contracts.registry import NodeCreated
from shared.errors import DomainError, Refusal

STREAM_TYPE = "node"
NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")


def label_of(node_id: str) -> str:
    """The ltree label of a node id (labels allow only [A-Za-z0-9_]; ids have no `_`)."""
    return node_id.replace("-", "_")


@dataclass(frozen=True)
class Node:
    id: str
    parent_id: str | None
    kind: str
    name: str
    path: str
    version: int


@dataclass(frozen=True)
class CreateNode:
    node_id: str
    parent_id: str | None
    kind: str
    name: str
    parent_path: str | None  # the parent's current path, looked up by the handler


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
    if cmd.parent_id is not None and cmd.parent_path is None:
        raise DomainError(
            "unknown-parent", f"parent {cmd.parent_id} does not exist", field="parent_id"
        )
    label = label_of(cmd.node_id)
    path = f"{cmd.parent_path}.{label}" if cmd.parent_path else label
    return [
        NodeCreated(
            node_id=cmd.node_id, parent_id=cmd.parent_id, kind=cmd.kind, name=cmd.name, path=path
        )
    ]


def evolve(state: Node | None, event: EventPayload, version: int) -> Node | None:
    match event:
        case NodeCreated():
            return Node(event.node_id, event.parent_id, event.kind, event.name, event.path, version)
    return state
