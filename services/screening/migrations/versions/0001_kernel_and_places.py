"""Kernel tables and the local copy of the place tree.

Revision ID: 0001
"""

from alembic import op

from shared import kernel_schema
from shared.places import PLACES_DDL

revision = "0001"
down_revision = None


def upgrade() -> None:
    kernel_schema.create(op, PLACES_DDL)


def downgrade() -> None:
    kernel_schema.drop(op, "places")
