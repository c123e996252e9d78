"""Parked events: what is parked, and asking for a re-drive once the cause is fixed.

A consumer parks an event in `dead_letters` with a `reason`:

* `failed`: the handler raised on the event's data;
* `undecodable`: the record is no envelope (there is no stream to hold);
* `held`: an earlier version of its stream is parked ("held behind v<N>");
* `gap`: versions before it have not arrived ("waiting for v<N>").

A parked event holds its stream in that consumer (`consumer_streams.held_from`). A gap closes
by itself when the missing versions arrive; anything else is re-driven on request:
`request_retry` marks the dead letter and writes who asked and why to `dead_letter_retries`;
the consumer that parked it (any replica) picks the request up within about a second,
re-applies the stream's parked events from that one on, in version order, in one transaction,
and writes the outcome to the audit row. A retry that fails again keeps the event parked with
the new error.

    python -m shared.dead_letters --dsn postgresql://... --schema reporting list
    python -m shared.dead_letters --dsn ... --schema reporting retry 42 --by alice --reason "fixed"
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Reason(StrEnum):
    FAILED = "failed"
    UNDECODABLE = "undecodable"
    HELD = "held"
    GAP = "gap"


class DeadLetter(BaseModel):
    """One parked record (without its payload)."""

    id: int
    consumer: str
    topic: str
    partition: int
    offset: int
    stream_id: str | None
    version: int | None
    event_type: str | None
    reason: str = Field(description="failed, undecodable, held or gap")
    error: str
    parked_at: datetime
    resolved_at: datetime | None = None
    retry_requested_at: datetime | None = None


class RetryRequest(BaseModel):
    """One request to re-drive a dead letter, and how it ended."""

    id: int
    dead_letter_id: int
    consumer: str
    requested_by: str
    requested_at: datetime
    reason: str
    finished_at: datetime | None = None
    outcome: str | None = None


class AlreadyResolved(Exception):
    """The dead letter was applied (or superseded) already: there is nothing to retry."""

    def __init__(self, dead_letter: DeadLetter) -> None:
        super().__init__(f"dead letter {dead_letter.id} was resolved at {dead_letter.resolved_at}")
        self.dead_letter = dead_letter


COLUMNS = (
    'id, consumer, topic, partition, "offset", stream_id, version, event_type, reason, error,'
    " parked_at, resolved_at, retry_requested_at"
)
RETRY_COLUMNS = (
    "id, dead_letter_id, consumer, requested_by, requested_at, reason, finished_at, outcome"
)
MAX_LIMIT = 1000


def _dead_letter(row: Any) -> DeadLetter:
    return DeadLetter.model_validate(dict(row))


async def list_dead_letters(
    conn: Any,
    *,
    consumer: str | None = None,
    open_only: bool = True,
    after_id: int = 0,
    limit: int = 100,
) -> list[DeadLetter]:
    """Dead letters in id order after `after_id` (a keyset cursor), at most `limit`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM dead_letters"
        " WHERE id > $1 AND ($2::text IS NULL OR consumer = $2)"
        " AND (NOT $3 OR resolved_at IS NULL)"
        " ORDER BY id LIMIT $4",
        after_id,
        consumer,
        open_only,
        limit,
    )
    return [_dead_letter(r) for r in rows]


async def get_dead_letter(conn: Any, dead_letter_id: int) -> DeadLetter | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM dead_letters WHERE id = $1", dead_letter_id)
    return None if row is None else _dead_letter(row)


async def request_retry(
    conn: Any, dead_letter_id: int, *, requested_by: str, reason: str
) -> DeadLetter | None:
    """Ask the dead letter's consumer to re-drive it; None if there is no such dead letter.

    Raises AlreadyResolved if it is resolved. Asking again before the consumer got to it
    adds another audit row; the consumer finishes both.
    """
    if not requested_by.strip() or not reason.strip():
        raise ValueError("a retry needs who asks and why")
    async with conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM dead_letters WHERE id = $1 FOR UPDATE", dead_letter_id
        )
        if row is None:
            return None
        if row["resolved_at"] is not None:
            raise AlreadyResolved(_dead_letter(row))
        row = await conn.fetchrow(
            f"UPDATE dead_letters SET retry_requested_at = now() WHERE id = $1 RETURNING {COLUMNS}",
            dead_letter_id,
        )
        await conn.execute(
            "INSERT INTO dead_letter_retries (dead_letter_id, consumer, requested_by, reason)"
            " VALUES ($1, $2, $3, $4)",
            dead_letter_id,
            row["consumer"],
            requested_by,
            reason,
        )
    return _dead_letter(row)


async def list_retries(conn: Any, dead_letter_id: int) -> list[RetryRequest]:
    """The re-drive requests of one dead letter, oldest first (automatic re-drives too)."""
    rows = await conn.fetch(
        f"SELECT {RETRY_COLUMNS} FROM dead_letter_retries WHERE dead_letter_id = $1 ORDER BY id",
        dead_letter_id,
    )
    return [RetryRequest.model_validate(dict(r)) for r in rows]


async def finish_retries(conn: Any, dead_letter_ids: Sequence[int], outcome: str) -> None:
    """Close the open requests of these dead letters with `outcome`."""
    if dead_letter_ids:
        await conn.execute(
            "UPDATE dead_letter_retries SET finished_at = now(), outcome = $2"
            " WHERE dead_letter_id = ANY($1::bigint[]) AND finished_at IS NULL",
            list(dead_letter_ids),
            outcome[:4000],
        )


# -- command line ----------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared.dead_letters", description=__doc__)
    parser.add_argument("--dsn", required=True, help="PostgreSQL URL")
    parser.add_argument("--schema", required=True, help="the service's schema")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="dead letters as JSON lines")
    listing.add_argument("--consumer")
    listing.add_argument("--all", action="store_true", help="resolved ones too")
    listing.add_argument("--after", type=int, default=0, help="ids after this one")
    listing.add_argument("--limit", type=int, default=100)
    retry = commands.add_parser("retry", help="ask the consumer to re-drive a dead letter")
    retry.add_argument("id", type=int)
    retry.add_argument("--by", required=True, help="who asks")
    retry.add_argument("--reason", required=True, help="why (what was fixed)")
    return parser


async def _main(args: argparse.Namespace) -> int:
    import asyncpg

    from shared.db import check_schema_name

    conn = await asyncpg.connect(
        args.dsn, server_settings={"search_path": f"{check_schema_name(args.schema)},public"}
    )
    try:
        if args.command == "list":
            for dead in await list_dead_letters(
                conn,
                consumer=args.consumer,
                open_only=not args.all,
                after_id=args.after,
                limit=args.limit,
            ):
                print(dead.model_dump_json())
            return 0
        try:
            asked = await request_retry(conn, args.id, requested_by=args.by, reason=args.reason)
        except AlreadyResolved as exc:
            print(exc, file=sys.stderr)
            return 1
        if asked is None:
            print(f"no dead letter {args.id}", file=sys.stderr)
            return 2
        print(asked.model_dump_json())
        return 0
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(_main(_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
