"""A service's local copy of the registry's households, persons, vehicles and parties.

Screening needs it to refuse commands about unknown households or persons and to place a
person in the tree; checkpoint needs it to recognise residents by `id_hmac` and their
vehicles by plate. Only masked values and the HMAC travel; nothing here is clear PII, and
no age: neither service decides anything by it.
"""

from __future__ import annotations

from typing import Any

from shared.contracts.registry import (
    HouseholdRegistered,
    PartyRegistered,
    PersonContactChanged,
    PersonMoved,
    PersonRegistered,
    PersonResidencyChanged,
    PersonTagsChanged,
    PersonVoided,
    VehicleRegistered,
)
from shared.envelope import Envelope

PEOPLE_VIEWS_DDL = """
CREATE TABLE IF NOT EXISTS households (
    id           text PRIMARY KEY,
    door_number  text,
    address      text,
    version      integer NOT NULL
);
CREATE TABLE IF NOT EXISTS persons (
    id               text PRIMARY KEY,
    household_id     text NOT NULL,
    residency        text NOT NULL,
    tags             text[] NOT NULL DEFAULT '{}',
    document_type    text NOT NULL,
    document_masked  text NOT NULL,
    name_masked      text NOT NULL,
    phone_masked     text,
    id_hmac          text NOT NULL,
    voided           boolean NOT NULL DEFAULT false,
    version          integer NOT NULL
);
CREATE INDEX IF NOT EXISTS persons_hmac_idx ON persons (id_hmac) WHERE NOT voided;
CREATE INDEX IF NOT EXISTS persons_household_idx ON persons (household_id);
CREATE TABLE IF NOT EXISTS vehicles (
    id            text PRIMARY KEY,
    household_id  text NOT NULL,
    plate         text NOT NULL
);
CREATE INDEX IF NOT EXISTS vehicles_plate_idx ON vehicles (plate);
CREATE TABLE IF NOT EXISTS parties (
    id       text PRIMARY KEY,
    kind     text NOT NULL,
    name     text NOT NULL,
    role     text NOT NULL,
    node_id  text,
    sub      text
);
CREATE INDEX IF NOT EXISTS parties_sub_idx ON parties (sub) WHERE sub IS NOT NULL;
"""


async def on_household(conn: Any, env: Envelope, e: HouseholdRegistered) -> None:
    await conn.execute(
        "INSERT INTO households (id, door_number, address, version) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (id) DO NOTHING",
        e.household_id,
        e.door_number,
        e.address,
        env.version,
    )


async def on_person(conn: Any, env: Envelope, e: PersonRegistered) -> None:
    await conn.execute(
        """
        INSERT INTO persons (id, household_id, residency, tags, document_type, document_masked,
            name_masked, phone_masked, id_hmac, version)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING
        """,
        e.person_id,
        e.household_id,
        e.residency,
        e.tags,
        e.document_type,
        e.document_masked,
        e.name_masked,
        e.phone_masked,
        e.id_hmac,
        env.version,
    )


async def on_moved(conn: Any, env: Envelope, e: PersonMoved) -> None:
    await conn.execute(
        "UPDATE persons SET household_id = $2, version = $3 WHERE id = $1",
        e.person_id,
        e.to_household_id,
        env.version,
    )


async def on_residency(conn: Any, env: Envelope, e: PersonResidencyChanged) -> None:
    await conn.execute(
        "UPDATE persons SET residency = $2, version = $3 WHERE id = $1",
        e.person_id,
        e.residency,
        env.version,
    )


async def on_tags(conn: Any, env: Envelope, e: PersonTagsChanged) -> None:
    await conn.execute(
        "UPDATE persons SET tags = $2, version = $3 WHERE id = $1", e.person_id, e.tags, env.version
    )


async def on_contact(conn: Any, env: Envelope, e: PersonContactChanged) -> None:
    await conn.execute(
        "UPDATE persons SET name_masked = $2, phone_masked = $3, version = $4 WHERE id = $1",
        e.person_id,
        e.name_masked,
        e.phone_masked,
        env.version,
    )


async def on_voided(conn: Any, env: Envelope, e: PersonVoided) -> None:
    await conn.execute(
        "UPDATE persons SET voided = true, version = $2 WHERE id = $1", e.person_id, env.version
    )


async def on_vehicle(conn: Any, env: Envelope, e: VehicleRegistered) -> None:
    await conn.execute(
        "INSERT INTO vehicles (id, household_id, plate) VALUES ($1, $2, $3)"
        " ON CONFLICT (id) DO NOTHING",
        e.vehicle_id,
        e.household_id,
        e.plate,
    )


async def on_party(conn: Any, env: Envelope, e: PartyRegistered) -> None:
    await conn.execute(
        "INSERT INTO parties (id, kind, name, role, node_id, sub) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (id) DO NOTHING",
        e.party_id,
        e.kind,
        e.name,
        e.role,
        e.node_id,
        e.sub,
    )


HANDLERS: dict[type[Any], Any] = {
    HouseholdRegistered: on_household,
    PersonRegistered: on_person,
    PersonMoved: on_moved,
    PersonResidencyChanged: on_residency,
    PersonTagsChanged: on_tags,
    PersonContactChanged: on_contact,
    PersonVoided: on_voided,
    VehicleRegistered: on_vehicle,
    PartyRegistered: on_party,
}
