"""Relay leases, parked streams, re-drive audit and rebuild status (shared/kernel_schema.py).

Revision ID: 0005

A schema created from the current kernel already has them.
"""

from alembic import op

from shared.kernel_schema import self_healing

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    self_healing(op)


def downgrade() -> None:
    for table in ("rebuild_runs", "dead_letter_retries", "relay_leases"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("ALTER TABLE consumer_streams DROP COLUMN IF EXISTS held_from")
    for column in ("reason", "resolved_at", "retry_requested_at"):
        op.execute(f"ALTER TABLE dead_letters DROP COLUMN IF EXISTS {column}")
