"""Synthetic household rosters (花名册) for import tests and benchmarks.

`generate_rows` yields one dict per person, keyed by the Chinese headers a community worker's
spreadsheet uses, deterministic for a given seed:

* households of 1-5 persons (about 2.5 on average) in flats "楼栋-单元-房号" such as
  "1-2-301": buildings 1..N, 6 units per building, 18 floors, 2 flats per floor per unit,
  about one flat in ten left empty;
* Chinese names from common surnames and given names; children share the head's surname;
* valid 18-digit resident ID numbers (GB 11643: region code, birth date 1930-2020, sequence
  digits whose last digit is odd for men, check digit), unique across the file;
* mobile numbers `1[3-9]\\d{9}` (none for children under 14);
* 人员类别 mostly 常住, some 暂住, a few with 低保 / 特困 / 残疾 / 孤寡老人.

`write_csv` and `write_xlsx` stream any iterable of such dicts to a file.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

from openpyxl import Workbook  # type: ignore[import-untyped]

HEADERS = ("楼栋", "单元", "楼层", "门牌号", "户主姓名", "姓名", "身份证号", "联系电话", "人员类别")

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = "10X98765432"
REGION_CODES = ("110105", "110108", "220102", "310115", "330106", "420106", "440305", "510121")

UNITS_PER_BUILDING = 6
FLOORS = 18
FLATS_PER_FLOOR = 2

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓"
    "曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN_CHARS = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红梅鑫波斌宇浩凯健俊帆帅旭宁"
    "婷雪琳晶颖倩欣怡子涵梓轩博文佳欣雨辰一诺思远建国志强淑珍秀英德胜国华海燕晓东春梅"
)

_HOUSEHOLD_SIZES = (1, 2, 3, 4, 5)
_HOUSEHOLD_WEIGHTS = (20, 30, 30, 15, 5)  # mean 2.55
_BIRTH_START = dt.date(1930, 1, 1)
_BIRTH_END = dt.date(2020, 12, 31)


def check_digit(first17: str) -> str:
    """GB 11643-1999 check character for the first 17 digits of a resident ID number."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("need exactly 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True))
    return ID_CHECK_CHARS[total % 11]


def is_valid_id(number: str) -> bool:
    """18 characters, 17 digits plus the right check character (no region/date check)."""
    return (
        len(number) == 18
        and number[:17].isdigit()
        and number[17] in ID_CHECK_CHARS
        and check_digit(number[:17]) == number[17]
    )


def _birth_date(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    return first + dt.timedelta(days=rng.randrange((last - first).days + 1))


def _id_number(rng: random.Random, born: dt.date, male: bool, used: set[str]) -> str:
    while True:
        sequence = rng.randrange(1000)
        if (sequence % 2 == 1) != male:
            sequence = (sequence + 1) % 1000
        first17 = f"{rng.choice(REGION_CODES)}{born:%Y%m%d}{sequence:03d}"
        number = first17 + check_digit(first17)
        if number not in used:
            used.add(number)
            return number


def _given_name(rng: random.Random) -> str:
    return "".join(rng.choice(GIVEN_CHARS) for _ in range(rng.choice((1, 2, 2, 2))))


def _phone(rng: random.Random) -> str:
    return f"1{rng.randint(3, 9)}{rng.randrange(10**9):09d}"


def _flats(rng: random.Random) -> Iterator[tuple[int, int, int, str]]:
    building = 0
    while True:
        building += 1
        for unit in range(1, UNITS_PER_BUILDING + 1):
            for floor in range(1, FLOORS + 1):
                for flat in range(1, FLATS_PER_FLOOR + 1):
                    if rng.random() < 0.1:
                        continue  # empty flat
                    yield building, unit, floor, f"{building}-{unit}-{floor}{flat:02d}"


def generate_rows(n_persons: int, *, seed: int = 1) -> Iterator[dict[str, str]]:
    """Yield `n_persons` roster rows (one per person), household by household."""
    rng = random.Random(seed)
    used: set[str] = set()
    flats = _flats(rng)
    produced = 0
    today = dt.date(2022, 6, 1)
    while produced < n_persons:
        building, unit, floor, door = next(flats)
        size = min(rng.choices(_HOUSEHOLD_SIZES, _HOUSEHOLD_WEIGHTS)[0], n_persons - produced)
        surname = rng.choice(SURNAMES)
        head_name = surname + _given_name(rng)
        household_kind = "暂住" if rng.random() < 0.15 else "常住"
        household_tags: list[str] = []
        if rng.random() < 0.03:
            household_tags.append("低保")
        if rng.random() < 0.01:
            household_tags.append("特困")
        head_born = _birth_date(rng, _BIRTH_START, dt.date(1998, 12, 31))
        for member in range(size):
            if member == 0:
                name, born, male = head_name, head_born, rng.random() < 0.6
            elif member == 1:
                name = rng.choice(SURNAMES) + _given_name(rng)
                low = max(_BIRTH_START, head_born - dt.timedelta(days=365 * 8))
                high = min(dt.date(2000, 12, 31), head_born + dt.timedelta(days=365 * 8))
                born, male = _birth_date(rng, low, max(low, high)), rng.random() < 0.4
            else:
                name = surname + _given_name(rng)
                low = min(head_born + dt.timedelta(days=365 * 18), _BIRTH_END)
                born, male = _birth_date(rng, low, _BIRTH_END), rng.random() < 0.5
            tags = list(household_tags)
            if rng.random() < 0.02:
                tags.append("残疾")
            age = (today - born).days // 365
            if size == 1 and age >= 70 and rng.random() < 0.5:
                tags.append("孤寡老人")
            yield {
                "楼栋": str(building),
                "单元": str(unit),
                "楼层": str(floor),
                "门牌号": door,
                "户主姓名": head_name,
                "姓名": name,
                "身份证号": _id_number(rng, born, male, used),
                "联系电话": _phone(rng) if age >= 14 else "",
                "人员类别": "、".join([household_kind, *tags]),
            }
            produced += 1


def write_csv(
    path: str | Path, rows: Iterable[dict[str, str]], *, encoding: str = "utf-8-sig"
) -> int:
    """Stream rows to a CSV file (header from the first row's keys); returns the row count."""
    count = 0
    with open(path, "w", encoding=encoding, newline="") as f:
        writer: csv.DictWriter[str] | None = None
        for row in rows:
            if writer is None:
                writer = csv.DictWriter(f, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
            count += 1
        if writer is None:
            csv.writer(f).writerow(HEADERS)
    return count


def write_xlsx(
    path: str | Path, rows: Iterable[dict[str, str]], *, title: str | None = None
) -> int:
    """Stream rows to an XLSX file (openpyxl write-only mode; every cell is text), optionally
    under a title row such as "XX社区居民花名册"; returns the row count."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("花名册")
    if title is not None:
        sheet.append([title])
    count = 0
    header: list[str] | None = None
    for row in rows:
        if header is None:
            header = list(row)
            sheet.append(header)
        sheet.append([row[key] for key in header])
        count += 1
    if header is None:
        sheet.append(list(HEADERS))
    workbook.save(path)
    return count
