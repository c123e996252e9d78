"""Idempotency keys with their request fingerprints (shared/kernel_schema.py).

Revision ID: 0006

A schema created from the current kernel already has them.
"""

from alembic import op

from shared.kernel_schema import idempotency_keys, idempotency_keys_down

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    idempotency_keys(op)


def downgrade() -> None:
    idempotency_keys_down(op)
