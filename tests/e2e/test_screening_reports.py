"""Daily reports and zero reports over HTTP: revisions, lateness by the server's clock, and
completeness per level that never confuses zero with missing. (The role table of these
endpoints is in test_screening_visits.py, with the other endpoints of this part.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared.testing import Infra, eventually
from tests.e2e.conftest import Stack
from tests.e2e.test_places import TREE, grow
from tests.e2e.test_screening_visits import count_events

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = "2022-04-10"
REPORT_TREE = [
    *TREE,
    ("g3", "comm", "grid", "第三网格"),
    ("g4", "comm", "grid", "第四网格"),
]


class Clock:
    """The screening service's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, hhmm: str, day: str = DAY) -> None:
        self.now = datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=SHANGHAI)


async def completeness(stack: Stack, node_id: str = "comm", kind: str = "grid") -> Any:
    r = await stack.screening.get(
        "/v1/daily-reports/completeness",
        headers=stack.token("command"),
        params={"node_id": node_id, "day": DAY, "kind": kind},
    )
    assert r.status_code == 200, r.text
    return r.json()


def report(node_id: str, zero: bool, figures: dict[str, int], **extra: Any) -> dict[str, Any]:
    return {"node_id": node_id, "day": DAY, "zero": zero, "figures": figures, **extra}


async def test_zero_figures_late_and_missing_reports_are_told_apart(
    screening_stack: Stack, infra: Infra
) -> None:
    s = screening_stack
    await grow(s, REPORT_TREE)
    clock = Clock(datetime.now(SHANGHAI))
    s.apps["screening"].state.clock = clock
    clock.at("17:00")

    async def grids_known() -> bool:
        r = await s.screening.get(
            "/v1/daily-reports/completeness",
            headers=s.token("command"),
            params={"node_id": "comm", "day": DAY},
        )
        return r.status_code == 200 and r.json()["counts"]["total"] == 4

    await eventually(grids_known, message="screening never learned the grids")
    before = await completeness(s)
    assert [i["status"] for i in before["items"]] == ["pending"] * 4
    assert before["deadline"] == "2022-04-10T18:00:00+08:00"

    worker = s.token("grid_worker", scope=["comm"], sub="worker-1")
    r = await s.screening.post(
        "/v1/daily-reports",
        headers=worker,
        json=report("g1", False, {"入户排查户数": 126, "湖北返乡人员": 2}, id="g1-r1"),
    )
    assert r.status_code == 201, r.text
    assert (r.json()["revision"], r.json()["late"], r.headers["etag"]) == (1, False, '"1"')
    r = await s.screening.post("/v1/daily-reports", headers=worker, json=report("g2", True, {}))
    assert r.status_code == 201 and r.json()["zero"] is True
    refused = await s.screening.post(
        "/v1/daily-reports", headers=worker, json=report("g4", True, {"发热人员": 1})
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "body.figures"
    future = await s.screening.post(
        "/v1/daily-reports", headers=worker, json={**report("g4", True, {}), "day": "2022-04-11"}
    )
    assert future.status_code == 422 and future.json()["errors"][0]["field"] == "body.day"

    # the clock passes the grids' 18:00 deadline: g3 reports late, g4 not at all
    clock.at("19:00")
    r = await s.screening.post(
        "/v1/daily-reports",
        headers=worker,
        json=report("g3", False, {"入户排查户数": 80}),
    )
    assert r.status_code == 201 and r.json()["late"] is True
    # the community's own deadline is 20:00, so its report at 19:00 is on time
    r = await s.screening.post(
        "/v1/daily-reports", headers=worker, json=report("comm", False, {"入户排查户数": 206})
    )
    assert r.status_code == 201 and r.json()["late"] is False

    now = await completeness(s)
    assert {i["node_id"]: i["status"] for i in now["items"]} == {
        "g1": "submitted",
        "g2": "zero",
        "g3": "late",
        "g4": "missing",
    }
    assert now["counts"] == {
        "submitted": 1,
        "zero": 1,
        "late": 1,
        "missing": 1,
        "pending": 0,
        "reported": 3,
        "total": 4,
    }
    g2 = next(i for i in now["items"] if i["node_id"] == "g2")
    g4 = next(i for i in now["items"] if i["node_id"] == "g4")
    assert (g2["zero"], g2["revision"]) == (True, 1)
    assert (g4["zero"], g4["revision"]) == (None, None)
    communities = await completeness(s, "street-a", "community")
    assert [(i["node_id"], i["status"]) for i in communities["items"]] == [("comm", "submitted")]

    # g1 amends after its deadline: revision 2 is late itself, but g1 reported on time
    events = await count_events(infra, s, "DailyReportSubmitted")
    again = await s.screening.post(
        "/v1/daily-reports",
        headers=worker,
        json=report("g1", False, {"入户排查户数": 126, "湖北返乡人员": 2}, id="g1-r1"),
    )
    assert again.status_code == 201 and again.json()["revision"] == 1
    assert await count_events(infra, s, "DailyReportSubmitted") == events
    stale = await s.screening.post(
        "/v1/daily-reports",
        headers={**worker, "If-Match": '"7"'},
        json=report("g1", False, {"入户排查户数": 130, "湖北返乡人员": 3}),
    )
    assert stale.status_code == 412
    clock.at("19:30")
    amended = await s.screening.post(
        "/v1/daily-reports",
        headers={**worker, "If-Match": '"1"'},
        json=report("g1", False, {"入户排查户数": 130, "湖北返乡人员": 3}, id="g1-r2"),
    )
    assert amended.status_code == 201, amended.text
    assert amended.json()["revision"] == 2 and amended.headers["etag"] == '"2"'
    assert (amended.json()["late"], amended.json()["first_late"]) == (True, False)
    reused = await s.screening.post(
        "/v1/daily-reports", headers=worker, json=report("g2", True, {}, id="g1-r2")
    )
    assert reused.status_code == 409

    reader = s.token("command", scope=["comm"])
    latest = await s.screening.get(
        "/v1/daily-reports", headers=reader, params={"node_id": "g1", "day": DAY}
    )
    assert latest.json()["revision"] == 2
    assert latest.json()["figures"] == {"入户排查户数": 130, "湖北返乡人员": 3}
    first = await s.screening.get(
        "/v1/daily-reports", headers=reader, params={"node_id": "g1", "day": DAY, "revision": 1}
    )
    assert first.json()["figures"] == {"入户排查户数": 126, "湖北返乡人员": 2}
    none = await s.screening.get(
        "/v1/daily-reports", headers=reader, params={"node_id": "g4", "day": DAY}
    )
    assert none.status_code == 404
    assert (await completeness(s))["counts"]["submitted"] == 1


async def test_reports_outside_the_callers_jurisdiction_are_refused(screening_stack: Stack) -> None:
    s = screening_stack
    clock = Clock(datetime.now(SHANGHAI))
    s.apps["screening"].state.clock = clock
    clock.at("17:00")  # reports for DAY are within the horizon
    await grow(s)

    async def known() -> bool:
        r = await s.screening.get(
            "/v1/daily-reports/completeness",
            headers=s.token("admin"),
            params={"node_id": "comm", "day": DAY},
        )
        return r.status_code == 200 and r.json()["counts"]["total"] == 2

    await eventually(known, message="screening never learned the grids")
    g1_worker = s.token("grid_worker", scope=["g1"])
    r = await s.screening.post("/v1/daily-reports", headers=g1_worker, json=report("g2", True, {}))
    assert r.status_code == 403
    r = await s.screening.post("/v1/daily-reports", headers=g1_worker, json=report("g1", True, {}))
    assert r.status_code == 201
    r = await s.screening.get(
        "/v1/daily-reports/completeness",
        headers=s.token("command", scope=["g1"]),
        params={"node_id": "comm", "day": DAY},
    )
    assert r.status_code == 403
    unknown = await s.screening.post(
        "/v1/daily-reports", headers=s.token("admin"), json=report("nowhere", True, {})
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "body.node_id"
