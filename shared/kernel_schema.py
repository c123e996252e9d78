"""DDL of the tables every service's kernel uses, applied by each service's first migration.

* `events` is the event store and the outbox: `UNIQUE(stream_id, version)` gives optimistic
  concurrency, `UNIQUE(command_id, command_seq)` (over the rows that have a command id) makes
  a retried command append nothing, and `tx_id` (the appending transaction's xid8) lets the
  relay publish only what no running transaction can still precede. Every index costs each
  appended row: `event_id` has none (the store draws it at random, version 4, and nothing looks
  an event up by it; consumers dedupe by (stream_id, version)).
* `relay_checkpoints` is how far the relay has published, as a (tx_id, position) pair.
* `relay_leases` fences the relay: one holder per store at a time, with an epoch that every
  checkpoint advance checks (shared/relay.py).
* `consumer_offsets`, `consumer_streams` and `dead_letters` belong to the consumer base:
  offsets and per-stream versions are written in the same transaction as the read model.
  `consumer_streams.held_from` is the first version of a stream the consumer parked: later
  versions park behind it until it is re-driven (`dead_letter_retries` audits who asked).
* `rebuild_runs` keeps each read-model rebuild's status where every replica can read it.
* `idempotency_keys` holds each `Idempotency-Key` a caller used on a route, with a keyed
  fingerprint of its request (shared/idempotency.py); requests not answered by one command
  (batches, uploads, operations) keep their first answer there too.
"""

from __future__ import annotations

from typing import Any

# Leases, parked streams, re-drive audit and rebuild status. Written to apply to a schema made
# from the first kernel (migration `self_healing`) as well as to a fresh one.
SELF_HEALING_DDL = """
CREATE TABLE IF NOT EXISTS relay_leases (
    relay        text PRIMARY KEY,
    holder       text NOT NULL,
    epoch        bigint NOT NULL,
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    renewed_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

ALTER TABLE consumer_streams ADD COLUMN IF NOT EXISTS held_from integer;
CREATE INDEX IF NOT EXISTS consumer_streams_held_idx ON consumer_streams (consumer)
    WHERE held_from IS NOT NULL;

ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS reason text NOT NULL DEFAULT 'failed';
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS resolved_at timestamptz;
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS retry_requested_at timestamptz;
CREATE INDEX IF NOT EXISTS dead_letters_open_idx ON dead_letters (consumer, stream_id, version)
    WHERE resolved_at IS NULL;

CREATE TABLE IF NOT EXISTS dead_letter_retries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dead_letter_id  bigint NOT NULL,
    consumer        text NOT NULL,
    requested_by    text NOT NULL,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    reason          text NOT NULL,
    finished_at     timestamptz,
    outcome         text
);

CREATE TABLE IF NOT EXISTS rebuild_runs (
    id          text PRIMARY KEY,
    status      jsonb NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
"""

# Written to apply to a schema made from an earlier kernel (migration `idempotency_keys`) as
# well as to a fresh one.
IDEMPOTENCY_DDL = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    caller        text NOT NULL,
    method        text NOT NULL,
    route         text NOT NULL,
    key           text NOT NULL,
    fingerprint   bytea NOT NULL,
    status        integer,
    headers       jsonb,
    body          bytea,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, method, route, key)
);
"""

KERNEL_DDL = (
    """
CREATE TABLE IF NOT EXISTS events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid NOT NULL,
    stream_id       text NOT NULL,
    stream_type     text NOT NULL,
    version         integer NOT NULL CHECK (version >= 1),
    type            text NOT NULL,
    schema_version  integer NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    node_id         text,
    actor           text,
    correlation_id  uuid,
    causation_id    uuid,
    command_id      text,
    command_seq     integer,
    data            jsonb NOT NULL,
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS events_command_key ON events (command_id, command_seq)
    WHERE command_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_tx_position_idx ON events (tx_id, position);

CREATE TABLE IF NOT EXISTS relay_checkpoints (
    relay       text PRIMARY KEY,
    tx_id       xid8 NOT NULL DEFAULT '0',
    position    bigint NOT NULL DEFAULT 0,
    published   bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS consumer_offsets (
    consumer     text NOT NULL,
    topic        text NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);

CREATE TABLE IF NOT EXISTS consumer_streams (
    consumer   text NOT NULL,
    stream_id  text NOT NULL,
    version    integer NOT NULL,
    PRIMARY KEY (consumer, stream_id)
);

CREATE TABLE IF NOT EXISTS dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    "offset"    bigint NOT NULL,
    stream_id   text,
    version     integer,
    event_type  text,
    error       text NOT NULL,
    payload     text NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (consumer, topic, partition, "offset")
);
"""
    + SELF_HEALING_DDL
    + IDEMPOTENCY_DDL
)

KERNEL_DROP = """
DROP TABLE IF EXISTS idempotency_keys, rebuild_runs, dead_letter_retries, relay_leases,
    dead_letters, consumer_streams, consumer_offsets, relay_checkpoints, events;
"""


# From the first kernel (a UNIQUE event_id, a command key over every row) to the one above.
LEAN_EVENT_INDEXES = """
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_event_id_key;
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_command_key;
CREATE UNIQUE INDEX IF NOT EXISTS events_command_key ON events (command_id, command_seq)
    WHERE command_id IS NOT NULL
"""
FIRST_EVENT_INDEXES = """
DROP INDEX IF EXISTS events_command_key;
ALTER TABLE events ADD CONSTRAINT events_command_key UNIQUE (command_id, command_seq);
ALTER TABLE events ADD CONSTRAINT events_event_id_key UNIQUE (event_id)
"""


def self_healing(op: Any) -> None:
    """A migration's upgrade to the self-healing kernel (a no-op on a schema that has it)."""
    for sql in statements(SELF_HEALING_DDL):
        op.execute(sql)


def self_healing_down(op: Any) -> None:
    for table in ("rebuild_runs", "dead_letter_retries", "relay_leases"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP INDEX IF EXISTS consumer_streams_held_idx")
    op.execute("ALTER TABLE consumer_streams DROP COLUMN IF EXISTS held_from")
    op.execute("DROP INDEX IF EXISTS dead_letters_open_idx")
    for column in ("reason", "resolved_at", "retry_requested_at"):
        op.execute(f"ALTER TABLE dead_letters DROP COLUMN IF EXISTS {column}")


def idempotency_keys(op: Any) -> None:
    """A migration's upgrade to the kernel with idempotency keys (a no-op where it exists)."""
    for sql in statements(IDEMPOTENCY_DDL):
        op.execute(sql)


def idempotency_keys_down(op: Any) -> None:
    op.execute("DROP TABLE IF EXISTS idempotency_keys")


def statements(ddl: str = KERNEL_DDL) -> list[str]:
    """One statement per item, for drivers that prepare each statement."""
    return [s.strip() for s in ddl.split(";") if s.strip()]


def create(op: Any, *ddl: str) -> None:
    """Run the kernel DDL and a service's own DDL in an Alembic migration."""
    for sql in statements(KERNEL_DDL) + [s for d in ddl for s in statements(d)]:
        op.execute(sql)


def lean_event_indexes(op: Any) -> None:
    """A migration's upgrade to the event indexes above (a no-op on a schema that has them)."""
    for sql in statements(LEAN_EVENT_INDEXES):
        op.execute(sql)


def first_event_indexes(op: Any) -> None:
    for sql in statements(FIRST_EVENT_INDEXES):
        op.execute(sql)


def drop(op: Any, *tables: str) -> None:
    for table in tables:
        op.execute(f"DROP TABLE IF EXISTS {table}")
    for sql in statements(KERNEL_DROP):
        op.execute(sql)
