"""Characters that make text look other than it is."""

from __future__ import annotations

__all__ = ["BIDI_CONTROLS"]

BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Invisible characters that reorder the text around them (the "Trojan source" trick): a prompt holding them
reads one way on a terminal and another way to the model."""
