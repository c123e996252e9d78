"""Free text scrubbed of identity numbers before it is stored: notes, reasons, addresses.

A grid worker who types "户主110105199003071234，电话13812345678" into a visit note would
otherwise put a clear ID number and phone into an event that every service, every consumer
of the topic and every reader of the note receives. `scrub` masks them on write, the same way
the registry masks what it publishes (`shared.identity.mask_document` / `mask_phone`):

- an 18-character resident ID (17 digits and a check digit or X, grouped 6-8-4 or 6-4-4-4 by
  single spaces or dashes, or not at all) → `110105********1234`;
- a 15-digit legacy resident ID (its digits 7-12 are the birth date) → `11***********34`;
- a mainland mobile number (`1[3-9]` + 9 digits, optionally after +86 or 0086, grouped 3-4-4
  by spaces or dashes) → `138****5678`.

Full-width digits count as digits. A number counts only when no other digit touches it, so
a longer run of digits (an order number) is left alone rather than half masked. Landlines are
not masked: a 7-8 digit run is too often something else (a count, a date, a plate). Masking
keeps a number's length, so a scrubbed text never grows past the limit it was checked against.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import AfterValidator

from shared.identity import mask_document, mask_phone, normalise, normalise_phone

__all__ = ["FreeText", "scrub", "scrub_all"]

_D: Final = "[0-9０-９]"
_SEP: Final = "[ \\-\u3000]?"
_NOT_AFTER_DIGIT: Final = f"(?<!{_D})"
_NOT_BEFORE_DIGIT: Final = f"(?!{_D})"

_RESIDENT_ID: Final = re.compile(
    f"{_NOT_AFTER_DIGIT}{_D}{{6}}{_SEP}{_D}{{4}}{_SEP}{_D}{{4}}{_SEP}{_D}{{3}}[0-9０-９XxＸｘ]"
    f"(?![0-9０-９XxＸｘ])"
)
_LEGACY_RESIDENT_ID: Final = re.compile(f"{_NOT_AFTER_DIGIT}{_D}{{15}}{_NOT_BEFORE_DIGIT}")
_MOBILE: Final = re.compile(
    f"(?:(?<![0-9０-９+＋])(?:[+＋]|00|００)[8８][6６]{_SEP}|{_NOT_AFTER_DIGIT})"
    f"[1１][3-9３-９]{_D}{_SEP}{_D}{{4}}{_SEP}{_D}{{4}}{_NOT_BEFORE_DIGIT}"
)
_SEPARATORS: Final = re.compile("[ \\-\u3000]")


def _resident_id(match: re.Match[str]) -> str:
    return mask_document("resident_id", normalise("resident_id", _SEPARATORS.sub("", match[0])))


def _mobile(match: re.Match[str]) -> str:
    return mask_phone(normalise_phone(match[0]))


def scrub(text: str) -> str:
    """The text with every resident ID and mobile number in it masked; nothing else changed."""
    if not any(c.isdigit() for c in text):  # most notes hold no number at all
        return text
    text = _RESIDENT_ID.sub(_resident_id, text)
    text = _LEGACY_RESIDENT_ID.sub(_resident_id, text)
    return _MOBILE.sub(_mobile, text)


def scrub_all(texts: list[str]) -> list[str]:
    """Each text of a list (free tags, symptoms) scrubbed."""
    return [scrub(t) for t in texts]


FreeText = Annotated[str, AfterValidator(scrub)]
"""A request field of free text: validated as `str` (with the field's own limits), stored
scrubbed. Use it for every field a person types prose into."""
