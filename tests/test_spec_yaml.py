"""A frozen spec as YAML (``promptlane show``): it reads back as the spec, and no character in it reorders the
text around it on a terminal."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from promptlane._unicode import BIDI_CONTROLS
from promptlane.spec_diff import spec_yaml

# Text drawn from everything, with the bidi controls and some wide and right-to-left letters made frequent.
TEXT = st.text(st.one_of(st.characters(), st.sampled_from(sorted(BIDI_CONTROLS)), st.sampled_from("日本عربيה\n\t")))


@settings(max_examples=300, deadline=None)
@given(template=TEXT, description=TEXT, default=TEXT)
def test_spec_yaml_reads_back_as_the_spec_and_never_holds_a_bidi_control(
    template: str, description: str, default: str
) -> None:
    spec: dict[str, Any] = {
        "description": description,
        "variables": {"x": {"type": "string", "default": default}},
        "template": template,
    }
    shown = spec_yaml(spec)
    assert yaml.safe_load(shown) == spec
    assert BIDI_CONTROLS.isdisjoint(shown)


def test_text_without_bidi_controls_keeps_its_unicode() -> None:
    shown = spec_yaml({"template": "Réponds en 日本語, s'il te plaît."})
    assert shown == "template: Réponds en 日本語, s'il te plaît.\n"
