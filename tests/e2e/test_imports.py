"""Roster imports over HTTP: places created down to the household, re-import changes nothing."""

from __future__ import annotations

import io
from pathlib import Path

from bench.roster_data import generate_rows, write_csv, write_xlsx
from shared.identity import resident_id_check_digit
from tests.e2e.conftest import Stack
from tests.e2e.test_places import grow

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def upload(stack: Stack, data: bytes, content_type: str = "text/csv",
                 parent: str = "comm", token: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    r = await stack.registry.post(
        "/v1/imports/households", params={"parent_id": parent}, content=data,
        headers={**(token or stack.token("admin")), "Content-Type": content_type})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_a_roster_creates_places_households_and_people_and_reimport_changes_nothing(
    stack: Stack, tmp_path: Path,
) -> None:
    await grow(stack)
    path = tmp_path / "roster.csv"
    write_csv(path, generate_rows(300, seed=3))
    data = path.read_bytes()
    first = await upload(stack, data)
    assert first["rows"] == 300 and first["created"] == 300 and first["errors"] == 0
    assert first["places_created"] > 100
    again = await upload(stack, data)
    assert again["unchanged"] == 300 and again["created"] == 0 and again["places_created"] == 0
    assert [r["person_id"] for r in again["results"]] == [r["person_id"] for r in first["results"]]

    one = first["results"][0]
    h = await stack.registry.get(f"/v1/households/{one['household_id']}",
                                 headers=stack.token("admin"))
    assert h.status_code == 200
    assert h.json()["path"].startswith("root.street_a.comm.")
    assert one["person_id"] in [p["id"] for p in h.json()["persons"]]
    buildings = await stack.registry.get("/v1/nodes", headers=stack.token("admin"),
                                         params={"under": "comm", "kind": "building",
                                                 "limit": 1000})
    assert len(buildings.json()["items"]) >= 1


async def test_rows_with_problems_get_their_reason_and_the_others_still_import(
    stack: Stack,
) -> None:
    await grow(stack)
    good = "11010519900101123"
    good += resident_id_check_digit(good)
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    csv_text = (
        "幸福社区居民花名册\n"
        "楼栋,单元,楼层,门牌号,姓名,身份证号,联系电话,人员类别\n"
        f"1,1,3,301,张三,{good},13812345678,常住、低保\n"
        f"1,1,3,302,李四,{bad},13812345679,暂住\n"
        "1,1,3,303,,110105199001011230,,常住\n"
        f"1,1,3,304,王五,{good},13812345670,常住\n"
    )
    report = await upload(stack, csv_text.encode("utf-8-sig"))
    status = {r["row"]: (r["status"], r["field"]) for r in report["results"]}
    assert status[3] == ("created", None)
    assert status[4][0] == "error" and status[4][1] == "身份证号"
    assert status[5][0] == "error"
    assert status[6][0] == "error" and "already registered" in report["results"][3]["reason"]
    person = report["results"][0]["person_id"]
    p = await stack.registry.get(f"/v1/persons/{person}", headers=stack.token("admin"))
    assert p.json()["tags"] == ["低保"]


async def test_xlsx_rosters_import_too(stack: Stack, tmp_path: Path) -> None:
    await grow(stack)
    path = tmp_path / "roster.xlsx"
    write_xlsx(path, generate_rows(50, seed=5), title="幸福社区花名册")
    report = await upload(stack, path.read_bytes(), XLSX)
    assert report["created"] == 50 and report["errors"] == 0


async def test_import_needs_a_registrar_in_scope_and_a_readable_file(stack: Stack) -> None:
    await grow(stack)
    stranger = stack.token("registrar", scope=["street-b"])
    r = await stack.registry.post("/v1/imports/households", params={"parent_id": "comm"},
                                  content=b"x", headers={**stranger, "Content-Type": "text/csv"})
    assert r.status_code == 403
    r = await stack.registry.post("/v1/imports/households", params={"parent_id": "comm"},
                                  content=io.BytesIO(b"a,b\n1,2\n").read(),
                                  headers={**stack.token("admin"), "Content-Type": "text/csv"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"
