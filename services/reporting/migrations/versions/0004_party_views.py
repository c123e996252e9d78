"""Responsibility-chain views per party: who the parties are, where covered persons live.

Revision ID: 0004

`chain_parties` names the parties (public names and roles only) for the chain tree;
`chain_persons` places a person a tier covers (组包户, 医护人员包人) in the tree through their
household, so a party's jurisdiction and the persons it answers for follow moves and voids.
Both are the `chains` consumer's; the indexes serve "this party's assignments" and "the
instances of this template".
"""

from alembic import op

from shared.kernel_schema import statements

revision = "0004"
down_revision = "0003"

DDL = """
CREATE TABLE IF NOT EXISTS chain_parties (
    party_id  text PRIMARY KEY,
    kind      text NOT NULL,
    name      text NOT NULL,
    role      text NOT NULL,
    node_id   text
);
CREATE TABLE IF NOT EXISTS chain_persons (
    person_id     text PRIMARY KEY,
    household_id  text NOT NULL,
    name_masked   text,
    voided        boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS chain_assignments_party_idx
    ON chain_assignments (party_id, instance_id);
CREATE INDEX IF NOT EXISTS chain_instances_template_idx ON chain_instances (template_id);
"""


def upgrade() -> None:
    for sql in statements(DDL):
        op.execute(sql)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS chain_instances_template_idx")
    op.execute("DROP INDEX IF EXISTS chain_assignments_party_idx")
    op.execute("DROP TABLE IF EXISTS chain_parties, chain_persons")
