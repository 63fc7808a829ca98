"""Characters that make text look other than it is, or that no text file can hold."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["BIDI_CONTROLS", "SURROGATE", "find_surrogate"]

BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Invisible characters that reorder the text around them (the "Trojan source" trick): a prompt holding them
reads one way on a terminal and another way to the model."""

SURROGATE = re.compile("[\ud800-\udfff]")
"""Half of a UTF-16 surrogate pair: what a JSON or YAML ``\\ud83d\\ude00`` escape reads as in Python, and
what no UTF-8 file, database or terminal can store on its own."""


def find_surrogate(data: Any, loc: tuple[str | int, ...] = ()) -> tuple[tuple[str | int, ...], str] | None:
    """Where JSON data ``data`` holds half of a surrogate pair (in a string or a key), and the half."""
    if isinstance(data, str):
        found = SURROGATE.search(data)
        return (loc, found.group()) if found else None
    items = data.items() if isinstance(data, Mapping) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        if (found := find_surrogate(key, loc) or find_surrogate(value, (*loc, key))) is not None:
            return found
    return None
