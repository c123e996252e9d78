"""Risk areas, inquiries, key persons, tests and vaccination.

Query tables kept current in each command's transaction (the events stay the truth):
`risk_areas`; `key_person_rules` (one row, absent until the rules are first changed: the
defaults apply); `inquiries` (the answers, the local day, the reasons the rules matched and
the reasons newly flagged); `key_persons` (current state per subject: flagged or cleared, the
reasons held since the last clear, the node of the flag, masked values only); `test_rounds`;
`samples` (with the result); `doses`.

Revision ID: 0004
"""

from alembic import op

from shared.kernel_schema import statements

revision = "0004"
down_revision = "0003"

DDL = """
CREATE TABLE IF NOT EXISTS risk_areas (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    level         text NOT NULL,
    region_codes  text[] NOT NULL,
    valid_from    date NOT NULL,
    valid_to      date,
    lifted_on     date,
    lift_reason   text,
    declared_at   timestamptz NOT NULL,
    version       integer NOT NULL
);

CREATE TABLE IF NOT EXISTS key_person_rules (
    id               text PRIMARY KEY,
    fever_threshold  double precision NOT NULL,
    look_back_days   integer NOT NULL,
    changed_at       timestamptz NOT NULL,
    changed_by       text,
    version          integer NOT NULL
);

CREATE TABLE IF NOT EXISTS inquiries (
    id               text PRIMARY KEY,
    subject_id       text NOT NULL,
    household_id     text,
    travel           jsonb NOT NULL,
    close_contact    boolean NOT NULL,
    symptoms         text[] NOT NULL DEFAULT '{}',
    temperature      double precision,
    inquirer         text NOT NULL,
    occurred_at      timestamptz NOT NULL,
    day              date NOT NULL,
    matched_reasons  text[] NOT NULL DEFAULT '{}',
    new_reasons      text[] NOT NULL DEFAULT '{}',
    version          integer NOT NULL
);
CREATE INDEX IF NOT EXISTS inquiries_subject_idx ON inquiries (subject_id, occurred_at DESC);

CREATE TABLE IF NOT EXISTS key_persons (
    subject_id        text PRIMARY KEY,
    node_id           text,
    status            text NOT NULL,
    reasons           text[] NOT NULL DEFAULT '{}',
    flagged_since     timestamptz NOT NULL,
    last_flagged_at   timestamptz NOT NULL,
    cleared_at        timestamptz,
    clear_reason      text,
    id_hmac           text,
    document_masked   text,
    name_masked       text,
    version           integer NOT NULL
);
CREATE INDEX IF NOT EXISTS key_persons_node_idx ON key_persons (node_id);
CREATE INDEX IF NOT EXISTS key_persons_hmac_idx ON key_persons (id_hmac)
    WHERE id_hmac IS NOT NULL;

CREATE TABLE IF NOT EXISTS test_rounds (
    id         text PRIMARY KEY,
    node_id    text NOT NULL,
    number     integer NOT NULL,
    starts_on  date NOT NULL,
    ends_on    date NOT NULL,
    version    integer NOT NULL,
    CONSTRAINT test_rounds_number_key UNIQUE (node_id, number)
);

CREATE TABLE IF NOT EXISTS samples (
    id            text PRIMARY KEY,
    subject_id    text NOT NULL,
    round_id      text,
    collected_by  text NOT NULL,
    collected_at  timestamptz NOT NULL,
    day           date NOT NULL,
    result        text,
    resulted_at   timestamptz,
    version       integer NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_round_idx ON samples (round_id, subject_id)
    WHERE round_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS samples_subject_idx ON samples (subject_id);

CREATE TABLE IF NOT EXISTS doses (
    id           text PRIMARY KEY,
    subject_id   text NOT NULL,
    dose_number  integer NOT NULL,
    vaccine      text NOT NULL,
    given_by     text NOT NULL,
    given_at     timestamptz NOT NULL,
    CONSTRAINT doses_number_key UNIQUE (subject_id, dose_number)
);
"""


def upgrade() -> None:
    for sql in statements(DDL):
        op.execute(sql)


def downgrade() -> None:
    for table in (
        "doses",
        "samples",
        "test_rounds",
        "key_persons",
        "inquiries",
        "key_person_rules",
        "risk_areas",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
