"""Deny by default: every endpoint checks the token, the role and the jurisdiction.

`ACCESS` is the role x endpoint table of docs/access.md; a test fails if a route exists that
the table does not list, so a new endpoint cannot ship without deciding who may call it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.registry.main import create_app as registry_app
from services.reporting.main import create_app as reporting_app
from shared.auth import Role
from shared.identity import resident_id_check_digit
from shared.testing import Infra, eventually
from tests.e2e.conftest import Stack, start_stack

EVERYONE = frozenset(Role)
WRITERS = frozenset({Role.ADMIN, Role.REGISTRAR})
PII_READERS = frozenset({Role.ADMIN, Role.REGISTRAR, Role.GRID_WORKER, Role.MEDIC})
LOOKUP = frozenset({Role.ADMIN, Role.REGISTRAR, Role.GRID_WORKER, Role.MEDIC, Role.INTEGRATOR})
AUDITORS = frozenset({Role.ADMIN, Role.AUDITOR})
FIELD_READERS = EVERYONE - {Role.REGISTRAR, Role.GATEKEEPER}
REPORT_READERS = FIELD_READERS - {Role.MEDIC}
ADMIN = frozenset({Role.ADMIN})
ZHANG = "11010519900101123" + resident_id_check_digit("11010519900101123")
LI = "22010219851231456" + resident_id_check_digit("22010219851231456")
WANG = "51012119700505123" + resident_id_check_digit("51012119700505123")


@dataclass(frozen=True)
class Call:
    service: str
    method: str
    route: str  # as declared, to match the app's routes
    url: str
    roles: frozenset[Role]
    body: Any = None
    params: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None


ACCESS = [
    Call("registry", "POST", "/v1/nodes", "/v1/nodes", WRITERS,
         {"parent_id": "root", "kind": "grid", "name": "网格"}),
    Call("registry", "GET", "/v1/nodes/{node_id}", "/v1/nodes/root", EVERYONE),
    Call("registry", "GET", "/v1/nodes/{node_id}/children", "/v1/nodes/root/children", EVERYONE),
    Call("registry", "GET", "/v1/nodes", "/v1/nodes", EVERYONE, params={"under": "root"}),
    Call("registry", "POST", "/v1/nodes/{node_id}/rename", "/v1/nodes/comm/rename", WRITERS,
         {"name": "幸福社区"}),
    Call("registry", "POST", "/v1/nodes/{node_id}/move", "/v1/nodes/b1/move", WRITERS,
         {"parent_id": "comm"}),
    Call("registry", "POST", "/v1/nodes/{node_id}/retire", "/v1/nodes/spare/retire", WRITERS,
         {"reason": "撤销"}),
    Call("registry", "POST", "/v1/households", "/v1/households", WRITERS,
         {"id": "h9", "parent_id": "b1", "door_number": "909"}),
    Call("registry", "GET", "/v1/households/{household_id}", "/v1/households/h1", EVERYONE),
    Call("registry", "POST", "/v1/persons", "/v1/persons", WRITERS,
         {"household_id": "h1", "name": "李四", "document_number": LI}),
    Call("registry", "POST", "/v1/persons:lookup", "/v1/persons:lookup", LOOKUP,
         {"number": ZHANG}),
    Call("registry", "GET", "/v1/persons/{person_id}", "/v1/persons/p1", EVERYONE),
    Call("registry", "GET", "/v1/persons/{person_id}", "/v1/persons/p1", PII_READERS,
         params={"reveal": "true", "reason": "核实身份"}),
    Call("registry", "POST", "/v1/persons/{person_id}/move", "/v1/persons/p1/move", WRITERS,
         {"household_id": "h1"}),
    Call("registry", "POST", "/v1/persons/{person_id}/residency", "/v1/persons/p1/residency",
         WRITERS, {"residency": "resident"}),
    Call("registry", "POST", "/v1/persons/{person_id}/tags", "/v1/persons/p1/tags", WRITERS,
         {"add": ["低保"]}),
    Call("registry", "POST", "/v1/persons/{person_id}/contact", "/v1/persons/p1/contact",
         WRITERS, {"name": "张三", "phone": "13812345678"}),
    Call("registry", "POST", "/v1/persons/{person_id}/void", "/v1/persons/p2/void", WRITERS,
         {"reason": "重复登记"}),
    Call("registry", "POST", "/v1/vehicles", "/v1/vehicles", WRITERS,
         {"id": "car-1", "household_id": "h1", "plate": "吉A12345"}),
    Call("registry", "GET", "/v1/pii-access-log", "/v1/pii-access-log", AUDITORS),
    Call("registry", "POST", "/v1/imports/households", "/v1/imports/households", WRITERS,
         params={"parent_id": "comm"},
         content=f"门牌号,姓名,身份证号\n101,王五,{WANG}\n".encode()),
    Call("registry", "GET", "/v1/chain-templates", "/v1/chain-templates", EVERYONE),
    Call("registry", "GET", "/v1/chain-templates/{template_id}",
         "/v1/chain-templates/baobao-4", EVERYONE),
    Call("registry", "POST", "/v1/chain-templates", "/v1/chain-templates", WRITERS,
         {"id": "t-2", "name": "两级包保", "tiers": [
             {"level": 1, "name": "街道包社区", "party_role": "street_cadre",
              "node_kinds": ["community"]},
             {"level": 2, "name": "社区包楼栋", "party_role": "community",
              "node_kinds": ["building"]}]}),
    Call("registry", "POST", "/v1/chain-instances", "/v1/chain-instances", WRITERS,
         {"id": "inst-x", "template_id": "baobao-4", "root_node_id": "root",
          "valid_from": "2020-01-27"}),
    Call("registry", "GET", "/v1/chain-instances/{instance_id}", "/v1/chain-instances/inst-1",
         EVERYONE),
    Call("registry", "POST", "/v1/chain-instances/{instance_id}/end",
         "/v1/chain-instances/inst-x/end", WRITERS,
         {"valid_to": "2020-03-31", "reason": "疫情解除"}),
    Call("registry", "POST", "/v1/parties", "/v1/parties", WRITERS,
         {"id": "party-x", "kind": "unit", "name": "派出所", "role": "police_station"}),
    Call("registry", "GET", "/v1/parties/{party_id}", "/v1/parties/party-1", EVERYONE),
    Call("registry", "POST", "/v1/assignments", "/v1/assignments", WRITERS,
         {"id": "asg-x", "instance_id": "inst-1", "level": 1, "party_id": "party-1",
          "target_type": "node", "target_id": "street-b", "valid_from": "2020-01-27"}),
    Call("registry", "GET", "/v1/assignments", "/v1/assignments", EVERYONE,
         params={"instance_id": "inst-1"}),
    Call("registry", "GET", "/v1/assignments/{assignment_id}", "/v1/assignments/asg-1",
         EVERYONE),
    Call("registry", "POST", "/v1/assignments/{assignment_id}/end", "/v1/assignments/asg-x/end",
         WRITERS, {"valid_to": "2020-03-31", "reason": "调整"}),
    Call("reporting", "GET", "/v1/nodes/{node_id}/summary", "/v1/nodes/root/summary", EVERYONE),
    Call("reporting", "GET", "/v1/nodes/{node_id}/children/summary",
         "/v1/nodes/root/children/summary", EVERYONE),
    Call("reporting", "GET", "/v1/nodes/{node_id}/trend", "/v1/nodes/root/trend", EVERYONE,
         params={"metric": "stock.persons", "from": "2020-01-27", "to": "2020-02-03"}),
    Call("reporting", "GET", "/v1/ledgers/{name}.{fmt}", "/v1/ledgers/key-persons.csv",
         FIELD_READERS, params={"node_id": "root", "date": "2020-02-01"}),
    Call("reporting", "GET", "/v1/daily-reports/completeness", "/v1/daily-reports/completeness",
         REPORT_READERS, params={"node_id": "root", "level": "grid", "date": "2020-02-01"}),
    Call("reporting", "GET", "/v1/blind-spots", "/v1/blind-spots", FIELD_READERS,
         params={"node_id": "root", "chain": "inst-1", "date": "2020-02-01"}),
    Call("reporting", "GET", "/v1/testing-rounds/{round_id}/coverage",
         "/v1/testing-rounds/round-1/coverage", FIELD_READERS, params={"node_id": "comm"}),
    Call("reporting", "GET", "/v1/testing-rounds/{round_id}/children",
         "/v1/testing-rounds/round-1/children", FIELD_READERS, params={"node_id": "root"}),
    Call("reporting", "GET", "/v1/testing-rounds/{round_id}/unsampled",
         "/v1/testing-rounds/round-1/unsampled", FIELD_READERS, params={"node_id": "comm"}),
    Call("reporting", "GET", "/v1/nodes/{node_id}/vaccination", "/v1/nodes/root/vaccination",
         EVERYONE, params={"date": "2020-02-01"}),
    Call("reporting", "GET", "/v1/chains/{template}/parties/{party_id}/summary",
         "/v1/chains/baobao-4/parties/party-1/summary", EVERYONE, params={"date": "2020-02-01"}),
    Call("reporting", "GET", "/v1/chains/{template}/tree", "/v1/chains/baobao-4/tree", EVERYONE,
         params={"node_id": "root", "date": "2020-02-01"}),
    Call("reporting", "POST", "/v1/admin/rebuild", "/v1/admin/rebuild", ADMIN),
    Call("reporting", "GET", "/v1/admin/rebuild/{rebuild_id}", "/v1/admin/rebuild/latest",
         ADMIN),
    # the operator routes every service has (shared/ops.py); dead letter 1 is parked by the test
    *(call for service in ("registry", "reporting") for call in [
        Call(service, "GET", "/v1/lag", "/v1/lag", AUDITORS),
        Call(service, "GET", "/v1/admin/dead-letters", "/v1/admin/dead-letters", ADMIN),
        Call(service, "GET", "/v1/admin/dead-letters/{dead_letter_id}",
             "/v1/admin/dead-letters/1", ADMIN),
        Call(service, "POST", "/v1/admin/dead-letters/{dead_letter_id}/retry",
             "/v1/admin/dead-letters/1/retry", ADMIN, {"reason": "handler fixed"}),
    ]),
]

OPS = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect",
       "/redoc"}


@pytest.mark.parametrize("create", [registry_app, reporting_app],
                         ids=["registry", "reporting"])
def test_every_route_is_in_the_access_table(create: Any) -> None:
    paths = create().openapi()["paths"]
    routes = {(m.upper(), p) for p, ops in paths.items() if p not in OPS for m in ops}
    assert routes, "the app publishes no routes"
    listed = {(c.method, c.route) for c in ACCESS}
    assert routes - listed == set()


@pytest.fixture
async def stack(infra: Infra) -> AsyncIterator[Stack]:
    """Registry and reporting, and screening for a test round reporting reports on."""
    async for s in start_stack(infra, ["registry", "screening", "reporting"]):
        yield s


async def _start_round(stack: Stack) -> None:
    admin = stack.token("admin")
    body = {"id": "round-1", "node_id": "comm", "number": 1, "starts_on": "2020-02-01",
            "ends_on": "2020-02-03"}

    async def started() -> bool:  # once screening knows the place
        r = await stack.screening.post("/v1/test-rounds", json=body, headers=admin)
        return r.status_code == 201

    async def reporting_knows_it() -> bool:
        r = await stack.reporting.get("/v1/testing-rounds/round-1/coverage", headers=admin)
        return r.status_code == 200

    await eventually(started)
    await eventually(reporting_knows_it)


async def _seed(stack: Stack) -> None:
    admin = stack.token("admin")
    calls: list[tuple[str, dict[str, Any]]] = [
        ("/v1/nodes", {"id": "root", "parent_id": None, "kind": "district", "name": "区"}),
        ("/v1/nodes", {"id": "street-a", "parent_id": "root", "kind": "street", "name": "甲"}),
        ("/v1/nodes", {"id": "street-b", "parent_id": "root", "kind": "street", "name": "乙"}),
        ("/v1/nodes", {"id": "comm", "parent_id": "street-a", "kind": "community",
                       "name": "幸福社区"}),
        ("/v1/nodes", {"id": "b1", "parent_id": "comm", "kind": "building", "name": "1栋"}),
        ("/v1/nodes", {"id": "spare", "parent_id": "comm", "kind": "grid", "name": "备用"}),
        ("/v1/households", {"id": "h1", "parent_id": "b1", "door_number": "101"}),
        ("/v1/persons", {"id": "p1", "household_id": "h1", "name": "张三",
                         "document_number": ZHANG}),
        ("/v1/persons", {"id": "p2", "household_id": "h1", "name": "王五",
                         "document_type": "passport", "document_number": "E12345678"}),
        ("/v1/parties", {"id": "party-1", "kind": "person", "name": "区领导",
                         "role": "district_leader"}),
        ("/v1/chain-instances", {"id": "inst-1", "template_id": "baobao-4",
                                 "root_node_id": "root", "valid_from": "2020-01-27"}),
        ("/v1/assignments", {"id": "asg-1", "instance_id": "inst-1", "level": 1,
                             "party_id": "party-1", "target_type": "node",
                             "target_id": "street-a", "valid_from": "2020-01-27"}),
    ]
    for url, body in calls:
        r = await stack.registry.post(url, json=body, headers=admin)
        assert r.status_code == 201, (url, r.text)

    async def reporting_knows_root() -> bool:
        r = await stack.reporting.get("/v1/nodes/root/summary", headers=admin)
        return r.status_code == 200

    await eventually(reporting_knows_root)
    await _start_round(stack)


async def _park_one(stack: Stack) -> None:
    """Dead letter 1 of a consumer nobody runs (so nothing re-drives it), in each schema."""
    for service in ("registry", "reporting"):
        await stack.apps[service].state.pool.execute(
            "INSERT INTO dead_letters (id, consumer, topic, partition, \"offset\", error, payload)"
            " OVERRIDING SYSTEM VALUE VALUES (1, 'nobody', 'nowhere', 0, 0, 'boom', '{}')"
        )


async def test_role_table(stack: Stack) -> None:
    await _seed(stack)
    await _park_one(stack)
    for call in ACCESS:
        client = stack.registry if call.service == "registry" else stack.reporting
        for role in Role:
            headers = stack.token(role.value)
            if call.content is not None:
                headers["Content-Type"] = "text/csv"
            r = await client.request(call.method, call.url, json=call.body, params=call.params,
                                     content=call.content, headers=headers)
            expected = "allowed" if role in call.roles else "denied"
            got = "allowed" if r.status_code in (200, 201, 202) else (
                "denied" if r.status_code == 403 else f"status {r.status_code}: {r.text}")
            assert got == expected, (call.method, call.url, call.params, role.value)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic abc"}, 401),
        ({"Authorization": "Bearer not-a-jwt"}, 401),
    ],
)
async def test_missing_or_malformed_token_is_401(
    stack: Stack, headers: dict[str, str], status: int
) -> None:
    r = await stack.registry.get("/v1/nodes/root", headers=headers)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"


async def test_token_with_a_bad_signature_is_401(stack: Stack) -> None:
    forged = stack.token("admin", secret="someone-elses-secret-0123456789abcdef")
    assert (await stack.registry.get("/v1/nodes/root", headers=forged)).status_code == 401


async def test_expired_token_is_401(stack: Stack) -> None:
    expired = stack.token("admin", ttl=-60)
    r = await stack.registry.get("/v1/nodes/root", headers=expired)
    assert r.status_code == 401
    assert r.json()["type"].endswith("/token-expired")


async def test_nodes_outside_the_callers_scope_are_403(stack: Stack) -> None:
    await _seed(stack)
    clerk = stack.token("registrar", scope=["street-a"])
    inside = await stack.registry.post(
        "/v1/nodes", json={"parent_id": "street-a", "kind": "community", "name": "一社区"},
        headers=clerk)
    assert inside.status_code == 201
    outside = await stack.registry.post(
        "/v1/nodes", json={"parent_id": "street-b", "kind": "community", "name": "二社区"},
        headers=clerk)
    assert outside.status_code == 403
    assert (await stack.registry.get("/v1/nodes/street-b", headers=clerk)).status_code == 403
    assert (await stack.registry.get("/v1/nodes/root", headers=clerk)).status_code == 403
    assert (await stack.registry.get("/v1/nodes/street-a", headers=clerk)).status_code == 200
    summary = await stack.reporting.get("/v1/nodes/street-b/summary", headers=clerk)
    assert summary.status_code == 403


async def test_only_admin_creates_a_root(stack: Stack) -> None:
    r = await stack.registry.post(
        "/v1/nodes", json={"parent_id": None, "kind": "district", "name": "x"},
        headers=stack.token("registrar"))
    assert r.status_code == 403
