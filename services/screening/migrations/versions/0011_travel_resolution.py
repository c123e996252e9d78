"""Each inquiry keeps how its travel stops were placed in administrative divisions when it
was decided (`travel_resolution`, one entry per stop: resolved, ambiguous or unknown), so
its answer says which stops were unresolved, as the rules then saw them.

Revision ID: 0011
"""

from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    op.execute(
        "ALTER TABLE inquiries ADD COLUMN IF NOT EXISTS travel_resolution jsonb"
        " NOT NULL DEFAULT '[]'"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE inquiries DROP COLUMN IF EXISTS travel_resolution")
