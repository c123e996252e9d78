"""The place tree over HTTP: moves, renames, retirement, listing, jurisdiction."""

from __future__ import annotations

from typing import Any

from shared.testing import eventually
from tests.e2e.conftest import Stack
from tests.integration.helpers import read_topic

TREE = [
    ("root", None, "district", "区"),
    ("street-a", "root", "street", "甲街道"),
    ("street-b", "root", "street", "乙街道"),
    ("comm", "street-a", "community", "幸福社区"),
    ("g1", "comm", "grid", "第一网格"),
    ("g2", "comm", "grid", "第二网格"),
    ("b1", "g1", "building", "1栋"),
]


async def grow(stack: Stack, tree: list[tuple[str, str | None, str, str]] = TREE) -> None:
    admin = stack.token("admin")
    for node_id, parent, kind, name in tree:
        r = await stack.registry.post("/v1/nodes", headers=admin, json={
            "id": node_id, "parent_id": parent, "kind": kind, "name": name})
        assert r.status_code == 201, r.text


async def node(stack: Stack, node_id: str) -> dict[str, Any]:
    r = await stack.registry.get(f"/v1/nodes/{node_id}", headers=stack.token("admin"))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_moving_a_subtree_moves_every_descendant_everywhere(stack: Stack) -> None:
    await grow(stack)
    r = await stack.registry.post("/v1/nodes/comm/move", json={"parent_id": "street-b"},
                                  headers=stack.token("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "root.street_b.comm"
    assert (await node(stack, "b1"))["path"] == "root.street_b.comm.g1.b1"
    assert (await node(stack, "g2"))["path"] == "root.street_b.comm.g2"

    async def reporting_follows() -> bool:
        r = await stack.reporting.get("/v1/nodes/street-b/summary", headers=stack.token("admin"))
        return r.status_code == 200 and r.json()["descendants_by_kind"] == {
            "community": 1, "grid": 2, "building": 1}

    await eventually(reporting_follows, message="reporting's tree did not follow the move")
    a = await stack.reporting.get("/v1/nodes/street-a/summary", headers=stack.token("admin"))
    assert a.json()["descendants_by_kind"] == {}

    events = await read_topic(stack.kafka_bootstrap, stack.settings.topic("registry.events"),
                              expected=len(TREE) + 1)
    [moved] = [e for e in events if e.type == "NodeMoved"]
    assert moved.data == {"node_id": "comm", "old_parent_id": "street-a",
                          "new_parent_id": "street-b", "old_path": "root.street_a.comm",
                          "new_path": "root.street_b.comm"}


async def test_a_place_cannot_move_under_its_own_descendant(stack: Stack) -> None:
    await grow(stack)
    r = await stack.registry.post("/v1/nodes/comm/move", json={"parent_id": "b1"},
                                  headers=stack.token("admin"))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.parent_id"


async def test_rename_honours_if_match(stack: Stack) -> None:
    await grow(stack)
    admin = stack.token("admin")
    stale = await stack.registry.post("/v1/nodes/g1/rename", json={"name": "一网格"},
                                      headers={**admin, "If-Match": '"7"'})
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    ok = await stack.registry.post("/v1/nodes/g1/rename", json={"name": "一网格"},
                                   headers={**admin, "If-Match": '"1"'})
    assert ok.status_code == 200 and ok.headers["etag"] == '"2"'
    assert ok.json()["name"] == "一网格"


async def test_retiring_a_place_with_children_is_refused_until_they_are_gone(
    stack: Stack,
) -> None:
    await grow(stack)
    admin = stack.token("admin")
    busy = await stack.registry.post("/v1/nodes/g1/retire", json={"reason": "合并"},
                                     headers=admin)
    assert busy.status_code == 409
    assert (await stack.registry.post("/v1/nodes/b1/retire", json={"reason": "拆除"},
                                      headers=admin)).status_code == 200
    assert (await stack.registry.post("/v1/nodes/g1/retire", json={"reason": "合并"},
                                      headers=admin)).json()["retired"] is True
    orphan = await stack.registry.post("/v1/nodes", headers=admin, json={
        "parent_id": "g1", "kind": "building", "name": "2栋"})
    assert orphan.status_code == 422
    listed = await stack.registry.get("/v1/nodes/comm/children", headers=admin)
    assert [n["id"] for n in listed.json()["items"]] == ["g2"]


async def test_listing_under_a_node_by_level_and_kind_pages_through_everything(
    stack: Stack,
) -> None:
    await grow(stack)
    admin = stack.token("admin")
    many = [(f"h{i:02d}", "b1", "household", f"{i}号") for i in range(25)]
    await grow(stack, many)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"under": "root", "kind": "household", "limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = (await stack.registry.get("/v1/nodes", params=params, headers=admin)).json()
        seen += [n["id"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [h[0] for h in many]
    level2 = await stack.registry.get("/v1/nodes", params={"under": "street-a", "level": 2},
                                      headers=admin)
    assert [n["id"] for n in level2.json()["items"]] == ["g1", "g2"]
    bad = await stack.registry.get("/v1/nodes", params={"under": "root", "cursor": "%%%"},
                                   headers=admin)
    assert bad.status_code == 422


async def test_a_registrar_cannot_read_or_change_another_street(stack: Stack) -> None:
    await grow(stack)
    clerk = stack.token("registrar", scope=["street-a"])
    assert (await stack.registry.post("/v1/nodes/comm/move", json={"parent_id": "street-b"},
                                      headers=clerk)).status_code == 403
    assert (await stack.registry.post("/v1/nodes/street-b/rename", json={"name": "x"},
                                      headers=clerk)).status_code == 403
    assert (await stack.registry.get("/v1/nodes", params={"under": "street-b"},
                                     headers=clerk)).status_code == 403
    assert (await stack.registry.get("/v1/nodes/comm/children",
                                     headers=clerk)).status_code == 200
