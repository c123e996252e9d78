"""Checkpoints, policies, duty shifts, the crossing ledger, and views of screening's watch
states and risk areas.

Query tables kept current in each command's transaction (the events stay the truth):
`checkpoints` (the gate, its current policy, when it opened and closed); `checkpoint_policies`
(every policy with the moment it takes effect, the opening one from the opening);
`duty_shifts`; `crossings` (the ledger, one row per crossing with its local day).

Views fed by `screening.events` (the `screening-views` consumer): `risk_areas` (with their
days of validity) and `watch_periods` (home observation or quarantine of a subject, from its
start to its end, so that a late crossing is judged as of its own time).

Revision ID: 0003
"""

from alembic import op

from shared.kernel_schema import statements

revision = "0003"
down_revision = "0002"

DDL = """
CREATE TABLE IF NOT EXISTS checkpoints (
    id            text PRIMARY KEY,
    node_id       text NOT NULL,
    name          text NOT NULL,
    level         text NOT NULL,
    policy        jsonb NOT NULL,
    opened_at     timestamptz NOT NULL,
    opened_by     text,
    closed_at     timestamptz,
    close_reason  text,
    version       integer NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_node_idx ON checkpoints (node_id);

CREATE TABLE IF NOT EXISTS checkpoint_policies (
    checkpoint_id   text NOT NULL,
    version         integer NOT NULL,
    effective_from  timestamptz NOT NULL,
    policy          jsonb NOT NULL,
    changed_by      text,
    PRIMARY KEY (checkpoint_id, version)
);

CREATE TABLE IF NOT EXISTS duty_shifts (
    id             text PRIMARY KEY,
    checkpoint_id  text NOT NULL,
    sub            text NOT NULL,
    party_id       text,
    role           text NOT NULL,
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    cancelled      boolean NOT NULL DEFAULT false,
    cancel_reason  text,
    version        integer NOT NULL
);
CREATE INDEX IF NOT EXISTS duty_shifts_checkpoint_idx ON duty_shifts (checkpoint_id, starts_at);
CREATE INDEX IF NOT EXISTS duty_shifts_sub_idx ON duty_shifts (sub, starts_at);

CREATE TABLE IF NOT EXISTS crossings (
    id                  text PRIMARY KEY,
    checkpoint_id       text NOT NULL,
    node_id             text NOT NULL,
    kind                text NOT NULL,
    direction           text NOT NULL,
    occurred_at         timestamptz NOT NULL,
    day                 date NOT NULL,
    recorded_at         timestamptz NOT NULL,
    id_hmac             text,
    document_type       text,
    document_masked     text,
    subject_id          text,
    plate               text,
    passengers          jsonb NOT NULL DEFAULT '[]',
    temperature         double precision,
    health_code         text,
    test_report_at      timestamptz,
    origin              text,
    origin_region_code  text,
    decision            text NOT NULL,
    reasons             text[] NOT NULL DEFAULT '{}',
    views_as_of         timestamptz,
    breaches            text[] NOT NULL DEFAULT '{}',
    recorded_by         text NOT NULL,
    version             integer NOT NULL
);
CREATE INDEX IF NOT EXISTS crossings_ledger_idx ON crossings (checkpoint_id, day, occurred_at, id);

CREATE TABLE IF NOT EXISTS risk_areas (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    level         text NOT NULL,
    region_codes  text[] NOT NULL,
    valid_from    date NOT NULL,
    valid_to      date,
    lifted_on     date
);

CREATE TABLE IF NOT EXISTS watch_periods (
    id           text PRIMARY KEY,
    subject_id   text NOT NULL,
    kind         text NOT NULL,
    type         text,
    starts_at    timestamptz NOT NULL,
    planned_end  date,
    ended_at     timestamptz,
    end_reason   text
);
CREATE INDEX IF NOT EXISTS watch_periods_subject_idx ON watch_periods (subject_id);
"""


def upgrade() -> None:
    for sql in statements(DDL):
        op.execute(sql)


def downgrade() -> None:
    for table in (
        "watch_periods",
        "risk_areas",
        "crossings",
        "duty_shifts",
        "checkpoint_policies",
        "checkpoints",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
