"""Event ids drawn for a whole append at once."""

from __future__ import annotations

import uuid

from shared.eventstore import new_event_ids


def test_ids_are_random_version_4_uuids_and_distinct() -> None:
    ids = new_event_ids(1000)
    assert len(set(ids)) == 1000
    assert all(isinstance(i, uuid.UUID) for i in ids)
    assert {(i.version, i.variant) for i in ids} == {(4, uuid.RFC_4122)}
    assert all(uuid.UUID(str(i)) == i for i in ids[:10])


def test_two_draws_differ() -> None:
    assert not set(new_event_ids(50)) & set(new_event_ids(50))
    assert new_event_ids(0) == []
