"""Every ledger opens safely whatever callers typed: names, door numbers, checkpoint names and
crossing origins that begin like a spreadsheet formula are text in every CSV and XLSX export.

Before, `=HYPERLINK(...)` in a name became a live formula in `key-persons.xlsx` and went
unescaped into CSV.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.reporting.ledgers import LEDGERS
from shared.exports import FORMULA_TRIGGERS
from shared.identity import resident_id_check_digit
from shared.testing import eventually
from tests.e2e.conftest import Stack
from tests.e2e.test_reporting_ledgers import until_created

LINK = '=HYPERLINK("http://evil.example/x","点我")'
CORPUS_TREE = [
    ("root", None, "district", "区"),
    ("street", "root", "street", "+1街道"),
    ("comm", "street", "community", LINK),
    ("g1", "comm", "grid", "@SUM(1+1)网格"),
    ("b1", "g1", "building", "-2+3栋"),
]
ZHANG = "11010519900101123" + resident_id_check_digit("11010519900101123")
VISITOR = "44030419880808123" + resident_id_check_digit("44030419880808123")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def formula_like(text: str) -> bool:
    return text.startswith(FORMULA_TRIGGERS) and not NUMBER.match(text)


async def seed(s: Stack) -> datetime:
    admin = s.token("admin")
    for node_id, parent, kind, name in CORPUS_TREE:
        r = await s.registry.post("/v1/nodes", headers=admin, json={
            "id": node_id, "parent_id": parent, "kind": kind, "name": name})  # fmt: skip
        assert r.status_code == 201, r.text
    r = await s.registry.post("/v1/households", headers=admin, json={
        "id": "h1", "parent_id": "b1", "door_number": "=1+1"})  # fmt: skip
    assert r.status_code == 201, r.text
    r = await s.registry.post("/v1/persons", headers=admin, json={
        "id": "p1", "household_id": "h1", "name": "=cmd|'/C calc'!A0",
        "document_number": ZHANG})  # fmt: skip
    assert r.status_code == 201, r.text
    now = datetime.now(UTC) - timedelta(minutes=10)
    worker = s.token("grid_worker", sub="worker-1")
    await until_created(lambda: s.screening.post("/v1/inquiries", headers=worker, json={
        "person_id": "p1", "close_contact": True, "occurred_at": now.isoformat()}))  # fmt: skip
    await until_created(lambda: s.screening.post("/v1/visits", headers=worker, json={
        "id": "v1", "household_id": "h1", "method": "door", "outcome": "screened",
        "steps": ["greet"], "commitment_signed": True,
        "occurred_at": now.isoformat()}))  # fmt: skip
    await until_created(lambda: s.checkpoint.post("/v1/checkpoints", headers=admin, json={
        "id": "gate", "node_id": "comm", "name": "@SUM(9)北门", "level": "compound",
        "policy": {"residents_only": False, "health_code_colours": ["green"]},
        "opened_at": (now - timedelta(days=1)).isoformat()}))  # fmt: skip
    r = await s.checkpoint.post("/v1/crossings", headers=admin, json={
        "id": "x1", "checkpoint_id": "gate", "direction": "in", "document_number": VISITOR,
        "health_code": "green", "temperature": 36.5, "occurred_at": now.isoformat(),
        "origin": "-1+cmd|' /C calc'!A0"})  # fmt: skip
    assert r.status_code == 201, r.text
    return now


def csv_cells(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [c for row in csv.reader(io.StringIO(r.content.decode("utf-8-sig"))) for c in row]


def xlsx_texts(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as book:
        xml = "".join(book.read(n).decode() for n in book.namelist() if n.endswith(".xml"))
    assert "<f>" not in xml and "<f " not in xml, "a cell holds a formula"
    return xml


async def test_every_ledger_exports_formula_like_text_as_text(full_stack: Stack) -> None:
    s = full_stack
    now = await seed(s)
    day = now.astimezone(s.settings.zone).date().isoformat()
    command = s.token("command")

    async def download(name: str, fmt: str, node_id: str = "street") -> httpx.Response:
        return await s.reporting.get(
            f"/v1/ledgers/{name}.{fmt}", params={"node_id": node_id, "date": day}, headers=command
        )

    seen: list[str] = []

    async def all_seen() -> bool:
        seen[:] = [" ".join(csv_cells(await download(n, "csv"))) for n in LEDGERS]
        return "'=*" in seen[0] and "'" + LINK in seen[1] and "'@SUM(9)北门" in seen[2]

    try:
        await eventually(all_seen, message="reporting's ledgers never held the corpus")
    except AssertionError as exc:
        raise AssertionError(seen) from exc
    opened: list[Any] = []
    for name in LEDGERS:
        for node_id in ("root", "street", "comm"):
            cells = csv_cells(await download(name, "csv", node_id))
            assert not [c for c in cells if formula_like(c)], (name, cells)
            xml = xlsx_texts(await download(name, "xlsx", node_id))
            opened += [(name, node_id)]
            if name == "screening" and node_id == "street":  # the text itself, unchanged
                assert f'<c r="B3" t="inlineStr"><is><t>{LINK}</t>' in xml
    gate = await s.checkpoint.get(
        "/v1/checkpoints/gate/crossings.csv", params={"date": day}, headers=s.token("admin")
    )
    cells = csv_cells(gate)
    assert "'-1+cmd|' /C calc'!A0" in cells
    assert not [c for c in cells if formula_like(c)]
    assert len(opened) == 3 * len(LEDGERS)
