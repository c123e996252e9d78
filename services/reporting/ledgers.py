"""Ledgers across a jurisdiction (重点人员台账, 排查统计表, 卡口登记表) and daily-report
completeness (日报告 / 零报告) per level, over the read models of `projections_chains`.

A ledger is a title, Chinese column headers and rows of plain values; `to_csv` and `to_xlsx`
render it. Only masked PII is kept by reporting, so only masked PII can appear.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from openpyxl import Workbook  # type: ignore[import-untyped]
from pydantic import BaseModel, Field

from shared.exports import csv_row, xlsx_row

Cell = str | int | float | None
LedgerName = Literal["key-persons", "screening", "crossings"]


@dataclass(frozen=True)
class Ledger:
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


@dataclass(frozen=True)
class Place:
    id: str
    kind: str
    name: str
    path: str


KEY_REASONS = {
    "returnee_risk_area": "中高风险地区返回",
    "close_contact": "密切接触者",
    "fever": "发热",
    "symptoms": "有症状",
    "positive_test": "核酸阳性",
    "checkpoint_referral": "卡口移交",
    "unresolved_travel": "行程地点待核实",
    "other": "其他",
}
SOURCES = {
    "inquiry": "入户询问",
    "checkpoint": "卡口",
    "temperature": "体温监测",
    "test": "核酸检测",
    "manual": "人工列管",
}
DECISIONS = {"admit": "放行", "deny": "拒绝", "persuade_return": "劝返", "refer": "移交"}
DIRECTIONS = {"in": "进", "out": "出"}
CROSSING_KINDS = {"person": "人员", "vehicle": "车辆"}
HEALTH_CODES = {"green": "绿码", "yellow": "黄码", "red": "红码"}
RESIDENCY = {"resident": "常住", "temporary": "暂住", "visitor": "访客"}


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants a day in the system zone starts and ends (exclusive)."""
    start = datetime.combine(day, time(0), tzinfo=zone)
    return start, datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)


async def find_place(conn: Any, node_id: str) -> Place | None:
    row = await conn.fetchrow(
        "SELECT id, kind, name, path::text AS path FROM places WHERE id = $1", node_id
    )
    return None if row is None else Place(row["id"], row["kind"], row["name"], row["path"])


# -- 重点人员台账 ------------------------------------------------------------------------------

KEY_PERSON_HEADERS = (
    "序号", "姓名", "证件号码", "联系电话", "居住类型", "所在户", "所在地点", "重点原因",
    "来源", "列管时间",
)  # fmt: skip


async def key_persons(conn: Any, place: Place, day: date, zone: ZoneInfo) -> Ledger:
    """Key persons under the place who were on the list at the end of `day`, where they live
    now (a registered person's household; otherwise the place they were flagged at)."""
    _, end = day_bounds(day, zone)
    rows = await conn.fetch(
        """
        SELECT k.subject_id, COALESCE(p.name_masked, k.name_masked) AS name_masked,
               COALESCE(p.document_masked, k.document_masked) AS document_masked,
               p.phone_masked, p.residency, pl.id AS place_id, pl.name AS place_name,
               pl.path::text AS place_path, k.reasons, k.source, k.flagged_at
        FROM ledger_key_persons k
        LEFT JOIN ledger_persons p ON p.person_id = k.subject_id
        JOIN places pl ON pl.id = COALESCE(p.household_id, k.node_id)
        WHERE pl.path <@ $1::ltree
          AND k.flagged_at < $2 AND (k.cleared_at IS NULL OR k.cleared_at >= $2)
          AND NOT COALESCE(p.voided, false)
        ORDER BY pl.path, k.flagged_at, k.subject_id
        """,
        place.path,
        end,
    )
    return Ledger(
        "重点人员台账",
        KEY_PERSON_HEADERS,
        [
            (
                n,
                r["name_masked"],
                r["document_masked"],
                r["phone_masked"],
                RESIDENCY.get(r["residency"] or "", r["residency"]),
                r["place_id"],
                r["place_name"],
                "、".join(KEY_REASONS.get(x, x) for x in r["reasons"]),
                SOURCES.get(r["source"], r["source"]),
                local(r["flagged_at"], zone),
            )
            for n, r in enumerate(rows, start=1)
        ],
    )


# -- 排查统计表 -------------------------------------------------------------------------------

SCREENING_HEADERS = (
    "地点编号", "地点名称", "层级", "总户数", "已排查户数", "排查覆盖率(%)", "累计走访次数",
    "当日走访次数", "当日入户", "当日电话", "当日告知", "当日已排查", "当日不在家", "当日拒绝",
    "当日空置",
)  # fmt: skip


async def screening(conn: Any, place: Place, day: date, zone: ZoneInfo) -> Ledger:
    """The place and each of its children: households, screened households up to the end of
    `day` (by visits whose event says they screen their household), and that day's visits."""
    start, end = day_bounds(day, zone)
    rows = await conn.fetch(
        """
        WITH rows AS (
            SELECT id, name, kind, path, id <> $1 AS child FROM places
            WHERE (id = $1 OR parent_id = $1) AND NOT retired
        ), households AS (
            SELECT id, path FROM places
            WHERE kind = 'household' AND NOT retired AND path <@ $2::ltree
        ), visits AS (
            SELECT v.*, h.path FROM ledger_visits v JOIN households h ON h.id = v.household_id
            WHERE NOT v.voided AND v.occurred_at < $4
        ), today AS (
            SELECT * FROM visits WHERE occurred_at >= $3
        )
        SELECT r.id, r.name, r.kind,
            (SELECT count(*) FROM households h WHERE h.path <@ r.path) AS households,
            (SELECT count(DISTINCT v.household_id) FROM visits v
                WHERE v.screened AND v.path <@ r.path) AS screened,
            (SELECT count(*) FROM visits v WHERE v.path <@ r.path) AS visits,
            (SELECT count(*) FROM today t WHERE t.path <@ r.path) AS today,
            (SELECT count(*) FROM today t WHERE t.path <@ r.path AND method = 'door') AS door,
            (SELECT count(*) FROM today t WHERE t.path <@ r.path AND method = 'phone') AS phone,
            (SELECT count(*) FROM today t WHERE t.path <@ r.path AND method = 'notice') AS notice,
            (SELECT count(*) FROM today t WHERE t.path <@ r.path AND screened) AS ok,
            (SELECT count(*) FROM today t WHERE t.path <@ r.path AND outcome = 'absent') AS absent,
            (SELECT count(*) FROM today t WHERE t.path <@ r.path AND outcome = 'refused')
                AS refused,
            (SELECT count(*) FROM today t WHERE t.path <@ r.path AND outcome = 'vacant') AS vacant
        FROM rows r
        ORDER BY r.child, r.path
        """,
        place.id,
        place.path,
        start,
        end,
    )
    return Ledger(
        "排查统计表",
        SCREENING_HEADERS,
        [
            (
                r["id"],
                r["name"],
                r["kind"],
                r["households"],
                r["screened"],
                coverage(r["screened"], r["households"]),
                r["visits"],
                r["today"],
                r["door"],
                r["phone"],
                r["notice"],
                r["ok"],
                r["absent"],
                r["refused"],
                r["vacant"],
            )  # fmt: skip
            for r in rows
        ],
    )


def coverage(screened: int, households: int) -> float | None:
    """Screened households as a percentage, one decimal; none when there are no households."""
    return None if households == 0 else round(100.0 * screened / households, 1)


# -- 卡口登记表 -------------------------------------------------------------------------------

CROSSING_HEADERS = (
    "序号", "登记时间", "卡口", "卡口级别", "方向", "类型", "证件号码", "车牌号", "同行人数",
    "体温(℃)", "健康码", "来源地", "处置", "原因",
)  # fmt: skip


async def crossings(conn: Any, place: Place, day: date, zone: ZoneInfo) -> Ledger:
    """Every crossing on `day` at any checkpoint guarding a place under `place`."""
    start, end = day_bounds(day, zone)
    rows = await conn.fetch(
        """
        SELECT c.*, k.name AS checkpoint_name, k.level AS checkpoint_level
        FROM ledger_crossings c
        JOIN places pl ON pl.id = c.node_id
        LEFT JOIN ledger_checkpoints k ON k.checkpoint_id = c.checkpoint_id
        WHERE pl.path <@ $1::ltree AND c.occurred_at >= $2 AND c.occurred_at < $3
        ORDER BY c.occurred_at, c.crossing_id
        """,
        place.path,
        start,
        end,
    )
    return Ledger(
        "卡口登记表",
        CROSSING_HEADERS,
        [
            (
                n,
                local(r["occurred_at"], zone),
                r["checkpoint_name"] or r["checkpoint_id"],
                r["checkpoint_level"],
                DIRECTIONS.get(r["direction"], r["direction"]),
                CROSSING_KINDS.get(r["kind"], r["kind"]),
                r["document_masked"],
                r["plate"],
                r["passengers"],
                r["temperature"],
                HEALTH_CODES.get(r["health_code"] or "", r["health_code"]),
                r["origin"],
                DECISIONS.get(r["decision"], r["decision"]),
                "、".join(r["reasons"]),
            )
            for n, r in enumerate(rows, start=1)
        ],
    )


LEDGERS: dict[str, Callable[[Any, Place, date, ZoneInfo], Awaitable[Ledger]]] = {
    "key-persons": key_persons,
    "screening": screening,
    "crossings": crossings,
}


def local(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


# -- rendering --------------------------------------------------------------------------------


def to_csv(ledger: Ledger) -> bytes:
    """UTF-8 with a byte-order mark, so that spreadsheet programs read the Chinese right."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(ledger.headers)
    writer.writerows(csv_row(row) for row in ledger.rows)
    return out.getvalue().encode("utf-8-sig")


def to_xlsx(ledger: Ledger) -> bytes:
    """A workbook built in write-only mode (rows streamed to a temporary file)."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=ledger.title)
    sheet.append(list(ledger.headers))
    for row in ledger.rows:
        sheet.append(xlsx_row(sheet, row))
    with tempfile.TemporaryFile() as tmp:
        book.save(tmp)
        tmp.seek(0)
        return tmp.read()


# -- daily-report completeness ----------------------------------------------------------------

Standing = Literal["submitted", "zero", "late", "missing", "pending"]
STANDINGS: tuple[Standing, ...] = ("submitted", "zero", "late", "missing", "pending")


class NodeReport(BaseModel):
    node_id: str = Field(examples=["g1"])
    name: str = Field(examples=["第一网格"])
    status: Standing = Field(examples=["submitted"])
    zero: bool | None = Field(None, description="none: no report yet")
    revision: int | None = None
    figures: dict[str, int] = Field(default_factory=dict, examples=[{"入户排查户数": 126}])


class Completeness(BaseModel):
    node_id: str = Field(examples=["comm"])
    day: date = Field(examples=["2022-04-10"])
    level: str = Field(examples=["grid"])
    deadline: datetime = Field(examples=["2022-04-10T18:00:00+08:00"])
    items: list[NodeReport]
    counts: dict[str, int] = Field(
        examples=[{"submitted": 1, "zero": 1, "late": 1, "missing": 1, "pending": 0,
                   "reported": 3, "total": 4}]
    )  # fmt: skip
    rollup: dict[str, int] = Field(
        description="figures summed over every report received (zero reports add nothing)",
        examples=[{"入户排查户数": 206}],
    )


def standing(zero: bool | None, late: bool | None, deadline: datetime, now: datetime) -> Standing:
    """A late report is late whether zero or with figures; no report is `pending` until the
    deadline passes, then `missing`."""
    if zero is None:
        return "pending" if now <= deadline else "missing"
    if late:
        return "late"
    return "zero" if zero else "submitted"


def tally(standings: Sequence[Standing]) -> dict[str, int]:
    counts: dict[str, int] = {s: 0 for s in STANDINGS}
    for s in standings:
        counts[s] += 1
    return {
        **counts,
        "reported": len(standings) - counts["missing"] - counts["pending"],
        "total": len(standings),
    }


def rollup(figures: Sequence[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for f in figures:
        for name, value in f.items():
            total[name] = total.get(name, 0) + value
    return total


async def completeness(
    conn: Any, place: Place, day: date, level: str, deadline: datetime, now: datetime
) -> Completeness:
    """Each live node of kind `level` under (or at) `place`, with its report for `day`."""
    rows = await conn.fetch(
        """
        SELECT p.id, p.name, r.zero, r.first_late, r.revision, r.figures
        FROM places p
        LEFT JOIN report_days r ON r.node_id = p.id AND r.day = $3
        WHERE p.path <@ $1::ltree AND p.kind = $2 AND NOT p.retired
        ORDER BY p.path
        """,
        place.path,
        level,
        day,
    )
    items = [
        NodeReport(
            node_id=r["id"],
            name=r["name"],
            status=standing(r["zero"], r["first_late"], deadline, now),
            zero=r["zero"],
            revision=r["revision"],
            figures=dict(r["figures"] or {}),
        )
        for r in rows
    ]
    return Completeness(
        node_id=place.id,
        day=day,
        level=level,
        deadline=deadline,
        items=items,
        counts=tally([i.status for i in items]),
        rollup=rollup([i.figures for i in items]),
    )
