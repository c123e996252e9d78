"""The gate's own register (卡口登记表) as a table with Chinese headers. Pure formatting."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from shared.exports import csv_row

HEADERS: Final = (
    "时间",
    "方向",
    "类型",
    "证件类型",
    "证件号码(脱敏)",
    "车牌",
    "体温",
    "健康码",
    "核酸报告时间",
    "来源地",
    "处置结果",
    "原因",
)
DIRECTIONS: Final = {"in": "进", "out": "出"}
KINDS: Final = {"person": "人员", "vehicle": "车辆"}
DOCUMENTS: Final = {
    "resident_id": "居民身份证",
    "passport": "护照",
    "hk_macao_permit": "港澳通行证",
    "taiwan_permit": "台湾通行证",
}
HEALTH_CODES: Final = {"green": "绿码", "yellow": "黄码", "red": "红码"}
DECISIONS: Final = {"admit": "放行", "deny": "禁止通行", "persuade_return": "劝返", "refer": "移交"}
REASONS: Final = {
    "under_quarantine": "隔离期间外出",
    "under_observation": "居家观察期间外出",
    "fever": "体温异常",
    "risk_area_origin": "来自风险地区",
    "unresolved_origin": "来源地待核实",
    "health_code_red": "红码",
    "health_code_yellow": "黄码",
    "health_code_green": "绿码不在放行范围",
    "health_code_missing": "未出示健康码",
    "test_report_missing": "无核酸检测报告",
    "test_report_expired": "核酸检测报告过期",
    "not_resident": "非本辖区居民",
    "residency_resident": "常住人员不在放行范围",
    "residency_temporary": "暂住人员不在放行范围",
    "residency_visitor": "访客不在放行范围",
    "vehicle_not_registered": "非本辖区登记车辆",
}


def _time(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def row(crossing: Mapping[str, Any], zone: ZoneInfo) -> list[str]:
    """One ledger line; a vehicle lists its passengers' documents, `;`-separated."""
    if crossing["kind"] == "vehicle":
        passengers = crossing.get("passengers") or []
        types = ";".join(DOCUMENTS.get(p["document_type"], p["document_type"]) for p in passengers)
        numbers = ";".join(p["document_masked"] for p in passengers)
    else:
        doc = crossing.get("document_type") or ""
        types, numbers = DOCUMENTS.get(doc, doc), crossing.get("document_masked") or ""
    temperature = crossing.get("temperature")
    return [
        _time(crossing["occurred_at"], zone),
        DIRECTIONS.get(crossing["direction"], crossing["direction"]),
        KINDS.get(crossing["kind"], crossing["kind"]),
        types,
        numbers,
        crossing.get("plate") or "",
        f"{temperature:.1f}" if temperature is not None else "",
        HEALTH_CODES.get(crossing.get("health_code") or "", ""),
        _time(crossing.get("test_report_at"), zone),
        crossing.get("origin") or "",
        DECISIONS.get(crossing["decision"], crossing["decision"]),
        "、".join(REASONS.get(r, r) for r in crossing.get("reasons") or []),
    ]


def to_csv(crossings: Iterable[Mapping[str, Any]], zone: ZoneInfo) -> str:
    """UTF-8 text with a BOM so spreadsheet programs read the Chinese headers right."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADERS)
    writer.writerows(csv_row(row(c, zone)) for c in crossings)
    return out.getvalue()
