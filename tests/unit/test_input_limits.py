"""Refused text: control characters and lone surrogates, named by their field's path."""

from __future__ import annotations

import json

import pytest

from shared.input_limits import _MAY_HOLD_REFUSED, refusal, refusals

REFUSED = [chr(c) for c in range(0x20)] + ["\x7f", "\ud800", "\udfff"]


@pytest.mark.parametrize("char", REFUSED, ids=lambda c: f"U+{ord(c):04X}")
def test_a_control_character_or_lone_surrogate_is_refused_and_never_slips_past_the_prefilter(
    char: str,
) -> None:
    assert refusal(f"张{char}三") is not None
    for text in (json.dumps(char), json.dumps(char, ensure_ascii=False)):
        assert _MAY_HOLD_REFUSED.search(text.encode("utf-8", "surrogatepass")), text


def test_printable_text_passes_and_free_text_keeps_its_line_breaks() -> None:
    assert refusal("三溪镇幸福小区3栋2单元301 (east) é ☺") is None
    assert refusal("并入第一网格\n见会议纪要\t附件", free_text=True) is None
    assert refusal("a\nb") is not None
    assert refusal("a\x00b", free_text=True) is not None
    assert not _MAY_HOLD_REFUSED.search(json.dumps({"name": "张三", "door": "3-2-301"}).encode())


def test_each_refused_string_is_named_by_its_path_keys_included() -> None:
    body = {
        "household": {"name": "a\x00"},
        "items": [{"notes": "ok\nfine"}, {"household_id": "h\x01"}],
        "tags": {"bad\x02key": "v"},
    }
    assert [f for f, _ in refusals(body, "body")] == [
        "body.household.name",
        "body.items.1.household_id",
        "body.tags",
    ]
    ((_, reason),) = refusals("x\x7f", "query.q")
    assert reason == "holds a control character (U+007F) at position 1"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_a_number_json_cannot_hold_is_refused_although_python_parses_it(token: str) -> None:
    """Given a policy whose threshold is NaN (every comparison with it is false), when it is
    checked, then it is refused by name, whether the prefilter or the walk is asked."""
    raw = f'{{"policy": {{"temperature_threshold": {token}}}}}'.encode()
    assert _MAY_HOLD_REFUSED.search(raw)
    ((field, reason),) = refusals(json.loads(raw), "body")
    assert field == "body.policy.temperature_threshold" and "not a number JSON" in reason
    assert list(refusals({"temperature": 36.6, "note": "NaN in text is text"}, "body")) == []
