"""Responsible parties, chain templates, instances and assignments (包保).

These are query tables, written in the same transaction as the events they follow. They hold
no foreign keys: the domain checks references, and a table rebuilt from the events must not
depend on the order streams are replayed in. `assignments` refuses two overlapping periods of
one party on one target at one tier (the domain's rule, kept here against concurrent writers),
which needs `btree_gist` for the equality parts of the exclusion constraint.

Revision ID: 0002
"""

from alembic import op

from shared.kernel_schema import statements

revision = "0002"
down_revision = "0001"

# one statement on its own: the block's semicolons must not be split
BTREE_GIST = """
DO $$ BEGIN
    CREATE EXTENSION IF NOT EXISTS btree_gist SCHEMA public;
EXCEPTION WHEN unique_violation THEN NULL;  -- a concurrent migration created it first
END $$
"""

CHAINS_DDL = """
CREATE TABLE parties (
    id          text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('person', 'unit')),
    name        text NOT NULL,
    role        text NOT NULL,
    node_id     text,
    sub         text,
    phone_masked text,
    version     integer NOT NULL
);
CREATE INDEX parties_node_idx ON parties (node_id);
CREATE INDEX parties_sub_idx ON parties (sub) WHERE sub IS NOT NULL;

CREATE TABLE chain_templates (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    tiers       jsonb NOT NULL,
    version     integer NOT NULL
);

CREATE TABLE chain_instances (
    id            text PRIMARY KEY,
    template_id   text NOT NULL,
    root_node_id  text NOT NULL,
    valid_from    date NOT NULL,
    planned_to    date,
    valid_to      date,
    ended         boolean NOT NULL DEFAULT false,
    end_reason    text,
    version       integer NOT NULL,
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
);
CREATE INDEX chain_instances_root_idx ON chain_instances (root_node_id);
CREATE INDEX chain_instances_template_idx ON chain_instances (template_id);

CREATE TABLE assignments (
    id            text PRIMARY KEY,
    instance_id   text NOT NULL,
    level         integer NOT NULL,
    party_id      text NOT NULL,
    target_type   text NOT NULL CHECK (target_type IN ('node', 'person')),
    target_id     text NOT NULL,
    node_id       text,
    valid_from    date NOT NULL,
    planned_to    date,
    valid_to      date,
    ended         boolean NOT NULL DEFAULT false,
    end_reason    text,
    version       integer NOT NULL,
    CHECK (valid_to IS NULL OR valid_to >= valid_from),
    CONSTRAINT assignments_no_overlap EXCLUDE USING gist (
        instance_id WITH =, level WITH =, party_id WITH =, target_type WITH =,
        target_id WITH =, daterange(valid_from, valid_to, '[]') WITH &&
    )
);
CREATE INDEX assignments_instance_idx ON assignments (instance_id, id);
CREATE INDEX assignments_party_idx ON assignments (party_id, id);
CREATE INDEX assignments_target_idx ON assignments (target_id, id)
"""


def upgrade() -> None:
    op.execute(BTREE_GIST)
    for sql in statements(CHAINS_DDL):
        op.execute(sql)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS assignments, chain_instances, chain_templates, parties")
