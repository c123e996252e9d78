"""Chain views, blind spots, daily-report completeness, ledgers.

Revision ID: 0003
"""

from alembic import op

from shared.kernel_schema import statements

revision = "0003"
down_revision = "0002"

TABLES = (
    "ledger_persons",
    "ledger_key_persons",
    "ledger_visits",
    "ledger_checkpoints",
    "ledger_crossings",
    "report_days",
    "chain_templates",
    "chain_instances",
    "chain_assignments",
    "chain_key_persons",
)

# ledgers (重点人员台账, 排查统计表, 卡口登记表, masked values only); daily reports (日报告,
# 零报告: the latest revision per node and day); responsibility chains (包保)
DDL = """
CREATE TABLE IF NOT EXISTS ledger_persons (
    person_id        text PRIMARY KEY,
    household_id     text NOT NULL,
    name_masked      text NOT NULL,
    document_masked  text NOT NULL,
    phone_masked     text,
    residency        text NOT NULL,
    voided           boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS ledger_key_persons (
    subject_id       text PRIMARY KEY,
    node_id          text,
    reasons          text[] NOT NULL,
    source           text NOT NULL,
    name_masked      text,
    document_masked  text,
    flagged_at       timestamptz NOT NULL,
    cleared_at       timestamptz,
    cleared_reason   text
);
CREATE TABLE IF NOT EXISTS ledger_visits (
    visit_id      text PRIMARY KEY,
    household_id  text NOT NULL,
    method        text NOT NULL,
    outcome       text NOT NULL,
    screened      boolean NOT NULL,
    occurred_at   timestamptz NOT NULL,
    voided        boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS ledger_visits_household_idx ON ledger_visits (household_id);
CREATE TABLE IF NOT EXISTS ledger_checkpoints (
    checkpoint_id  text PRIMARY KEY,
    node_id        text NOT NULL,
    name           text NOT NULL,
    level          text NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_crossings (
    crossing_id      text PRIMARY KEY,
    checkpoint_id    text NOT NULL,
    node_id          text NOT NULL,
    kind             text NOT NULL,
    direction        text NOT NULL,
    document_masked  text,
    plate            text,
    passengers       integer NOT NULL,
    temperature      double precision,
    health_code      text,
    origin           text,
    decision         text NOT NULL,
    reasons          text[] NOT NULL,
    occurred_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_crossings_time_idx ON ledger_crossings (occurred_at);

CREATE TABLE IF NOT EXISTS report_days (
    node_id       text NOT NULL,
    day           date NOT NULL,
    revision      integer NOT NULL,
    zero          boolean NOT NULL,
    figures       jsonb NOT NULL,
    first_late    boolean NOT NULL,
    first_revision integer NOT NULL,
    submitted_at  timestamptz NOT NULL,
    PRIMARY KEY (node_id, day)
);

CREATE TABLE IF NOT EXISTS chain_templates (
    template_id  text PRIMARY KEY,
    name         text NOT NULL,
    tiers        jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS chain_instances (
    instance_id   text PRIMARY KEY,
    template_id   text NOT NULL,
    root_node_id  text NOT NULL,
    valid_from    date NOT NULL,
    valid_to      date
);
CREATE TABLE IF NOT EXISTS chain_assignments (
    assignment_id  text PRIMARY KEY,
    instance_id    text NOT NULL,
    level          integer NOT NULL,
    party_id       text NOT NULL,
    target_type    text NOT NULL,
    target_id      text NOT NULL,
    valid_from     date NOT NULL,
    valid_to       date
);
CREATE INDEX IF NOT EXISTS chain_assignments_target_idx
    ON chain_assignments (instance_id, level, target_id);
CREATE TABLE IF NOT EXISTS chain_key_persons (
    subject_id   text PRIMARY KEY,
    node_id      text,
    name_masked  text,
    flagged_at   timestamptz NOT NULL,
    cleared_at   timestamptz
);
"""


def upgrade() -> None:
    for sql in statements(DDL):
        op.execute(sql)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS " + ", ".join(TABLES))
