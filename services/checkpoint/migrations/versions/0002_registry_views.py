"""Local views of the registry's households, persons, vehicles and parties.

Revision ID: 0002
"""

from alembic import op

from shared.kernel_schema import statements
from shared.people_views import PEOPLE_VIEWS_DDL

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    for sql in statements(PEOPLE_VIEWS_DDL):
        op.execute(sql)


def downgrade() -> None:
    for table in ("parties", "vehicles", "persons", "households"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
