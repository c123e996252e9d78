"""The division matcher, as given (a place by code and/or name) / when (located in the shipped
GB/T 2260 table) / then (resolved to a division, ambiguous or unknown; covered or not)."""

from __future__ import annotations

import csv

import pytest

from shared.divisions import TABLE, Divisions, covers, locate, significant, table

WUHAN = "4201"


def test_the_shipped_table_holds_provinces_prefectures_and_counties_once_each() -> None:
    with TABLE.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    codes = [r["code"] for r in rows]
    assert 3000 < len(rows) < 3500
    assert len(set(codes)) == len(codes)
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    known = set(codes)
    assert all(r["parent"] in known for r in rows if r["parent"])
    assert {"420000", "420100", "420106", "110105", "810000"} <= known
    assert not {"110100", "420171"} & known  # 市辖区 placeholders and 开发区 are not divisions


NAMES = [
    # (case, name, code of the division it resolves to)
    ("a full name to the county", "湖北省武汉市武昌区", "420106"),
    ("a full name to the prefecture", "湖北省武汉市", "420100"),
    ("a prefecture without its suffix", "武汉", "420100"),
    ("province and prefecture without suffixes", "湖北武汉", "420100"),
    ("a county alone when only one has the name", "武昌区", "420106"),
    ("a county without its suffix", "武昌", "420106"),
    ("a level skipped", "湖北武昌区", "420106"),
    ("a province alone", "湖北省", "420000"),
    ("a province without 省", "湖北", "420000"),
    ("an autonomous region without its people", "广西", "450000"),
    ("内蒙古 keeps its 蒙古", "内蒙古", "150000"),
    ("an autonomous prefecture as 州", "恩施州", "422800"),
    ("an autonomous prefecture without its peoples", "巴音郭楞", "652800"),
    ("a municipality's district", "北京市朝阳区", "110105"),
    ("a municipality's district, narrowed without suffixes", "北京朝阳", "110105"),
    ("鼓楼区 narrowed by its city", "南京鼓楼区", "320106"),
    ("鼓楼区 narrowed by province and city", "福建省福州市鼓楼区", "350102"),
    ("a street after a county is ignored", "湖北省武汉市江汉区中山大道1号", "420103"),
    ("a leading 中国, spaces and full-width text", "中国 湖北省 武汉市", "420100"),
    ("a province over a county of the same short name", "海南", "460000"),
    ("a special administrative region", "香港", "810000"),
    ("a code in the name field", "420106", "420106"),
]


@pytest.mark.parametrize(("case", "name", "code"), NAMES, ids=[c[0] for c in NAMES])
def test_a_place_name_resolves_to_its_division(case: str, name: str, code: str) -> None:
    place = locate(None, name)
    assert place is not None and place.resolved, case
    assert place.division is not None and place.division.code == code
    assert place.code == significant(code)


AMBIGUOUS = [
    ("鼓楼区", {"320106", "320302", "350102", "410204"}),  # 南京, 徐州, 福州, 开封
    ("朝阳区", {"110105", "220104"}),  # 北京, 长春
    ("江苏鼓楼区", {"320106", "320302"}),  # the province narrows, but not enough
    ("吉林", {"220000", "220200"}),  # the province and its city
]


@pytest.mark.parametrize(("name", "candidates"), AMBIGUOUS)
def test_a_name_of_several_divisions_is_ambiguous(name: str, candidates: set[str]) -> None:
    place = locate(None, name)
    assert place is not None
    assert place.status == "ambiguous" and not place.resolved
    assert place.code is None
    assert {d.code for d in place.candidates} == candidates


@pytest.mark.parametrize(
    "name",
    [
        "火星",
        "东京",  # abroad
        "武汉大学",  # text the table cannot place after a prefecture
        "湖北省某某县",
        "-1+cmd|' /C calc'!A0",
        "  ",
    ],
)
def test_a_name_the_table_cannot_place_is_unknown(name: str) -> None:
    place = locate(None, name)
    assert place is None or (place.status == "unknown" and place.code is None)


CODES = [
    ("42", "420000", "42"),
    ("420000", "420000", "42"),
    ("4201", "420100", "4201"),
    ("420100", "420100", "4201"),
    ("420106", "420106", "420106"),
    ("420106000000", "420106", "420106"),  # a county padded to 12 digits
    ("420106001", "420106", "420106001"),  # a town: in its county, matched as written
]


@pytest.mark.parametrize(("code", "division", "prefix"), CODES)
def test_a_code_resolves_to_the_division_it_names_or_lies_in(
    code: str, division: str, prefix: str
) -> None:
    place = locate(code, None)
    assert place is not None and place.resolved
    assert place.division is not None and place.division.code == division
    assert place.code == prefix


def test_a_known_code_wins_over_the_name_given_with_it() -> None:
    place = locate("420106", "南京市鼓楼区")
    assert place is not None and place.division is not None
    assert place.division.code == "420106"


def test_an_unknown_code_falls_back_on_the_name() -> None:
    place = locate("429999", "湖北省武汉市")
    assert place is not None and place.resolved and place.code == WUHAN


def test_an_unknown_code_without_a_resolvable_name_is_unknown_but_keeps_its_code() -> None:
    place = locate("429999", "鼓楼区")
    assert place is not None and place.status == "unknown"
    assert place.code == "429999"


def test_nothing_given_is_no_place() -> None:
    assert locate(None, None) is None
    assert locate("", "") is None


COVERING = [
    # (risk area prefixes, place code, covered)
    (["4201"], "420106", True),  # an area at a city covers its districts
    (["420100"], "420106", True),  # declared with the six-digit code
    (["42"], "420106", True),
    (["420000"], "4201", True),
    (["4201"], "4201", True),
    (["420106"], "420106", True),
    (["420106"], "420103", False),  # an area at a district matches only that district
    (["420106"], "4201", False),  # a stop in 武汉 is not known to be in 武昌区
    (["4201"], "42", False),  # nor one in 湖北 in 武汉
    (["4201"], "4202", False),
    (["4202", "4201"], "420102", True),
    (["420106"], "420106001", True),  # a town of the district
]


@pytest.mark.parametrize(("prefixes", "code", "covered"), COVERING)
def test_a_risk_area_covers_a_place_by_code_prefix(
    prefixes: list[str], code: str, covered: bool
) -> None:
    assert covers(prefixes, code) is covered


def test_a_table_can_be_built_from_rows() -> None:
    divisions = Divisions(
        [("420000", "湖北省", None), ("420100", "武汉市", "420000"), ("420106", "武昌区", "420100")]
    )
    place = divisions.locate(None, "武汉武昌")
    assert place is not None and place.division is not None
    assert divisions.full_name(place.division) == "湖北省武汉市武昌区"
    assert table().full_name(place.division) == "湖北省武汉市武昌区"
