"""A client may give a vehicle or a person the id of a place: each still gets its own stream."""

from __future__ import annotations

from collections import defaultdict

from tests.e2e.conftest import Stack
from tests.e2e.test_people import homes, person  # noqa: F401  (the fixture)
from tests.integration.helpers import read_topic


async def test_a_vehicle_and_a_person_named_like_a_household_each_have_their_own_stream(
    homes: Stack,  # noqa: F811
) -> None:
    admin = homes.token("admin")
    car = await homes.registry.post(
        "/v1/vehicles",
        headers=admin,
        json={"id": "h301", "household_id": "h301", "plate": "吉A12345"},
    )
    assert car.status_code == 201, car.text
    someone = await person(homes, "h301", id="h302")
    assert someone.status_code == 201, someone.text
    assert someone.json()["id"] == "h302"

    h301 = await homes.registry.get("/v1/households/h301", headers=admin)
    assert h301.status_code == 200, h301.text
    assert [v["id"] for v in h301.json()["vehicles"]] == ["h301"]
    assert [p["id"] for p in h301.json()["persons"]] == ["h302"]
    assert (await homes.registry.get("/v1/households/h302", headers=admin)).status_code == 200

    pool = homes.apps["registry"].state.pool
    rows = await pool.fetch(
        "SELECT stream_id, stream_type, type FROM events"
        " WHERE stream_id LIKE '%h301' OR stream_id LIKE '%h302' ORDER BY stream_id, version"
    )
    streams: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for r in rows:
        streams[r["stream_id"]].append((r["stream_type"], r["type"]))
    assert streams == {
        "node:h301": [("node", "NodeCreated"), ("node", "HouseholdRegistered")],
        "node:h302": [("node", "NodeCreated"), ("node", "HouseholdRegistered")],
        "vehicle:h301": [("vehicle", "VehicleRegistered")],
        "person:h302": [("person", "PersonRegistered")],
    }

    # as a consumer sees them: every stream id names the one type its records carry
    total = await pool.fetchval("SELECT count(*) FROM events")
    records = await read_topic(
        homes.kafka_bootstrap, homes.settings.topic("registry.events"), expected=total
    )
    types: dict[str, set[str]] = defaultdict(set)
    for env in records:
        types[env.stream_id].add(env.stream_type)
    assert all(found == {stream.split(":", 1)[0]} for stream, found in types.items()), types
