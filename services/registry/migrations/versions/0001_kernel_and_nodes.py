"""Kernel tables and the place tree.

Revision ID: 0001
"""

from alembic import op

from shared import kernel_schema

revision = "0001"
down_revision = None

NODES_DDL = """
CREATE TABLE nodes (
    id          text PRIMARY KEY,
    parent_id   text REFERENCES nodes (id),
    kind        text NOT NULL,
    name        text NOT NULL,
    path        ltree NOT NULL,
    version     integer NOT NULL,
    retired     boolean NOT NULL DEFAULT false
);
CREATE INDEX nodes_path_gist ON nodes USING gist (path);
CREATE INDEX nodes_parent_idx ON nodes (parent_id);
"""


def upgrade() -> None:
    kernel_schema.create(op, NODES_DDL)


def downgrade() -> None:
    kernel_schema.drop(op, "nodes")
