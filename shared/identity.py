"""Identity documents and phone numbers: normalising, validating, masking, keyed HMAC.

Pure functions, no I/O. The registry validates and masks what people type in; every service
that must recognise a document without holding it compares `id_hmac` values.

- `normalise` turns what was typed (spaces, full-width characters, lower case) into the one
  canonical form that is validated, stored, and HMAC'd.
- `validate_document` / `validate_phone` return the normalised value or raise `DomainError`
  (`Refusal.INVALID`, `field` naming the input) with a specific message.
- `mask_*` give the stable, irreversible display forms carried by events (`110105********1234`,
  `张*`, `138****5678`).
- `id_hmac` is HMAC-SHA256 over `"{document_type}:{number}"`, so equal numbers of different
  document types never collide.
"""

from __future__ import annotations

import hmac
import re
from datetime import date, datetime
from operator import mul
from typing import Final, Literal, get_args
from zoneinfo import ZoneInfo

from shared.contracts.registry import DocumentType
from shared.errors import DomainError, Refusal

__all__ = [
    "DOCUMENT_TYPES",
    "DocumentType",
    "Sex",
    "birth_date_and_sex",
    "china_today",
    "hmac_key",
    "id_hmac",
    "mask_document",
    "mask_name",
    "mask_phone",
    "normalise",
    "normalise_phone",
    "resident_id_check_digit",
    "validate_document",
    "validate_phone",
]

Sex = Literal["male", "female"]

DOCUMENT_TYPES: Final[tuple[DocumentType, ...]] = get_args(DocumentType)

# Birth dates are judged on the calendar in China, whatever the server's zone.
_CHINA: Final = ZoneInfo("Asia/Shanghai")

# -- normalising ------------------------------------------------------------------------------

_FULL_WIDTH_START: Final = 0xFF01  # ！ … ～ map onto ! … ~
_FULL_WIDTH_END: Final = 0xFF5E
_FULL_WIDTH_OFFSET: Final = 0xFEE0
_TAIWAN_ISSUE_LETTER: Final = re.compile(r"\([A-Z]\)$")


def _half_width(text: str) -> str:
    """Full-width ASCII (Ｘ, ０-９, Ａ-Ｚ, （）…) to half-width; other characters untouched."""
    return "".join(
        chr(ord(c) - _FULL_WIDTH_OFFSET) if _FULL_WIDTH_START <= ord(c) <= _FULL_WIDTH_END else c
        for c in text
    )


def _strip_whitespace(text: str) -> str:
    # str.isspace covers U+3000 (ideographic space), NBSP, tabs and newlines.
    return "".join(c for c in text if not c.isspace())


def normalise(document_type: str, number: str) -> str:
    """The canonical form of a document number: no whitespace (incl. U+3000), half-width,
    upper case. A Taiwan permit also loses a trailing issue letter such as `(B)`, which
    changes with every reissue while the 8 digits stay the holder's."""
    if number.isascii() and number.isalnum():  # as most scanners send it: nothing to strip
        text = number.upper()
    else:
        text = _strip_whitespace(_half_width(number)).upper()
    if document_type == "taiwan_permit":
        text = _TAIWAN_ISSUE_LETTER.sub("", text)
    return text


# -- documents --------------------------------------------------------------------------------

_RESIDENT_ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RESIDENT_ID_CHECK: Final = "10X98765432"

_PASSPORT: Final = re.compile(r"[A-Z0-9]{5,20}")
_HK_MACAO_PERMIT: Final = re.compile(r"C\d{8}|C[A-Z]\d{7}|[HM]\d{8}(?:\d{2})?")
_TAIWAN_PERMIT: Final = re.compile(r"\d{8}(?:\d{2})?")


def _invalid(code: str, message: str, field: str = "number") -> DomainError:
    return DomainError(code, message, refusal=Refusal.INVALID, field=field)


def resident_id_check_digit(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for the first 17 digits of a resident ID."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("a resident ID check digit needs exactly 17 digits")
    total = sum(map(mul, map(int, first17), _RESIDENT_ID_WEIGHTS))
    return _RESIDENT_ID_CHECK[total % 11]


def _parse_birth_date(digits: str) -> date | None:
    try:
        return date(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def _validate_resident_id(number: str, today: date) -> str:
    length = len(number)
    if length == 15 and number.isascii() and number.isdigit():
        raise _invalid(
            "resident-id-legacy",
            "15-digit resident IDs (issued before 1999) are not accepted; "
            "only 18-digit resident IDs are accepted",
        )
    if length != 18:
        raise _invalid("resident-id-length", f"resident ID must be 18 characters, got {length}")
    first17 = number[:17]
    if not (first17.isascii() and first17.isdigit()):
        position, c = next((i, c) for i, c in enumerate(first17, 1) if not "0" <= c <= "9")
        raise _invalid(
            "resident-id-format",
            f"resident ID characters 1-17 must be digits, got {c!r} at position {position}",
        )
    last = number[17]
    if not ("0" <= last <= "9" or last == "X"):
        raise _invalid(
            "resident-id-format",
            f"resident ID must end with a digit or X, got {last!r}",
        )
    if number[0] == "0":
        raise _invalid(
            "resident-id-region",
            "resident ID must start with a region code whose first digit is 1-9, got 0",
        )
    birth = number[6:14]
    born = _parse_birth_date(birth)
    if born is None:
        raise _invalid(
            "resident-id-birth-date", f"resident ID birth date {birth} is not a valid date"
        )
    if born.year < 1900:
        raise _invalid("resident-id-birth-date", f"resident ID birth date {birth} is before 1900")
    if born > today:
        raise _invalid(
            "resident-id-birth-date",
            f"resident ID birth date {birth} is in the future (today is {today:%Y%m%d})",
        )
    expected = resident_id_check_digit(first17)
    if last != expected:
        raise _invalid(
            "resident-id-check-digit",
            f"resident ID check digit should be {expected}, got {last}",
        )
    return number


def _validate_passport(number: str) -> str:
    if not _PASSPORT.fullmatch(number) or not any(c.isdigit() for c in number):
        raise _invalid(
            "passport-format",
            "passport number must be 5-20 letters A-Z and digits with at least one digit "
            "(e.g. E12345678, EA1234567, G12345678)",
        )
    return number


def _validate_hk_macao_permit(number: str) -> str:
    if not _HK_MACAO_PERMIT.fullmatch(number):
        raise _invalid(
            "hk-macao-permit-format",
            "Hong Kong/Macao permit number must be C + 8 digits or C + a letter + 7 digits "
            "(mainland residents' permit), or H or M + 8 or 10 digits "
            "(Hong Kong/Macao residents' home-return permit)",
        )
    return number


def _validate_taiwan_permit(number: str) -> str:
    if not _TAIWAN_PERMIT.fullmatch(number):
        raise _invalid(
            "taiwan-permit-format",
            "Taiwan permit number must be 8 or 10 digits, optionally followed by an issue "
            "letter in parentheses such as (B)",
        )
    return number


def china_today() -> date:
    """Today on the calendar in China: the latest birth date a resident ID may hold."""
    return datetime.now(_CHINA).date()


def validate_document(document_type: str, number: str, *, today: date | None = None) -> str:
    """The normalised number if it is a well-formed document of that type, else DomainError.

    `today` (default: today in China) bounds resident ID birth dates."""
    if document_type not in DOCUMENT_TYPES:
        raise _invalid(
            "unknown-document-type",
            f"document type must be one of {', '.join(DOCUMENT_TYPES)}, got {document_type!r}",
            field="document_type",
        )
    normalised = normalise(document_type, number)
    if not normalised:
        raise _invalid("document-empty", "document number is empty")
    if document_type == "resident_id":
        return _validate_resident_id(normalised, today or china_today())
    if document_type == "passport":
        return _validate_passport(normalised)
    if document_type == "hk_macao_permit":
        return _validate_hk_macao_permit(normalised)
    return _validate_taiwan_permit(normalised)


def birth_date_and_sex(resident_id_normalised: str) -> tuple[date, Sex]:
    """Birth date (digits 7-14) and sex (17th digit: odd male, even female) of a valid,
    normalised 18-character resident ID. Raises ValueError on anything else."""
    number = resident_id_normalised
    if len(number) != 18 or not number[:17].isascii() or not number[:17].isdigit():
        raise ValueError("not a normalised 18-character resident ID")
    born = _parse_birth_date(number[6:14])
    if born is None:
        raise ValueError("resident ID does not hold a valid birth date")
    return born, "male" if int(number[16]) % 2 == 1 else "female"


# -- phones -----------------------------------------------------------------------------------

_PHONE_SEPARATORS: Final = frozenset("-‐‑‒–—()")
_MOBILE: Final = re.compile(r"1[3-9]\d{9}")
_LANDLINE: Final = re.compile(r"0\d{9,11}")


def _area_code_length(landline: str) -> int:
    """010 and 02x are the only 3-digit area codes (incl. the 0); all others have 4."""
    return 3 if landline.startswith(("010", "02")) else 4


def normalise_phone(phone: str) -> str:
    """Digits only: no spaces, dashes or parentheses, full-width digits half-width, no
    +86/0086 prefix. A landline written internationally (+86 10 …) gets its trunk 0 back."""
    text = "".join(c for c in _strip_whitespace(_half_width(phone)) if c not in _PHONE_SEPARATORS)
    international = False
    for prefix in ("+86", "0086"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            international = True
            break
    if international and text and not text.startswith("0") and not _MOBILE.fullmatch(text):
        text = "0" + text
    return text


def validate_phone(phone: str) -> str:
    """The normalised phone if it is a mainland mobile (1[3-9] + 9 digits) or a landline
    (area code 010/02x + 8 digits, or 0xxx + 7-8 digits), else DomainError."""
    text = normalise_phone(phone)
    if _MOBILE.fullmatch(text):
        return text
    if _LANDLINE.fullmatch(text):
        local = len(text) - _area_code_length(text)
        if local == 8 or (local == 7 and _area_code_length(text) == 4):
            return text
    raise _invalid(
        "invalid-phone",
        "phone must be a mainland mobile number (11 digits starting 13-19) or a landline "
        "with area code (e.g. 010-12345678, 0755-1234567), optionally after +86",
        field="phone",
    )


# -- masking ----------------------------------------------------------------------------------

_CJK: Final = re.compile(
    "[\u2e80-\u2fdf\u3005\u3007\u3021-\u3029\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\U00020000-\U0003134f]"
)
_NAME_DOTS: Final = frozenset("·・•‧.．")
_LATIN_SEPARATOR: Final = re.compile(r"(\s+|[-'’.·])")


def _mask_middle(text: str) -> str:
    if len(text) <= 4:
        return "*" * max(len(text), 1)
    return text[:2] + "*" * (len(text) - 4) + text[-2:]


def mask_document(document_type: DocumentType, normalised: str) -> str:
    """resident ID: first 6 (region) + 8 stars + last 4 (`110105********1234`); any other
    document: first 2 + a star per hidden character (at least one) + last 2."""
    if document_type == "resident_id" and len(normalised) == 18:
        return normalised[:6] + "*" * 8 + normalised[-4:]
    return _mask_middle(normalised)


def mask_name(name: str) -> str:
    """`张三` → `张*`, `欧阳娜娜` → `欧***`, `John Smith` → `J*** S****`, `张` → `*`.

    Chinese names keep the first character and star every other one (a middle dot, as in
    transcribed minority names, stays). Latin names keep each word's first letter."""
    name = name.strip()
    if not name:
        return ""
    if _CJK.search(name):
        chars = _strip_whitespace(name)
        if len(chars) == 1:
            return "*"
        return chars[0] + "".join(c if c in _NAME_DOTS else "*" for c in chars[1:])
    words = " ".join(name.split())
    if len(words) == 1:
        return "*"
    parts = _LATIN_SEPARATOR.split(words)
    return "".join(
        part if _LATIN_SEPARATOR.fullmatch(part) else part[:1] + "*" * (len(part) - 1)
        for part in parts
    )


def mask_phone(phone_normalised: str) -> str:
    """Mobile: first 3 + `****` + last 4 (`138****5678`); landline: area code + stars + last 2
    (`010******78`)."""
    phone = phone_normalised
    if _MOBILE.fullmatch(phone):
        return phone[:3] + "****" + phone[-4:]
    if _LANDLINE.fullmatch(phone):
        area = _area_code_length(phone)
        return phone[:area] + "*" * (len(phone) - area - 2) + phone[-2:]
    return _mask_middle(phone)


# -- keyed HMAC -------------------------------------------------------------------------------

MIN_HMAC_KEY_BYTES: Final = 32


def hmac_key(setting: str) -> bytes:
    """The HMAC key bytes from its setting (UTF-8); at least 32 bytes, else ValueError."""
    key = setting.encode("utf-8")
    if len(key) < MIN_HMAC_KEY_BYTES:
        raise ValueError(
            f"the ID HMAC key must be at least {MIN_HMAC_KEY_BYTES} bytes, got {len(key)}"
        )
    return key


def id_hmac(key: bytes, document_type: DocumentType, normalised_number: str) -> str:
    """Hex HMAC-SHA256 of `"{document_type}:{normalised_number}"` (OpenSSL's one-shot HMAC)."""
    message = f"{document_type}:{normalised_number}".encode()
    return hmac.digest(key, message, "sha256").hex()
