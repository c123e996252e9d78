"""A person carries an age band, never a birth year: given a birth date and the day of
registration, then the band; given a stored registration with a birth year, then none."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.registry.domain.people import age_band
from shared.contracts.published import decode
from shared.contracts.registry import PersonRegistered
from shared.envelope import Envelope

ON = date(2026, 3, 1)


@pytest.mark.parametrize(
    ("born", "band"),
    [
        (date(2026, 3, 1), "0-17"),  # born today
        (date(2008, 3, 2), "0-17"),  # 18 tomorrow
        (date(2008, 3, 1), "18-59"),  # 18 today
        (date(1966, 3, 2), "18-59"),  # 60 tomorrow
        (date(1966, 3, 1), "60+"),  # 60 today
        (date(1900, 1, 1), "60+"),
        (date(2008, 2, 29), "18-59"),  # a leap-day birthday counts from 1 March
    ],
)
def test_the_band_is_the_age_on_the_day_of_registration(born: date, band: str) -> None:
    assert age_band(born, ON) == band


def test_a_leap_day_birthday_is_not_reached_on_28_february() -> None:
    assert age_band(date(2008, 2, 29), date(2026, 2, 28)) == "0-17"


def registered(schema_version: int, **data: object) -> Envelope:
    now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    return Envelope(
        type="PersonRegistered",
        schema_version=schema_version,
        stream_id="person-p1",
        stream_type="person",
        version=1,
        occurred_at=now,
        recorded_at=now,
        data={
            "person_id": "p1",
            "household_id": "h1",
            "residency": "resident",
            "document_type": "resident_id",
            "document_masked": "110105********1234",
            "name_masked": "张*",
            "id_hmac": "ab" * 32,
            "sex": "male",
            **data,
        },
    )


def test_a_stored_registration_with_a_birth_year_decodes_without_it() -> None:
    payload = decode(registered(1, birth_year=1990))
    assert isinstance(payload, PersonRegistered)
    assert "birth_year" not in payload.model_dump()
    assert payload.age_band is None and payload.age_band_on is None


def test_a_current_registration_carries_its_band_and_the_day_it_holds_for() -> None:
    payload = decode(registered(2, age_band="60+", age_band_on="2026-03-01", birth_year=1950))
    assert isinstance(payload, PersonRegistered)
    assert (payload.age_band, payload.age_band_on) == ("60+", ON)
    assert "birth_year" not in payload.model_dump()
