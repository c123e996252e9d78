"""Campaigns, household visits, audits and daily reports.

Query tables kept current in each command's transaction (the events stay the truth):
`campaigns`; `visits` (one row per visit with its household, campaign, outcome, commitment,
field time and local day, voided flag, latest audit verdict); `audits`; `daily_reports`
(the latest revision per node and day, with whether the first one was late) and
`daily_report_revisions` (every revision, so a report id names one revision for good).

Revision ID: 0003
"""

from alembic import op

from shared.kernel_schema import statements

revision = "0003"
down_revision = "0002"

DDL = """
CREATE TABLE IF NOT EXISTS campaigns (
    id          text PRIMARY KEY,
    node_id     text NOT NULL,
    name        text NOT NULL,
    starts_on   date NOT NULL,
    due_on      date NOT NULL,
    goal        text,
    started_by  text,
    started_at  timestamptz NOT NULL,
    version     integer NOT NULL
);
CREATE INDEX IF NOT EXISTS campaigns_node_idx ON campaigns (node_id);

CREATE TABLE IF NOT EXISTS visits (
    id                 text PRIMARY KEY,
    household_id       text NOT NULL,
    campaign_id        text,
    method             text NOT NULL,
    outcome            text NOT NULL,
    steps              text[] NOT NULL DEFAULT '{}',
    commitment_signed  boolean NOT NULL,
    visitor            text NOT NULL,
    notes              text,
    occurred_at        timestamptz NOT NULL,
    day                date NOT NULL,
    recorded_at        timestamptz NOT NULL,
    voided             boolean NOT NULL DEFAULT false,
    void_reason        text,
    audit_verdict      text,
    version            integer NOT NULL
);
CREATE INDEX IF NOT EXISTS visits_household_idx ON visits (household_id, occurred_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS visits_campaign_idx ON visits (campaign_id)
    WHERE campaign_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS audits (
    id             text PRIMARY KEY,
    visit_id       text NOT NULL,
    household_id   text NOT NULL,
    verdict        text NOT NULL,
    discrepancies  text,
    auditor        text NOT NULL,
    audited_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS audits_visit_idx ON audits (visit_id);

CREATE TABLE IF NOT EXISTS daily_report_revisions (
    report_id     text PRIMARY KEY,
    node_id       text NOT NULL,
    day           date NOT NULL,
    revision      integer NOT NULL,
    zero          boolean NOT NULL,
    figures       jsonb NOT NULL,
    late          boolean NOT NULL,
    submitted_by  text NOT NULL,
    submitted_at  timestamptz NOT NULL,
    UNIQUE (node_id, day, revision)
);

CREATE TABLE IF NOT EXISTS daily_reports (
    node_id             text NOT NULL,
    day                 date NOT NULL,
    report_id           text NOT NULL,
    revision            integer NOT NULL,
    zero                boolean NOT NULL,
    figures             jsonb NOT NULL,
    late                boolean NOT NULL,
    first_late          boolean NOT NULL,
    submitted_by        text NOT NULL,
    submitted_at        timestamptz NOT NULL,
    first_submitted_at  timestamptz NOT NULL,
    PRIMARY KEY (node_id, day)
);
CREATE INDEX IF NOT EXISTS daily_reports_day_idx ON daily_reports (day);
"""


def upgrade() -> None:
    for sql in statements(DDL):
        op.execute(sql)


def downgrade() -> None:
    for table in ("daily_reports", "daily_report_revisions", "audits", "visits", "campaigns"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
