"""How many active places of each kind lie under each place.

Revision ID: 0006

`place_kind_counts` (label, kind, places) counts, for the place labelled `label`, the places
of `kind`, not retired, below it: a place's `descendants_by_kind` becomes a key lookup. The
places consumer keeps it (services/reporting/place_counts.py). The upgrade counts the
`places` already folded, so a schema built before this revision answers correctly at once
and its consumer carries on from its stored offsets.
"""

from alembic import op

revision = "0006"
down_revision = "0005"

CREATE = """
CREATE TABLE IF NOT EXISTS place_kind_counts (
    label   text NOT NULL,
    kind    text NOT NULL,
    places  bigint NOT NULL,
    PRIMARY KEY (label, kind)
)
"""
# one row per (proper ancestor, active place), grouped
BACKFILL = """
INSERT INTO place_kind_counts AS c (label, kind, places)
SELECT subpath(p.path, i, 1)::text, p.kind, count(*)
FROM places p, generate_series(0, nlevel(p.path) - 2) AS i
WHERE NOT p.retired
GROUP BY 1, 2
ON CONFLICT (label, kind) DO UPDATE SET places = EXCLUDED.places
"""


def upgrade() -> None:
    op.execute(CREATE)
    op.execute(BACKFILL)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS place_kind_counts")
