"""Streaming parser for household rosters (花名册 / 基础台账) uploaded as CSV or XLSX.

One row is one person. `parse_roster` sniffs the format and the header row eagerly (so an
unusable file fails with `RosterFormatError` before any row is read), then returns a lazy
iterator of `RosterRow` (a well-formed person) or `RowError` (one problem in one row; a row
with several problems yields several errors and no `RosterRow`). Nothing here touches a
database and the file is never held in memory as a whole:

* CSV is decoded incrementally through `io.TextIOWrapper`. The encoding is decided from the
  first 64 KiB: a BOM wins, otherwise UTF-8 if that prefix decodes as UTF-8, otherwise GB18030
  (what Excel on a Chinese Windows writes). Tab-separated text is recognised too.
* XLSX is read with openpyxl in read-only mode, first worksheet, row by row. openpyxl needs a
  seekable file; a non-seekable upload stream is spooled to a temporary file first.

Row numbers are those a spreadsheet user sees: the 1-based row in Excel/WPS (for CSV the
record number, counting blank lines; equal to the line number unless a quoted cell spans lines).

The header row is the first row with at least 3 known headers, after at most
`MAX_TITLE_ROWS` non-empty title rows ("XX社区居民花名册", "填报单位：…"). A two-tier header
(a merged group cell such as "地址" above "楼栋 / 单元 / 房号") is merged with the row below it.
Rows whose recognised columns are all empty are skipped (templates often pre-fill 序号).

Validation of the document number itself is not done here (see the identity module); a
number that Excel stored as a float and so lost digits is reported, though, because it can no
longer be repaired from the file.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, Final, TypeVar

import openpyxl  # type: ignore[import-untyped]

__all__ = [
    "DOCUMENT_TYPES",
    "MAX_TITLE_ROWS",
    "REQUIRED_FIELDS",
    "RESIDENCIES",
    "RosterFormatError",
    "RosterRow",
    "RowError",
    "header_of",
    "household_key",
    "parse_roster",
]

T = TypeVar("T")

MAX_TITLE_ROWS: Final = 5
"""Non-empty rows allowed above the header row."""
MIN_HEADER_MATCHES: Final = 3
"""Known headers a row needs to be taken as the header row."""
SNIFF_BYTES: Final = 64 * 1024

RESIDENCIES: Final = ("resident", "temporary", "visitor")
DOCUMENT_TYPES: Final = ("resident_id", "passport", "hk_macao_permit", "taiwan_permit")
REQUIRED_FIELDS: Final = ("door_number", "name", "document_number")

XLSX_CONTENT_TYPES: Final = frozenset(
    {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-excel.sheet.macroenabled.12",
    }
)
_ZIP_MAGIC: Final = b"PK\x03\x04"
_OLE_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls / .et


# --------------------------------------------------------------------------------------------
# Results


class RosterFormatError(ValueError):
    """The file as a whole cannot be read as a roster (wrong format, no usable header row)."""


@dataclass(frozen=True, slots=True)
class RosterRow:
    """One person from the roster, cleaned but not validated against other data."""

    row_number: int
    compound: str
    building: str
    unit: str
    floor: str
    door_number: str
    address: str
    head_name: str
    name: str
    relation: str
    document_type: str
    document_number: str
    phone: str
    residency: str
    tags: list[str]


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem in one row; `field` is the header as written in the file."""

    row_number: int
    field: str
    reason: str


def household_key(row: RosterRow) -> tuple[str, ...]:
    """The place path of the row's household; rows with equal keys share a household."""
    parts = (row.compound, row.building, row.unit, row.floor, row.door_number)
    return tuple(p for p in parts if p)


# --------------------------------------------------------------------------------------------
# Vocabulary

# logical field -> (canonical header, English description)
_FIELDS: Final[dict[str, tuple[str, str]]] = {
    "compound": ("小区", "compound"),
    "building": ("楼栋", "building"),
    "unit": ("单元", "unit"),
    "floor": ("楼层", "floor"),
    "door_number": ("门牌号", "door number"),
    "address": ("地址", "address"),
    "head_name": ("户主姓名", "head of household"),
    "name": ("姓名", "name"),
    "relation": ("与户主关系", "relation to head"),
    "document_type": ("证件类型", "document type"),
    "document_number": ("身份证号", "document number"),
    "phone": ("联系电话", "phone"),
    "category": ("人员类别", "residency / category"),
    "tags": ("标签", "tags"),
}

_HEADER_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "compound": ("小区", "院落"),
    "building": ("楼栋", "楼号", "栋"),
    "unit": ("单元",),
    "floor": ("楼层", "层"),
    "door_number": ("门牌号", "房号", "户号", "门牌"),
    "address": ("地址", "住址"),
    "head_name": ("户主姓名", "户主"),
    "name": ("姓名",),
    "relation": ("与户主关系", "关系"),
    "document_type": ("证件类型",),
    "document_number": ("身份证号", "身份证号码", "证件号码", "证件号"),
    "phone": ("联系电话", "电话", "手机", "手机号"),
    "category": ("人员类别", "居住类型", "类别"),
    "tags": ("标签", "备注标签"),
}

_DOCUMENT_TYPE_VALUES: Final[dict[str, str]] = {
    "身份证": "resident_id",
    "居民身份证": "resident_id",
    "二代身份证": "resident_id",
    "护照": "passport",
    "港澳通行证": "hk_macao_permit",
    "往来港澳通行证": "hk_macao_permit",
    "港澳居民来往内地通行证": "hk_macao_permit",
    "回乡证": "hk_macao_permit",
    "台胞证": "taiwan_permit",
    "台湾居民来往大陆通行证": "taiwan_permit",
    **{code: code for code in DOCUMENT_TYPES},
}

_RESIDENCY_VALUES: Final[dict[str, str]] = {
    **dict.fromkeys(("常住", "户籍", "本地", "常住人口", "户籍人口"), "resident"),
    **dict.fromkeys(
        ("暂住", "流动", "租户", "外来", "暂住人口", "流动人口", "外来人口"), "temporary"
    ),
    **dict.fromkeys(("访客", "临时"), "visitor"),
}

_TAG_VALUES: Final[dict[str, str]] = {
    "特困": "特困",
    "特困户": "特困",
    "特困人员": "特困",
    "低保": "低保",
    "低保户": "低保",
    "残疾": "残疾",
    "残疾人": "残疾",
    "孤寡老人": "孤寡老人",
    "孤寡": "孤寡老人",
    "独居老人": "孤寡老人",
}

_TAG_SEPARATORS: Final = re.compile(r"[、,，;；/\s]+")
_BRACKETED: Final = re.compile(r"[(\[【].*?[)\]】]")
_CJK_GAP: Final = re.compile(r"(?<=[\u3400-\u9fff])\s+(?=[\u3400-\u9fff])")
_SCIENTIFIC: Final = re.compile(r"\d(?:\.\d+)?[eE]\+?\d+")


def header_of(field: str) -> str:
    """The canonical header of a roster field (`name` -> 姓名)."""
    return _FIELDS[field][0]


def _normalise_header(value: Any) -> str:
    """`" *身份证号码（必填）"` -> `"身份证号码"`; Latin letters case-folded."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFKC", str(value))  # full-width ( ) * : -> ASCII
    text = _BRACKETED.sub("", text)
    text = "".join(text.split())
    return text.strip("*:").casefold()


_HEADER_INDEX: Final[dict[str, str]] = {
    _normalise_header(alias): name for name, aliases in _HEADER_ALIASES.items() for alias in aliases
}


def _required_headers_text() -> str:
    return "; ".join(
        " / ".join(_HEADER_ALIASES[name]) + f" ({_FIELDS[name][1]})" for name in REQUIRED_FIELDS
    )


# --------------------------------------------------------------------------------------------
# Column plan


@dataclass(frozen=True, slots=True)
class _Plan:
    """Which columns feed which field; for most fields the first non-empty column wins,
    category and tags columns are all combined."""

    columns: dict[str, tuple[int, ...]]
    labels: dict[int, str]  # column index -> header as written in the file

    def label(self, name: str) -> str:
        cols = self.columns.get(name)
        return self.labels[cols[0]] if cols else _FIELDS[name][0]


def _header_fields(cells: Sequence[Any]) -> dict[int, str]:
    found: dict[int, str] = {}
    for index, cell in enumerate(cells):
        name = _HEADER_INDEX.get(_normalise_header(cell))
        if name is not None:
            found[index] = name
    return found


def _make_plan(header: Sequence[Any], sub_header: Sequence[Any] | None) -> _Plan:
    by_column = _header_fields(header)
    labels = {i: _display(header[i]) for i in by_column}
    if sub_header is not None:
        for index, name in _header_fields(sub_header).items():
            by_column[index] = name  # the sub-header is the more specific one
            labels[index] = _display(sub_header[index])
    columns: dict[str, list[int]] = {}
    for index in sorted(by_column):
        columns.setdefault(by_column[index], []).append(index)
    missing = [name for name in REQUIRED_FIELDS if name not in columns]
    if missing:
        names = ", ".join(" / ".join(_HEADER_ALIASES[m]) for m in missing)
        raise RosterFormatError(
            f"the header row has no column for {names}; required headers: "
            f"{_required_headers_text()}"
        )
    return _Plan({k: tuple(v) for k, v in columns.items()}, labels)


def _display(cell: Any) -> str:
    return " ".join(str(cell).split())


def _is_empty_row(cells: Sequence[Any]) -> bool:
    for cell in cells:
        if cell is None:
            continue
        if type(cell) is str:
            if cell and not cell.isspace():
                return False
        else:
            return False
    return True


# --------------------------------------------------------------------------------------------
# Cells


class _CellProblem(Exception):
    pass


_FAILED: Final = "\x00"
"""Stands for a cell already reported as a `RowError` (never a real cell value)."""


def _cell_text(value: Any) -> str:
    """A cell as trimmed text; raises `_CellProblem` for a value that cannot be trusted."""
    if type(value) is str:
        text = value.strip()
        if text.startswith('="') and text.endswith('"') and len(text) >= 3:
            text = text[2:-1].strip()  # CSV exports keep leading zeros as ="0123"
        return text
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _CellProblem(f"holds an invalid number ({value})")
        if value.is_integer():
            if abs(value) >= 1e15:
                raise _CellProblem(
                    f"was stored as a number ({value:.15g}) and lost digits: Excel keeps only "
                    "15 significant digits; format the column as text and re-enter the values"
                )
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime | dt.date | dt.time | dt.timedelta):
        raise _CellProblem(
            f"was turned into a date/time by the spreadsheet ({value}); "
            "format the column as text and re-enter the values"
        )
    return str(value).strip()


# --------------------------------------------------------------------------------------------
# Rows


class _RowBuilder:
    __slots__ = ("_plan", "_single", "_category", "_tags", "_known")

    def __init__(self, plan: _Plan) -> None:
        self._plan = plan
        self._single = [
            (name, cols) for name, cols in plan.columns.items() if name not in ("category", "tags")
        ]
        self._category = plan.columns.get("category", ())
        self._tags = plan.columns.get("tags", ())
        self._known = tuple(sorted(plan.labels))

    def build(self, row_number: int, cells: Sequence[Any]) -> list[RosterRow | RowError] | None:
        """None for a row without any value in a recognised column."""
        width = len(cells)
        for index in self._known:
            if index < width:
                cell = cells[index]
                if cell is not None and (type(cell) is not str or (cell and not cell.isspace())):
                    break
        else:
            return None

        errors: list[RosterRow | RowError] = []
        labels = self._plan.labels
        values: dict[str, str] = {}
        for name, cols in self._single:
            text = ""
            for index in cols:
                if index < width:
                    try:
                        text = _cell_text(cells[index])
                    except _CellProblem as problem:
                        label = labels[index]
                        errors.append(
                            RowError(row_number, label, f"{label} ({_FIELDS[name][1]}) {problem}")
                        )
                        text = _FAILED
                        break
                    if text:
                        break
            values[name] = text

        for name in REQUIRED_FIELDS:
            if not values[name]:
                label = self._plan.label(name)
                errors.append(RowError(row_number, label, f"{label} ({_FIELDS[name][1]}) is empty"))

        document_number = values["document_number"]
        if document_number.startswith("'"):
            document_number = document_number[1:].lstrip()
        if _SCIENTIFIC.fullmatch(document_number):
            label = self._plan.label("document_number")
            errors.append(
                RowError(
                    row_number,
                    label,
                    f"{label} (document number) is in scientific notation ({document_number}): "
                    "the spreadsheet stored it as a number and lost digits; format the column "
                    "as text and re-enter the values",
                )
            )

        document_type = "resident_id"
        raw_type = values.get("document_type", "")
        if raw_type and raw_type != _FAILED:
            key = "".join(unicodedata.normalize("NFKC", raw_type).split()).casefold()
            found = _DOCUMENT_TYPE_VALUES.get(key)
            if found is None:
                label = self._plan.label("document_type")
                errors.append(
                    RowError(
                        row_number,
                        label,
                        f"{label} (document type) {raw_type!r} is not one of "
                        "身份证, 护照, 港澳通行证, 台胞证",
                    )
                )
            else:
                document_type = found

        residency, tags = self._category_and_tags(row_number, cells, errors)

        if errors:
            return errors
        phone = values.get("phone", "")
        if phone.startswith("'"):
            phone = phone[1:].lstrip()
        return [
            RosterRow(
                row_number=row_number,
                compound=values.get("compound", ""),
                building=values.get("building", ""),
                unit=values.get("unit", ""),
                floor=values.get("floor", ""),
                door_number=values["door_number"],
                address=values.get("address", ""),
                head_name=_clean_name(values.get("head_name", "")),
                name=_clean_name(values["name"]),
                relation=values.get("relation", ""),
                document_type=document_type,
                document_number=document_number,
                phone=phone,
                residency=residency,
                tags=tags,
            )
        ]

    def _category_and_tags(
        self, row_number: int, cells: Sequence[Any], errors: list[RosterRow | RowError]
    ) -> tuple[str, list[str]]:
        width = len(cells)
        residencies: dict[str, str] = {}  # residency -> word that gave it
        tags: set[str] = set()
        for cols, is_category in ((self._category, True), (self._tags, False)):
            for index in cols:
                if index >= width:
                    continue
                try:
                    text = _cell_text(cells[index])
                except _CellProblem as problem:
                    label = self._plan.labels[index]
                    errors.append(RowError(row_number, label, f"{label} {problem}"))
                    continue
                if not text:
                    continue
                for word in _TAG_SEPARATORS.split(text):
                    if not word:
                        continue
                    if is_category and word in _RESIDENCY_VALUES:
                        residencies.setdefault(_RESIDENCY_VALUES[word], word)
                    else:
                        tags.add(_TAG_VALUES.get(word, word))
        if len(residencies) > 1:
            label = self._plan.label("category")
            words = "、".join(residencies.values())
            errors.append(
                RowError(row_number, label, f"{label} (residency) is contradictory: {words}")
            )
            return "resident", []
        residency = next(iter(residencies), "resident")
        return residency, sorted(tags)


def _clean_name(name: str) -> str:
    """Collapse spaces; drop the padding spaces in "张  三" but keep "John Smith"."""
    if not name:
        return name
    name = " ".join(name.split())
    return _CJK_GAP.sub("", name)


# --------------------------------------------------------------------------------------------
# Sources


class _Rejoined(io.RawIOBase):
    """An already-read prefix followed by the rest of a stream; never closes the stream."""

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        self._prefix = memoryview(prefix)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        if self._prefix:
            n = min(len(target), len(self._prefix))
            target[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._rest.read(len(target))
        if not data:
            return 0
        n = len(data)
        target[:n] = data
        return n


def _read_prefix(stream: IO[bytes]) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size < SNIFF_BYTES:
        part = stream.read(SNIFF_BYTES - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _sniff_encoding(prefix: bytes, complete: bool) -> str:
    if prefix.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if prefix.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in prefix:
        raise RosterFormatError("the file is neither CSV text nor an XLSX workbook")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(prefix, final=complete)
        return "utf-8-sig"
    except UnicodeDecodeError:
        pass
    try:
        codecs.getincrementaldecoder("gb18030")().decode(prefix, final=complete)
    except UnicodeDecodeError as exc:
        raise RosterFormatError(
            "the CSV file is neither UTF-8 nor GB18030/GBK text; save it as CSV UTF-8"
        ) from exc
    return "gb18030"


def _csv_source(stream: IO[bytes], prefix: bytes) -> Iterator[tuple[int, Sequence[Any]]]:
    complete = len(prefix) < SNIFF_BYTES
    encoding = _sniff_encoding(prefix, complete)
    sample = codecs.getincrementaldecoder(encoding)(errors="replace").decode(prefix)
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    text = io.TextIOWrapper(
        io.BufferedReader(_Rejoined(prefix, stream), buffer_size=SNIFF_BYTES),
        encoding=encoding,
        newline="",
    )
    return _csv_rows(text, encoding, delimiter)


def _csv_rows(
    text: io.TextIOWrapper, encoding: str, delimiter: str
) -> Iterator[tuple[int, Sequence[Any]]]:
    reader = csv.reader(text, delimiter=delimiter)
    number = 0
    try:
        for number, cells in enumerate(reader, start=1):
            yield number, cells
    except UnicodeDecodeError as exc:
        raise RosterFormatError(
            f"the CSV file stops being valid {encoding} text after row {number}"
        ) from exc
    except csv.Error as exc:
        raise RosterFormatError(f"the CSV file is malformed after row {number}: {exc}") from exc


def _xlsx_source(stream: IO[bytes], prefix: bytes) -> Iterator[tuple[int, Sequence[Any]]]:
    spool: IO[bytes] | None = None
    if stream.seekable():
        stream.seek(stream.tell() - len(prefix))
        source: IO[bytes] = stream
    else:
        spool = tempfile.TemporaryFile()
        spool.write(prefix)
        shutil.copyfileobj(stream, spool, SNIFF_BYTES)
        spool.seek(0)
        source = spool
    try:
        workbook = openpyxl.load_workbook(source, read_only=True, data_only=True)
    except Exception as exc:  # any failure to open the zip/XML means "not a workbook"
        if spool is not None:
            spool.close()
        raise RosterFormatError(f"the file is not a readable XLSX workbook ({exc})") from exc
    if not workbook.worksheets:
        workbook.close()
        if spool is not None:
            spool.close()
        raise RosterFormatError("the XLSX workbook has no worksheet")
    return _xlsx_rows(workbook, spool)


def _xlsx_rows(workbook: Any, spool: IO[bytes] | None) -> Iterator[tuple[int, Sequence[Any]]]:
    try:
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # some exporters write a wrong <dimension>: trust the rows
        yield from enumerate(sheet.iter_rows(values_only=True), start=1)
    finally:
        workbook.close()
        if spool is not None:
            spool.close()


def _looks_like_xlsx(prefix: bytes, filename: str | None, content_type: str | None) -> bool:
    if prefix.startswith(_ZIP_MAGIC):
        return True
    if filename and filename.lower().endswith((".xlsx", ".xlsm")):
        return True
    if not content_type:
        return False
    return content_type.split(";")[0].strip().lower() in XLSX_CONTENT_TYPES


# --------------------------------------------------------------------------------------------
# Entry point


def parse_roster(
    stream: BinaryIO, filename: str | None = None, content_type: str | None = None
) -> Iterator[RosterRow | RowError]:
    """Parse a roster lazily. Raises `RosterFormatError` at once if the file is not CSV/XLSX
    or has no usable header row; reading errors later in the file raise it from the iterator.

    The caller keeps ownership of `stream` (it is not closed)."""
    prefix = _read_prefix(stream)
    if prefix.startswith(_OLE_MAGIC):
        raise RosterFormatError(
            "legacy .xls (Excel 97-2003) workbooks are not supported; save as .xlsx or CSV"
        )
    if _looks_like_xlsx(prefix, filename, content_type):
        if not prefix.startswith(_ZIP_MAGIC):
            raise RosterFormatError("the file is named as XLSX but is not an XLSX workbook")
        rows = _xlsx_source(stream, prefix)
    else:
        rows = _csv_source(stream, prefix)
    try:
        plan, pending = _find_header(rows)
    except BaseException:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
        raise
    return _emit(rows, plan, pending)


def _find_header(
    rows: Iterator[tuple[int, Sequence[Any]]],
) -> tuple[_Plan, list[tuple[int, Sequence[Any]]]]:
    """Consume rows up to the header; returns the plan and rows read ahead (to be parsed)."""
    seen = 0
    for _number, cells in rows:
        if _is_empty_row(cells):
            continue
        if len(set(_header_fields(cells).values())) >= MIN_HEADER_MATCHES:
            following = next(rows, None)
            if following is not None and _is_sub_header(following[1]):
                return _make_plan(cells, following[1]), []
            return _make_plan(cells, None), [following] if following is not None else []
        seen += 1
        if seen > MAX_TITLE_ROWS:
            break
    raise RosterFormatError(
        f"no header row found (looked for a row with at least {MIN_HEADER_MATCHES} known "
        f"headers within the first {MAX_TITLE_ROWS + 1} non-empty rows); required headers: "
        f"{_required_headers_text()}"
    )


def _is_sub_header(cells: Sequence[Any]) -> bool:
    """The lower row of a two-tier header: mostly known headers (a data row may hold one
    header-like value, such as 关系 = 户主, but not several)."""
    matched = len(_header_fields(cells))
    filled = sum(1 for cell in cells if cell is not None and str(cell).strip())
    return matched >= 2 and matched * 2 >= filled


def _emit(
    rows: Iterator[tuple[int, Sequence[Any]]],
    plan: _Plan,
    pending: list[tuple[int, Sequence[Any]]],
) -> Iterator[RosterRow | RowError]:
    builder = _RowBuilder(plan)
    try:
        for source in (pending, rows):
            for number, cells in source:
                built = builder.build(number, cells)
                if built is not None:
                    yield from built
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
