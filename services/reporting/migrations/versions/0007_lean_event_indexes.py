"""The event store's indexes as each appended row can afford them.

Revision ID: 0007

`events` loses the unique index on `event_id` (random, drawn by the store, never looked up)
and its command-id key covers only the rows that have a command id; see
shared/kernel_schema.py. A schema created from the current kernel already has these indexes.
"""

from alembic import op

from shared.kernel_schema import first_event_indexes, lean_event_indexes

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    lean_event_indexes(op)


def downgrade() -> None:
    first_event_indexes(op)
