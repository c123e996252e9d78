"""Input no service accepts: text with NUL, control characters or lone surrogates, and
integers beyond what their columns hold.

PostgreSQL text cannot hold NUL, a lone surrogate cannot be encoded as UTF-8 at all, and no
person types a control character into a name, an id or a search: each of them, let through,
failed deep inside the driver as a 500 (and cost the caller its connection). So every string
is checked once, before any handler runs — each string of a JSON body (batches included),
each query and each path parameter — and the first offender answers 422 naming it
(`body.household.name`, `query.q`, `path.node_id`). The roster import checks its cells with
the same rule.

Free text (`FREE_TEXT`: notes, reasons) may hold tabs and line breaks, nothing else below
U+0020.

`NaN`, `Infinity` and `-Infinity` are not JSON, but Python's parser reads them as numbers: a
temperature or a threshold of NaN compares false with every bound, so they are refused too.

Integers are bounded where they are declared (`Field`/`Query(ge=..., le=...)`), with the
bounds below where no domain rule gives a smaller one: an unbounded one reached PostgreSQL
and overflowed int4 there (`level=2147483648`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any, Final

from fastapi import Request

from shared.problems import Problem

INT4_MAX: Final = 2**31 - 1
"""The largest value of a PostgreSQL `integer`."""
MAX_COUNT: Final = 100_000_000
"""Bound of a reported count (persons, households): more than any place holds, and sums of
many such counts stay far inside int8."""

FREE_TEXT: Final = frozenset({"notes", "reason", "goal", "discrepancies"})
"""Fields documented as free text: the only ones where tab, LF and CR are allowed."""

_REFUSED: Final = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_REFUSED_IN_FREE_TEXT: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_JSON_TYPES: Final = ("application/json", "+json")
# JSON text holds a refused character only as an escape (\u0000-\u001f, \u007f, a
# surrogate, \b \f \n \r \t), a raw DEL or the bytes of a surrogate (json.loads decodes
# with surrogatepass); a raw control character inside a string is a syntax error. A body
# with none of them is not walked.
_MAY_HOLD_REFUSED: Final = re.compile(
    rb"\\(?:u(?:00[01]|007[fF]|[dD][89a-fA-F])|[bfnrt])|\x7f|\xed[\xa0-\xbf]|NaN|Infinity"
)


def refusal(text: str, *, free_text: bool = False) -> str | None:
    """Why `text` cannot be accepted, or None when it can."""
    found = (_REFUSED_IN_FREE_TEXT if free_text else _REFUSED).search(text)
    if found is None:
        return None
    code = ord(found.group())
    kind = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
    return f"holds {kind} (U+{code:04X}) at position {found.start()}"


def refusals(value: Any, field: str) -> Iterator[tuple[str, str]]:
    """(field, reason) for each refused string in a parsed JSON value, keys included; a
    field's name is its path, as validation errors name it (`body.items.3.name`)."""
    if isinstance(value, str):
        reason = refusal(value, free_text=field.rsplit(".", 1)[-1] in FREE_TEXT)
        if reason is not None:
            yield field, reason
    elif isinstance(value, float) and not math.isfinite(value):
        yield field, f"{value} is not a number JSON can hold"
    elif isinstance(value, dict):
        for key, item in value.items():
            key_reason = refusal(str(key))
            if key_reason is not None:
                yield field, f"a key {key_reason}"
            yield from refusals(item, f"{field}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from refusals(item, f"{field}.{index}")


def refuse(found: Iterator[tuple[str, str]]) -> None:
    """Answer 422 for the first refused string, if any."""
    for field, reason in found:
        raise Problem(
            422,
            f"{field}: {reason}",
            slug="validation-error",
            errors=[{"field": field, "reason": reason}],
        )


def _request_refusals(request: Request, body: Any) -> Iterator[tuple[str, str]]:
    for name, value in request.path_params.items():
        yield from refusals(value, f"path.{name}")
    for name, value in request.query_params.multi_items():
        yield from refusals({name: value}, "query")
    if body is not None:
        yield from refusals(body, "body")


async def refuse_control_characters(request: Request) -> None:
    """A dependency of every route (`shared.http.build_app`): runs after routing, so path
    parameters have their names, and reads the JSON body FastAPI has already parsed."""
    body = None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.endswith(_JSON_TYPES) and _MAY_HOLD_REFUSED.search(await request.body()):
        try:
            body = await request.json()
        except ValueError:
            body = None  # malformed JSON is refused by the body's own validation
    refuse(_request_refusals(request, body))
