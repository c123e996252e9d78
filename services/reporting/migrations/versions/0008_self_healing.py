"""Relay leases, parked streams, re-drive audit and rebuild status (shared/kernel_schema.py).

Revision ID: 0008

A schema created from the current kernel already has them.
"""

from alembic import op

from shared.kernel_schema import self_healing, self_healing_down

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    self_healing(op)


def downgrade() -> None:
    self_healing_down(op)
