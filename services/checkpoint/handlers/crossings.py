"""Recording crossings: from what the gate typed or scanned to a decided, stored crossing.

One path for a single crossing and for offline uploads: items are committed in chunks, each
one short transaction that reads everything its items need at once (the checkpoints, their
policy periods, the caller's shifts, earlier crossings with the same ids, residency by
`id_hmac`, vehicles by plate, watch periods, risk areas), decides every item in order, and
appends all the chunk's crossing streams in one `append` as its first write, then fills the
`crossings` ledger in one statement. A retried upload finds its crossings and answers
`unchanged` with the decisions first made, writing nothing.

Clear document numbers are validated and turned into `id_hmac` and a masked form here, and
go no further: not into events, tables or logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

import orjson

from services.checkpoint.domain import crossings as domain
from services.checkpoint.domain.checkpoints import PolicyPeriod, policy_at
from services.checkpoint.domain.crossings import Crossing, GatePerson, RecordCrossing
from services.checkpoint.domain.decisions import GateCheck, Traveller, judge
from services.checkpoint.domain.exposure import (
    RiskArea,
    WatchPeriod,
    WatchState,
    from_risk_area,
    origin_unresolved,
    views_as_of,
    watch_state,
)
from services.checkpoint.domain.shifts import Shift, on_duty
from services.checkpoint.handlers.checkpoints import policy_periods
from services.checkpoint.handlers.shifts import shifts_of
from shared import divisions, identity
from shared.commands import Aggregate
from shared.contracts.checkpoint import Decision, HealthCode
from shared.contracts.registry import DocumentType, Residency
from shared.envelope import Envelope
from shared.errors import DomainError, Refusal
from shared.eventstore import (
    COLUMNS,
    CommandContext,
    ConcurrencyError,
    PendingEvent,
    append,
    row_to_envelope,
)

CROSSING: Aggregate[Crossing | None] = Aggregate(domain.CROSSING_STREAM, None, domain.evolve)
UNWATCHED = WatchState(quarantined=False, observed=False)


# -- what the gate sent ----------------------------------------------------------------------


# Per-item values of an upload are plain slotted dataclasses: a frozen one costs ~5x as much
# to build, and a 5,000-item upload builds tens of thousands of them.


@dataclass(slots=True)
class Document:
    """A document as typed or scanned: clear, held only while the request is handled."""

    document_type: str
    number: str


@dataclass(slots=True)
class CrossingInput:
    crossing_id: str
    checkpoint_id: str
    kind: Literal["person", "vehicle"]
    direction: Literal["in", "out"]
    document: Document | None
    plate: str | None
    passengers: tuple[Document, ...]
    temperature: float | None
    health_code: HealthCode | None
    test_report_at: datetime | None
    origin: str | None
    origin_region_code: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class Caller:
    sub: str
    scope: tuple[str, ...] | None  # None: the whole system
    needs_shift: bool  # a gatekeeper records only during a shift at the checkpoint


Refusal_ = Literal["invalid", "not_found", "conflict", "forbidden"]


@dataclass(slots=True)
class ItemOutcome:
    index: int
    id: str | None
    status: Literal["created", "unchanged", "error"]
    decision: Decision | None = None
    reasons: tuple[str, ...] = ()
    views_as_of: datetime | None = None
    breaches: tuple[str, ...] = ()
    version: int | None = None
    code: str | None = None
    refusal: Refusal_ | None = None
    field: str | None = None
    reason: str | None = None


def refused(index: int, item_id: str | None, exc: DomainError, prefix: str = "") -> ItemOutcome:
    refusal: Refusal_ = (
        "conflict"
        if exc.refusal is Refusal.CONFLICT
        else "not_found"
        if exc.refusal is Refusal.NOT_FOUND
        else "invalid"
    )
    field = f"{prefix}{exc.field}" if exc.field else None
    return ItemOutcome(
        index, item_id, "error", code=exc.code, refusal=refusal, field=field, reason=str(exc)
    )


def forbidden(index: int, item_id: str, code: str, field: str, reason: str) -> ItemOutcome:
    return ItemOutcome(
        index, item_id, "error", code=code, refusal="forbidden", field=field, reason=reason
    )


def checked_document(
    key: bytes, doc: Document, prefix: str = "", today: date | None = None
) -> GatePerson:
    """HMAC and mask a document; a malformed one is refused naming its field. `today` bounds
    resident ID birth dates (default: today in China)."""
    try:
        number = identity.validate_document(doc.document_type, doc.number, today=today)
    except DomainError as exc:
        name = "document_type" if exc.field == "document_type" else "document_number"
        exc.field = f"{prefix}{name}"
        raise
    kind = cast(DocumentType, doc.document_type)
    return GatePerson(
        kind, identity.id_hmac(key, kind, number), identity.mask_document(kind, number)
    )


def to_command(
    key: bytes, item: CrossingInput, recorded_by: str, today: date | None = None
) -> RecordCrossing:
    """The crossing without clear numbers; its node is filled in when the chunk is read.
    An upload passes `today` once for all its items."""
    person = checked_document(key, item.document, "", today) if item.document is not None else None
    passengers = tuple(
        checked_document(key, p, f"passengers.{i}.", today) for i, p in enumerate(item.passengers)
    )
    plate = domain.normalise_plate(item.plate) if item.plate else None
    return RecordCrossing(
        item.crossing_id,
        item.checkpoint_id,
        "",
        item.kind,
        item.direction,
        person,
        plate,
        passengers,
        item.temperature,
        item.health_code,
        item.test_report_at,
        item.origin.strip() if item.origin else None,
        item.origin_region_code,
        item.occurred_at,
        recorded_by,
    )


# -- what a chunk needs to know --------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    id: str
    node_id: str
    path: str | None
    opened_at: datetime
    closed_at: datetime | None


@dataclass(slots=True)
class Registration:
    """A non-voided person of the registry with this document: where and as what."""

    person_id: str
    household_path: str | None
    residency: Residency


@dataclass
class Views:
    """The chunk's slice of the local views."""

    gates: dict[str, Gate]
    periods: dict[str, list[PolicyPeriod]]
    residents: dict[str, list[Registration]]  # by id_hmac
    vehicles: dict[str, list[str | None]]  # plate -> household paths
    watch: dict[str, list[WatchPeriod]]  # subject id -> its periods
    risk_areas: list[RiskArea]
    shifts: list[Shift]
    in_scope: set[str]
    histories: dict[str, list[Envelope]]


def under(path: str | None, ancestor: str | None) -> bool:
    """ltree `<@` on text paths."""
    if path is None or ancestor is None:
        return False
    return path == ancestor or path.startswith(ancestor + ".")


async def _read_views(conn: Any, cmds: Sequence[RecordCrossing], caller: Caller) -> Views:
    gate_ids = sorted({c.checkpoint_id for c in cmds})
    gates = {
        r["id"]: Gate(r["id"], r["node_id"], r["path"], r["opened_at"], r["closed_at"])
        for r in await conn.fetch(
            "SELECT c.id, c.node_id, p.path::text AS path, c.opened_at, c.closed_at"
            " FROM checkpoints c LEFT JOIN places p ON p.id = c.node_id"
            " WHERE c.id = ANY($1::text[])",
            gate_ids,
        )
    }
    hmacs = sorted({p.id_hmac for c in cmds for p in c.people})
    residents: dict[str, list[Registration]] = {}
    for r in await conn.fetch(
        "SELECT p.id, p.id_hmac, p.residency, h.path::text AS path FROM persons p"
        " LEFT JOIN places h ON h.id = p.household_id"
        " WHERE p.id_hmac = ANY($1::text[]) AND NOT p.voided ORDER BY p.id",
        hmacs,
    ):
        residents.setdefault(r["id_hmac"], []).append(
            Registration(r["id"], r["path"], r["residency"])
        )
    vehicles: dict[str, list[str | None]] = {}
    for r in await conn.fetch(
        "SELECT v.plate, h.path::text AS path FROM vehicles v"
        " LEFT JOIN places h ON h.id = v.household_id WHERE v.plate = ANY($1::text[])",
        sorted({c.plate for c in cmds if c.plate}),
    ):
        vehicles.setdefault(r["plate"], []).append(r["path"])
    subjects = {f"{domain.HMAC_PREFIX}{h}" for h in hmacs} | {
        reg.person_id for found in residents.values() for reg in found
    }
    watch: dict[str, list[WatchPeriod]] = {}
    for r in await conn.fetch(
        "SELECT subject_id, kind, starts_at, ended_at FROM watch_periods"
        " WHERE subject_id = ANY($1::text[])",
        sorted(subjects),
    ):
        period = WatchPeriod(r["subject_id"], r["kind"], r["starts_at"], r["ended_at"])
        watch.setdefault(period.subject_id, []).append(period)
    areas = [
        RiskArea(
            r["id"],
            r["name"],
            r["level"],
            tuple(r["region_codes"]),
            r["valid_from"],
            r["valid_to"],
            r["lifted_on"],
        )
        for r in await conn.fetch(
            "SELECT id, name, level, region_codes, valid_from, valid_to, lifted_on FROM risk_areas"
        )
    ]
    shifts: list[Shift] = []
    if caller.needs_shift and cmds:
        times = [c.occurred_at for c in cmds]
        shifts = await shifts_of(conn, caller.sub, gate_ids, min(times), max(times))
    nodes = sorted({g.node_id for g in gates.values()})
    return Views(
        gates,
        await policy_periods(conn, gate_ids),
        residents,
        vehicles,
        watch,
        areas,
        shifts,
        await _covered(conn, nodes, caller.scope),
        await _histories(conn, sorted({c.crossing_id for c in cmds})),
    )


async def _covered(conn: Any, node_ids: list[str], scope: tuple[str, ...] | None) -> set[str]:
    if scope is None:
        return set(node_ids)
    rows = await conn.fetch(
        "SELECT DISTINCT n.id FROM places n JOIN places s ON n.path <@ s.path"
        " WHERE n.id = ANY($1::text[]) AND s.id = ANY($2::text[])",
        node_ids,
        list(scope),
    )
    return {r["id"] for r in rows}


async def _histories(conn: Any, crossing_ids: list[str]) -> dict[str, list[Envelope]]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM events WHERE stream_id = ANY($1::text[])"
        " ORDER BY stream_id, version",
        [domain.crossing_stream(i) for i in crossing_ids],
    )
    out: dict[str, list[Envelope]] = {}
    for r in rows:
        out.setdefault(r["stream_id"], []).append(row_to_envelope(r))
    return out


# -- deciding --------------------------------------------------------------------------------


def recognised(cmd: RecordCrossing, views: Views, gate: Gate) -> RecordCrossing:
    """The crossing with each document's registry person id, when the views know it."""

    def known(p: GatePerson) -> GatePerson:
        found = views.residents.get(p.id_hmac)
        if not found:
            return p
        inside = [reg.person_id for reg in found if under(reg.household_path, gate.path)]
        pid = inside[0] if inside else found[0].person_id
        return GatePerson(p.document_type, p.id_hmac, p.document_masked, pid)

    return cmd.at(
        gate.node_id,
        known(cmd.person) if cmd.person is not None else None,
        tuple(known(p) for p in cmd.passengers) if cmd.passengers else (),
    )


def gate_check(cmd: RecordCrossing, views: Views, gate: Gate, day: Any) -> GateCheck:
    travellers = []
    for p in cmd.people:
        subjects = [f"{domain.HMAC_PREFIX}{p.id_hmac}"] + ([p.subject_id] if p.subject_id else [])
        periods = [w for s in subjects for w in views.watch.get(s, ())]
        state = watch_state(periods, subjects, cmd.occurred_at) if periods else UNWATCHED
        residencies = tuple(
            reg.residency
            for reg in views.residents.get(p.id_hmac, ())
            if under(reg.household_path, gate.path)
        )
        travellers.append(Traveller(p.subject, residencies, state.quarantined, state.observed))
    origin = divisions.locate(cmd.origin_region_code, cmd.origin)
    registered = cmd.plate is not None and any(
        under(path, gate.path) for path in views.vehicles.get(cmd.plate, [])
    )
    return GateCheck(
        direction=cmd.direction,
        travellers=tuple(travellers),
        vehicle=cmd.kind == "vehicle",
        vehicle_registered=registered,
        temperature=cmd.temperature,
        health_code=cmd.health_code,
        test_report_at=cmd.test_report_at,
        occurred_at=cmd.occurred_at,
        from_risk_area=from_risk_area(views.risk_areas, origin, day),
        origin_unresolved=origin_unresolved(views.risk_areas, origin, day),
    )


@dataclass(frozen=True)
class Clock:
    now: datetime
    clock_skew: timedelta
    live_window: timedelta
    zone: Any


def _decide_item(
    index: int,
    cmd: RecordCrossing,
    views: Views,
    states: dict[str, Crossing | None],
    caller: Caller,
    clock: Clock,
) -> tuple[ItemOutcome, list[Any]]:
    """The item's outcome and the payloads to append (none unless created)."""
    gate = views.gates.get(cmd.checkpoint_id)
    if gate is None:
        exc = DomainError(
            "unknown-checkpoint",
            f"checkpoint {cmd.checkpoint_id} does not exist",
            field="checkpoint_id",
        )
        return refused(index, cmd.crossing_id, exc), []
    if gate.node_id not in views.in_scope:
        reason = f"checkpoint {gate.id} is outside your jurisdiction"
        return forbidden(index, cmd.crossing_id, "out-of-scope", "checkpoint_id", reason), []
    if caller.needs_shift and not on_duty(views.shifts, caller.sub, gate.id, cmd.occurred_at):
        reason = f"{caller.sub} holds no shift at checkpoint {gate.id} at {cmd.occurred_at}"
        return forbidden(index, cmd.crossing_id, "no-shift", "checkpoint_id", reason), []
    state = states.get(cmd.crossing_id)
    try:
        if state is not None:
            domain.check_retry(state, cmd)
            return _outcome(index, "unchanged", state), []
        domain.check_crossing(cmd, clock.now, clock.clock_skew)
        if gate.closed_at is not None and cmd.occurred_at >= gate.closed_at:
            raise DomainError(
                "checkpoint-closed",
                f"checkpoint {gate.id} closed at {gate.closed_at.isoformat()}",
                refusal=Refusal.CONFLICT,
                field="occurred_at",
            )
        policy = policy_at(views.periods.get(gate.id, []), cmd.occurred_at)
        if policy is None:
            raise DomainError(
                "before-opening",
                f"checkpoint {gate.id} opened at {gate.opened_at.isoformat()}",
                field="occurred_at",
            )
    except DomainError as exc:
        return refused(index, cmd.crossing_id, exc), []
    cmd = recognised(cmd, views, gate)
    day = cmd.occurred_at.astimezone(clock.zone).date()
    judgement = judge(policy, gate_check(cmd, views, gate, day))
    payloads = domain.decide_record(
        cmd, judgement, views_as_of(cmd.occurred_at, clock.now, clock.live_window)
    )
    final: Crossing | None = None
    for version, payload in enumerate(payloads, start=1):
        final = domain.evolve(final, payload, version)
    assert final is not None
    states[cmd.crossing_id] = final
    return _outcome(index, "created", final), [(cmd, payloads)]


def _outcome(
    index: int, status: Literal["created", "unchanged", "error"], c: Crossing
) -> ItemOutcome:
    return ItemOutcome(
        index, c.id, status, c.decision, c.reasons, c.views_as_of, c.breaches, c.version
    )


async def _commit_chunk(
    conn: Any,
    chunk: Sequence[tuple[int, RecordCrossing]],
    caller: Caller,
    ctx: CommandContext,
    clock: Clock,
) -> list[ItemOutcome]:
    async with conn.transaction():
        views = await _read_views(conn, [c for _, c in chunk], caller)
        states = {
            cid[len("crossing:") :]: CROSSING.fold(history)
            for cid, history in views.histories.items()
        }
        results: list[ItemOutcome] = []
        pending: list[PendingEvent] = []
        for index, cmd in chunk:
            outcome, decided = _decide_item(index, cmd, views, states, caller, clock)
            results.append(outcome)
            for recorded_cmd, payloads in decided:
                stream_id = domain.crossing_stream(recorded_cmd.crossing_id)
                pending.extend(
                    PendingEvent(
                        stream_id,
                        domain.CROSSING_STREAM,
                        version,
                        payload,
                        recorded_cmd.occurred_at,
                        recorded_cmd.node_id,
                    )
                    for version, payload in enumerate(payloads, start=1)
                )
        if pending:
            stored = await append(conn, pending, ctx)
            await project_crossings(conn, stored, str(clock.zone))
    return results


async def record_crossings(
    pool: Any,
    items: Sequence[tuple[int, RecordCrossing]],
    caller: Caller,
    ctx: CommandContext,
    clock: Clock,
    chunk_size: int,
) -> list[ItemOutcome]:
    """Decide and store crossings, one short transaction per chunk; an outcome per item.
    Idempotent by the crossings' own ids (the command id is not used)."""
    ctx = ctx.unkeyed()
    results: list[ItemOutcome] = []
    async with pool.acquire() as conn:
        for start in range(0, len(items), chunk_size):
            chunk = items[start : start + chunk_size]
            try:
                results.extend(await _commit_chunk(conn, chunk, caller, ctx, clock))
            except ConcurrencyError:
                # another upload recorded some of these crossings meanwhile: decide again, once
                results.extend(await _commit_chunk(conn, chunk, caller, ctx, clock))
    return results


# -- the ledger ------------------------------------------------------------------------------


LEDGER_COPY_COLUMNS = (
    "id",
    "checkpoint_id",
    "node_id",
    "kind",
    "direction",
    "occurred_at",
    "day",
    "recorded_at",
    "id_hmac",
    "document_type",
    "document_masked",
    "subject_id",
    "plate",
    "temperature",
    "health_code",
    "test_report_at",
    "origin",
    "origin_region_code",
    "decision",
    "reasons",
    "views_as_of",
    "breaches",
    "recorded_by",
    "version",
)


async def project_crossings(conn: Any, events: list[Envelope], zone: str) -> None:
    """The ledger rows of newly recorded crossings, by one binary COPY (the day of each in
    the system zone, its breaches and the stream's last version). `passengers` (jsonb, whose
    codec is text-only) keeps its default `[]` there; vehicles' lists follow in one UPDATE."""
    recorded = [e for e in events if e.type == "CrossingRecorded"]
    if not recorded:
        return
    breaches: dict[str, list[str]] = {}
    last: dict[str, int] = {}
    for e in events:
        last[e.stream_id] = max(e.version, last.get(e.stream_id, 0))
        if e.type == "QuarantineBreachAttempted":
            breaches.setdefault(e.data["crossing_id"], []).append(e.data["subject_id"])
    tz = ZoneInfo(zone)
    rows = []
    for e in recorded:
        x = e.data
        rows.append(
            (
                x["crossing_id"],
                x["checkpoint_id"],
                x["node_id"],
                x["kind"],
                x["direction"],
                e.occurred_at,
                e.occurred_at.astimezone(tz).date(),
                e.recorded_at,
                x["id_hmac"],
                x["document_type"],
                x["document_masked"],
                x["subject_id"],
                x["plate"],
                x["temperature"],
                x["health_code"],
                _time(x["test_report_at"]),
                x["origin"],
                x["origin_region_code"],
                x["decision"],
                x["reasons"],
                _time(x["views_as_of"]),
                breaches.get(x["crossing_id"], []),
                x["recorded_by"],
                last[e.stream_id],
            )
        )
    await conn.copy_records_to_table("crossings", records=rows, columns=LEDGER_COPY_COLUMNS)
    carried = [(e.data["crossing_id"], e.data["passengers"]) for e in recorded]
    carried = [(cid, people) for cid, people in carried if people]
    if carried:
        await conn.execute(
            "UPDATE crossings SET passengers = u.p::jsonb"
            " FROM unnest($1::text[], $2::text[]) AS u(id, p) WHERE crossings.id = u.id",
            [cid for cid, _ in carried],
            [orjson.dumps(people).decode() for _, people in carried],
        )


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


LEDGER_COLUMNS = (
    "id, checkpoint_id, node_id, kind, direction, occurred_at, day, recorded_at, document_type,"
    " document_masked, subject_id, plate, passengers, temperature, health_code, test_report_at,"
    " origin, origin_region_code, decision, reasons, views_as_of, breaches, recorded_by, version"
)


async def get_crossing(conn: Any, crossing_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {LEDGER_COLUMNS} FROM crossings WHERE id = $1", crossing_id)
    return dict(row) if row else None


async def ledger(
    conn: Any,
    checkpoint_id: str,
    day: Any,
    limit: int | None,
    after: tuple[datetime, str] | None,
) -> list[dict[str, Any]]:
    """A gate's crossings of a day in time order; `after` is the last (occurred_at, id) seen."""
    rows = await conn.fetch(
        f"SELECT {LEDGER_COLUMNS} FROM crossings WHERE checkpoint_id = $1 AND day = $2"
        " AND ($3::timestamptz IS NULL OR (occurred_at, id) > ($3, $4))"
        " ORDER BY occurred_at, id LIMIT $5",
        checkpoint_id,
        day,
        after[0] if after else None,
        after[1] if after else "",
        limit,
    )
    return [dict(r) for r in rows]
