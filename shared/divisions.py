"""Where a place is: GB/T 2260 administrative division codes (行政区划代码) for the travel
stops of screening's inquiries and the origins of checkpoint's crossings, and whether a risk
area covers them.

The table is `data/gbt2260.csv` (provinces, prefectures, counties; its source and date are
in `data/README.md`). The rules:

* **Codes.** A division is named by its six-digit code or by the code's significant digits:
  `42` / `420000` is 湖北省, `4201` / `420100` is 武汉市, `420106` is 武昌区. A longer code
  (the 9- and 12-digit 统计用 codes of towns and villages) is taken as written, within the
  county of its first six digits; zeros padding a county code out to 12 digits are dropped.
* **Covering.** A risk area lists code prefixes and covers a place whose significant code
  starts with one of them: an area at 武汉市 (4201) covers 武昌区 (420106); an area at 武昌区
  covers only 武昌区 (and its towns); a place named only as 武汉市 is not within an area at
  one of its districts, nor a place named only as 湖北省 within an area at 武汉市.
* **Names.** A name is read from the left as a chain of divisions, each lying within the one
  before it: 湖北省武汉市武昌区, 湖北武汉, 武汉, 武昌区, 湖北武昌区 (a level may be skipped).
  Each division is known by its full name and by its name without the suffix of its kind
  (省, 市, 区, 县, 自治区, 地区, 盟, 旗, 特别行政区...); an autonomous one also without its
  peoples (恩施土家族苗族自治州 is 恩施 and 恩施州, 广西壮族自治区 is 广西). A leading 中国 and
  spaces or punctuation are ignored. Text after the last division is ignored (a street, a
  building) only when that division is a county; after a province or prefecture it might
  name a county the table does not know, so the name is unknown.
* **Choosing.** Of the readings, the one that reads the most characters as divisions wins;
  then the one closest to the written names (a full name over a name without its suffix, and
  that over a name without its peoples; a province's or prefecture's name without its suffix
  over a county's: 海南 is 海南省, not 乌海's 海南区 nor 海南藏族自治州). When the best
  readings end at different divisions the name is **ambiguous**: 鼓楼区 is in 南京, 徐州,
  福州 and 开封, 朝阳区 in 北京 and 长春, unless narrowed (南京鼓楼区, 北京朝阳区); 吉林 is
  both the province and its city. A name with no reading is **unknown** (a typo, an
  abolished name, a place abroad).
* **Both given.** A code the table knows wins over the name given with it. An unknown code
  falls back on the name; when that does not resolve either the place is unknown, but its
  code still matches risk areas by prefix (an area may be declared with a code the table no
  longer holds).

Ambiguous and unknown places are *unresolved*: the callers flag them for review rather
than treat them as outside every risk area.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal

TABLE = Path(__file__).with_name("data") / "gbt2260.csv"
DIVISION_CODE = re.compile(r"^[0-9]{2,12}$")

Status = Literal["resolved", "ambiguous", "unknown"]

# longest first: a name loses only the suffix of its own kind
SUFFIXES = ("特别行政区", "地区", "林区", "新区", "特区", "省", "市", "区", "县", "盟", "旗")
AUTONOMOUS = ("自治区", "自治州", "自治县", "自治旗")
PEOPLES = (
    "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜", "满", "侗", "瑶", "白",
    "土家", "哈尼", "哈萨克", "傣", "黎", "傈僳", "佤", "畲", "高山", "拉祜", "水", "东乡",
    "纳西", "景颇", "柯尔克孜", "土", "达斡尔", "仫佬", "羌", "布朗", "撒拉", "毛南", "仡佬",
    "锡伯", "阿昌", "普米", "塔吉克", "怒", "乌孜别克", "俄罗斯", "鄂温克", "德昂", "保安",
    "裕固", "京", "塔塔尔", "独龙", "鄂伦春", "赫哲", "门巴", "珞巴", "基诺", "各",
)  # fmt: skip
# "X族" always; a bare name of two or more characters too (巴音郭楞蒙古自治州)
_PEOPLE_FORMS = sorted(
    {p + "族" for p in PEOPLES} | {p for p in PEOPLES if len(p) >= 2 and p != "各"},
    key=len,
    reverse=True,
)
_NOISE = re.compile(r"[\s·•,，、。.\-—_/()（）\[\]【】]")
_COUNTRY = ("中华人民共和国", "中国")

# how close an alias is to the written name: a full name; a province or prefecture without
# its suffix (湖北, 武汉: how they are commonly written); a county without; without peoples
FULL, SHORT_UPPER, SHORT, STEM = 3, 2, 1, 0


@dataclass(frozen=True, slots=True)
class Division:
    code: str  # six digits
    name: str  # as in the table: 武昌区
    parent: str | None

    @property
    def prefix(self) -> str:
        return significant(self.code)

    @property
    def level(self) -> Literal["province", "prefecture", "county"]:
        return ("province", "prefecture", "county")[len(self.prefix) // 2 - 1]


@dataclass(frozen=True, slots=True)
class Place:
    """What a place given by code or name was taken to mean.

    `code` is what risk areas are matched against: the division's significant code, a longer
    code as written, or an unknown code as given; None for a name that did not resolve."""

    status: Status
    code: str | None
    division: Division | None = None
    candidates: tuple[Division, ...] = ()

    @property
    def resolved(self) -> bool:
        return self.status == "resolved"


def significant(code: str) -> str:
    """The digits of a code that say where it is: 420000 → 42, 420100 → 4201, 420106 and
    longer codes as written (less zeros padding a county code)."""
    if len(code) > 6 and not code[6:].strip("0"):
        code = code[:6]
    if len(code) in (2, 4):
        code = code.ljust(6, "0")
    if len(code) == 6:
        if code.endswith("0000"):
            return code[:2]
        if code.endswith("00"):
            return code[:4]
    return code


def covers(prefixes: Iterable[str], code: str) -> bool:
    """Whether a place's code lies within one of a risk area's division prefixes."""
    place = significant(code)
    return any(place.startswith(significant(p)) for p in prefixes)


def aliases(name: str, county: bool) -> list[tuple[str, int]]:
    """The names a division is known by, with how close each is to its full name."""
    out = [(name, FULL)]
    short = SHORT if county else SHORT_UPPER
    for suffix in AUTONOMOUS:
        if name.endswith(suffix):
            stem = _without_peoples(name.removesuffix(suffix))
            if stem != name:
                out.append((stem, STEM))
            if suffix == "自治州":
                out.append((stem + "州", SHORT_UPPER))
            return [(a, s) for a, s in out if len(a) >= 2]
    for suffix in SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            out.append((name.removesuffix(suffix), short))
            break
    return out


def _without_peoples(stem: str) -> str:
    """恩施土家族苗族 → 恩施; a stem that is only a people keeps it without 族 (东乡族 → 东乡)."""
    while True:
        for form in _PEOPLE_FORMS:
            if stem.endswith(form) and len(stem) > len(form):
                if len(stem) - len(form) < 2:
                    return stem
                stem = stem.removesuffix(form)
                break
        else:
            if stem.endswith("族") and len(stem) >= 3:
                return stem.removesuffix("族")
            return stem


def normalise_name(text: str) -> str:
    name = _NOISE.sub("", unicodedata.normalize("NFKC", text))
    for country in _COUNTRY:
        if name.startswith(country):
            return name.removeprefix(country)
    return name


class Divisions:
    """The code table with an index of every division's aliases."""

    def __init__(self, rows: Iterable[tuple[str, str, str | None]]) -> None:
        self.by_code: dict[str, Division] = {}
        self.by_alias: dict[str, list[tuple[Division, int]]] = {}
        for code, name, parent in rows:
            division = Division(code, name, parent or None)
            self.by_code[code] = division
            for alias, closeness in aliases(name, division.level == "county"):
                self.by_alias.setdefault(alias, []).append((division, closeness))
        self.longest = max(len(a) for a in self.by_alias)

    @classmethod
    def load(cls, path: Path = TABLE) -> Divisions:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            return cls((r["code"], r["name"], r["parent"]) for r in reader)

    def division(self, code: str) -> Division | None:
        """The division a code names or lies in (a town code: its county)."""
        digits = significant(code)
        key = digits.ljust(6, "0") if len(digits) < 6 else digits[:6]
        return self.by_code.get(key) if len(digits) % 2 == 0 or len(digits) > 6 else None

    def full_name(self, division: Division) -> str:
        """湖北省武汉市武昌区: the names from the province down."""
        names = []
        current: Division | None = division
        while current is not None:
            names.append(current.name)
            current = self.by_code.get(current.parent) if current.parent else None
        return "".join(reversed(names))

    def locate(self, code: str | None, name: str | None) -> Place | None:
        """The place a code and/or a name give; None when neither is given."""
        code = code.strip() if code else None
        name = name.strip() if name else None
        if code:
            by_code = self.resolve_code(code)
            if by_code.resolved or not name:
                return by_code
            by_name = self.resolve_name(name)
            return by_name if by_name.resolved else by_code
        return self.resolve_name(name) if name else None

    def resolve_code(self, code: str) -> Place:
        if not DIVISION_CODE.match(code):
            return Place("unknown", None)
        division = self.division(code)
        if division is None:
            return Place("unknown", significant(code))
        return Place("resolved", significant(code), division)

    @lru_cache(maxsize=8192)  # noqa: B019 - one table per process, names repeat at gates
    def resolve_name(self, name: str) -> Place:
        text = normalise_name(name)
        if DIVISION_CODE.match(text):
            return self.resolve_code(text)
        best: tuple[int, int] = (0, 0)
        ends: dict[str, Division] = {}
        for read, closeness, last in self._readings(text, 0, None, 0):
            if last.level != "county" and read < len(text):
                continue  # text the table cannot place follows a province or prefecture
            score = (read, closeness)
            if score > best:
                best, ends = score, {}
            if score == best:
                ends[last.code] = last
        if not ends:
            return Place("unknown", None)
        if len(ends) > 1:
            return Place("ambiguous", None, candidates=tuple(sorted(ends.values(), key=_code)))
        [division] = ends.values()
        return Place("resolved", division.prefix, division)

    def _readings(
        self, text: str, start: int, within: Division | None, closeness: int
    ) -> Iterable[tuple[int, int, Division]]:
        """(characters read, closeness, last division) of each chain read from `start`."""
        for end in range(start + 2, min(len(text), start + self.longest) + 1):
            for division, alias_closeness in self.by_alias.get(text[start:end], ()):
                if within is not None and not (
                    division.prefix.startswith(within.prefix) and division is not within
                ):
                    continue
                total = closeness + alias_closeness
                yield end, total, division
                yield from self._readings(text, end, division, total)


def _code(division: Division) -> str:
    return division.code


@cache
def table() -> Divisions:
    """The shipped table, read once per process."""
    return Divisions.load()


def locate(code: str | None, name: str | None) -> Place | None:
    return table().locate(code, name)


def full_name(division: Division) -> str:
    return table().full_name(division)


def answer(place: Place) -> dict[str, Any]:
    """A place as the APIs answer it: its status, the division (six-digit code and full name)
    it was taken to be, and for an ambiguous name the divisions it could be."""

    def named(d: Division) -> dict[str, str]:
        return {"region_code": d.code, "name": full_name(d)}

    return {
        "status": place.status,
        "division": named(place.division) if place.division is not None else None,
        "candidates": [named(d) for d in place.candidates],
    }
