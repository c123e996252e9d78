"""Persons carry an age band instead of a birth year; stored registrations lose theirs.

Revision ID: 0007

The 8 hidden digits of a masked resident ID are the birth date, so a birth year beside
`document_masked` narrowed the number to about 33 candidates. Persons registered before
keep no band (their events do not say on which day it would hold). The birth years in the
stored `PersonRegistered` events are removed too, so the birth date stays only in the PII
store; downgrading cannot bring them back.
"""

from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.execute("ALTER TABLE persons ADD COLUMN age_band text, ADD COLUMN age_band_on date")
    op.execute("ALTER TABLE persons DROP COLUMN birth_year")
    op.execute(
        "UPDATE events SET data = data - 'birth_year'"
        " WHERE type = 'PersonRegistered' AND schema_version = 1"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE persons ADD COLUMN birth_year integer")
    op.execute("ALTER TABLE persons DROP COLUMN age_band, DROP COLUMN age_band_on")
