"""The event store on asyncpg: load a stream, append with optimistic concurrency.

The append must be the first write of its transaction: the transaction id it stamps on the
rows is assigned at the first write, and the relay orders by that id (DESIGN.md §3, trap 2).
`append` checks this and refuses otherwise. Called outside a transaction, the append is one
statement in a transaction of its own: one round trip, committed when it returns.

A stream holds one aggregate: every event of a stream has the same `stream_type` (and every
stream id names its type, `<stream_type>:<id>`, so two aggregates never share one). `append`
refuses an event whose stream already holds another type, in the same statement: the event
before it in the stream (`version - 1`) must be of its type, so by induction the whole stream is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid5

import asyncpg
import orjson
from asyncpg.pgproto.pgproto import UUID as PgUUID

from shared.contracts import EventPayload
from shared.envelope import Envelope

if TYPE_CHECKING:
    from shared.idempotency import RequestKey

COLUMNS = (
    "position, tx_id, event_id, stream_id, stream_type, version, type, schema_version,"
    " occurred_at, recorded_at, node_id, actor, correlation_id, causation_id, data"
)


class ConcurrencyError(Exception):
    """Another writer appended to the stream first (HTTP 409, or 412 with If-Match)."""

    def __init__(self, stream_id: str, detail: str = "") -> None:
        super().__init__(
            f"stream {stream_id} was changed concurrently{': ' + detail if detail else ''}"
        )
        self.stream_id = stream_id


class DuplicateCommand(Exception):
    """The command id was already applied; its events are the result."""

    def __init__(self, command_id: str) -> None:
        super().__init__(f"command {command_id} was already applied")
        self.command_id = command_id


class NotFirstWrite(RuntimeError):
    """The transaction wrote before appending; its events could be relayed out of order."""


class MixedStream(RuntimeError):
    """An event would put a second aggregate type in a stream (a stream id that does not
    name its type, or a command on the wrong aggregate)."""

    def __init__(self, stream_id: str, detail: str) -> None:
        super().__init__(f"stream {stream_id} {detail}")
        self.stream_id = stream_id


def mixed_stream(events: Sequence[PendingEvent]) -> str | None:
    """The first stream that these events, among themselves, give two types; None if none."""
    seen: dict[str, str] = {}
    for e in events:
        if seen.setdefault(e.stream_id, e.stream_type) != e.stream_type:
            return e.stream_id
    return None


@dataclass(frozen=True)
class PendingEvent:
    """An event decided but not yet stored."""

    stream_id: str
    stream_type: str
    version: int
    payload: EventPayload | None
    occurred_at: datetime
    node_id: str | None = None
    # raw form, for events whose payload is not a contract model (tests, imports)
    type: str | None = None
    schema_version: int | None = None
    data: dict[str, Any] | None = None
    event_id: UUID | None = None
    # when this event has another origin than the rest of its append (a scheduler's misses,
    # each caused by the event that opened its window): they replace the context's
    correlation_id: UUID | None = None
    causation_id: UUID | None = None

    @property
    def event_type(self) -> str:
        if self.type:
            return self.type
        assert self.payload is not None, "an event needs a payload or a raw type"
        return self.payload.event_type

    @property
    def payload_schema_version(self) -> int:
        assert self.payload is not None
        return self.payload.schema_version


_COMMANDS = uuid5(NAMESPACE_URL, "grid-epi:command")


def command_causation(command_id: str) -> UUID:
    """A command's id as the cause of its events: derived from its command id, so every run
    of one command (a retry, a replica) names the same cause."""
    return uuid5(_COMMANDS, command_id)


@dataclass(frozen=True)
class CommandContext:
    """Who asked, why, and which request this belongs to: every event appended with it gets
    `correlation_id` (the request that started the work, carried through reactions) and
    `causation_id` (the command or event that directly caused it)."""

    actor: str | None = None
    command_id: str | None = None
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    # the request's Idempotency-Key (its `command_id` above), checked and stored by `execute`
    idempotency: RequestKey | None = None

    def unkeyed(self) -> CommandContext:
        """The same request without its command id, for work idempotent by its items' ids
        (batches, uploads): the origin and cause stay."""
        return replace(self, command_id=None, idempotency=None)

    @classmethod
    def internal(cls, actor: str, command_id: str) -> CommandContext:
        """A command no request started (shipped data, the scheduler's own findings): its
        command id is its origin and its cause."""
        cause = command_causation(command_id)
        return cls(actor=actor, command_id=command_id, correlation_id=cause, causation_id=cause)


def row_to_envelope(row: asyncpg.Record) -> Envelope:
    return Envelope(
        event_id=row["event_id"],
        type=row["type"],
        schema_version=row["schema_version"],
        stream_id=row["stream_id"],
        stream_type=row["stream_type"],
        version=row["version"],
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        node_id=row["node_id"],
        actor=row["actor"],
        correlation_id=row["correlation_id"],
        causation_id=row["causation_id"],
        data=row["data"],
    )


async def load_stream(conn: Any, stream_id: str, after_version: int = 0) -> list[Envelope]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM events WHERE stream_id = $1 AND version > $2 ORDER BY version",
        stream_id,
        after_version,
    )
    return [row_to_envelope(r) for r in rows]


# `command_id = $2` rows first (in command order), then the stream (in version order)
LOAD_FOR_COMMAND = f"""
(SELECT 0 AS part, command_seq AS k, {COLUMNS} FROM events WHERE command_id = $2)
UNION ALL
(SELECT 1, version, {COLUMNS} FROM events WHERE stream_id = $1)
ORDER BY part, k
"""


async def load_for_command(
    conn: Any, stream_id: str, command_id: str | None
) -> tuple[list[Envelope], list[Envelope]]:
    """(the stream's events, the events `command_id` appended before) in one round trip."""
    if not command_id:
        return await load_stream(conn, stream_id), []
    rows = await conn.fetch(LOAD_FOR_COMMAND, stream_id, command_id)
    history = [row_to_envelope(r) for r in rows if r["part"] == 1]
    prior = [row_to_envelope(r) for r in rows if r["part"] == 0]
    return history, prior


async def stream_version(conn: Any, stream_id: str) -> int:
    v = await conn.fetchval("SELECT max(version) FROM events WHERE stream_id = $1", stream_id)
    return int(v or 0)


async def command_result(conn: Any, command_id: str) -> list[Envelope]:
    """The events a command id appended, in order; empty if it never ran."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM events WHERE command_id = $1 ORDER BY command_seq", command_id
    )
    return [row_to_envelope(r) for r in rows]


# One round trip: the "first write" check and the insert. The check is a MATERIALIZED CTE,
# computed once before the join yields its first row, i.e. before anything is inserted; a
# transaction that wrote before gets no rows in. `now()` is the transaction's start, the same
# value the rows get as `recorded_at`. Payloads travel as text and are cast on the server
# (cheaper than asyncpg's per-element jsonb array codec), and nothing is returned but one row:
# the envelopes are built from what was sent (returning the rows took half the append time).
# `mixed` is the first stream whose stored event before a new one is of another type (one
# index probe per event, on the `(stream_id, version)` key the insert probes anyway).
APPEND = """
WITH tx AS MATERIALIZED (
    SELECT pg_current_xact_id_if_assigned() IS NULL AS first_write, now() AS recorded_at,
        (SELECT min(e.stream_id) FROM unnest($2::text[], $3::text[], $4::int[])
                AS n(stream_id, stream_type, version)
            JOIN events e ON e.stream_id = n.stream_id AND e.version = n.version - 1
            WHERE n.version > 1 AND e.stream_type <> n.stream_type) AS mixed
), added AS (
    INSERT INTO events (event_id, stream_id, stream_type, version, type, schema_version,
        occurred_at, node_id, actor, correlation_id, causation_id, command_id, command_seq, data)
    SELECT u.event_id, u.stream_id, u.stream_type, u.version, u.type, u.schema_version,
        u.occurred_at, u.node_id, $10, COALESCE(u.correlation_id, $11),
        COALESCE(u.causation_id, $12), $13, u.seq, u.data::jsonb
    FROM tx, unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::int[],
                    $7::timestamptz[], $8::text[], $9::text[], $14::uuid[], $15::uuid[])
             WITH ORDINALITY AS u(event_id, stream_id, stream_type, version, type,
                                  schema_version, occurred_at, node_id, data, correlation_id,
                                  causation_id, seq)
    WHERE tx.first_write AND tx.mixed IS NULL
    ORDER BY u.seq
    RETURNING 1
)
SELECT (SELECT count(*) FROM added) AS added, tx.recorded_at, tx.mixed FROM tx
"""


def _aware(moment: datetime) -> datetime:
    """As PostgreSQL returns a timestamptz: in UTC (a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


_V4_CLEAR = bytes.fromhex("ffffffffffff0fff3fffffffffffffff")  # version and variant bits off
_V4_SET = bytes.fromhex("00000000000040008000000000000000")  # version 4, RFC 4122 variant


def new_event_ids(n: int) -> list[UUID]:
    """n random (version 4) UUIDs from one `os.urandom` call, as asyncpg returns uuids."""
    size = 16 * n
    raw = (
        int.from_bytes(os.urandom(size)) & int.from_bytes(_V4_CLEAR * n)
        | int.from_bytes(_V4_SET * n)
    ).to_bytes(size)
    return [PgUUID(raw[i : i + 16]) for i in range(0, size, 16)]


_ENVELOPE_FIELDS = frozenset(Envelope.model_fields)


def stored_envelope(fields: dict[str, Any]) -> Envelope:
    """An envelope of values the store wrote (every field, in declaration order), built as
    `Envelope.model_construct` does but without its per-call Python: validating them again
    would cost more than the rest of an append's Python together."""
    env = object.__new__(Envelope)
    object.__setattr__(env, "__dict__", fields)
    object.__setattr__(env, "__pydantic_fields_set__", _ENVELOPE_FIELDS)
    object.__setattr__(env, "__pydantic_extra__", None)
    object.__setattr__(env, "__pydantic_private__", None)
    return env


def _payloads(events: Sequence[PendingEvent]) -> tuple[list[str], list[dict[str, Any]]]:
    """Each payload as the JSON text sent and as stored (JSON types, not the caller's dict)."""
    texts: list[str] = []
    data: list[dict[str, Any]] = []
    for e in events:
        if e.payload is None:
            text = orjson.dumps(e.data).decode()
            data.append(orjson.loads(text))
        else:
            d = e.payload.model_dump(mode="json")
            text = orjson.dumps(d).decode()
            data.append(d)
        texts.append(text)
    return texts, data


async def append(
    conn: Any, events: Sequence[PendingEvent], ctx: CommandContext = CommandContext()
) -> list[Envelope]:
    """Append events in the caller's transaction, which must not have written yet; outside a
    transaction, in one of their own (one statement, committed on return).

    Raises ConcurrencyError when a (stream_id, version) is taken, DuplicateCommand when the
    command id was applied before, NotFirstWrite when the transaction wrote before, MixedStream
    when an event's stream holds another type.
    """
    if not events:
        return []
    if (mixed := mixed_stream(events)) is not None:
        raise MixedStream(mixed, "is given two stream types in one append")
    ids = [e.event_id or fresh for e, fresh in zip(events, new_event_ids(len(events)), strict=True)]
    streams = [e.stream_id for e in events]
    types = [e.event_type for e in events]
    schema_versions = [e.schema_version or e.payload_schema_version for e in events]
    texts, data = _payloads(events)
    # NULL arrays (nothing overridden) unnest as NULLs
    correlations = _overrides([e.correlation_id for e in events])
    causations = _overrides([e.causation_id for e in events])
    try:
        row = await conn.fetchrow(
            APPEND,
            ids,
            streams,
            [e.stream_type for e in events],
            [e.version for e in events],
            types,
            schema_versions,
            [e.occurred_at for e in events],
            [e.node_id for e in events],
            texts,
            ctx.actor,
            ctx.correlation_id,
            ctx.causation_id,
            ctx.command_id,
            correlations,
            causations,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "events_command_key" and ctx.command_id:
            raise DuplicateCommand(ctx.command_id) from exc
        if exc.constraint_name == "events_stream_version_key":
            raise ConcurrencyError(_stream_of(exc, streams)) from exc
        raise
    if row["mixed"] is not None:
        given = sorted({e.stream_type for e in events if e.stream_id == row["mixed"]})
        raise MixedStream(row["mixed"], f"holds another type than {', '.join(given)}")
    if row["added"] != len(events):
        raise NotFirstWrite("append must be the first write of its transaction")
    recorded_at = row["recorded_at"]
    return [
        stored_envelope(
            {
                "event_id": event_id,
                "type": type_,
                "schema_version": schema_version,
                "stream_id": e.stream_id,
                "stream_type": e.stream_type,
                "version": e.version,
                "occurred_at": _aware(e.occurred_at),
                "recorded_at": recorded_at,
                "node_id": e.node_id,
                "actor": ctx.actor,
                "correlation_id": e.correlation_id or ctx.correlation_id,
                "causation_id": e.causation_id or ctx.causation_id,
                "data": d,
            }
        )
        for e, event_id, type_, schema_version, d in zip(
            events, ids, types, schema_versions, data, strict=True
        )
    ]


def _overrides(values: list[UUID | None]) -> list[UUID | None] | None:
    return values if any(v is not None for v in values) else None


def _stream_of(exc: asyncpg.UniqueViolationError, streams: list[str]) -> str:
    detail = getattr(exc, "detail", "") or ""
    for s in streams:
        if f"({s}," in detail:
            return s
    return streams[0]
