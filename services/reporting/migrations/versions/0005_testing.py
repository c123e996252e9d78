"""Mass testing per round and node, vaccination per node and day.

Revision ID: 0005

`round_figures` holds, per (round, node), the persons due / sampled / resulted / positive
under the node; `vaccination_node_days` the day deltas of `persons` and `dose.<n>` stocks
under the node (the stock at the end of day D is the sum over days <= D). Both are kept for
every node and its ancestors, so reads are key lookups. `round_persons` (one row per person
due, where they count) and `vaccination_contributions` are what each person contributes;
the `testing_*` tables are the `testing` consumer's own facts (see
services/reporting/projections_testing.py).
"""

from alembic import op

from shared.kernel_schema import statements

revision = "0005"
down_revision = "0004"

TABLES = (
    "testing_places",
    "testing_households",
    "testing_persons",
    "testing_residences",
    "testing_rounds",
    "testing_samples",
    "vaccination_doses",
    "round_persons",
    "round_figures",
    "vaccination_contributions",
    "vaccination_node_days",
)

DDL = """
CREATE TABLE IF NOT EXISTS testing_places (
    id        text PRIMARY KEY,
    parent_id text,
    path      ltree NOT NULL
);
CREATE INDEX IF NOT EXISTS testing_places_path_gist ON testing_places USING gist (path);
CREATE TABLE IF NOT EXISTS testing_households (
    id           text PRIMARY KEY,
    door_number  text,
    address      text
);
CREATE TABLE IF NOT EXISTS testing_persons (
    id               text PRIMARY KEY,
    name_masked      text NOT NULL,
    document_masked  text NOT NULL,
    voided           boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS testing_residences (
    person_id     text NOT NULL,
    version       integer NOT NULL,
    household_id  text NOT NULL,
    since         timestamptz NOT NULL,
    PRIMARY KEY (person_id, version)
);
CREATE INDEX IF NOT EXISTS testing_residences_household_idx
    ON testing_residences (household_id);
CREATE TABLE IF NOT EXISTS testing_rounds (
    round_id   text PRIMARY KEY,
    node_id    text NOT NULL,
    number     integer NOT NULL,
    starts_on  date NOT NULL,
    ends_on    date NOT NULL
);
CREATE INDEX IF NOT EXISTS testing_rounds_node_idx ON testing_rounds (node_id);
CREATE TABLE IF NOT EXISTS testing_samples (
    sample_id     text PRIMARY KEY,
    round_id      text NOT NULL,
    person_id     text NOT NULL,
    collected_at  timestamptz NOT NULL,
    result        text
);
CREATE INDEX IF NOT EXISTS testing_samples_person_idx ON testing_samples (person_id);
CREATE INDEX IF NOT EXISTS testing_samples_round_idx ON testing_samples (round_id);
CREATE TABLE IF NOT EXISTS vaccination_doses (
    dose_id      text PRIMARY KEY,
    person_id    text NOT NULL,
    dose_number  integer NOT NULL,
    day          date NOT NULL
);
CREATE INDEX IF NOT EXISTS vaccination_doses_person_idx ON vaccination_doses (person_id);

CREATE TABLE IF NOT EXISTS round_persons (
    round_id      text NOT NULL,
    person_id     text NOT NULL,
    household_id  text NOT NULL,
    sampled       boolean NOT NULL,
    resulted      boolean NOT NULL,
    positive      boolean NOT NULL,
    PRIMARY KEY (round_id, person_id)
);
CREATE INDEX IF NOT EXISTS round_persons_person_idx ON round_persons (person_id);
CREATE INDEX IF NOT EXISTS round_persons_unsampled_idx
    ON round_persons (round_id, household_id, person_id) WHERE NOT sampled;
CREATE TABLE IF NOT EXISTS round_figures (
    round_id  text NOT NULL,
    node_id   text NOT NULL,
    due       bigint NOT NULL,
    sampled   bigint NOT NULL,
    resulted  bigint NOT NULL,
    positive  bigint NOT NULL,
    PRIMARY KEY (round_id, node_id)
);
CREATE INDEX IF NOT EXISTS round_figures_node_idx ON round_figures (node_id);
CREATE TABLE IF NOT EXISTS vaccination_contributions (
    person_id  text NOT NULL,
    node_id    text NOT NULL,
    day        date NOT NULL,
    metric     text NOT NULL,
    value      bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS vaccination_contributions_person_idx
    ON vaccination_contributions (person_id);
CREATE TABLE IF NOT EXISTS vaccination_node_days (
    node_id  text NOT NULL,
    day      date NOT NULL,
    metric   text NOT NULL,
    value    bigint NOT NULL,
    PRIMARY KEY (node_id, day, metric)
);
"""


def upgrade() -> None:
    for sql in statements(DDL):
        op.execute(sql)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS " + ", ".join(TABLES))
