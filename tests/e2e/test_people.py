"""Households, persons and vehicles over HTTP, with PII kept out of events and logged on read."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from shared.identity import china_today, resident_id_check_digit
from tests.e2e.conftest import Stack
from tests.e2e.test_places import grow
from tests.integration.helpers import read_topic


def national_id(first17: str) -> str:
    return first17 + resident_id_check_digit(first17)


ZHANG = national_id("11010519900101123")
LI = national_id("22010219851231456")


async def household(stack: Stack, hid: str, parent: str = "b1", door: str = "301") -> None:
    r = await stack.registry.post(
        "/v1/households",
        headers=stack.token("admin"),
        json={"id": hid, "parent_id": parent, "door_number": door, "address": "幸福小区1栋" + door},
    )
    assert r.status_code == 201, r.text


async def person(
    stack: Stack, household_id: str, number: str = ZHANG, name: str = "张三", **extra: Any
) -> Any:
    return await stack.registry.post(
        "/v1/persons",
        headers=stack.token("admin"),
        json={
            "household_id": household_id,
            "name": name,
            "document_number": number,
            "phone": "13812345678",
            **extra,
        },
    )


@pytest.fixture
async def homes(stack: Stack) -> Stack:
    await grow(stack)
    await household(stack, "h301", "b1", "301")
    await household(stack, "h302", "b1", "302")
    return stack


async def test_a_registered_person_is_shown_masked_in_the_household(homes: Stack) -> None:
    r = await person(homes, "h301", tags=["低保"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["document_masked"] == ZHANG[:6] + "********" + ZHANG[-4:]
    assert body["name_masked"] == "张*" and body["phone_masked"] == "138****5678"
    assert body["tags"] == ["低保"] and body["clear"] is None
    # no birth year beside the masked number (its hidden digits are the birth date)
    assert "birth_year" not in body
    assert body["age_band"] == "18-59"
    assert 0 <= (china_today() - date.fromisoformat(body["age_band_on"])).days <= 1
    h = await homes.registry.get("/v1/households/h301", headers=homes.token("command"))
    assert [p["id"] for p in h.json()["persons"]] == [body["id"]]
    assert h.json()["path"] == "root.street_a.comm.g1.b1.h301"


@pytest.mark.parametrize(
    "number",
    [
        ZHANG[:-1] + ("0" if ZHANG[-1] != "0" else "1"),  # wrong check digit
        national_id("11010519900230123"),  # 30 February
        national_id("11010519901301123"),  # month 13
        ZHANG[:-1],  # 17 characters
        ZHANG + "1",  # 19 characters
    ],
)
async def test_a_bad_national_id_is_a_422_naming_the_field(homes: Stack, number: str) -> None:
    r = await person(homes, "h301", number=number)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "body.document_number"


async def test_the_same_document_in_a_second_household_is_a_409_naming_the_person(
    homes: Stack,
) -> None:
    first = (await person(homes, "h301")).json()
    again = await person(homes, "h301")
    assert again.status_code == 201 and again.json()["id"] == first["id"]
    other = await person(homes, "h302")
    assert other.status_code == 409
    assert first["id"] in other.json()["detail"]
    assert other.json()["code"] == "document-registered"
    assert other.json()["errors"][0]["field"] == "body.document_number"
    moved = await homes.registry.post(
        f"/v1/persons/{first['id']}/move",
        json={"household_id": "h302"},
        headers=homes.token("admin"),
    )
    assert moved.status_code == 200 and moved.json()["household_id"] == "h302"


async def test_clear_pii_is_shown_only_to_allowed_roles_and_every_read_is_logged(
    homes: Stack,
) -> None:
    pid = (await person(homes, "h301")).json()["id"]
    clerk = homes.token("registrar", scope=["street-a"])
    r = await homes.registry.get(
        f"/v1/persons/{pid}", headers=clerk, params={"reveal": "true", "reason": "入户核实"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["clear"] == {"name": "张三", "document_number": ZHANG, "phone": "13812345678"}
    assert r.headers["cache-control"] == "no-store"
    command = homes.token("command")
    denied = await homes.registry.get(
        f"/v1/persons/{pid}", headers=command, params={"reveal": "true", "reason": "想看"}
    )
    assert denied.status_code == 403
    no_reason = await homes.registry.get(
        f"/v1/persons/{pid}", headers=clerk, params={"reveal": "true"}
    )
    assert no_reason.status_code == 422
    log = await homes.registry.get(
        "/v1/pii-access-log", params={"person_id": pid}, headers=homes.token("auditor")
    )
    assert log.status_code == 200
    [entry] = log.json()["items"]
    assert entry["actor"] == "registrar-user" and entry["reason"] == "入户核实"
    assert entry["fields"] == ["document_number", "name", "phone"]
    assert (await homes.registry.get("/v1/pii-access-log", headers=clerk)).status_code == 403


async def test_lookup_by_document_answers_masked_within_the_jurisdiction(homes: Stack) -> None:
    pid = (await person(homes, "h301")).json()["id"]
    found = await homes.registry.post(
        "/v1/persons:lookup",
        headers=homes.token("medic"),
        json={"document_type": "resident_id", "number": ZHANG},
    )
    assert found.status_code == 200 and found.json()["id"] == pid
    assert "张三" not in found.text and ZHANG not in found.text
    elsewhere = homes.token("grid_worker", scope=["street-b"])
    assert (
        await homes.registry.post("/v1/persons:lookup", headers=elsewhere, json={"number": ZHANG})
    ).status_code == 404
    nobody = await homes.registry.post(
        "/v1/persons:lookup", headers=homes.token("medic"), json={"number": LI}
    )
    assert nobody.status_code == 404


async def test_people_outside_the_callers_jurisdiction_are_403(homes: Stack) -> None:
    pid = (await person(homes, "h301")).json()["id"]
    stranger = homes.token("registrar", scope=["street-b"])
    assert (await homes.registry.get(f"/v1/persons/{pid}", headers=stranger)).status_code == 403
    assert (await homes.registry.get("/v1/households/h301", headers=stranger)).status_code == 403
    r = await homes.registry.post(
        "/v1/persons",
        headers=stranger,
        json={"household_id": "h302", "name": "李四", "document_number": LI},
    )
    assert r.status_code == 403
    r = await homes.registry.post(
        f"/v1/persons/{pid}/tags", headers=stranger, json={"add": ["残疾"]}
    )
    assert r.status_code == 403


async def test_tags_residency_contact_and_voiding(homes: Stack) -> None:
    admin = homes.token("admin")
    pid = (await person(homes, "h301", tags=["低保"])).json()["id"]
    r = await homes.registry.post(
        f"/v1/persons/{pid}/tags", headers=admin, json={"add": ["孤寡老人"], "remove": ["低保"]}
    )
    assert r.json()["tags"] == ["孤寡老人"]
    r = await homes.registry.post(
        f"/v1/persons/{pid}/residency", headers=admin, json={"residency": "temporary"}
    )
    assert r.json()["residency"] == "temporary"
    r = await homes.registry.post(
        f"/v1/persons/{pid}/contact", headers=admin, json={"name": "张叁", "phone": "13900001111"}
    )
    assert r.json()["phone_masked"] == "139****1111"
    r = await homes.registry.post(
        f"/v1/persons/{pid}/void", headers=admin, json={"reason": "重复登记"}
    )
    assert r.json()["voided"] is True
    again = await person(homes, "h302")
    assert again.status_code == 201 and again.json()["id"] != pid


async def test_vehicles_have_unique_valid_plates(homes: Stack) -> None:
    admin = homes.token("admin")
    ok = await homes.registry.post(
        "/v1/vehicles", headers=admin, json={"household_id": "h301", "plate": "吉a·12345"}
    )
    assert ok.status_code == 201 and ok.json()["plate"] == "吉A12345"
    dup = await homes.registry.post(
        "/v1/vehicles", headers=admin, json={"household_id": "h302", "plate": "吉A12345"}
    )
    assert dup.status_code == 409
    bad = await homes.registry.post(
        "/v1/vehicles", headers=admin, json={"household_id": "h302", "plate": "ABC12345"}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.plate"
    h = await homes.registry.get("/v1/households/h301", headers=admin)
    assert [v["plate"] for v in h.json()["vehicles"]] == ["吉A12345"]


async def test_no_clear_name_document_or_phone_in_any_kafka_message(homes: Stack) -> None:
    pid = (await person(homes, "h301")).json()["id"]
    await person(homes, "h302", number=LI, name="李四")
    await homes.registry.post(
        f"/v1/persons/{pid}/contact",
        headers=homes.token("admin"),
        json={"name": "王五", "phone": "13900001111"},
    )
    events = await read_topic(
        homes.kafka_bootstrap, homes.settings.topic("registry.events"), expected=7 + 2 * 2 + 2 + 1
    )
    raw = "\n".join(e.model_dump_json() for e in events)
    assert "PersonRegistered" in raw
    for secret in ("张三", "李四", "王五", ZHANG, LI, "13812345678", "13900001111", ZHANG[6:14]):
        assert secret not in raw, secret
    # nor anything that narrows a masked number back: its hidden digits are the birth date
    assert "birth_year" not in raw
    assert '"age_band":"18-59"' in raw
