"""The bad-input corpus against the four services served by uvicorn: control characters in
bodies, queries and paths, crafted cursors, huge integers, streamed bodies over the limit,
hostile roster rows and retiring an inhabited place. Every case answers its 4xx problem
document (never a 500), and one client's keep-alive connection to each service survives
the whole run (a 500 made the server drop it)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from shared.identity import resident_id_check_digit
from shared.testing import Infra, eventually
from tests.e2e.conftest import Stack, start_stack
from tests.e2e.test_places import grow

ROSTER_LIMIT = 1024 * 1024
BIG = 7 * 1024 * 1024


def forged(position: dict[str, Any]) -> str:
    """A cursor as a caller would craft it: the unsigned base64 of a position."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def resident_id(body: str) -> str:
    return body + resident_id_check_digit(body)


@dataclass
class Served:
    """The stack's apps behind real HTTP servers, and one client for the whole run."""

    stack: Stack
    urls: dict[str, str]
    client: httpx.AsyncClient
    peers: dict[str, Any] = dataclasses.field(default_factory=dict)
    dropped: list[str] = dataclasses.field(default_factory=list)

    async def call(self, service: str, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self.stack.token("admin"), **kw.pop("headers", {})}
        r = await self.client.request(method, self.urls[service] + path, headers=headers, **kw)
        try:
            peer = r.extensions["network_stream"].get_extra_info("client_addr")
        except OSError:  # the server closed the connection after answering
            peer = None
        if peer is None or self.peers.setdefault(service, peer) != peer:
            self.dropped.append(f"{method} {path} -> {r.status_code}")
            self.peers.pop(service, None)
        return r


@asynccontextmanager
async def serve(apps: dict[str, FastAPI]) -> AsyncIterator[dict[str, str]]:
    """Each app behind its own uvicorn server on a free port (lifespans run by the stack)."""
    servers = {
        n: uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
        )
        for n, app in apps.items()
    }
    tasks = [asyncio.create_task(s.serve()) for s in servers.values()]

    async def started() -> bool:
        return all(s.started for s in servers.values())

    try:
        await eventually(started, timeout=20, message="servers did not start")
        yield {
            n: f"http://127.0.0.1:{s.servers[0].sockets[0].getsockname()[1]}"
            for n, s in servers.items()
        }
    finally:
        for s in servers.values():
            s.should_exit = True
        await asyncio.gather(*tasks)


@pytest.fixture
async def served(infra: Infra) -> AsyncIterator[Served]:
    names = ["registry", "screening", "checkpoint", "reporting"]
    async for stack in start_stack(infra, names, registry={"max_import_bytes": ROSTER_LIMIT}):
        async with serve(stack.apps) as urls, httpx.AsyncClient(timeout=60) as client:
            yield Served(stack, urls, client)


@dataclass(frozen=True)
class Case:
    service: str
    method: str
    path: str
    status: int
    names: str | None = None  # the field the problem names, when it names one
    kw: dict[str, Any] = dataclasses.field(default_factory=dict)


def json_body(text: str) -> dict[str, Any]:
    """A body sent byte for byte (for escapes such as a lone surrogate)."""
    return {"content": text.encode(), "headers": {"Content-Type": "application/json"}}


CONTROL_CHARACTERS = [
    Case(
        "registry",
        "POST",
        "/v1/nodes",
        422,
        "body.name",
        {"json": {"parent_id": "root", "kind": "grid", "name": "一\x00网格"}},
    ),
    Case(
        "registry",
        "POST",
        "/v1/nodes",
        422,
        "body.name",
        {"json": {"parent_id": "root", "kind": "grid", "name": "一网格\x7f"}},
    ),
    Case(
        "registry",
        "POST",
        "/v1/nodes",
        422,
        "body.name",
        json_body('{"parent_id": "root", "kind": "grid", "name": "\\ud800"}'),
    ),
    Case(
        "registry",
        "POST",
        "/v1/households",
        422,
        "body.door_number",
        {"json": {"parent_id": "b1", "door_number": "30\x001"}},
    ),
    Case("registry", "GET", "/v1/nodes?under=root&kind=grid%00", 422, "query.kind"),
    Case("registry", "GET", "/v1/pii-access-log?actor=%01x", 422, "query.actor"),
    Case("registry", "GET", "/v1/nodes/b%001", 422, "path.node_id"),
    Case("registry", "GET", "/v1/persons/p%00", 422, "path.person_id"),
    Case("screening", "GET", "/v1/visits/v%00", 422, "path.visit_id"),
    Case("screening", "GET", "/v1/key-persons?node_id=comm%00", 422, "query.node_id"),
    Case(
        "screening",
        "POST",
        "/v1/visits:batch",
        422,
        "body.items.0.household_id",
        {
            "json": {
                "items": [
                    {"id": "v1", "household_id": "h\x00", "channel": "door", "outcome": "screened"}
                ]
            }
        },
    ),
    Case("checkpoint", "GET", "/v1/crossings/c%00", 422, "path.crossing_id"),
    Case(
        "checkpoint",
        "POST",
        "/v1/crossings:batch",
        422,
        "body.items.0.checkpoint_id",
        {"json": {"items": [{"id": "c1", "checkpoint_id": "gate\x00"}]}},
    ),
    Case(
        "checkpoint",
        "POST",
        "/v1/checkpoints",
        422,
        "body.policy.temperature_threshold",
        json_body(
            '{"node_id": "comm", "name": "北门", "level": "compound",'
            ' "policy": {"temperature_threshold": NaN}}'
        ),
    ),
    Case(
        "screening",
        "POST",
        "/v1/temperatures",
        422,
        "body.celsius",
        json_body('{"subject_id": "p1", "celsius": Infinity}'),
    ),
    Case("reporting", "GET", "/v1/testing-rounds/r%00/coverage", 422, "path.round_id"),
    Case("reporting", "GET", "/v1/testing-rounds/r1/coverage?node_id=n%00", 422, "query.node_id"),
]

CURSORS = [
    Case(
        "registry",
        "GET",
        f"/v1/nodes?under=root&cursor={forged({'after': 1})}",
        422,
        "query.cursor",
    ),
    Case("registry", "GET", f"/v1/assignments?cursor={forged({'after': 1})}", 422, "query.cursor"),
    Case(
        "registry",
        "GET",
        f"/v1/pii-access-log?cursor={forged({'after': 'x'})}",
        422,
        "query.cursor",
    ),
    Case("screening", "GET", f"/v1/key-persons?cursor={forged({'after': 1})}", 422, "query.cursor"),
    Case(
        "screening", "GET", f"/v1/risk-areas?cursor={forged({'after': [1]})}", 422, "query.cursor"
    ),
]

INTEGERS = [
    Case("registry", "GET", "/v1/nodes?under=root&level=2147483648", 422, "query.level"),
    Case(
        "screening",
        "GET",
        "/v1/daily-reports?node_id=comm&day=2026-01-01&revision=2147483648",
        422,
        "query.revision",
    ),
    Case(
        "screening",
        "POST",
        "/v1/test-rounds",
        422,
        "body.number",
        {
            "json": {
                "node_id": "comm",
                "number": 2**31,
                "starts_on": date.today().isoformat(),
                "ends_on": date.today().isoformat(),
            }
        },
    ),
    Case(
        "checkpoint",
        "POST",
        "/v1/checkpoints",
        422,
        "body.policy.test_report_max_hours",
        {
            "json": {
                "node_id": "comm",
                "name": "东卡口",
                "level": "compound",
                "policy": {"test_report_max_hours": 10**12},
            }
        },
    ),
]


async def streamed(size: int, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    """A body without Content-Length (sent chunked), as a streaming client sends it."""
    for _ in range(size // chunk):
        yield b" " * chunk


def chunked_cases() -> list[Case]:
    return [
        Case(
            service,
            "POST",
            path,
            413,
            None,
            {"content": streamed(BIG), "headers": {"Content-Type": "application/json"}},
        )
        for service, path in [
            ("registry", "/v1/nodes"),
            ("screening", "/v1/visits:batch"),
            ("checkpoint", "/v1/crossings:batch"),
            ("reporting", "/v1/admin/dead-letters/1/retry"),
        ]
    ] + [
        Case(
            "registry",
            "POST",
            "/v1/imports/households?parent_id=comm",
            413,
            None,
            {"content": streamed(2 * ROSTER_LIMIT), "headers": {"Content-Type": "text/csv"}},
        ),
    ]


def problem_of(r: httpx.Response, case: Case) -> str | None:
    """What is wrong with the answer to a case, or None."""
    if r.status_code != case.status:
        return f"status {r.status_code}: {r.text[:200]}"
    if r.headers.get("content-type") != "application/problem+json":
        return f"content type {r.headers.get('content-type')}"
    if case.names is not None:
        fields = [e.get("field") for e in r.json().get("errors", [])]
        if case.names not in fields:
            return f"names {fields}, not {case.names}: {r.text[:200]}"
    return None


async def test_every_bad_input_is_its_4xx_problem_and_the_connection_survives(
    served: Served,
) -> None:
    await grow(served.stack)
    signed = await served.call("registry", "GET", "/v1/nodes?under=root&limit=1")
    cursor = signed.json()["next_cursor"]
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    reused = [
        Case("registry", "GET", f"/v1/assignments?cursor={cursor}", 422, "query.cursor"),
        Case(
            "registry",
            "GET",
            f"/v1/nodes?under=root&limit=1&cursor={tampered}",
            422,
            "query.cursor",
        ),
    ]
    failures: list[str] = []
    for case in CONTROL_CHARACTERS + CURSORS + reused + INTEGERS + chunked_cases():
        r = await served.call(case.service, case.method, case.path, **case.kw)
        if (wrong := problem_of(r, case)) is not None:
            failures.append(f"{case.service} {case.method} {case.path}: {wrong}")
    assert failures == [], "\n".join(failures)
    assert served.dropped == []

    # what is allowed still is: the next page of a list, free text with line breaks
    second = await served.call("registry", "GET", f"/v1/nodes?under=root&limit=1&cursor={cursor}")
    assert second.status_code == 200, second.text
    assert second.json()["items"] != signed.json()["items"]
    note = await served.call(
        "registry", "POST", "/v1/nodes/g2/retire", json={"reason": "并入第一网格\n见会议纪要"}
    )
    assert note.status_code == 200, note.text
    assert served.dropped == []


def roster(*rows: str) -> bytes:
    return ("楼栋,单元,楼层,门牌号,姓名,身份证号,联系电话,人员类别\n" + "".join(rows)).encode()


async def test_a_roster_row_is_held_to_the_api_rules_and_a_refused_row_writes_nothing(
    served: Served,
) -> None:
    await grow(served.stack)
    zhang, li, wang = (resident_id(f"1101051990010112{n}") for n in ("3", "4", "5"))
    data = roster(
        f"1,1,3,301,张三,{zhang},13812345678,常住\n",
        f"1,1,3,302,{'名' * 65_536},{li},13812345679,常住\n",
        f"1,1,3,303,王\x01五,{wang},13812345670,常住\n",
        f"2,1,1,101,张三,{zhang},13812345678,常住\n",
    )
    r = await served.call(
        "registry",
        "POST",
        "/v1/imports/households?parent_id=comm",
        content=data,
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    results = {row["row"]: row for row in r.json()["results"]}
    assert results[2]["status"] == "created"
    assert (results[3]["status"], results[3]["field"]) == ("error", "姓名")
    assert "100" in results[3]["reason"]
    assert (results[4]["status"], results[4]["field"]) == ("error", "姓名")
    assert (results[5]["status"], results[5]["field"]) == ("error", "身份证号")
    households = await served.call(
        "registry", "GET", "/v1/nodes?under=comm&kind=household&limit=100"
    )
    assert [n["name"] for n in households.json()["items"]] == ["301"]
    buildings = await served.call("registry", "GET", "/v1/nodes?under=comm&kind=building")
    assert sorted(n["name"] for n in buildings.json()["items"]) == ["1", "1栋"]
    assert served.dropped == []


async def test_an_inhabited_place_is_not_retired_and_the_answer_counts_its_people(
    served: Served,
) -> None:
    await grow(served.stack)
    made = await served.call(
        "registry",
        "POST",
        "/v1/households",
        json={"id": "h101", "parent_id": "b1", "door_number": "101"},
    )
    assert made.status_code == 201, made.text
    person = await served.call(
        "registry",
        "POST",
        "/v1/persons",
        json={
            "household_id": "h101",
            "name": "张三",
            "document_number": resident_id("11010519900101123"),
        },
    )
    assert person.status_code == 201, person.text

    household = await served.call(
        "registry", "POST", "/v1/nodes/h101/retire", json={"reason": "拆除"}
    )
    assert household.status_code == 409, household.text
    assert household.headers["content-type"] == "application/problem+json"
    assert "0 active households and 1 registered person" in household.json()["detail"]
    building = await served.call("registry", "POST", "/v1/nodes/b1/retire", json={"reason": "拆除"})
    assert building.status_code == 409, building.text
    assert "1 active household and 1 registered person" in building.json()["detail"]
    still = await served.call("registry", "GET", "/v1/nodes/h101")
    assert still.json()["retired"] is False
    assert served.dropped == []
