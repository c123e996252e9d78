"""A visit stores whether it screens its household, as its event says, and coverage counts
that; rows recorded before are filled by the same rule (outcome `screened`).

Revision ID: 0010
"""

from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.execute("ALTER TABLE visits ADD COLUMN IF NOT EXISTS screens_household boolean")
    op.execute("UPDATE visits SET screens_household = (outcome = 'screened')")
    op.execute("ALTER TABLE visits ALTER COLUMN screens_household SET NOT NULL")


def downgrade() -> None:
    op.execute("ALTER TABLE visits DROP COLUMN IF EXISTS screens_household")
