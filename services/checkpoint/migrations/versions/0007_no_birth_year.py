"""The local view of persons holds no birth year (the registry no longer publishes one).

Revision ID: 0007
"""

from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.execute("ALTER TABLE persons DROP COLUMN IF EXISTS birth_year")


def downgrade() -> None:
    op.execute("ALTER TABLE persons ADD COLUMN IF NOT EXISTS birth_year integer")
