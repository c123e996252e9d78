"""Running a command against an aggregate: fold, decide, append, in one short transaction.

    outcome = await execute(pool, NODE, stream_id, decide=..., ctx=..., occurred_at=...)

* A command id (client id or `Idempotency-Key`) already applied returns its stored events
  (`replayed=True`) and writes nothing. A keyed request is checked against the fingerprint
  its key was first used with (422 for another request), claims the key for its transaction
  (409 while another holds it) and stores it after the append (shared/idempotency.py).
* `expected_version` (from `If-Match`) that is not the current version raises
  `PreconditionFailed` (HTTP 412); a concurrent append raises `ConcurrencyError` (HTTP 409).
* `project` runs after the append in the same transaction, for the service's own tables.
* Each event's `node_id` is the one given, else the aggregate's place once the event has
  happened (`Aggregate.place`: a person's household, also after a move).

The stream and any earlier result of the command id are read in one query before the
transaction (under READ COMMITTED each statement sees its own snapshot anyway, and the append's
`UNIQUE(stream_id, version)` refuses anything decided on a stale fold). A command with neither
`prepare` nor `project` nor a key writes nothing but its events: its append is one statement
in a transaction of its own, so the whole command is two round trips.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from shared import idempotency
from shared.contracts import EventPayload
from shared.contracts.published import decode
from shared.envelope import Envelope
from shared.eventstore import (
    CommandContext,
    ConcurrencyError,
    DuplicateCommand,
    PendingEvent,
    append,
    load_for_command,
)

S = TypeVar("S")


class PreconditionFailed(Exception):
    def __init__(self, stream_id: str, current: int) -> None:
        super().__init__(f"{stream_id} is at version {current}")
        self.stream_id = stream_id
        self.current = current


@dataclass(frozen=True)
class Aggregate(Generic[S]):
    """An aggregate's fold: its initial state and how each event changes it."""

    stream_type: str
    initial: S
    evolve: Callable[[S, EventPayload, int], S]
    # where the aggregate is, for the envelope's `node_id` of events a command gives no place
    place: Callable[[S], str | None] | None = None

    def places(self, state: S, version: int, events: Sequence[EventPayload]) -> list[str | None]:
        """The aggregate's place after each of `events`, decided on `state` at `version`."""
        if self.place is None:
            return [None] * len(events)
        out: list[str | None] = []
        for v, event in enumerate(events, start=version + 1):
            state = self.evolve(state, event, v)
            out.append(self.place(state))
        return out

    def fold(self, history: Sequence[Envelope], state: S | None = None) -> S:
        current = self.initial if state is None else state
        for env in history:
            current = self.evolve(current, decode(env), env.version)
        return current


@dataclass(frozen=True)
class Outcome(Generic[S]):
    state: S
    version: int
    events: list[Envelope]
    replayed: bool = False


async def execute(
    pool: Any,
    aggregate: Aggregate[S],
    stream_id: str,
    *,
    decide: Callable[[S], list[EventPayload]] | None = None,
    prepare: Callable[[Any], Awaitable[Callable[[S], list[EventPayload]]]] | None = None,
    ctx: CommandContext,
    occurred_at: datetime,
    node_id: str | None = None,
    expected_version: int | None = None,
    project: Callable[[Any, list[Envelope]], Awaitable[None]] | None = None,
) -> Outcome[S]:
    key = ctx.idempotency
    async with pool.acquire() as conn:
        history, prior = await load_for_command(conn, stream_id, ctx.command_id)
        if key is not None:
            await idempotency.check(conn, key)
        if prior:
            return _replay(aggregate, stream_id, history, prior)
        version = history[-1].version if history else 0
        if expected_version is not None and expected_version != version:
            raise PreconditionFailed(stream_id, version)
        state = aggregate.fold(history)

        def pending(decision: Callable[[S], list[EventPayload]]) -> list[PendingEvent]:
            events = decision(state)
            nodes = (
                [node_id] * len(events)
                if node_id is not None
                else aggregate.places(state, version, events)
            )
            return [
                PendingEvent(stream_id, aggregate.stream_type, version + i, p, occurred_at, node)
                for i, (p, node) in enumerate(zip(events, nodes, strict=True), start=1)
            ]

        try:
            if prepare is None and project is None and key is None:
                assert decide is not None, "execute needs decide or prepare"
                stored = await append(conn, pending(decide), ctx)
            else:
                async with conn.transaction():
                    if key is not None:
                        await idempotency.claim(conn, key)
                    # `prepare` reads what the decision needs inside the transaction (and may
                    # take advisory locks: not writes, so the append stays the first write)
                    decision = await prepare(conn) if prepare is not None else decide
                    assert decision is not None, "execute needs decide or prepare"
                    stored = await append(conn, pending(decision), ctx)
                    if stored and project is not None:
                        await project(conn, stored)
                    if key is not None:
                        await idempotency.record(conn, key)
        except (DuplicateCommand, ConcurrencyError):
            # a concurrent run of this very command id won the race: answer with its result,
            # if it was this very request
            if ctx.command_id:
                history, prior = await load_for_command(conn, stream_id, ctx.command_id)
                if key is not None:
                    await idempotency.check(conn, key)
                if prior:
                    return _replay(aggregate, stream_id, history, prior)
            raise
        if not stored:
            return Outcome(state, version, [])
        return Outcome(aggregate.fold(stored, state), stored[-1].version, stored)


def _replay(
    aggregate: Aggregate[S], stream_id: str, history: list[Envelope], prior: list[Envelope]
) -> Outcome[S]:
    """The result the first run of a command produced, from what the store holds."""
    last = max((e.version for e in prior if e.stream_id == stream_id), default=0)
    return Outcome(
        aggregate.fold([e for e in history if e.version <= last]), last, prior, replayed=True
    )
