"""Which characters hide text: what a reader does not see but a model reads (Trojan source, ASCII smuggling)."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptlane._unicode import hidden_at
from promptlane.cli._table import printable, printable_json


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("plain ASCII, tabs\tand\nlines", []),
        ("Zürich 東京 عربي", []),
        ("e\u0301", []),  # a combining accent shows
        ("\U0001f468\u200d\U0001f469\u200d\U0001f467", []),  # a family: joiners between emoji
        ("\u2764\ufe0f\u200d\U0001f525", []),  # a selector after an emoji, then a joiner
        ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", []),  # a Persian word's non-joiner
        ("\u263a\ufe0f ok", []),
        ("ig\u200bnore", [2]),  # a zero-width space
        ("a\u200db", [1]),  # a joiner between ASCII letters joins nothing
        ("\u0645\u200d\u200d\u0645", [1, 2]),  # two joiners in a row
        ("word\u200c", [4]),
        (" \u200d a", [1]),
        ("hi\U000e0049\U000e0047\U000e004e", [2, 3, 4]),  # Unicode tags: invisible ASCII ("ASCII smuggling")
        ("\U0001f600\U000e0101\U000e0102", [1, 2]),  # bytes smuggled in variation selectors after an emoji
        ("Pl\U000e0101ea\ufe0fse", [2, 5]),  # a byte behind each ASCII letter ("ASCII smuggling" in selectors)
        ("1\ufe0f\u20e3 #\ufe0f\u20e3", []),  # keycaps
        ("1\ufe0f", [1]),
        ("\u845b\U000e0100", []),  # an ideographic variation sequence
        ("\u2764\ufe0e", []),  # text presentation of a symbol
        ("a\u202eb\u2066", [1, 3]),  # bidi controls
        ("\ufeffstart", [0]),
        ("co\u00adop", [2]),  # a soft hyphen
        ("x\u3164y", [1]),  # a Hangul filler shows as a blank
        ("\ufff9annotated\ufffb", [0, 10]),
    ],
)
def test_hidden_characters(text: str, hidden: list[int]) -> None:
    assert hidden_at(text) == hidden


@given(st.text())
def test_printable_text_hides_nothing_and_drives_nothing(text: str) -> None:
    shown = printable(text)
    assert hidden_at(shown) == []
    assert not any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in shown)


@given(
    st.text(
        st.characters(categories=["L", "N", "P", "S"], exclude_characters="\u115f\u1160\u3164\uffa0") | st.just(" ")
    )
)
def test_visible_text_is_printed_as_it_is(text: str) -> None:
    assert printable(text) == text


def test_json_escapes_what_a_string_hides_at_its_edges_too() -> None:
    # A string's quotes are not the visible neighbours of a joiner or selector at its start or end.
    data = {"description": "\u200d\U0001f600 hi", "\U000e0101x": "ok\u200c", "kept": "\U0001f468\u200d\U0001f469"}
    shown = printable_json(json.dumps(data, ensure_ascii=False))
    assert hidden_at(shown) == []
    assert json.loads(shown) == data
    assert "\U0001f468\u200d\U0001f469" in shown


@given(st.dictionaries(st.text(), st.text() | st.lists(st.text())))
def test_json_of_any_text_reads_back_and_hides_nothing(data: dict[str, Any]) -> None:
    shown = printable_json(json.dumps(data, ensure_ascii=False, indent=2))
    assert json.loads(shown) == data
    assert hidden_at(shown) == []
