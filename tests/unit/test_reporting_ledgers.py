"""Ledger rendering (CSV / XLSX with Chinese headers) and daily-report standings."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from zoneinfo import ZoneInfo

import openpyxl  # type: ignore[import-untyped]

from services.reporting.config import ReportingSettings
from services.reporting.ledgers import (
    Ledger,
    coverage,
    day_bounds,
    rollup,
    standing,
    tally,
    to_csv,
    to_xlsx,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
LEDGER = Ledger(
    "重点人员台账",
    ("序号", "姓名", "证件号码", "体温(℃)"),
    [(1, "张*", "110105********1234", 37.6), (2, "李*", None, None)],
)
DEADLINE = datetime(2022, 4, 10, 18, 0, tzinfo=SHANGHAI)


def test_csv_has_a_bom_the_chinese_headers_and_empty_cells_for_none() -> None:
    raw = to_csv(LEDGER)
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows == [
        ["序号", "姓名", "证件号码", "体温(℃)"],
        ["1", "张*", "110105********1234", "37.6"],
        ["2", "李*", "", ""],
    ]


def test_xlsx_opens_with_openpyxl_with_the_title_headers_and_typed_cells() -> None:
    book = openpyxl.load_workbook(io.BytesIO(to_xlsx(LEDGER)))
    assert book.sheetnames == ["重点人员台账"]
    rows = list(book["重点人员台账"].iter_rows(values_only=True))
    assert rows == [
        ("序号", "姓名", "证件号码", "体温(℃)"),
        (1, "张*", "110105********1234", 37.6),
        (2, "李*", None, None),
    ]


def test_a_day_is_bounded_in_the_system_zone() -> None:
    start, end = day_bounds(date(2022, 4, 10), SHANGHAI)
    assert start.isoformat() == "2022-04-10T00:00:00+08:00"
    assert end.isoformat() == "2022-04-11T00:00:00+08:00"


def test_coverage_is_a_percentage_with_one_decimal_and_none_without_households() -> None:
    assert (coverage(2, 3), coverage(0, 5), coverage(0, 0)) == (66.7, 0.0, None)


def test_zero_late_missing_and_pending_are_told_apart() -> None:
    before, after = DEADLINE.replace(hour=17), DEADLINE.replace(hour=19)
    assert standing(False, False, DEADLINE, after) == "submitted"
    assert standing(True, False, DEADLINE, after) == "zero"
    assert standing(False, True, DEADLINE, after) == "late"
    assert standing(True, True, DEADLINE, after) == "late"
    assert standing(None, None, DEADLINE, before) == "pending"
    assert standing(None, None, DEADLINE, DEADLINE) == "pending"
    assert standing(None, None, DEADLINE, after) == "missing"


def test_tally_counts_each_standing_and_what_was_reported() -> None:
    assert tally(["submitted", "zero", "late", "missing", "missing"]) == {
        "submitted": 1,
        "zero": 1,
        "late": 1,
        "missing": 2,
        "pending": 0,
        "reported": 3,
        "total": 5,
    }


def test_rollup_sums_each_figure_over_the_reports() -> None:
    figures = [{"入户排查户数": 126, "湖北返乡人员": 2}, {}, {"入户排查户数": 80}]
    assert rollup(figures) == {"入户排查户数": 206, "湖北返乡人员": 2}


def test_deadlines_mirror_screenings_defaults_and_are_validated() -> None:
    settings = ReportingSettings()
    assert [settings.report_deadline(k).isoformat() for k in ("grid", "community", "street",
            "township", "household")] == ["18:00:00", "20:00:00", "21:00:00", "21:00:00",
                                           "22:00:00"]  # fmt: skip
    try:
        ReportingSettings(report_deadlines={"grid": "25:00"})
    except ValueError as exc:
        assert "report_deadlines[grid]" in str(exc)
    else:
        raise AssertionError("an invalid deadline was accepted")
