"""Cells of exported ledgers (CSV, XLSX) that a spreadsheet program opens safely (DESIGN §9).

A text cell beginning with `=`, `+`, `-`, `@`, a tab or a carriage return is read by
spreadsheet programs as a formula: a name such as `=HYPERLINK("http://…")` typed into the
registry would run in the command centre's Excel. Following OWASP's CSV-injection guidance,
such text is prefixed with `'` in CSV (shown as text, the quote hidden). In XLSX every text
cell is written as a typed string (never a formula) with its text unchanged, except the
control characters the format cannot hold, which become U+FFFD. Numbers, dates and empty
cells pass as they are.
"""

from __future__ import annotations

from typing import Any

from openpyxl.cell.cell import (  # type: ignore[import-untyped]
    ILLEGAL_CHARACTERS_RE,
    WriteOnlyCell,
)

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
REPLACEMENT = "\ufffd"


def csv_cell(value: Any) -> Any:
    """A CSV field: None as empty, text that would start a formula prefixed with `'`."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def csv_row(values: Any) -> list[Any]:
    return [csv_cell(v) for v in values]


def xlsx_cell(sheet: Any, value: Any) -> Any:
    """A cell for a write-only worksheet: text as a typed string, never a formula."""
    if not isinstance(value, str):
        return value
    cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub(REPLACEMENT, value))
    cell.data_type = "s"  # `=…` stays the text it is
    return cell


def xlsx_row(sheet: Any, values: Any) -> list[Any]:
    return [xlsx_cell(sheet, v) for v in values]
