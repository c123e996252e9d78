"""Roster (花名册) parsing: formats, headers, cells, rows, grouping, streaming."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path
from typing import Any

import openpyxl  # type: ignore[import-untyped]
import pytest

from bench.roster_data import check_digit, generate_rows, is_valid_id, write_csv, write_xlsx
from services.registry.roster import (
    RosterFormatError,
    RosterRow,
    RowError,
    household_key,
    parse_roster,
)
from shared.batch import chunks

HEADER = "楼栋,单元,楼层,门牌号,户主姓名,姓名,身份证号,联系电话,人员类别"
ID_1 = "110105199001011232"
ID_2 = "220102198512120029"
ID_3 = "51012120100305007X"


def parse_csv(
    text: str, encoding: str = "utf-8-sig", filename: str | None = "roster.csv"
) -> list[RosterRow | RowError]:
    return list(parse_roster(io.BytesIO(text.encode(encoding)), filename))


def only_rows(items: list[RosterRow | RowError]) -> list[RosterRow]:
    assert not [i for i in items if isinstance(i, RowError)], items
    return [i for i in items if isinstance(i, RosterRow)]


def xlsx_bytes(rows: list[list[Any]], patch: dict[str, str] | None = None) -> bytes:
    """A workbook made by openpyxl; `patch` rewrites the sheet XML (to write cells the way
    Excel or other exporters do, which openpyxl itself would not)."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    if not patch:
        return buffer.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode()
                for old, new in patch.items():
                    assert old in text, old
                    text = text.replace(old, new)
                data = text.encode()
            dst.writestr(item, data)
    return out.getvalue()


class NonSeekable(io.RawIOBase):
    """An upload stream that can only be read forward."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        return self._inner.readinto(buffer)


# --------------------------------------------------------------------------------------------
# Formats and encodings


def test_utf8_csv_with_bom() -> None:
    text = f"{HEADER}\n1,2,3,1-2-301,张三,张三,{ID_1},13812345678,常住\n"
    data = text.encode("utf-8-sig")
    assert data.startswith(b"\xef\xbb\xbf")
    [row] = only_rows(list(parse_roster(io.BytesIO(data), "roster.csv")))
    assert row == RosterRow(
        row_number=2,
        compound="",
        building="1",
        unit="2",
        floor="3",
        door_number="1-2-301",
        address="",
        head_name="张三",
        name="张三",
        relation="",
        document_type="resident_id",
        document_number=ID_1,
        phone="13812345678",
        residency="resident",
        tags=[],
    )


def test_gb18030_csv() -> None:
    text = f"{HEADER}\n1,2,3,1-2-301,欧阳娜,欧阳娜,{ID_1},13812345678,暂住\n"
    [row] = only_rows(parse_csv(text, encoding="gb18030"))
    assert (row.name, row.residency, row.door_number) == ("欧阳娜", "temporary", "1-2-301")


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_large_csv_is_decoded_past_the_sniffed_prefix(tmp_path: Path, encoding: str) -> None:
    # ~1,500 rows is well beyond the 64 KiB prefix; a multi-byte character straddles its end.
    path = tmp_path / "big.csv"
    expected = list(generate_rows(1500, seed=3))
    write_csv(path, expected, encoding=encoding)
    assert path.stat().st_size > 64 * 1024
    with path.open("rb") as f:
        rows = only_rows(list(parse_roster(f, path.name)))
    assert [r.name for r in rows] == [e["姓名"] for e in expected]
    assert [r.row_number for r in rows] == list(range(2, 1502))


def test_tab_separated_text() -> None:
    text = HEADER.replace(",", "\t") + f"\n1\t2\t3\t1-2-301\t张三\t张三\t{ID_1}\t\t常住\n"
    [row] = only_rows(parse_csv(text))
    assert (row.name, row.door_number) == ("张三", "1-2-301")


def test_xlsx_with_title_row() -> None:
    data = xlsx_bytes(
        [
            ["幸福社区居民花名册"],
            ["楼栋", "单元", "楼层", "门牌号", "姓名", "身份证号", "人员类别"],
            ["1", "2", "3", "1-2-301", "张三", ID_1, "常住"],
            ["1", "2", "3", "1-2-301", "李四", ID_2, "常住、低保"],
        ]
    )
    rows = only_rows(list(parse_roster(io.BytesIO(data), "roster.xlsx")))
    assert [(r.row_number, r.name, r.tags) for r in rows] == [
        (3, "张三", []),
        (4, "李四", ["低保"]),
    ]


def test_xlsx_is_recognised_by_its_bytes_and_from_a_non_seekable_stream() -> None:
    data = xlsx_bytes([["门牌号", "姓名", "身份证号"], ["101", "张三", ID_1]])
    for stream in (io.BytesIO(data), io.BufferedReader(NonSeekable(data))):
        [row] = only_rows(list(parse_roster(stream)))  # no filename, no content type
        assert (row.row_number, row.door_number, row.name) == (2, "101", "张三")


def test_generated_xlsx_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "roster.xlsx"
    expected = list(generate_rows(300, seed=5))
    assert write_xlsx(path, expected, title="幸福社区居民花名册") == 300
    with path.open("rb") as f:
        rows = only_rows(list(parse_roster(f, path.name)))
    assert [r.document_number for r in rows] == [e["身份证号"] for e in expected]
    assert rows[0].row_number == 3


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (b"%PDF-1.7\n\x00\x01\x02binary", "roster.pdf"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "roster.xls"),
        (b"name,id\n", "roster.xlsx"),
        (b"PK\x03\x04 not really a zip", None),
    ],
)
def test_files_that_are_not_csv_or_xlsx_are_refused(data: bytes, filename: str | None) -> None:
    with pytest.raises(RosterFormatError):
        parse_roster(io.BytesIO(data), filename)


def test_a_zip_that_is_not_a_workbook_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(RosterFormatError, match="XLSX"):
        parse_roster(io.BytesIO(buffer.getvalue()), "upload.zip")


def test_csv_from_a_non_seekable_stream() -> None:
    data = f"{HEADER}\n1,2,3,1-2-301,张三,张三,{ID_1},,常住\n".encode("gb18030")
    [row] = only_rows(list(parse_roster(io.BufferedReader(NonSeekable(data)))))
    assert (row.row_number, row.name) == (2, "张三")


def test_the_callers_stream_is_left_open() -> None:
    stream = io.BytesIO(f"{HEADER}\n1,2,3,1-2-301,张三,张三,{ID_1},,常住\n".encode())
    assert len(list(parse_roster(stream))) == 1
    assert not stream.closed


# --------------------------------------------------------------------------------------------
# Header row


def test_title_rows_before_the_header_row() -> None:
    text = (
        "幸福社区居民花名册,,,\n"
        "填报单位：幸福社区居委会,,填报日期：2022年4月1日\n"
        "\n"
        "序号,门牌号,姓名,身份证号\n"
        f"1,1-2-301,张三,{ID_1}\n"
    )
    [row] = only_rows(parse_csv(text))
    assert row.row_number == 5


def test_more_than_five_title_rows_means_no_header() -> None:
    titles = "".join(f"标题{i}\n" for i in range(6))
    with pytest.raises(RosterFormatError, match="no header row"):
        parse_csv(titles + f"门牌号,姓名,身份证号\n101,张三,{ID_1}\n")
    [row] = only_rows(
        parse_csv(titles[len("标题0\n") :] + f"门牌号,姓名,身份证号\n101,张三,{ID_1}\n")
    )
    assert row.row_number == 7


def test_header_aliases_and_decorations() -> None:
    text = (
        "院落, 栋 ,单元,层,*房号,住址,户主,姓名（必填）,关系,证件类型,证件号码,手机号,"
        "居住类型,备注标签\n"
        "幸福里,3,1,5,502,幸福路1号,王五,赵六,配偶,护照,E12345678,13912345678,"
        "流动,重点人员\n"
    )
    [row] = only_rows(parse_csv(text))
    assert row == RosterRow(
        row_number=2,
        compound="幸福里",
        building="3",
        unit="1",
        floor="5",
        door_number="502",
        address="幸福路1号",
        head_name="王五",
        name="赵六",
        relation="配偶",
        document_type="passport",
        document_number="E12345678",
        phone="13912345678",
        residency="temporary",
        tags=["重点人员"],
    )


@pytest.mark.parametrize(
    "header",
    [
        "楼号,户号,姓名,身份证号码,电话,类别",
        "楼栋,门牌,姓名,证件号,手机,人员类别",
        "楼栋,门牌号,姓名,身份证号,联系电话,人员类别",
    ],
)
def test_other_header_aliases(header: str) -> None:
    [row] = only_rows(parse_csv(f"{header}\n2,201,张三,{ID_1},13812345678,暂住\n"))
    assert (row.building, row.door_number, row.document_number, row.phone, row.residency) == (
        "2",
        "201",
        ID_1,
        "13812345678",
        "temporary",
    )


def test_latin_letters_in_headers_are_case_insensitive() -> None:
    # no alias is Latin-only, but full-width / mixed-case decorations are normalised
    [row] = only_rows(parse_csv(f"门牌号,姓名（NAME）,身份证号(ID No.)\n101,张三,{ID_1}\n"))
    assert row.name == "张三"


def test_unknown_columns_are_ignored() -> None:
    text = (
        f"序号,门牌号,姓名,性别,身份证号,疫苗接种,备注\n1,101,张三,男,{ID_1},已接种3针,无\n"
        "2,,,,,,\n"  # template rows pre-numbered in 序号 only
        "3,,,,,,\n"
    )
    [row] = only_rows(parse_csv(text))
    assert (row.row_number, row.name, row.tags) == (2, "张三", [])


def test_missing_required_header_is_a_format_error() -> None:
    with pytest.raises(RosterFormatError) as info:
        parse_csv(f"楼栋,单元,门牌号,姓名\n1,2,101,张三,{ID_1}\n")
    message = str(info.value)
    assert "身份证号" in message and "姓名" in message and "门牌号" in message


def test_no_header_row_is_a_format_error_listing_required_headers() -> None:
    with pytest.raises(RosterFormatError) as info:
        parse_csv("a,b,c\n1,2,3\n")
    message = str(info.value)
    for header in ("门牌号", "姓名", "身份证号"):
        assert header in message


def test_format_errors_are_raised_before_iteration() -> None:
    with pytest.raises(RosterFormatError):
        parse_roster(io.BytesIO(b"a,b,c\n1,2,3\n"), "x.csv")  # no next() needed


def test_two_tier_header() -> None:
    data = xlsx_bytes(
        [
            ["序号", "姓名", "身份证号", "地址", None, None, "联系电话"],
            [None, None, None, "楼栋", "单元", "房号", None],
            [1, "张三", ID_1, "1", "2", "301", "13812345678"],
        ]
    )
    [row] = only_rows(list(parse_roster(io.BytesIO(data), "roster.xlsx")))
    assert (row.row_number, row.building, row.unit, row.door_number, row.address) == (
        3,
        "1",
        "2",
        "301",
        "",
    )


def test_a_data_row_with_a_header_like_value_is_not_a_sub_header() -> None:
    text = f"门牌号,姓名,关系,身份证号\n101,张三,户主,{ID_1}\n"
    [row] = only_rows(parse_csv(text))
    assert (row.row_number, row.relation) == (2, "户主")


# --------------------------------------------------------------------------------------------
# Row errors


def test_empty_name_is_a_row_error_with_the_row_number_the_user_sees() -> None:
    text = f"幸福社区花名册\n门牌号,姓名,身份证号\n101,张三,{ID_1}\n101, ,{ID_2}\n"
    items = parse_csv(text)
    assert items[1] == RowError(3 + 1, "姓名", "姓名 (name) is empty")
    assert isinstance(items[0], RosterRow) and items[0].row_number == 3


def test_empty_document_number_names_the_header_used_in_the_file() -> None:
    items = parse_csv("房号,姓名,证件号码\n101,张三,\n")
    assert items == [RowError(2, "证件号码", "证件号码 (document number) is empty")]


def test_a_row_with_several_problems_yields_each() -> None:
    items = parse_csv(f"门牌号,姓名,身份证号\n,,\n,张三,\n101,李四,{ID_2}\n")
    # row 2 is empty in every recognised column: skipped, not reported
    assert items[:2] == [
        RowError(3, "门牌号", "门牌号 (door number) is empty"),
        RowError(3, "身份证号", "身份证号 (document number) is empty"),
    ]
    assert isinstance(items[2], RosterRow) and items[2].row_number == 4


def test_unknown_document_type_is_a_row_error() -> None:
    [error] = parse_csv(f"门牌号,姓名,证件类型,证件号码\n101,张三,军官证,{ID_1}\n")
    assert isinstance(error, RowError) and error.field == "证件类型" and "军官证" in error.reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "resident_id"),
        ("身份证", "resident_id"),
        ("居民身份证", "resident_id"),
        ("护照", "passport"),
        ("港澳通行证", "hk_macao_permit"),
        ("往来港澳通行证", "hk_macao_permit"),
        ("港澳居民来往内地通行证", "hk_macao_permit"),
        ("台胞证", "taiwan_permit"),
        ("台湾居民来往大陆通行证", "taiwan_permit"),
    ],
)
def test_document_types(value: str, expected: str) -> None:
    [row] = only_rows(parse_csv(f"门牌号,姓名,证件类型,证件号码\n101,张三,{value},X1\n"))
    assert row.document_type == expected


def test_an_id_in_scientific_notation_is_a_row_error() -> None:
    [error] = parse_csv("门牌号,姓名,身份证号\n101,张三,1.10105E+17\n")
    assert isinstance(error, RowError) and error.field == "身份证号"
    assert "lost digits" in error.reason


# --------------------------------------------------------------------------------------------
# Residency and tags


@pytest.mark.parametrize(
    ("category", "tags_cell", "residency", "tags"),
    [
        ("暂住、低保", "", "temporary", ["低保"]),
        ("", "", "resident", []),
        ("户籍", "", "resident", []),
        ("本地,残疾；孤寡", "", "resident", ["孤寡老人", "残疾"]),
        ("流动/特困 独居老人", "", "temporary", ["孤寡老人", "特困"]),
        ("租户，低保户", "", "temporary", ["低保"]),
        ("访客", "", "visitor", []),
        ("临时", "密接;低保", "visitor", ["低保", "密接"]),
        ("常住、常住、低保", "低保", "resident", ["低保"]),
        ("重点人员", "", "resident", ["重点人员"]),
    ],
)
def test_categories_and_tags(
    category: str, tags_cell: str, residency: str, tags: list[str]
) -> None:
    text = f"门牌号,姓名,身份证号,人员类别,标签\n101,张三,{ID_1},{category},{tags_cell}\n"
    [row] = only_rows(parse_csv(text))
    assert (row.residency, row.tags) == (residency, sorted(tags))


def test_contradictory_residency_is_a_row_error() -> None:
    [error] = parse_csv(f"门牌号,姓名,身份证号,人员类别\n101,张三,{ID_1},户籍、暂住\n")
    assert isinstance(error, RowError) and error.field == "人员类别"


# --------------------------------------------------------------------------------------------
# Cells


def test_excel_numeric_cells() -> None:
    data = xlsx_bytes(
        [
            ["楼栋", "单元", "楼层", "门牌号", "姓名", "身份证号", "联系电话"],
            [1, 2, 3.0, 301, "张三", 1.10105199001011e17, 13812345678],  # row 2: as Excel saves
            [1, 2, 3.0, 301, "李四", 2.2e17, 13912345678],  # row 3: patched to an exact integer
        ],
        # openpyxl writes 3.0 as "3"; Excel and others may write "3.0" or exact 18-digit integers
        patch={"<v>3</v>": "<v>3.0</v>", "<v>2.2e+17</v>": "<v>220102198512120029</v>"},
    )
    first, second = list(parse_roster(io.BytesIO(data), "roster.xlsx"))
    assert isinstance(first, RowError)
    assert (first.row_number, first.field) == (2, "身份证号")
    assert "stored as a number" in first.reason and "lost digits" in first.reason
    assert isinstance(second, RosterRow)
    assert (second.row_number, second.building, second.floor, second.door_number) == (
        3,
        "1",
        "3",
        "301",
    )
    assert (second.document_number, second.phone) == (ID_2, "13912345678")


def test_a_door_number_turned_into_a_date_is_a_row_error() -> None:
    data = xlsx_bytes([["门牌号", "姓名", "身份证号"], [dt.datetime(2022, 1, 2), "张三", ID_1]])
    [error] = list(parse_roster(io.BytesIO(data), "roster.xlsx"))
    assert isinstance(error, RowError) and error.field == "门牌号" and "date" in error.reason


def test_whitespace_is_stripped_and_name_padding_removed() -> None:
    text = (
        "门牌号,姓名,身份证号,联系电话\n"
        f" 101\u3000,张  三,\t{ID_1} ,'13812345678\n"
        f'102,John  Smith,="{ID_3}",\n'
    )
    first, second = only_rows(parse_csv(text))
    assert (first.door_number, first.name, first.document_number, first.phone) == (
        "101",
        "张三",
        ID_1,
        "13812345678",
    )
    assert (second.name, second.document_number) == ("John Smith", ID_3)


def test_empty_rows_are_skipped_but_counted() -> None:
    text = f"门牌号,姓名,身份证号\n\n101,张三,{ID_1}\n,,\n \n102,李四,{ID_2}\n\n"
    assert [r.row_number for r in only_rows(parse_csv(text))] == [3, 6]
    data = xlsx_bytes(
        [
            ["门牌号", "姓名", "身份证号"],
            [None, None, None],
            ["101", "张三", ID_1],
            [],
            ["102", "李四", ID_2],
        ]
    )
    rows = only_rows(list(parse_roster(io.BytesIO(data), "roster.xlsx")))
    assert [r.row_number for r in rows] == [3, 5]


def test_a_quoted_cell_spanning_lines_is_one_row() -> None:
    text = f'门牌号,姓名,地址,身份证号\n101,张三,"幸福路\n1号",{ID_1}\n102,李四,,{ID_2}\n'
    rows = only_rows(parse_csv(text))
    assert [(r.row_number, r.address) for r in rows] == [(2, "幸福路\n1号"), (3, "")]


# --------------------------------------------------------------------------------------------
# Households and chunks


def test_household_key_groups_rows_of_one_flat() -> None:
    text = (
        "小区,楼栋,单元,楼层,门牌号,姓名,身份证号\n"
        f"幸福里,1,2,3,301,张三,{ID_1}\n"
        f"幸福里,1,2,3,301,李四,{ID_2}\n"
        f"幸福里,1,2,3,302,王五,{ID_3}\n"
        f",,,,平房12号,赵六,{ID_1}\n"
    )
    rows = only_rows(parse_csv(text))
    assert household_key(rows[0]) == ("幸福里", "1", "2", "3", "301")
    assert household_key(rows[3]) == ("平房12号",)
    groups = [[r.name for r in g] for _, g in groupby(rows, key=household_key)]
    assert groups == [["张三", "李四"], ["王五"], ["赵六"]]


def test_chunks() -> None:
    assert list(chunks(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunks([], 3)) == []
    assert list(chunks(range(4), 2)) == [[0, 1], [2, 3]]
    with pytest.raises(ValueError):
        list(chunks(range(3), 0))


def test_chunks_is_lazy() -> None:
    def endless() -> Iterator[int]:
        n = 0
        while True:
            yield n
            n += 1

    first = next(chunks(endless(), 2))
    assert first == [0, 1]


# --------------------------------------------------------------------------------------------
# Synthetic data and streaming


def test_check_digit() -> None:
    # the example in GB 11643-1999
    assert check_digit("11010519491231002") == "X"
    assert is_valid_id("11010519491231002X")
    assert not is_valid_id("110105194912310021")
    assert is_valid_id(ID_1) and is_valid_id(ID_2) and is_valid_id(ID_3)


def test_generated_rows_are_realistic() -> None:
    rows = list(generate_rows(5000, seed=2))
    assert len(rows) == 5000
    ids = [r["身份证号"] for r in rows]
    assert len(set(ids)) == len(ids) and all(is_valid_id(i) for i in ids)
    assert all(1930 <= int(i[6:10]) <= 2020 for i in ids)
    households = {r["门牌号"] for r in rows}
    assert 2.2 < len(rows) / len(households) < 2.9
    assert all(
        p == "" or (len(p) == 11 and p[0] == "1" and p[1] in "3456789")
        for p in (r["联系电话"] for r in rows)
    )
    categories = [r["人员类别"] for r in rows]
    assert sum(c.startswith("常住") for c in categories) > 0.7 * len(rows)
    assert any(c.startswith("暂住") for c in categories)
    assert any("低保" in c for c in categories)
    assert list(generate_rows(50, seed=2)) == rows[:50]


def test_streaming_a_50k_row_csv(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    assert write_csv(path, generate_rows(50_000, seed=7)) == 50_000
    size = path.stat().st_size
    count = households = 0
    last_key: tuple[str, ...] = ()
    with path.open("rb") as f:
        parsed = parse_roster(f, path.name, "text/csv")
        assert isinstance(parsed, Iterator) and not isinstance(parsed, list)
        for item in parsed:
            assert isinstance(item, RosterRow), item
            assert is_valid_id(item.document_number)
            count += 1
            if count == 1000:
                # the file is read as rows are asked for, a buffer or two ahead
                assert f.tell() <= 4 * 64 * 1024 < size // 4, (f.tell(), size)
            key = household_key(item)
            if key != last_key:
                households += 1
                last_key = key
    assert count == 50_000
    assert 50_000 / 2.9 < households < 50_000 / 2.2
