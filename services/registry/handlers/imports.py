"""Bulk roster import: stream the file, commit chunk by chunk.

Each chunk is one short transaction (so the relay's xmin watermark is never held back for
long): take the tree lock, read the holders of the chunk's documents, plan, append the events
as the first write, then fill the query tables and the PII store in bulk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pydantic import BaseModel, ValidationError

from services.registry.commands.people import HouseholdCreate, PersonCreate
from services.registry.commands.places import NodeRename
from services.registry.domain.imports import (
    LEVELS,
    Children,
    ImportRow,
    Planned,
    RowResult,
    plan_chunk,
)
from services.registry.domain.people import Holder
from services.registry.domain.places import Parent
from services.registry.handlers.people import ClearPerson, Keys, checked_identity, stored_date
from services.registry.handlers.places import lock_tree, parent_of
from services.registry.pii_store import aad
from services.registry.roster import RosterRow, RowError, header_of, parse_roster
from shared.contracts.registry import DocumentType, Residency
from shared.envelope import Envelope, utc_now
from shared.errors import DomainError, Refusal
from shared.eventstore import CommandContext, ConcurrencyError, PendingEvent, append
from shared.input_limits import refusal
from shared.scrub import scrub, scrub_all

CHUNK_ROWS = 1000
# the row's fields that are stored (as places, household, person or PII)
_WRITTEN = (
    *(attr for attr, _ in LEVELS),
    "door_number",
    "address",
    "name",
    "document_number",
    "phone",
    "tags",
)
PLACE_KINDS = [kind for _, kind in LEVELS] + ["household"]


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    unchanged: int = 0
    errors: int = 0
    places_created: int = 0
    results: list[RowResult] = field(default_factory=list)

    def add(self, planned: Planned) -> None:
        for r in planned.results:
            self.rows += 1
            self.results.append(r)
            if r.status == "created":
                self.created += 1
            elif r.status == "unchanged":
                self.unchanged += 1
            else:
                self.errors += 1
        self.places_created += sum(1 for _, t, _ in planned.streams if t == "node")


def _field_rules(row: RosterRow) -> RowResult | None:
    """The rules the API applies to the same fields (the API's own models, so a name's
    longest length has one definition), and no control characters in any cell."""
    for attr in _WRITTEN:
        values = row.tags if attr == "tags" else [getattr(row, attr)]
        for value in values:
            reason = refusal(value)
            if reason is not None:
                return RowResult(row.row_number, "error", field=header_of(attr), reason=reason)
    checks: list[tuple[type[BaseModel], dict[str, Any], dict[str, str]]] = [
        (
            PersonCreate,
            {
                "household_id": "-",
                "name": row.name,
                "document_number": row.document_number,
                "phone": row.phone or None,
                "tags": row.tags,
            },
            {},
        ),
        (
            HouseholdCreate,
            {"parent_id": "-", "door_number": row.door_number, "address": row.address or None},
            {},
        ),
        *(
            (NodeRename, {"name": getattr(row, attr)}, {"name": attr})
            for attr, _ in LEVELS
            if getattr(row, attr)
        ),
    ]
    for model, values, renamed in checks:
        try:
            model.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            attr = str(first["loc"][0])
            header = header_of(renamed.get(attr, attr))
            return RowResult(
                row.row_number, "error", field=header, reason=f"{header}: {first['msg']}"
            )
    return None


def _import_row(keys: Keys, row: RosterRow) -> _Checked | RowResult:
    """Check a parsed row's fields, document and contact; a refusal becomes the row's error."""
    if (refused := _field_rules(row)) is not None:
        return refused
    try:
        checked, number, phone = checked_identity(
            keys,
            ClearPerson(
                row.name, _document_type(row.document_type), row.document_number, row.phone or None
            ),
        )
    except DomainError as exc:
        header = {"document_number": "身份证号", "phone": "联系电话", "name": "姓名"}.get(
            exc.field or "", exc.field
        )
        return RowResult(row.row_number, "error", field=header, reason=str(exc))
    places = tuple((kind, getattr(row, attr)) for attr, kind in LEVELS if getattr(row, attr))
    return _Checked(
        row.row_number,
        places,
        row.door_number,
        scrub(row.address) or None,
        _residency(row.residency),
        tuple(scrub_all(row.tags)),
        checked,
        number,
        row.name.strip(),
        phone,
    )


@dataclass(frozen=True)
class _Checked(ImportRow):
    number: str = ""
    name: str = ""
    phone: str | None = None


def _document_type(value: str) -> DocumentType:
    if value in ("resident_id", "passport", "hk_macao_permit", "taiwan_permit"):
        return value  # type: ignore[return-value]
    raise DomainError(
        "unknown-document-type", f"unknown document type {value}", field="document_type"
    )


def _residency(value: str) -> Residency:
    return value if value in ("resident", "temporary", "visitor") else "resident"  # type: ignore[return-value]


def _prepare(
    rows: Iterator[RosterRow | RowError], keys: Keys
) -> tuple[list[_Checked], list[RowResult]]:
    """Parse and check the next chunk: rows ready to plan, and rows already refused."""
    checked: list[_Checked] = []
    early: list[RowResult] = []
    for item in rows:
        if isinstance(item, RowError):
            early.append(RowResult(item.row_number, "error", field=item.field, reason=item.reason))
        elif isinstance(result := _import_row(keys, item), RowResult):
            early.append(result)
        else:
            checked.append(result)
        if len(checked) + len(early) >= CHUNK_ROWS:
            break
    return checked, early


async def import_roster(
    pool: Any,
    keys: Keys,
    root_id: str,
    file: BinaryIO,
    filename: str | None,
    content_type: str | None,
    ctx: CommandContext,
) -> ImportReport:
    async with pool.acquire() as conn:
        root = await parent_of(conn, root_id)
    if root is None or root.retired:
        raise DomainError(
            "unknown-parent",
            f"place {root_id} does not exist or is retired",
            refusal=Refusal.NOT_FOUND,
            field="parent_id",
        )
    children = await _load_children(pool, root)
    holders: dict[str, Holder] = {}
    report = ImportReport()
    rows = await asyncio.to_thread(parse_roster, file, filename, content_type)
    # the next chunk is parsed and checked in a thread while this one commits
    upcoming = asyncio.create_task(asyncio.to_thread(_prepare, rows, keys))
    try:
        while True:
            checked, early = await upcoming
            if not checked and not early:
                break
            upcoming = asyncio.create_task(asyncio.to_thread(_prepare, rows, keys))
            try:
                planned = await _commit_chunk(pool, keys, root, checked, children, holders, ctx)
            except ConcurrencyError:
                # another import created some of these places meanwhile: look again, once
                children = await _load_children(pool, root)
                holders.clear()
                planned = await _commit_chunk(pool, keys, root, checked, children, holders, ctx)
            planned.results = sorted(early + planned.results, key=lambda r: r.row)
            report.add(planned)
    finally:
        upcoming.cancel()
    return report


async def _load_children(pool: Any, root: Parent) -> Children:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, parent_id, kind, name, path::text AS path FROM nodes"
            " WHERE path <@ $1::ltree AND NOT retired AND kind = ANY($2::text[])",
            root.path,
            PLACE_KINDS,
        )
    return {(r["parent_id"], r["kind"], r["name"]): (r["id"], r["path"]) for r in rows}


async def _commit_chunk(
    pool: Any,
    keys: Keys,
    root: Parent,
    rows: list[_Checked],
    children: Children,
    holders: dict[str, Holder],
    ctx: CommandContext,
) -> Planned:
    async with pool.acquire() as conn, conn.transaction():
        await lock_tree(conn)
        wanted = [r.identity.id_hmac for r in rows if r.identity.id_hmac not in holders]
        for h in await conn.fetch(
            "SELECT id, household_id, id_hmac FROM persons WHERE id_hmac = ANY($1::text[])"
            " AND NOT voided",
            wanted,
        ):
            holders[h["id_hmac"]] = Holder(h["id"], h["household_id"])
        planned = plan_chunk(root, list(rows), children, holders)
        if not planned.streams:
            return planned
        now = utc_now()
        pending = [
            PendingEvent(stream_id, stream_type, version, payload, now, node_id=_node_of(payload))
            for stream_id, stream_type, payloads in planned.streams
            for version, payload in enumerate(payloads, start=1)
        ]
        stored = await append(conn, pending, ctx)
        await _project(conn, keys, stored, {r.identity.id_hmac: r for r in rows}, planned)
    return planned


def _node_of(payload: Any) -> str | None:
    return getattr(payload, "household_id", None) or getattr(payload, "node_id", None)


async def _project(
    conn: Any, keys: Keys, stored: list[Envelope], by_hmac: dict[str, _Checked], planned: Planned
) -> None:
    nodes = [e for e in stored if e.type == "NodeCreated"]
    households = [e for e in stored if e.type == "HouseholdRegistered"]
    persons = [e for e in stored if e.type == "PersonRegistered"]
    await conn.execute(
        "INSERT INTO nodes (id, parent_id, kind, name, path, version)"
        " SELECT i, p, k, n, pa::ltree, 1 FROM unnest($1::text[], $2::text[], $3::text[],"
        " $4::text[], $5::text[]) AS u(i, p, k, n, pa)",
        [e.data["node_id"] for e in nodes],
        [e.data["parent_id"] for e in nodes],
        [e.data["kind"] for e in nodes],
        [e.data["name"] for e in nodes],
        [e.data["path"] for e in nodes],
    )
    await conn.execute(
        "UPDATE nodes SET version = 2 WHERE id = ANY($1::text[])",
        [e.data["household_id"] for e in households],
    )
    await conn.execute(
        "INSERT INTO households (id, door_number, address, version)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[])",
        [e.data["household_id"] for e in households],
        [e.data["door_number"] for e in households],
        [e.data["address"] for e in households],
        [2] * len(households),
    )
    await conn.execute(
        """
        INSERT INTO persons (id, household_id, residency, tags, document_type, document_masked,
            name_masked, phone_masked, id_hmac, age_band, age_band_on, sex, version)
        SELECT i, h, r, string_to_array(t, chr(31)), dt, dm, nm, pm, hm, ab, ao, sx, 1
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::text[], $8::text[], $9::text[], $10::text[], $11::date[], $12::text[])
             AS u(i, h, r, t, dt, dm, nm, pm, hm, ab, ao, sx)
        """,
        *[
            list(c)
            for c in zip(
                *[
                    (
                        d["person_id"],
                        d["household_id"],
                        d["residency"],
                        chr(31).join(d["tags"]),
                        d["document_type"],
                        d["document_masked"],
                        d["name_masked"],
                        d["phone_masked"],
                        d["id_hmac"],
                        d["age_band"],
                        stored_date(d["age_band_on"]),
                        d["sex"],
                    )
                    for d in (e.data for e in persons)
                ],
                strict=True,
            )
        ]
        if persons
        else [[]] * 12,
    )
    owners: list[str] = []
    fields: list[str] = []
    key_ids: list[str] = []
    blobs: list[bytes] = []
    for pid, digest in planned.persons.items():
        row = by_hmac[digest]
        for name, value in (
            ("name", row.name),
            ("document_number", row.number),
            ("phone", row.phone),
        ):
            if value is None:
                continue
            key_id, blob = keys.cipher.encrypt(value, aad(pid, name))
            owners.append(pid)
            fields.append(name)
            key_ids.append(key_id)
            blobs.append(blob)
    await conn.execute(
        "INSERT INTO pii (owner_id, field, key_id, ciphertext)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])",
        owners,
        fields,
        key_ids,
        blobs,
    )
