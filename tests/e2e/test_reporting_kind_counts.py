"""A place's `descendants_by_kind` and `children` come from counts kept by the places
consumer; after creations, retirements and a subtree move, in the registry's order or with a
child arriving before its parent's move, and after the migration that fills them from an
existing tree, they equal a GROUP BY over every place under the node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from services.reporting import views
from services.reporting.projections import PLACES
from shared import places
from shared.db import create_pool
from shared.envelope import Envelope
from shared.migrations import upgrade, upgrade_async
from shared.projection import Projection
from shared.testing import Infra, drop_schema, eventually, unique
from tests.e2e.conftest import Stack
from tests.e2e.test_places import grow

TREE = [
    ("root", None, "district", "区"),
    ("street-a", "root", "street", "甲街道"),
    ("street-b", "root", "street", "乙街道"),
    ("comm", "street-a", "community", "幸福社区"),
    ("g1", "comm", "grid", "第一网格"),
    ("g2", "comm", "grid", "第二网格"),
    ("b1", "g1", "building", "1栋"),
    ("b2", "g2", "building", "2栋"),
    ("h1", "b1", "household", "101"),
    ("h2", "b1", "household", "102"),
    ("h3", "b2", "household", "201"),
]


async def grouped(conn: Any, node_id: str) -> tuple[int, dict[str, int]]:
    """(active children, active places under the node by kind) from a scan of `places`."""
    rows = await conn.fetch(
        "SELECT kind, count(*) AS n, count(*) FILTER (WHERE parent_id = $1) AS direct"
        " FROM places WHERE path <@ (SELECT path FROM places WHERE id = $1) AND id <> $1"
        " AND NOT retired GROUP BY kind",
        node_id,
    )
    return sum(r["direct"] for r in rows), {r["kind"]: r["n"] for r in rows if r["n"]}


async def assert_counts_match_the_tree(conn: Any) -> None:
    for node_id in [r["id"] for r in await conn.fetch("SELECT id FROM places ORDER BY id")]:
        summary = await views.place_summary(conn, node_id)
        assert summary is not None
        assert (summary.children, summary.descendants_by_kind) == await grouped(conn, node_id), (
            node_id
        )


async def test_counts_follow_creation_retirement_and_a_subtree_move(stack: Stack) -> None:
    await grow(stack, TREE)
    admin = stack.token("admin")
    moved = await stack.registry.post(
        "/v1/nodes/comm/move", json={"parent_id": "street-b"}, headers=admin
    )
    assert moved.status_code == 200, moved.text
    retired = await stack.registry.post(
        "/v1/nodes/h2/retire", json={"reason": "拆除"}, headers=admin
    )
    assert retired.status_code == 200, retired.text
    await grow(stack, [("b3", "g1", "building", "3栋"), ("h4", "b3", "household", "301")])

    async def street_b() -> dict[str, Any] | None:
        r = await stack.reporting.get("/v1/nodes/street-b/summary", headers=admin)
        body: dict[str, Any] = r.json()
        return (
            body
            if r.status_code == 200
            and body["descendants_by_kind"]
            == {"building": 3, "community": 1, "grid": 2, "household": 3}
            else None
        )

    body = await eventually(street_b, message="reporting's counts did not follow the tree")
    assert body["children"] == 1
    root = (await stack.reporting.get("/v1/nodes/root/summary", headers=admin)).json()
    assert (root["children"], root["descendants_by_kind"]) == (
        2,
        {"building": 3, "community": 1, "grid": 2, "household": 3, "street": 2},
    )
    street_a = (await stack.reporting.get("/v1/nodes/street-a/summary", headers=admin)).json()
    assert (street_a["children"], street_a["descendants_by_kind"]) == (0, {})
    b1 = (await stack.reporting.get("/v1/nodes/b1/summary", headers=admin)).json()
    assert (b1["children"], b1["descendants_by_kind"]) == (1, {"household": 1})
    async with stack.apps["reporting"].state.pool.acquire() as conn:
        await assert_counts_match_the_tree(conn)


# -- the projection on its own: arrival orders the registry's order does not show -----------

AT = datetime(2022, 4, 1, tzinfo=UTC)


def node_event(type_: str, node_id: str, version: int, **data: Any) -> Envelope:
    return Envelope(
        type=type_,
        schema_version=1,
        stream_id=node_id,
        stream_type="node",
        version=version,
        occurred_at=AT,
        recorded_at=AT,
        node_id=node_id,
        data={"node_id": node_id, **data},
    )


def created(node_id: str, parent: str | None, kind: str, path: str) -> Envelope:
    return node_event(
        "NodeCreated", node_id, 1, parent_id=parent, kind=kind, name=node_id, path=path
    )


@pytest.fixture
async def schema(infra: Infra) -> AsyncIterator[str]:
    name = unique("kind_counts")
    try:
        yield name
    finally:
        await drop_schema(infra.pg_dsn, name)


async def test_a_child_arriving_before_its_parents_move_is_counted_once(
    infra: Infra, schema: str
) -> None:
    # registry: comm created under a, moved to b, then x created under comm (at root.b.comm.x);
    # reporting gets x before comm itself, so x takes its path from its own event
    await upgrade_async("reporting", infra.pg_dsn, schema)
    pool = await create_pool(infra.pg_dsn, schema)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await PLACES(
                conn,
                [
                    created("root", None, "district", "root"),
                    created("a", "root", "street", "root.a"),
                    created("b", "root", "street", "root.b"),
                    created("x", "comm", "grid", "root.b.comm.x"),
                    created("comm", "a", "community", "root.a.comm"),
                    node_event(
                        "NodeMoved",
                        "comm",
                        2,
                        old_parent_id="a",
                        new_parent_id="b",
                        old_path="root.a.comm",
                        new_path="root.b.comm",
                    ),
                ],
            )
            await PLACES(conn, [node_event("NodeRetired", "x", 2, reason="合并")])
            await PLACES(conn, [created("y", "comm", "grid", "root.b.comm.y")])
        async with pool.acquire() as conn:
            await assert_counts_match_the_tree(conn)
            root = await views.place_summary(conn, "root")
        assert root is not None
        assert root.descendants_by_kind == {"community": 1, "grid": 1, "street": 2}
    finally:
        await pool.close()


async def test_a_child_arriving_after_a_move_and_before_its_parent_follows_the_move(
    infra: Infra, schema: str
) -> None:
    # registry: comm, g and h created under a, then comm moved to b; reporting gets comm and
    # its move first, then h (parent g unknown, its event says root.a.comm.g.h), then g
    await upgrade_async("reporting", infra.pg_dsn, schema)
    pool = await create_pool(infra.pg_dsn, schema)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await PLACES(
                conn,
                [
                    created("root", None, "district", "root"),
                    created("a", "root", "street", "root.a"),
                    created("b", "root", "street", "root.b"),
                    created("comm", "a", "community", "root.a.comm"),
                    node_event(
                        "NodeMoved",
                        "comm",
                        2,
                        old_parent_id="a",
                        new_parent_id="b",
                        old_path="root.a.comm",
                        new_path="root.b.comm",
                    ),
                ],
            )
            await PLACES(conn, [created("h", "g", "household", "root.a.comm.g.h")])
            await PLACES(conn, [created("g", "comm", "grid", "root.a.comm.g")])
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT path::text FROM places WHERE id = 'h'") == (
                "root.b.comm.g.h"
            )
            await assert_counts_match_the_tree(conn)
            a = await views.place_summary(conn, "a")
            b = await views.place_summary(conn, "b")
        assert a is not None and a.descendants_by_kind == {}
        assert b is not None
        assert b.descendants_by_kind == {"community": 1, "grid": 1, "household": 1}
    finally:
        await pool.close()


async def test_the_upgrade_counts_the_places_folded_before_it(infra: Infra, schema: str) -> None:
    await asyncio.to_thread(upgrade, "reporting", infra.pg_dsn, schema, "0005")
    pool = await create_pool(infra.pg_dsn, schema)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await Projection(places.HANDLERS)(
                conn,
                [  # the places consumer before 0006
                    created("root", None, "district", "root"),
                    created("a", "root", "street", "root.a"),
                    created("comm", "a", "community", "root.a.comm"),
                    created("g", "comm", "grid", "root.a.comm.g"),
                    created("gone", "comm", "grid", "root.a.comm.gone"),
                    node_event("NodeRetired", "gone", 2, reason="合并"),
                ],
            )
        await upgrade_async("reporting", infra.pg_dsn, schema)
        async with pool.acquire() as conn:
            await assert_counts_match_the_tree(conn)
            root = await views.place_summary(conn, "root")
        assert root is not None
        assert root.descendants_by_kind == {"community": 1, "grid": 1, "street": 1}
    finally:
        await pool.close()
