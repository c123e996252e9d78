"""Free text is scrubbed of resident IDs and mobile numbers: given what a person typed, when
it is stored, then the numbers in it are masked like the registry masks them."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from shared.scrub import FreeText, scrub, scrub_all

RESIDENT_ID = "110105199003071234"  # digits 7-14 are the birth date 1990-03-07
MASKED_ID = "110105********1234"
MOBILE = "13812345678"
MASKED_MOBILE = "138****5678"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        # resident IDs, however they are written
        (f"户主{RESIDENT_ID}不在家", f"户主{MASKED_ID}不在家"),
        ("身份证11010519900307123X", "身份证110105********123X"),
        ("id 11010519900307123x.", "id 110105********123X."),
        ("110105 19900307 1234", MASKED_ID),
        ("110105-1990-0307-1234", MASKED_ID),
        ("１１０１０５１９９００３０７１２３４", MASKED_ID),
        ("旧证110105900307123", "旧证11***********23"),
        # mobiles, with and without the country code and separators
        (f"电话{MOBILE}", f"电话{MASKED_MOBILE}"),
        ("call 138 1234 5678 now", f"call {MASKED_MOBILE} now"),
        ("138-1234-5678", MASKED_MOBILE),
        ("+86 13812345678", MASKED_MOBILE),
        ("+8613812345678", MASKED_MOBILE),
        ("0086-138-1234-5678", MASKED_MOBILE),
        ("tel:１３８１２３４５６７８", f"tel:{MASKED_MOBILE}"),
        # both in one note
        (
            f"{RESIDENT_ID}，手机{MOBILE}，已告知",
            f"{MASKED_ID}，手机{MASKED_MOBILE}，已告知",
        ),
    ],
)
def test_identity_numbers_in_free_text_are_masked(typed: str, stored: str) -> None:
    assert scrub(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "家中3人，体温正常",
        "门牌 2-301，2022-04-01 14:30 到访",
        "订单号 12345678901234567890",  # longer runs are not identity numbers
        "12812345678",  # not a mobile prefix
        "1381234567",  # 10 digits
        "010-12345678",  # landlines are left alone
        "吉A12345",
    ],
)
def test_text_without_identity_numbers_is_unchanged(typed: str) -> None:
    assert scrub(typed) == typed


def test_scrubbing_never_lengthens_a_text() -> None:
    for typed in (RESIDENT_ID, "110105 1990 0307 1234", "+86 138 1234 5678", MOBILE):
        assert len(scrub(typed)) <= len(typed)


def test_scrubbing_twice_changes_nothing_more() -> None:
    once = scrub(f"{RESIDENT_ID} {MOBILE} 110105900307123")
    assert scrub(once) == once


def test_each_text_of_a_list_is_scrubbed() -> None:
    assert scrub_all(["低保", f"联系{MOBILE}"]) == ["低保", f"联系{MASKED_MOBILE}"]


class Note(BaseModel):
    notes: FreeText | None = None


def test_a_request_field_of_free_text_is_scrubbed_when_read() -> None:
    assert Note.model_validate({"notes": f"电话{MOBILE}"}).notes == f"电话{MASKED_MOBILE}"
    assert Note.model_validate({}).notes is None
