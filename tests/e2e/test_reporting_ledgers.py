"""Ledgers across a jurisdiction (重点人员台账, 排查统计表, 卡口登记表) as CSV and XLSX, and
daily-report completeness per level, with all four services on real PostgreSQL and Kafka.

The tree is test_places.TREE: 区 root → 甲街道 street-a → 幸福社区 comm → g1 (→ 1栋 b1), g2;
and 乙街道 street-b. Households: h1 under b1, h2 under g2, h3 under street-b.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openpyxl  # type: ignore[import-untyped]
import pytest

from services.reporting.projections_chains import LEDGERS, REPORTS
from shared.identity import resident_id_check_digit
from shared.projection import Projection
from shared.testing import Infra, eventually
from tests.e2e.conftest import Stack, start_stack
from tests.e2e.test_places import TREE, grow
from tests.integration.helpers import read_topic

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = "2022-04-10"
BEFORE = "2022-04-09"
ZHANG = "11010519900101123" + resident_id_check_digit("11010519900101123")
LI = "22010219851231456" + resident_id_check_digit("22010219851231456")
WANG = "51012119700505123" + resident_id_check_digit("51012119700505123")
VISITOR = "44030419880808123" + resident_id_check_digit("44030419880808123")


@pytest.fixture
async def full_stack(infra: Infra) -> AsyncIterator[Stack]:
    """All four services, with a fact horizon wide enough for the story's days of 2022."""
    wide = {"fact_horizon_days": 3650}
    services = ["registry", "screening", "checkpoint", "reporting"]
    async for s in start_stack(infra, services, screening=wide, checkpoint=wide):
        yield s


def at(hhmm: str, day: str = DAY) -> str:
    return datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=SHANGHAI).isoformat()


async def until_created(call: Any) -> httpx.Response:
    """Retry a command until the receiving service has learned what it refers to."""

    last: list[httpx.Response] = []

    async def created() -> httpx.Response | None:
        r: httpx.Response = await call()
        last[:] = [r]
        return r if r.status_code in (200, 201) else None

    try:
        result: httpx.Response = await eventually(created, timeout=20)
    except AssertionError as exc:
        raise AssertionError(f"never accepted: {last[0].status_code} {last[0].text}") from exc
    return result


async def people(s: Stack) -> None:
    admin = s.token("admin")
    await grow(s)
    for body in (
        {"id": "h1", "parent_id": "b1", "door_number": "101"},
        {"id": "h2", "parent_id": "g2", "door_number": "202"},
        {"id": "h3", "parent_id": "street-b", "door_number": "1"},
    ):
        r = await s.registry.post("/v1/households", headers=admin, json=body)
        assert r.status_code == 201, r.text
    for pid, household, name, number in (
        ("p1", "h1", "张三", ZHANG),
        ("p2", "h2", "李四", LI),
        ("p3", "h3", "王五", WANG),
    ):
        r = await s.registry.post(
            "/v1/persons",
            headers=admin,
            json={"id": pid, "household_id": household, "name": name, "document_number": number},
        )
        assert r.status_code == 201, r.text


async def replay(s: Stack, projection: Projection, *topics: str) -> list[str]:
    """Apply every event on the topics again, straight to the read model (no consumer
    dedupe): a replay must change nothing. Returns the types replayed."""
    types: list[str] = []
    for topic in topics:
        events = await read_topic(s.kafka_bootstrap, s.settings.topic(topic), expected=1)
        async with s.apps["reporting"].state.pool.acquire() as conn, conn.transaction():
            await projection(conn, events)
        types += [e.type for e in events]
    return types


async def download(s: Stack, name: str, fmt: str, node_id: str, day: str = DAY) -> httpx.Response:
    return await s.reporting.get(
        f"/v1/ledgers/{name}.{fmt}",
        params={"node_id": node_id, "date": day},
        headers=s.token("command", scope=["root"]),
    )


def csv_rows(r: httpx.Response) -> list[list[str]]:
    assert r.status_code == 200, r.text
    assert r.content.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))


def xlsx_rows(r: httpx.Response) -> list[tuple[Any, ...]]:
    assert r.status_code == 200, r.text
    book = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
    [sheet] = book.worksheets
    return [tuple(row) for row in sheet.iter_rows(values_only=True)]


async def test_key_person_and_screening_ledgers_cover_the_subtree_in_csv_and_xlsx(
    full_stack: Stack,
) -> None:
    s = full_stack
    await people(s)
    worker = s.token("grid_worker", scope=["root"], sub="worker-1")
    for person in ("p1", "p3"):
        inquiry = {"person_id": person, "close_contact": True, "occurred_at": at("09:00")}
        r = await until_created(
            lambda b=inquiry: s.screening.post("/v1/inquiries", headers=worker, json=b)
        )
        assert r.json()["flagged_reasons"] == ["close_contact"], r.text
    visits = [
        ("v1", "h1", "door", "screened", True, at("10:00")),
        ("v2", "h2", "phone", "absent", False, at("11:00")),
        ("v3", "h2", "door", "screened", True, at("15:00", BEFORE)),
    ]
    for vid, household, method, outcome, signed, when in visits:
        visit: dict[str, Any] = {
            "id": vid, "household_id": household, "method": method, "outcome": outcome,
            "steps": ["greet"], "commitment_signed": signed, "occurred_at": when,
        }  # fmt: skip
        await until_created(lambda b=visit: s.screening.post("/v1/visits", headers=worker, json=b))

    async def ledgers_filled() -> bool:
        kp = await download(s, "key-persons", "csv", "root")
        sc = await download(s, "screening", "csv", "comm")
        keys, counts = csv_rows(kp), csv_rows(sc)
        documents_known = all("*" in row[2] for row in keys[1:])
        return len(keys) == 3 and documents_known and counts[1][3:7] == ["2", "2", "100.0", "3"]

    await eventually(ledgers_filled, message="reporting's ledgers never filled")

    key_csv = await download(s, "key-persons", "csv", "comm")
    rows = csv_rows(key_csv)
    assert rows[0] == [
        "序号", "姓名", "证件号码", "联系电话", "居住类型", "所在户", "所在地点", "重点原因",
        "来源", "列管时间",
    ]  # fmt: skip
    [p1] = rows[1:]
    assert p1[0] == "1" and p1[1] == "张*" and p1[5] == "h1"
    assert p1[7] == "密切接触者" and p1[8] == "入户询问" and p1[9] == "2022-04-10 09:00:00"
    assert p1[2].endswith(ZHANG[-4:]) and "*" in p1[2]
    assert ZHANG not in key_csv.text and "张三" not in key_csv.text
    everything = csv_rows(await download(s, "key-persons", "csv", "root"))
    assert [r[5] for r in everything[1:]] == ["h1", "h3"]
    # the day before the inquiry nobody was on the list yet
    assert csv_rows(await download(s, "key-persons", "csv", "root", BEFORE))[1:] == []

    xlsx = await download(s, "screening", "xlsx", "comm")
    assert xlsx.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    table = xlsx_rows(xlsx)
    assert table[0] == (
        "地点编号", "地点名称", "层级", "总户数", "已排查户数", "排查覆盖率(%)", "累计走访次数",
        "当日走访次数", "当日入户", "当日电话", "当日告知", "当日已排查", "当日不在家", "当日拒绝",
        "当日空置",
    )  # fmt: skip
    assert table[1:] == [
        ("comm", "幸福社区", "community", 2, 2, 100.0, 3, 2, 1, 1, 0, 1, 1, 0, 0),
        ("g1", "第一网格", "grid", 1, 1, 100.0, 1, 1, 1, 0, 0, 1, 0, 0, 0),
        ("g2", "第二网格", "grid", 1, 1, 100.0, 2, 1, 0, 1, 0, 0, 1, 0, 0),
    ]
    day_before = xlsx_rows(await download(s, "screening", "xlsx", "comm", BEFORE))
    assert day_before[1] == ("comm", "幸福社区", "community", 2, 1, 50.0, 1, 1, 1, 0, 0, 1, 0, 0, 0)
    key_xlsx = xlsx_rows(await download(s, "key-persons", "xlsx", "comm"))
    assert key_xlsx[0][:3] == ("序号", "姓名", "证件号码") and key_xlsx[1][1] == "张*"

    # every event applied a second time changes no row of any ledger
    before = [(await download(s, n, "csv", "root")).content for n in ("key-persons", "screening")]
    replayed = await replay(s, LEDGERS, "registry.events", "screening.events")
    assert replayed.count("HouseholdVisited") == 3 and replayed.count("KeyPersonFlagged") == 2
    after = [(await download(s, n, "csv", "root")).content for n in ("key-persons", "screening")]
    assert after == before

    # a street-b command centre may not read 幸福社区's ledgers
    outsider = s.token("command", scope=["street-b"])
    r = await s.reporting.get(
        "/v1/ledgers/key-persons.csv", params={"node_id": "comm", "date": DAY}, headers=outsider
    )
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    r = await s.reporting.get(
        "/v1/ledgers/key-persons.csv", params={"node_id": "street-b", "date": DAY},
        headers=outsider,
    )  # fmt: skip
    assert r.status_code == 200 and [row[5] for row in csv_rows(r)[1:]] == ["h3"]
    unknown = await s.reporting.get(
        "/v1/ledgers/nothing.csv", params={"node_id": "comm"}, headers=s.token("admin")
    )
    assert unknown.status_code == 422


async def test_the_crossing_ledger_lists_every_gate_under_the_node_for_the_day(
    full_stack: Stack,
) -> None:
    s = full_stack
    admin = s.token("admin")
    await grow(s)
    opened = await until_created(lambda: s.checkpoint.post(
        "/v1/checkpoints",
        headers=admin,
        json={
            "id": "comm-gate", "node_id": "comm", "name": "幸福社区北门", "level": "compound",
            "policy": {"residents_only": False, "health_code_colours": ["green"]},
            "opened_at": at("00:00", "2022-04-01"),
        },
    ))  # fmt: skip
    assert opened.status_code == 201
    decisions = []
    for cid, number, code, when in (
        ("x1", VISITOR, "green", at("08:15")),
        ("x2", WANG, "red", at("09:30")),
        ("x3", VISITOR, "green", at("08:00", "2022-04-11")),
    ):
        r = await s.checkpoint.post("/v1/crossings", headers=admin, json={
            "id": cid, "checkpoint_id": "comm-gate", "direction": "in", "document_number": number,
            "health_code": code, "temperature": 36.5, "occurred_at": when,
            "origin": "四川省成都市"})  # fmt: skip
        assert r.status_code == 201, r.text
        decisions.append(r.json()["decision"])
    assert decisions[0] == "admit" and decisions[1] != "admit"

    async def crossings_seen() -> list[list[str]] | None:
        rows = csv_rows(await download(s, "crossings", "csv", "root"))
        return rows if len(rows) == 3 and rows[1][2] == "幸福社区北门" else None

    rows = await eventually(crossings_seen, message="reporting never saw the crossings")
    assert rows[0] == [
        "序号", "登记时间", "卡口", "卡口级别", "方向", "类型", "证件号码", "车牌号", "同行人数",
        "体温(℃)", "健康码", "来源地", "处置", "原因",
    ]  # fmt: skip
    first, second = rows[1:]
    assert first[:6] == ["1", "2022-04-10 08:15:00", "幸福社区北门", "compound", "进", "人员"]
    assert first[6].endswith(VISITOR[-4:]) and VISITOR not in first[6]
    assert first[9:13] == ["36.5", "绿码", "四川省成都市", "放行"]
    assert second[:2] == ["2", "2022-04-10 09:30:00"] and second[10] == "红码"
    assert second[12] in ("拒绝", "劝返", "移交") and second[13] != ""
    book = xlsx_rows(await download(s, "crossings", "xlsx", "comm"))
    assert book[0][1] == "登记时间" and [r[0] for r in book[1:]] == [1, 2]
    elsewhere = csv_rows(await download(s, "crossings", "csv", "street-b"))
    assert elsewhere[1:] == []

    async def next_day_seen() -> list[list[str]] | None:
        # x3 is a stream of its own: it may arrive through another partition, later
        rows = csv_rows(await download(s, "crossings", "csv", "root", "2022-04-11"))
        return rows if len(rows) > 1 else None

    next_day = await eventually(next_day_seen, message="reporting never saw the next day")
    assert [r[1] for r in next_day[1:]] == ["2022-04-11 08:00:00"]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, hhmm: str, day: str = DAY) -> None:
        self.now = datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=SHANGHAI)


async def test_completeness_tells_submitted_zero_late_missing_and_pending_apart(
    full_stack: Stack,
) -> None:
    s = full_stack
    tree = [*TREE, ("g3", "comm", "grid", "第三网格"), ("g4", "comm", "grid", "第四网格")]
    await grow(s, tree)
    screening_clock, reporting_clock = Clock(datetime.now(SHANGHAI)), Clock(datetime.now(SHANGHAI))
    s.apps["screening"].state.clock = screening_clock
    s.apps["reporting"].state.clock = reporting_clock
    screening_clock.at("17:00")
    reporting_clock.at("17:00")
    worker = s.token("grid_worker", scope=["comm"], sub="worker-1")

    async def submit(
        node: str, zero: bool, figures: dict[str, int], headers: dict[str, str] | None = None
    ) -> None:
        body = {"node_id": node, "day": DAY, "zero": zero, "figures": figures}
        r = await until_created(
            lambda: s.screening.post(
                "/v1/daily-reports", headers={**worker, **(headers or {})}, json=body
            )
        )
        assert r.status_code == 201, r.text

    async def completeness(node: str = "comm", level: str = "grid") -> Any:
        r = await s.reporting.get(
            "/v1/daily-reports/completeness",
            params={"node_id": node, "date": DAY, "level": level},
            headers=s.token("command", scope=["street-a"]),
        )
        assert r.status_code == 200, r.text
        return r.json()

    async def four_grids() -> bool:
        r = await s.reporting.get(
            "/v1/daily-reports/completeness",
            params={"node_id": "comm", "date": DAY, "level": "grid"},
            headers=s.token("admin"),
        )
        return r.status_code == 200 and len(r.json()["items"]) == 4

    await eventually(four_grids, message="reporting never learned the grids")
    before = await completeness()
    assert [i["status"] for i in before["items"]] == ["pending"] * 4
    assert before["deadline"] == "2022-04-10T18:00:00+08:00"

    await submit("g1", False, {"入户排查户数": 126, "湖北返乡人员": 2})
    await submit("g2", True, {})
    screening_clock.at("19:00")
    await submit("g3", False, {"入户排查户数": 80})
    await submit("comm", False, {"入户排查户数": 206})
    reporting_clock.at("19:00")

    async def three_reported() -> Any:
        c = await completeness()
        return c if c["counts"]["reported"] == 3 else None

    now = await eventually(three_reported, message="reporting never saw the reports")
    assert {i["node_id"]: i["status"] for i in now["items"]} == {
        "g1": "submitted", "g2": "zero", "g3": "late", "g4": "missing",
    }  # fmt: skip
    assert now["counts"] == {
        "submitted": 1, "zero": 1, "late": 1, "missing": 1, "pending": 0, "reported": 3,
        "total": 4,
    }  # fmt: skip
    assert now["rollup"] == {"入户排查户数": 206, "湖北返乡人员": 2}
    g2 = next(i for i in now["items"] if i["node_id"] == "g2")
    g4 = next(i for i in now["items"] if i["node_id"] == "g4")
    assert (g2["zero"], g2["revision"], g2["figures"]) == (True, 1, {})
    assert (g4["zero"], g4["revision"]) == (None, None)

    async def community_reported() -> Any:
        c = await completeness("street-a", "community")
        return c if c["counts"]["reported"] == 1 else None

    communities = await eventually(community_reported, message="comm's report never arrived")
    assert [(i["node_id"], i["status"]) for i in communities["items"]] == [("comm", "submitted")]
    assert communities["deadline"] == "2022-04-10T20:00:00+08:00"

    # g1 amends late: the latest figures win, but g1 reported on time
    await submit("g1", False, {"入户排查户数": 130, "湖北返乡人员": 3}, headers={"If-Match": '"1"'})

    async def amended() -> Any:
        c = await completeness()
        return c if c["rollup"] == {"入户排查户数": 210, "湖北返乡人员": 3} else None

    after = await eventually(amended, message="reporting never saw the amendment")
    g1 = next(i for i in after["items"] if i["node_id"] == "g1")
    assert (g1["status"], g1["revision"]) == ("submitted", 2)

    assert (await replay(s, REPORTS, "screening.events")).count("DailyReportSubmitted") == 5
    assert await completeness() == after

    outsider = s.token("command", scope=["street-b"])
    r = await s.reporting.get(
        "/v1/daily-reports/completeness",
        params={"node_id": "comm", "date": DAY, "level": "grid"},
        headers=outsider,
    )
    assert r.status_code == 403
