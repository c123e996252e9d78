"""Events published by the registry on `registry.events`: places, people, parties, chains."""

from __future__ import annotations

from pydantic import Field

from shared.contracts import Catalog, EventPayload

TOPIC = "registry.events"


class NodeCreated(EventPayload):
    """A place (区/街道/社区/网格/楼栋/户 …) was added to the tree."""

    event_type = "NodeCreated"
    schema_version = 1

    node_id: str
    parent_id: str | None
    kind: str
    name: str
    path: str = Field(description="ltree path of labels derived from node ids, root first")


CATALOG = Catalog(TOPIC, [NodeCreated])
