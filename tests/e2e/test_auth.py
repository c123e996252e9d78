"""Deny by default: the token, the role table and the jurisdiction, on every route.

The access matrix: every row of the role table (`services/access.py`: each route, each ledger,
each variant a handler checks) is called without a token (401) and by every role with a token
scoped to the place the request concerns, to a sibling community and to a grid inside it (so
the request concerns its parent). A role the table refuses gets 403 in every scope; a role it
admits gets 403 from a sibling or below and is served (not 401/403) in scope. Refusals run
first (`test_refused`, over all rows), admissions after (`test_admitted`), so that what an
admitted write changes cannot hide a refusal. `CALLS` holds one request per row; a row
without one fails `test_every_row_of_the_table_has_a_call`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.access import rows
from shared.auth import ALL_NODES, Role
from shared.identity import resident_id_check_digit
from shared.roles import GRANTS
from shared.testing import Infra, eventually
from tests.e2e.conftest import Stack, start_stack

ZHANG = "11010519900101123" + resident_id_check_digit("11010519900101123")
LI = "22010219851231456" + resident_id_check_digit("22010219851231456")
WANG = "51012119700505123" + resident_id_check_digit("51012119700505123")
ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime.now(ZONE)
TODAY = NOW.date().isoformat()
LATER = (NOW + timedelta(days=14)).date().isoformat()
AN_HOUR_AGO = (NOW - timedelta(hours=1)).isoformat()
IN, SIBLING, BELOW = "comm", "comm-2", "g9"
TREE = [
    ("root", None, "district", "区"),
    ("street-a", "root", "street", "甲街道"),
    ("comm", "street-a", "community", "幸福社区"),
    (SIBLING, "street-a", "community", "和平社区"),
    ("g1", "comm", "grid", "第一网格"),
    (BELOW, "comm", "grid", "第九网格"),
    ("spare", "comm", "grid", "备用网格"),
    ("b1", "g1", "building", "1栋"),
]
REFUSED_ITEMS = {"out-of-scope", "no-shift"}


@dataclass(frozen=True)
class Call:
    service: str
    method: str
    path: str  # the route as declared
    url: str
    # what the request concerns: a place in `comm`, the whole system (root), or nothing
    # placed (served in any scope, narrowed to it)
    where: Literal["place", "root", "any"] = "place"
    body: Any = None
    params: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    condition: str = ""  # the variant of the route (a row of the table)
    sub: str | None = None  # the token's subject (a gatekeeper's shift is held by a sub)
    hidden: bool = False  # out of scope answers 404, as for nothing (no existence oracle)

    @property
    def row(self) -> tuple[str, str, str, str]:
        return (self.service, self.method, self.path, self.condition)


def _crossing(cid: str) -> dict[str, Any]:
    return {"id": cid, "checkpoint_id": "comm-gate", "direction": "in", "health_code": "green",
            "document_number": ZHANG}  # fmt: skip


def _ops(service: str) -> list[Call]:
    return [
        Call(service, "GET", "/v1/lag", "/v1/lag", "root"),
        Call(service, "GET", "/v1/admin/dead-letters", "/v1/admin/dead-letters", "root"),
        Call(service, "GET", "/v1/admin/dead-letters/{dead_letter_id}",
             "/v1/admin/dead-letters/1", "root"),
        Call(service, "POST", "/v1/admin/dead-letters/{dead_letter_id}/retry",
             "/v1/admin/dead-letters/1/retry", "root", {"reason": "handler fixed"}),
    ]  # fmt: skip


R, S, C, P = "registry", "screening", "checkpoint", "reporting"
CALLS = [
    # registry: places
    Call(R, "POST", "/v1/nodes", "/v1/nodes", body={"parent_id": "g1", "kind": "building",
         "name": "2栋"}),
    Call(R, "POST", "/v1/nodes", "/v1/nodes", "root", {"parent_id": None, "kind": "district",
         "name": "新区"}, condition="parent_id: null"),
    Call(R, "GET", "/v1/nodes/{node_id}", "/v1/nodes/comm"),
    Call(R, "GET", "/v1/nodes/{node_id}/children", "/v1/nodes/comm/children"),
    Call(R, "GET", "/v1/nodes", "/v1/nodes", params={"under": "comm"}),
    Call(R, "POST", "/v1/nodes/{node_id}/rename", "/v1/nodes/comm/rename",
         body={"name": "幸福社区"}),
    Call(R, "POST", "/v1/nodes/{node_id}/move", "/v1/nodes/b1/move", body={"parent_id": "g1"}),
    Call(R, "POST", "/v1/nodes/{node_id}/retire", "/v1/nodes/spare/retire",
         body={"reason": "撤销"}),
    # registry: people
    Call(R, "POST", "/v1/households", "/v1/households",
         body={"id": "h9", "parent_id": "b1", "door_number": "909"}),
    Call(R, "GET", "/v1/households/{household_id}", "/v1/households/h1"),
    Call(R, "POST", "/v1/persons", "/v1/persons",
         body={"household_id": "h1", "name": "李四", "document_number": LI}),
    Call(R, "POST", "/v1/persons:lookup", "/v1/persons:lookup", body={"number": ZHANG},
         hidden=True),
    Call(R, "GET", "/v1/persons/{person_id}", "/v1/persons/p1"),
    Call(R, "GET", "/v1/persons/{person_id}", "/v1/persons/p1",
         params={"reveal": "true", "reason": "核实身份"}, condition="reveal=true"),
    Call(R, "POST", "/v1/persons/{person_id}/move", "/v1/persons/p1/move",
         body={"household_id": "h1"}),
    Call(R, "POST", "/v1/persons/{person_id}/residency", "/v1/persons/p1/residency",
         body={"residency": "resident"}),
    Call(R, "POST", "/v1/persons/{person_id}/tags", "/v1/persons/p1/tags", body={"add": ["低保"]}),
    Call(R, "POST", "/v1/persons/{person_id}/contact", "/v1/persons/p1/contact",
         body={"name": "张三", "phone": "13812345678"}),
    Call(R, "POST", "/v1/persons/{person_id}/void", "/v1/persons/p2/void",
         body={"reason": "重复登记"}),
    Call(R, "POST", "/v1/vehicles", "/v1/vehicles",
         body={"id": "car-2", "household_id": "h1", "plate": "吉A54321"}),
    Call(R, "GET", "/v1/pii-access-log", "/v1/pii-access-log", "any"),
    Call(R, "POST", "/v1/imports/households", "/v1/imports/households", params={"parent_id": "b1"},
         content=f"门牌号,姓名,身份证号\n102,王五,{WANG}\n".encode()),
    # registry: chains
    Call(R, "GET", "/v1/chain-templates", "/v1/chain-templates", "any"),
    Call(R, "GET", "/v1/chain-templates/{template_id}", "/v1/chain-templates/baobao-4", "any"),
    Call(R, "POST", "/v1/chain-templates", "/v1/chain-templates", "root",
         {"id": "t-2", "name": "两级包保", "tiers": [
             {"level": 1, "name": "街道包社区", "party_role": "street_cadre",
              "node_kinds": ["community"]},
             {"level": 2, "name": "社区包楼栋", "party_role": "community",
              "node_kinds": ["building"]}]}),
    Call(R, "POST", "/v1/chain-instances", "/v1/chain-instances",
         body={"id": "inst-2", "template_id": "baobao-4", "root_node_id": "comm",
               "valid_from": TODAY}),
    Call(R, "GET", "/v1/chain-instances/{instance_id}", "/v1/chain-instances/inst-1"),
    Call(R, "POST", "/v1/chain-instances/{instance_id}/end", "/v1/chain-instances/inst-x/end",
         body={"valid_to": LATER, "reason": "疫情解除"}),
    Call(R, "POST", "/v1/parties", "/v1/parties",
         body={"id": "party-2", "kind": "unit", "name": "物业", "role": "community",
               "node_id": "comm"}),
    Call(R, "GET", "/v1/parties/{party_id}", "/v1/parties/party-1"),
    Call(R, "POST", "/v1/assignments", "/v1/assignments",
         body={"id": "asg-2", "instance_id": "inst-1", "level": 4, "party_id": "party-1",
               "target_type": "node", "target_id": "b1", "valid_from": TODAY}),
    Call(R, "GET", "/v1/assignments", "/v1/assignments", params={"instance_id": "inst-1"}),
    Call(R, "GET", "/v1/assignments/{assignment_id}", "/v1/assignments/asg-1"),
    Call(R, "POST", "/v1/assignments/{assignment_id}/end", "/v1/assignments/asg-x/end",
         body={"valid_to": LATER, "reason": "调整"}),
    # screening: visits and reports
    Call(S, "POST", "/v1/campaigns", "/v1/campaigns",
         body={"id": "c-2", "node_id": "comm", "name": "排查", "starts_on": TODAY,
               "due_on": LATER}),
    Call(S, "GET", "/v1/campaigns/{campaign_id}", "/v1/campaigns/c-1"),
    Call(S, "POST", "/v1/visits", "/v1/visits",
         body={"id": "v-2", "household_id": "h1", "method": "door", "outcome": "screened",
               "occurred_at": AN_HOUR_AGO}),
    Call(S, "POST", "/v1/visits:batch", "/v1/visits:batch",
         body={"items": [{"id": "v-3", "household_id": "h1", "method": "door",
                          "outcome": "screened", "occurred_at": AN_HOUR_AGO}]}),
    Call(S, "GET", "/v1/visits/{visit_id}", "/v1/visits/v-1"),
    Call(S, "POST", "/v1/visits/{visit_id}/void", "/v1/visits/v-void/void",
         body={"reason": "录入错误"}),
    Call(S, "GET", "/v1/households/{household_id}/visits", "/v1/households/h1/visits"),
    Call(S, "POST", "/v1/audits", "/v1/audits",
         body={"id": "a-1", "visit_id": "v-1", "verdict": "confirmed"}),
    Call(S, "POST", "/v1/daily-reports", "/v1/daily-reports",
         body={"node_id": "g1", "day": TODAY, "zero": True}),
    Call(S, "GET", "/v1/daily-reports", "/v1/daily-reports",
         params={"node_id": "g1", "day": TODAY}),
    Call(S, "GET", "/v1/daily-reports/completeness", "/v1/daily-reports/completeness",
         params={"node_id": "comm", "day": TODAY}),
    # screening: key persons and testing
    Call(S, "POST", "/v1/risk-areas", "/v1/risk-areas", "root",
         {"id": "ra-2", "name": "湖北省", "region_codes": ["42"], "valid_from": TODAY}),
    Call(S, "POST", "/v1/risk-areas/{area_id}/lift", "/v1/risk-areas/ra-1/lift", "root",
         {"lifted_on": LATER, "reason": "解封"}),
    Call(S, "GET", "/v1/risk-areas", "/v1/risk-areas", "any"),
    Call(S, "GET", "/v1/risk-areas/{area_id}", "/v1/risk-areas/ra-1", "any"),
    Call(S, "GET", "/v1/key-person-rules", "/v1/key-person-rules", "any"),
    Call(S, "PUT", "/v1/key-person-rules", "/v1/key-person-rules", "root",
         {"fever_threshold": 37.3, "look_back_days": 14}),
    Call(S, "POST", "/v1/inquiries", "/v1/inquiries",
         body={"id": "i-2", "person_id": "p1", "symptoms": ["咳嗽"], "occurred_at": AN_HOUR_AGO}),
    Call(S, "POST", "/v1/inquiries:batch", "/v1/inquiries:batch",
         body={"items": [{"id": "i-3", "person_id": "p1", "occurred_at": AN_HOUR_AGO}]}),
    Call(S, "GET", "/v1/inquiries/{inquiry_id}", "/v1/inquiries/i-1"),
    Call(S, "GET", "/v1/key-persons", "/v1/key-persons", params={"node_id": "comm"}),
    Call(S, "GET", "/v1/key-persons/{subject_id}", "/v1/key-persons/p1"),
    Call(S, "POST", "/v1/key-persons/{subject_id}/clear", "/v1/key-persons/p1/clear",
         body={"reason": "期满"}),
    Call(S, "POST", "/v1/test-rounds", "/v1/test-rounds",
         body={"id": "tr-2", "node_id": "comm", "number": 2, "starts_on": TODAY,
               "ends_on": LATER}),
    Call(S, "GET", "/v1/test-rounds/{round_id}", "/v1/test-rounds/tr-1"),
    Call(S, "POST", "/v1/samples", "/v1/samples",
         body={"id": "sa-2", "person_id": "p1", "round_id": "tr-1"}),
    Call(S, "POST", "/v1/samples:batch", "/v1/samples:batch",
         body={"items": [{"id": "sa-3", "person_id": "p1", "occurred_at": AN_HOUR_AGO}]}),
    Call(S, "GET", "/v1/samples/{sample_id}", "/v1/samples/sa-1"),
    Call(S, "POST", "/v1/samples/{sample_id}/result", "/v1/samples/sa-1/result",
         body={"result": "negative"}),
    Call(S, "POST", "/v1/vaccinations", "/v1/vaccinations",
         body={"id": "dose-1", "person_id": "p1", "dose_number": 1, "vaccine": "科兴"}),
    # screening: watch and care
    Call(S, "POST", "/v1/observations", "/v1/observations",
         body={"subject_id": "h:obs", "node_id": "g1"}),
    Call(S, "POST", "/v1/observations/{subject_id}/release", "/v1/observations/h:rel/release",
         body={"reason": "解除"}),
    Call(S, "POST", "/v1/observations/{subject_id}/transfer", "/v1/observations/h:tr/transfer",
         body={"to": "hospital", "destination": "县医院"}),
    Call(S, "POST", "/v1/quarantines", "/v1/quarantines",
         body={"id": "q-2", "subject_id": "h:q-2", "node_id": "g1", "type": "home",
               "planned_end": LATER}),
    Call(S, "GET", "/v1/quarantines/{quarantine_id}", "/v1/quarantines/q-read"),
    Call(S, "POST", "/v1/quarantines/{quarantine_id}/extend", "/v1/quarantines/qx/extend",
         body={"planned_end": (NOW + timedelta(days=21)).date().isoformat(), "reason": "延长"}),
    Call(S, "POST", "/v1/quarantines/{quarantine_id}/release", "/v1/quarantines/qr/release",
         body={"reason": "解除"}),
    Call(S, "POST", "/v1/quarantines/{quarantine_id}/transfer", "/v1/quarantines/qt/transfer",
         body={"to": "centralized", "destination": "隔离酒店"}),
    Call(S, "GET", "/v1/watch/{subject_id}", "/v1/watch/h:read"),
    Call(S, "GET", "/v1/watch/{subject_id}/follow-ups", "/v1/watch/h:read/follow-ups"),
    Call(S, "POST", "/v1/temperatures", "/v1/temperatures",
         body={"id": "t-1", "subject_id": "h:read", "celsius": 36.5,
               "occurred_at": AN_HOUR_AGO}),
    Call(S, "POST", "/v1/temperatures:batch", "/v1/temperatures:batch",
         body={"items": [{"id": "t-2", "subject_id": "h:read", "celsius": 36.5,
                          "occurred_at": AN_HOUR_AGO}]}),
    Call(S, "POST", "/v1/care-tasks", "/v1/care-tasks",
         body={"id": "ct-1", "target_id": "h:read", "task": "counselling"}),
    Call(S, "POST", "/v1/care-tasks:batch", "/v1/care-tasks:batch",
         body={"items": [{"id": "ct-2", "target_id": "g1", "task": "other",
                          "occurred_at": AN_HOUR_AGO}]}),
    Call(S, "POST", "/v1/place-care-plans", "/v1/place-care-plans",
         body={"node_id": "b1", "task": "garbage", "times_per_day": 1}),
    Call(S, "GET", "/v1/care/{target_id}", "/v1/care/h:read"),
    # checkpoint
    Call(C, "POST", "/v1/checkpoints", "/v1/checkpoints",
         body={"id": "new-gate", "node_id": "g1", "name": "一网格卡口", "level": "compound"}),
    Call(C, "GET", "/v1/checkpoints/{checkpoint_id}", "/v1/checkpoints/comm-gate"),
    Call(C, "POST", "/v1/checkpoints/{checkpoint_id}/policy", "/v1/checkpoints/spare-gate/policy",
         body={"policy": {"residents_only": True, "health_code_colours": ["green"]},
               "effective_from": (NOW + timedelta(days=1)).isoformat()}),
    Call(C, "POST", "/v1/checkpoints/{checkpoint_id}/shifts", "/v1/checkpoints/spare-gate/shifts",
         body={"id": "spare-2", "sub": "vol-2", "role": "volunteer",
               "starts_at": (NOW + timedelta(days=2)).isoformat(),
               "ends_at": (NOW + timedelta(days=2, hours=8)).isoformat()}),
    Call(C, "POST", "/v1/checkpoints/{checkpoint_id}/shifts/{shift_id}/cancel",
         "/v1/checkpoints/spare-gate/shifts/spare-1/cancel", body={"reason": "调休"}),
    Call(C, "GET", "/v1/checkpoints/{checkpoint_id}/coverage",
         "/v1/checkpoints/comm-gate/coverage"),
    Call(C, "POST", "/v1/checkpoints/{checkpoint_id}/close", "/v1/checkpoints/spare-gate/close",
         body={"reason": "撤卡"}),
    Call(C, "POST", "/v1/crossings", "/v1/crossings", body=_crossing("x-2"), sub="gk-1"),
    Call(C, "POST", "/v1/crossings", "/v1/crossings", body=_crossing("x-3"),
         condition="holding no shift"),
    Call(C, "POST", "/v1/crossings:batch", "/v1/crossings:batch",
         body={"items": [{**_crossing("x-4"), "occurred_at": AN_HOUR_AGO}]}, sub="gk-1"),
    Call(C, "POST", "/v1/crossings:batch", "/v1/crossings:batch",
         body={"items": [{**_crossing("x-5"), "occurred_at": AN_HOUR_AGO}]},
         condition="holding no shift"),
    Call(C, "GET", "/v1/crossings/{crossing_id}", "/v1/crossings/x-1"),
    Call(C, "GET", "/v1/checkpoints/{checkpoint_id}/crossings",
         "/v1/checkpoints/comm-gate/crossings"),
    Call(C, "GET", "/v1/checkpoints/{checkpoint_id}/crossings.csv",
         "/v1/checkpoints/comm-gate/crossings.csv"),
    # reporting
    Call(P, "GET", "/v1/nodes/{node_id}/summary", "/v1/nodes/comm/summary"),
    Call(P, "GET", "/v1/nodes/{node_id}/children/summary", "/v1/nodes/comm/children/summary"),
    Call(P, "GET", "/v1/nodes/{node_id}/trend", "/v1/nodes/comm/trend",
         params={"metric": "stock.persons", "from": TODAY, "to": TODAY}),
    *(Call(P, "GET", "/v1/ledgers/{name}.{fmt}", f"/v1/ledgers/{name}.csv",
           params={"node_id": "comm", "date": TODAY}, condition=f"name={name}")
      for name in ("key-persons", "screening", "crossings")),
    Call(P, "GET", "/v1/daily-reports/completeness", "/v1/daily-reports/completeness",
         params={"node_id": "comm", "level": "grid", "date": TODAY}),
    Call(P, "GET", "/v1/blind-spots", "/v1/blind-spots",
         params={"node_id": "comm", "chain": "inst-1", "date": TODAY}),
    Call(P, "GET", "/v1/testing-rounds/{round_id}/coverage", "/v1/testing-rounds/tr-1/coverage",
         params={"node_id": "comm"}),
    Call(P, "GET", "/v1/testing-rounds/{round_id}/children", "/v1/testing-rounds/tr-1/children",
         params={"node_id": "comm"}),
    Call(P, "GET", "/v1/testing-rounds/{round_id}/unsampled",
         "/v1/testing-rounds/tr-1/unsampled", params={"node_id": "comm"}),
    Call(P, "GET", "/v1/nodes/{node_id}/vaccination", "/v1/nodes/comm/vaccination",
         params={"date": TODAY}),
    Call(P, "GET", "/v1/chains/{template}/parties/{party_id}/summary",
         "/v1/chains/baobao-4/parties/party-1/summary", params={"date": TODAY}),
    Call(P, "GET", "/v1/chains/{template}/tree", "/v1/chains/baobao-4/tree",
         params={"node_id": "comm", "date": TODAY}),
    Call(P, "GET", "/v1/admin/rebuild/{rebuild_id}", "/v1/admin/rebuild/latest", "root"),
    *(call for service in (R, S, C, P) for call in _ops(service)),
    # last: a rebuild empties reporting's read models for a while
    Call(P, "POST", "/v1/admin/rebuild", "/v1/admin/rebuild", "root"),
]  # fmt: skip
GROUP_OF = {(r.service, r.method, r.path, r.condition): r.group for r in rows()}


def test_every_row_of_the_table_has_a_call() -> None:
    assert len({c.row for c in CALLS}) == len(CALLS)
    assert {c.row for c in CALLS} == set(GROUP_OF)


def _admits(call: Call, role: Role) -> bool:
    return role in GRANTS[GROUP_OF[call.row]].roles


def _scopes(call: Call) -> dict[str, list[str]]:
    return {"in scope": [ALL_NODES] if call.where == "root" else [IN], "sibling": [SIBLING],
            "parent": [BELOW]}  # fmt: skip


def _refused(call: Call, r: httpx.Response) -> bool:
    """403, or a batch whose every item was refused for its place or the caller's shift."""
    if r.status_code == 403:
        return r.headers["content-type"] == "application/problem+json"
    if call.path.endswith(":batch") and r.status_code in (200, 207):
        results = r.json()["results"]
        return bool(results) and all(i.get("code") in REFUSED_ITEMS for i in results)
    return False


async def _call(stack: Stack, call: Call, headers: dict[str, str]) -> httpx.Response:
    if call.content is not None:
        headers = {**headers, "Content-Type": "text/csv"}
    return await stack.clients[call.service].request(
        call.method, call.url, json=call.body, params=call.params, content=call.content,
        headers=headers,
    )  # fmt: skip


def _token(stack: Stack, call: Call, role: Role, scope: list[str]) -> dict[str, str]:
    return stack.token(role.value, scope=scope, sub=call.sub)


IDS = [f"{c.service} {c.method} {c.path} {c.condition}".strip() for c in CALLS]


@pytest.mark.parametrize("call", CALLS, ids=IDS)
async def test_refused(world: Stack, call: Call) -> None:
    r = await _call(world, call, {})
    assert r.status_code == 401, r.text
    for role in Role:
        for where, scope in _scopes(call).items():
            if _admits(call, role) and (where == "in scope" or call.where == "any"):
                continue  # served: test_admitted
            r = await _call(world, call, _token(world, call, role, scope))
            if call.hidden and _admits(call, role):
                assert r.status_code == 404, (role.value, where, r.status_code, r.text)
                continue
            assert _refused(call, r), (role.value, where, r.status_code, r.text)


@pytest.mark.parametrize("call", CALLS, ids=IDS)
async def test_admitted(world: Stack, call: Call) -> None:
    for role in Role:
        if not _admits(call, role):
            continue
        scopes = _scopes(call) if call.where == "any" else {"in scope": _scopes(call)["in scope"]}
        for where, scope in scopes.items():
            r = await _call(world, call, _token(world, call, role, scope))
            assert r.status_code not in (401, 403) and not _refused(call, r), (
                role.value, where, r.status_code, r.text)  # fmt: skip
    if call.path == "/v1/admin/rebuild":
        await _rebuild_finished(world)


# -- the shared world -------------------------------------------------------------------------


async def _created(client: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str]) -> None:
    """201, retried while the service has not yet learned what the body names."""

    async def done() -> bool:
        r = await client.post(url, json=body, headers=headers)
        assert r.status_code in (201, 404, 422), (url, r.status_code, r.text)
        return r.status_code == 201

    await eventually(done, message=f"{url} {body}")


async def _seed(s: Stack) -> None:
    admin = s.token("admin")
    for node_id, parent, kind, name in TREE:
        await _created(s.registry, "/v1/nodes", {"id": node_id, "parent_id": parent,
                       "kind": kind, "name": name}, admin)  # fmt: skip
    for url, body in [
        ("/v1/households", {"id": "h1", "parent_id": "b1", "door_number": "101"}),
        ("/v1/persons", {"id": "p1", "household_id": "h1", "name": "张三",
                         "document_number": ZHANG}),
        ("/v1/persons", {"id": "p2", "household_id": "h1", "name": "王五",
                         "document_type": "passport", "document_number": "E12345678"}),
        ("/v1/vehicles", {"id": "car-1", "household_id": "h1", "plate": "吉A12345"}),
        ("/v1/parties", {"id": "party-1", "kind": "unit", "name": "社区", "role": "community",
                         "node_id": "comm"}),
        *(("/v1/chain-instances", {"id": i, "template_id": "baobao-4", "root_node_id": "comm",
                                   "valid_from": TODAY}) for i in ("inst-1", "inst-x")),
        *(("/v1/assignments", {"id": a, "instance_id": "inst-1", "level": level,
                               "party_id": "party-1", "target_type": "node", "target_id": node,
                               "valid_from": TODAY})
          for a, level, node in (("asg-1", 4, "b1"), ("asg-x", 2, "comm"))),
    ]:  # fmt: skip
        await _created(s.registry, url, body, admin)
    screening: list[tuple[str, dict[str, Any]]] = [
        ("/v1/campaigns", {"id": "c-1", "node_id": "comm", "name": "排查", "starts_on": TODAY,
                           "due_on": LATER}),
        *(("/v1/visits", {"id": v, "household_id": "h1", "method": "door",
                          "outcome": "screened", "occurred_at": AN_HOUR_AGO})
          for v in ("v-1", "v-void")),
        ("/v1/risk-areas", {"id": "ra-1", "name": "湖北省", "region_codes": ["42"],
                            "valid_from": TODAY}),
        ("/v1/inquiries", {"id": "i-1", "person_id": "p1", "occurred_at": AN_HOUR_AGO}),
        ("/v1/test-rounds", {"id": "tr-1", "node_id": "comm", "number": 1, "starts_on": TODAY,
                             "ends_on": LATER}),
        ("/v1/samples", {"id": "sa-1", "person_id": "p1", "round_id": "tr-1"}),
        *(("/v1/observations", {"subject_id": s_, "node_id": "g1", "starts_at": AN_HOUR_AGO})
          for s_ in ("h:rel", "h:tr")),
        *(("/v1/quarantines", {"id": q, "subject_id": f"h:{q}", "node_id": "g1",
                               "type": "home", "starts_at": AN_HOUR_AGO, "planned_end": LATER})
          for q in ("q-read", "qx", "qr", "qt")),
        ("/v1/quarantines", {"id": "q-h-read", "subject_id": "h:read", "node_id": "g1",
                             "type": "home", "starts_at": AN_HOUR_AGO, "planned_end": LATER}),
    ]  # fmt: skip
    for url, body in screening:
        await _created(s.screening, url, body, admin)
    policy = {"residents_only": False, "health_code_colours": ["green"]}
    for gate in ("comm-gate", "spare-gate"):
        await _created(s.checkpoint, "/v1/checkpoints", {"id": gate, "node_id": "comm",
                       "name": gate, "level": "compound", "policy": policy,
                       "opened_at": AN_HOUR_AGO}, admin)  # fmt: skip
    for gate, shift, sub, start, hours in [
        ("comm-gate", "gk-1-now", "gk-1", NOW - timedelta(hours=2), 12),
        ("spare-gate", "spare-1", "vol-1", NOW + timedelta(days=1), 8),
    ]:
        await _created(s.checkpoint, f"/v1/checkpoints/{gate}/shifts", {"id": shift, "sub": sub,
                       "role": "property_guard", "starts_at": start.isoformat(),
                       "ends_at": (start + timedelta(hours=hours)).isoformat()}, admin)  # fmt: skip
    await _created(s.checkpoint, "/v1/crossings", _crossing("x-1"), admin)

    async def reporting_knows_everything() -> bool:
        for url in (
            "/v1/nodes/comm/summary",
            "/v1/testing-rounds/tr-1/coverage",
            "/v1/chains/baobao-4/parties/party-1/summary",
        ):
            if (await s.reporting.get(url, headers=admin)).status_code != 200:
                return False
        return True

    await eventually(reporting_knows_everything, message="reporting never caught up")
    for service in (R, S, C, P):  # dead letter 1, of a consumer nobody runs
        await s.apps[service].state.pool.execute(
            'INSERT INTO dead_letters (id, consumer, topic, partition, "offset", error, payload)'
            " OVERRIDING SYSTEM VALUE VALUES (1, 'nobody', 'nowhere', 0, 0, 'boom', '{}')"
        )


async def _rebuild_finished(s: Stack) -> None:
    """A rebuild migrates a schema in a thread: it must end before another stack migrates."""

    async def finished() -> bool:
        r = await s.reporting.get("/v1/admin/rebuild/latest", headers=s.token("admin"))
        return r.status_code == 404 or r.json()["phase"] in ("done", "failed")

    await eventually(finished, timeout=120, message="the rebuild never finished")


@pytest.fixture(scope="module")
async def world(infra: Infra) -> AsyncIterator[Stack]:
    """All four services and one seeded world for the whole matrix."""
    async for s in start_stack(infra, [R, S, C, P]):
        await _seed(s)
        yield s


# -- tokens and root scope --------------------------------------------------------------------


@pytest.fixture
async def stack(infra: Infra) -> AsyncIterator[Stack]:
    async for s in start_stack(infra, [R]):
        for node_id, parent, kind, name in TREE:
            r = await s.registry.post("/v1/nodes", headers=s.token("admin"), json={
                "id": node_id, "parent_id": parent, "kind": kind, "name": name})  # fmt: skip
            assert r.status_code == 201, r.text
        yield s


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


async def test_root_level_writes_need_a_token_scoped_to_the_whole_system(stack: Stack) -> None:
    """A root place, a global chain template and a party with no node belong to no place: an
    admin or registrar of one community may not create them."""
    s = stack
    template = {"id": "t-local", "name": "一级包保", "tiers": [
        {"level": 1, "name": "社区包楼栋", "party_role": "community",
         "node_kinds": ["building"]}]}  # fmt: skip
    writes = [
        ("/v1/nodes", {"id": "root-2", "parent_id": None, "kind": "district", "name": "新区"}),
        ("/v1/chain-templates", template),
        ("/v1/parties", {"id": "party-free", "kind": "unit", "name": "派出所",
                         "role": "police_station"}),
    ]  # fmt: skip
    for role in ("admin", "registrar"):
        local = s.token(role, scope=[IN])
        for url, body in writes:
            r = await s.registry.post(url, json=body, headers=local)
            assert r.status_code == 403, (role, url, r.text)
            assert r.json()["type"].endswith("/out-of-scope") or role == "registrar"
    everywhere = s.token("admin")
    for url, body in writes:
        assert (await s.registry.post(url, json=body, headers=everywhere)).status_code == 201
    # a registrar with root scope may define templates and free parties, not a root place
    clerk = s.token("registrar")
    r = await s.registry.post("/v1/nodes", json={"parent_id": None, "kind": "district",
                              "name": "x"}, headers=clerk)  # fmt: skip
    assert r.status_code == 403 and r.json()["type"].endswith("/forbidden-role")


async def test_a_party_without_a_node_is_seen_with_root_scope_only(stack: Stack) -> None:
    s = stack
    r = await s.registry.post(
        "/v1/parties",
        headers=s.token("admin"),
        json={"id": "party-free", "kind": "unit", "name": "派出所", "role": "police_station"},
    )
    assert r.status_code == 201, r.text
    for role in Role:
        local = await s.registry.get("/v1/parties/party-free", headers=s.token(role.value,
                                     scope=[IN]))  # fmt: skip
        assert local.status_code == 403, (role.value, local.text)
        everywhere = await s.registry.get("/v1/parties/party-free", headers=s.token(role.value))
        assert everywhere.status_code == 200, (role.value, everywhere.text)


async def test_chain_templates_are_reference_data_read_in_any_scope(stack: Stack) -> None:
    local = stack.token("gatekeeper", scope=[SIBLING])
    r = await stack.registry.get("/v1/chain-templates/baobao-4", headers=local)
    assert r.status_code == 200 and r.json()["tiers"]
