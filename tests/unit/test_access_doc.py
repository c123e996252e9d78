"""docs/security.md shows the role table as the code holds it."""

from __future__ import annotations

from services.access import DOC, current, render


def test_the_access_table_in_the_docs_is_current() -> None:
    assert current(DOC.read_text()) == render(), "stale: run python -m services.access"
