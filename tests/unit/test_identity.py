"""Identity documents and phones: normalising, validating, masking, keyed HMAC."""

from __future__ import annotations

from datetime import date

import pytest

from shared.errors import DomainError, Refusal
from shared.identity import (
    DOCUMENT_TYPES,
    DocumentType,
    birth_date_and_sex,
    hmac_key,
    id_hmac,
    mask_document,
    mask_name,
    mask_phone,
    normalise,
    resident_id_check_digit,
    validate_document,
    validate_phone,
)

TODAY = date(2022, 4, 1)
KEY = b"k" * 32


def check_char(first17: str) -> str:
    """GB 11643 check character, computed independently of the module under test."""
    weights = [2 ** (17 - i) % 11 for i in range(17)]  # 7, 9, 10, 5, 8, 4, 2, 1, 6, 3, ...
    remainder = sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11
    return "10X98765432"[remainder]


def make_id(region: str = "110105", birth: str = "19900307", seq: str = "123") -> str:
    first17 = region + birth + seq
    return first17 + check_char(first17)


def id_ending_in_x() -> str:
    for n in range(1000):
        candidate = make_id(seq=f"{n:03d}")
        if candidate.endswith("X"):
            return candidate
    raise AssertionError("no sequence gives X")  # pragma: no cover


def refusal(document_type: str, number: str, *, today: date = TODAY) -> DomainError:
    with pytest.raises(DomainError) as caught:
        validate_document(document_type, number, today=today)
    assert caught.value.refusal is Refusal.INVALID
    return caught.value


def phone_refusal(phone: str) -> DomainError:
    with pytest.raises(DomainError) as caught:
        validate_phone(phone)
    assert caught.value.refusal is Refusal.INVALID
    assert caught.value.field == "phone"
    return caught.value


# -- resident IDs -----------------------------------------------------------------------------


def test_the_test_helper_agrees_with_the_standards_published_weights() -> None:
    assert [2 ** (17 - i) % 11 for i in range(17)] == [
        7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2
    ]  # fmt: skip


def test_the_gb_11643_example_id_ending_in_x_is_valid() -> None:
    assert validate_document("resident_id", "11010519491231002X", today=TODAY) == (
        "11010519491231002X"
    )


def test_a_lowercase_x_check_digit_is_accepted_and_uppercased() -> None:
    assert validate_document("resident_id", "11010519491231002x", today=TODAY) == (
        "11010519491231002X"
    )


@pytest.mark.parametrize(
    ("region", "birth", "seq"),
    [
        ("110105", "19900307", "123"),
        ("440305", "20000229", "456"),  # leap day
        ("510121", "19000101", "001"),  # earliest accepted year
        ("650102", "20220401", "998"),  # born today
        ("820000", "19851231", "013"),
    ],
)
def test_ids_with_correct_check_digits_are_valid(region: str, birth: str, seq: str) -> None:
    number = make_id(region, birth, seq)
    assert validate_document("resident_id", number, today=TODAY) == number


def test_an_id_whose_check_digit_is_x_is_valid() -> None:
    number = id_ending_in_x()
    assert validate_document("resident_id", number, today=TODAY) == number


def test_the_module_check_digit_matches_the_independent_one() -> None:
    for n in range(0, 1000, 37):
        first17 = f"11010519900307{n:03d}"
        assert resident_id_check_digit(first17) == check_char(first17)
    with pytest.raises(ValueError):
        resident_id_check_digit("123")


def test_a_wrong_check_digit_is_refused_naming_the_expected_one() -> None:
    valid = make_id()
    wrong = "3" if valid[-1] != "3" else "4"
    error = refusal("resident_id", valid[:17] + wrong)
    assert error.code == "resident-id-check-digit"
    assert error.field == "number"
    assert str(error) == f"resident ID check digit should be {valid[-1]}, got {wrong}"


def test_a_wrong_check_digit_where_x_was_expected_says_so() -> None:
    valid = id_ending_in_x()
    error = refusal("resident_id", valid[:17] + "3")
    assert str(error) == "resident ID check digit should be X, got 3"


def test_february_30th_is_not_a_birth_date() -> None:
    error = refusal("resident_id", make_id(birth="19990230"))
    assert error.code == "resident-id-birth-date"
    assert str(error) == "resident ID birth date 19990230 is not a valid date"


def test_month_13_is_not_a_birth_date() -> None:
    error = refusal("resident_id", make_id(birth="19991301"))
    assert str(error) == "resident ID birth date 19991301 is not a valid date"


def test_february_29th_of_a_non_leap_year_is_not_a_birth_date() -> None:
    assert "19000229 is not a valid date" in str(refusal("resident_id", make_id(birth="19000229")))
    assert "20210229 is not a valid date" in str(refusal("resident_id", make_id(birth="20210229")))


def test_a_birth_date_after_today_is_refused() -> None:
    error = refusal("resident_id", make_id(birth="20220402"))
    assert error.code == "resident-id-birth-date"
    assert "20220402 is in the future" in str(error)


def test_a_birth_year_before_1900_is_refused_even_with_a_correct_check_digit() -> None:
    # The standard's own example 440524188001010014 has a correct check digit.
    error = refusal("resident_id", "440524188001010014")
    assert error.code == "resident-id-birth-date"
    assert "before 1900" in str(error)


def test_without_today_the_birth_date_is_judged_against_the_current_date() -> None:
    number = make_id(birth="19900307")
    assert validate_document("resident_id", number) == number
    with pytest.raises(DomainError, match="in the future"):
        validate_document("resident_id", make_id(birth="29990101"))


@pytest.mark.parametrize("length", [17, 19])
def test_ids_of_the_wrong_length_are_refused_with_the_length(length: int) -> None:
    number = (make_id() + "1")[:length]
    error = refusal("resident_id", number)
    assert error.code == "resident-id-length"
    assert str(error) == f"resident ID must be 18 characters, got {length}"


def test_old_15_digit_ids_are_refused_saying_only_18_digits_are_accepted() -> None:
    error = refusal("resident_id", "110105491231002")
    assert error.code == "resident-id-legacy"
    assert "only 18-digit" in str(error)


def test_letters_among_the_first_17_characters_are_refused_with_their_position() -> None:
    number = make_id()
    error = refusal("resident_id", number[:9] + "A" + number[10:])
    assert error.code == "resident-id-format"
    assert str(error) == "resident ID characters 1-17 must be digits, got 'A' at position 10"


def test_a_last_character_other_than_a_digit_or_x_is_refused() -> None:
    error = refusal("resident_id", make_id()[:17] + "Y")
    assert error.code == "resident-id-format"
    assert "must end with a digit or X, got 'Y'" in str(error)


def test_a_region_code_starting_with_0_is_refused() -> None:
    error = refusal("resident_id", make_id(region="010105"))
    assert error.code == "resident-id-region"


def test_full_width_digits_x_and_spaces_are_normalised() -> None:
    typed = "１１０１０５　１９４９１２３１ ００２ｘ"
    assert normalise("resident_id", typed) == "11010519491231002X"
    assert validate_document("resident_id", typed, today=TODAY) == "11010519491231002X"


def test_normalise_strips_every_kind_of_whitespace_and_uppercases() -> None:
    assert normalise("passport", " e1234\t5678\n\u3000\u00a0") == "E12345678"
    assert normalise("hk_macao_permit", "Ｃａ１２３４５６７") == "CA1234567"


def test_an_empty_number_is_refused() -> None:
    assert refusal("passport", " \u3000 ").code == "document-empty"


# -- birth date and sex -----------------------------------------------------------------------


def test_birth_date_and_sex_read_an_odd_17th_digit_as_male() -> None:
    assert birth_date_and_sex(make_id(birth="19900307", seq="123")) == (date(1990, 3, 7), "male")


def test_birth_date_and_sex_read_an_even_17th_digit_as_female() -> None:
    assert birth_date_and_sex("11010519491231002X") == (date(1949, 12, 31), "female")


def test_birth_date_and_sex_refuse_what_is_not_a_normalised_id() -> None:
    with pytest.raises(ValueError):
        birth_date_and_sex("110105491231002")
    with pytest.raises(ValueError):
        birth_date_and_sex(make_id(birth="19990230"))


# -- other documents --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "E12345678",  # Chinese e-passport
        "EA1234567",  # Chinese e-passport, letter series
        "G12345678",  # older Chinese ordinary passport
        "123456789",  # e.g. a US passport
        "C01X00T47",  # e.g. a German passport
        "AB12345",
        "A1234",  # 5 characters
        "A1234567890123456789",  # 20 characters
    ],
)
def test_passports_of_5_to_20_letters_and_digits_with_a_digit_are_valid(number: str) -> None:
    assert validate_document("passport", number) == number


def test_a_lowercase_passport_is_normalised() -> None:
    assert validate_document("passport", " e1234 5678 ") == "E12345678"


@pytest.mark.parametrize(
    "number",
    ["A123", "A12345678901234567890", "ABCDEFGH", "E1234-5678", "E123456７8Ä", "护照12345"],
)
def test_passports_breaking_the_rule_are_refused_naming_it(number: str) -> None:
    error = refusal("passport", number)
    assert error.code == "passport-format"
    assert error.field == "number"
    assert "5-20 letters A-Z and digits with at least one digit" in str(error)


@pytest.mark.parametrize(
    "number",
    ["C12345678", "CA1234567", "H12345678", "H1234567801", "M12345678", "M1234567801"],
)
def test_hong_kong_macao_permits_of_each_form_are_valid(number: str) -> None:
    assert validate_document("hk_macao_permit", number) == number


@pytest.mark.parametrize(
    "number",
    ["C1234567", "C123456789", "CAB123456", "H1234567", "H123456789", "X12345678", "12345678"],
)
def test_hong_kong_macao_permits_of_other_forms_are_refused(number: str) -> None:
    error = refusal("hk_macao_permit", number)
    assert error.code == "hk-macao-permit-format"
    assert "C + 8 digits" in str(error)


@pytest.mark.parametrize(
    ("typed", "normalised"),
    [
        ("12345678", "12345678"),
        ("1234567890", "1234567890"),
        ("12345678(B)", "12345678"),
        ("１２３４５６７８（ｂ）", "12345678"),
    ],
)
def test_taiwan_permits_of_8_or_10_digits_are_valid(typed: str, normalised: str) -> None:
    assert validate_document("taiwan_permit", typed) == normalised


@pytest.mark.parametrize(
    "number", ["1234567", "123456789", "12345678901", "T1234567", "1234567(B)"]
)
def test_taiwan_permits_of_other_forms_are_refused(number: str) -> None:
    assert refusal("taiwan_permit", number).code == "taiwan-permit-format"


def test_an_unknown_document_type_is_refused_on_the_type_field() -> None:
    error = refusal("driving_licence", "12345678")
    assert error.code == "unknown-document-type"
    assert error.field == "document_type"
    assert "resident_id, passport, hk_macao_permit, taiwan_permit" in str(error)


def test_the_document_types_are_the_contracts() -> None:
    assert DOCUMENT_TYPES == ("resident_id", "passport", "hk_macao_permit", "taiwan_permit")


# -- phones -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "normalised"),
    [
        ("13812345678", "13812345678"),
        ("138 1234 5678", "13812345678"),
        ("138-1234-5678", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("0086-13812345678", "13812345678"),
        ("１９９１２３４５６７８", "19912345678"),
        ("010-12345678", "01012345678"),
        ("(021) 1234 5678", "02112345678"),
        ("0755-1234567", "07551234567"),
        ("0755-12345678", "075512345678"),
        ("+86 10 1234 5678", "01012345678"),
    ],
)
def test_mobiles_and_landlines_are_valid_and_normalised(typed: str, normalised: str) -> None:
    assert validate_phone(typed) == normalised


@pytest.mark.parametrize(
    "phone",
    [
        "12812345678",  # no mobile network starts 12
        "1381234567",  # 10 digits
        "138123456789",  # 12 digits starting 1
        "010-1234567",  # Beijing numbers have 8 digits
        "0755-123456",  # too short
        "0755-123456789",  # too long
        "12345",
        "",
        "phone",
    ],
)
def test_other_phones_are_refused(phone: str) -> None:
    assert phone_refusal(phone).code == "invalid-phone"


# -- masks ------------------------------------------------------------------------------------


def test_a_resident_id_is_masked_to_region_and_last_four() -> None:
    assert mask_document("resident_id", "110105199003071234") == "110105********1234"
    assert mask_document("resident_id", "11010519491231002X") == "110105********002X"


@pytest.mark.parametrize(
    ("document_type", "number", "masked"),
    [
        ("passport", "E12345678", "E1*****78"),
        ("passport", "A1234", "A1*34"),
        ("hk_macao_permit", "H1234567801", "H1*******01"),
        ("taiwan_permit", "12345678", "12****78"),
    ],
)
def test_other_documents_keep_two_characters_at_each_end(
    document_type: DocumentType, number: str, masked: str
) -> None:
    assert mask_document(document_type, number) == masked


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三", "张*"),
        ("欧阳娜娜", "欧***"),
        ("王小明", "王**"),
        (" 李 四 ", "李*"),
        ("迪丽热巴·迪力木拉提", "迪***·*****"),
        ("张", "*"),
        ("John Smith", "J*** S****"),
        ("  John   Smith ", "J*** S****"),
        ("Mary-Jane O'Neil", "M***-J*** O'N***"),
        ("Madonna", "M******"),
        ("A", "*"),
        ("", ""),
    ],
)
def test_names_are_masked(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),
        ("01012345678", "010******78"),
        ("02112345678", "021******78"),
        ("07551234567", "0755*****67"),
        ("075512345678", "0755******78"),
    ],
)
def test_phones_are_masked(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


def test_masks_keep_their_length() -> None:
    for value in ["E12345678", "13812345678", "075512345678"]:
        assert len(mask_document("passport", value)) == len(value)
        assert len(mask_phone(value)) == len(value)


# -- HMAC -------------------------------------------------------------------------------------


def test_id_hmac_is_stable_hex_sha256() -> None:
    first = id_hmac(KEY, "resident_id", "11010519491231002X")
    assert first == id_hmac(KEY, "resident_id", "11010519491231002X")
    assert len(first) == 64
    assert int(first, 16) >= 0


def test_id_hmac_is_the_hmac_of_type_and_number() -> None:
    import hashlib
    import hmac

    expected = hmac.new(KEY, b"passport:E12345678", hashlib.sha256).hexdigest()
    assert id_hmac(KEY, "passport", "E12345678") == expected


def test_id_hmac_depends_on_the_document_type() -> None:
    assert id_hmac(KEY, "passport", "12345678") != id_hmac(KEY, "taiwan_permit", "12345678")


def test_id_hmac_depends_on_the_key() -> None:
    other = b"o" * 32
    assert id_hmac(KEY, "passport", "E12345678") != id_hmac(other, "passport", "E12345678")


def test_typed_variants_of_one_document_give_one_hmac() -> None:
    typed = ["11010519491231002x", "１１０１０５１９４９１２３１００２Ｘ", "110105 19491231 002X"]
    hmacs = {id_hmac(KEY, "resident_id", validate_document("resident_id", t)) for t in typed}
    assert len(hmacs) == 1


def test_hmac_key_accepts_32_bytes_or_more() -> None:
    assert hmac_key("x" * 32) == b"x" * 32
    assert hmac_key("密" * 11) == "密".encode() * 11  # 33 bytes of UTF-8


def test_hmac_key_refuses_fewer_than_32_bytes() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes, got 31"):
        hmac_key("x" * 31)
    with pytest.raises(ValueError):
        hmac_key("")


def test_the_development_hmac_key_is_long_enough() -> None:
    from shared.settings import DEV_HMAC_KEY

    assert len(hmac_key(DEV_HMAC_KEY)) >= 32
