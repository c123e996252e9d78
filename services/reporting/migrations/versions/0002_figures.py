"""Per-node, per-day flows and stocks for every node and its ancestors.

Revision ID: 0002

`node_day_metrics` holds, per (node, day, metric), the flows of that day and the *deltas* of
the stocks (`stock.*`) on that day, for the node and everything under it. The partial index
on (node_id, metric, day) serves "stock at the end of day D" as a range sum over one node.
The `fig_*` tables are the figures consumer's own state: its copy of the place tree (so a
move and the events under it are applied in one order), who lives where, the screened
visits, the key persons and watches, contributions of voidable records, and contributions
waiting for a node the consumer has not seen yet.
"""

from alembic import op

revision = "0002"
down_revision = "0001"

TABLES = [
    "node_day_metrics",
    "fig_pending",
    "fig_places",
    "fig_persons",
    "fig_visits",
    "fig_subjects",
    "fig_checkpoints",
    "fig_contributions",
]

DDL = [
    """
    CREATE TABLE node_day_metrics (
        node_id text NOT NULL,
        day     date NOT NULL,
        metric  text NOT NULL,
        value   bigint NOT NULL,
        PRIMARY KEY (node_id, day, metric)
    )
    """,
    """
    CREATE INDEX node_day_metrics_stock_idx ON node_day_metrics (node_id, metric, day)
    INCLUDE (value) WHERE metric LIKE 'stock.%'
    """,
    """
    CREATE TABLE fig_pending (
        node_id text NOT NULL,
        day     date NOT NULL,
        metric  text NOT NULL,
        value   bigint NOT NULL,
        PRIMARY KEY (node_id, day, metric)
    )
    """,
    """
    CREATE TABLE fig_places (
        id        text PRIMARY KEY,
        parent_id text,
        path      ltree NOT NULL
    )
    """,
    "CREATE INDEX fig_places_path_gist ON fig_places USING gist (path)",
    """
    CREATE TABLE fig_persons (
        id           text PRIMARY KEY,
        household_id text NOT NULL,
        residency    text NOT NULL,
        tags         text[] NOT NULL DEFAULT '{}',
        voided       boolean NOT NULL DEFAULT false
    )
    """,
    """
    CREATE TABLE fig_visits (
        id           text PRIMARY KEY,
        household_id text NOT NULL,
        day          date NOT NULL,
        screened     boolean NOT NULL,
        voided       boolean NOT NULL DEFAULT false
    )
    """,
    "CREATE INDEX fig_visits_household_idx ON fig_visits (household_id) WHERE screened",
    """
    CREATE TABLE fig_subjects (
        subject_id text PRIMARY KEY,
        key_node   text,
        reasons    text[],
        watch_node text,
        watch      text
    )
    """,
    """
    CREATE TABLE fig_checkpoints (
        id      text PRIMARY KEY,
        node_id text NOT NULL
    )
    """,
    """
    CREATE TABLE fig_contributions (
        record  text NOT NULL,
        node_id text NOT NULL,
        day     date NOT NULL,
        metric  text NOT NULL,
        value   bigint NOT NULL
    )
    """,
    "CREATE INDEX fig_contributions_record_idx ON fig_contributions (record)",
]


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table}")
