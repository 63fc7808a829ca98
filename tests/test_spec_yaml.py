"""A frozen spec as YAML (``promptlane show``): it reads back as the spec, and no character in it reorders the
text around it on a terminal."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from promptlane._unicode import BIDI_CONTROLS, hidden_at
from promptlane.spec_diff import spec_yaml

HIDING = "\u200b\u200c\u200d\u2060\ufeff\u00ad\ufe0f\U000e0049\U000e0101\u3164\ufff9"
"""Zero-width characters, joiners, a soft hyphen, selectors, a tag character, a filler, an annotation anchor."""
# Text drawn from everything, with the bidi controls, the characters that hide text, emoji and some wide and
# right-to-left letters made frequent.
TEXT = st.text(
    st.one_of(
        st.characters(),
        st.sampled_from(sorted(BIDI_CONTROLS)),
        st.sampled_from(HIDING),
        st.sampled_from("日本عربيه\U0001f468\u2764\n\t\x85\u2028"),
    )
)


@settings(max_examples=300, deadline=None)
@given(template=TEXT, description=TEXT, default=TEXT)
def test_spec_yaml_reads_back_as_the_spec_and_never_hides_a_character(
    template: str, description: str, default: str
) -> None:
    spec: dict[str, Any] = {
        "description": description,
        "variables": {"x": {"type": "string", "default": default}},
        "template": template,
    }
    shown = spec_yaml(spec)
    assert yaml.safe_load(shown) == spec
    assert hidden_at(shown) == []


def test_text_without_bidi_controls_keeps_its_unicode() -> None:
    shown = spec_yaml({"template": "Réponds en 日本語, s'il te plaît."})
    assert shown == "template: Réponds en 日本語, s'il te plaît.\n"


def test_emoji_sequences_and_joined_words_keep_their_unicode() -> None:
    family, heart, persian = "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\u2764\ufe0f", "\u0645\u06cc\u200c\u062e"
    text = f"Family {family}, {heart}, {persian}"
    assert spec_yaml({"template": text}) == f"template: {text}\n"
