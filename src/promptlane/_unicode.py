"""Characters that make text look other than it is, or that no text file can hold."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

__all__ = ["BIDI_CONTROLS", "SURROGATE", "check_whole", "escape_char", "find_surrogate", "hidden_at"]

BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Invisible characters that reorder the text around them (the "Trojan source" trick): a prompt holding them
reads one way on a terminal and another way to the model."""

_JOINERS = frozenset("\u200c\u200d")
"""Zero-width non-joiner and joiner: part of Persian and Indic words and of emoji sequences between two
visible characters, hidden text anywhere else."""
_BLANK = frozenset("\u034f\u115f\u1160\u3164\uffa0")
"""Characters that are not format characters but show as nothing (the combining grapheme joiner, the Hangul
fillers)."""


def escape_char(char: str) -> str:
    """A character as a Python escape: ``\\x1b``, ``\\u202e``, ``\\U000e0049``."""
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _selector(char: str) -> bool:
    return "\ufe00" <= char <= "\ufe0f" or "\U000e0100" <= char <= "\U000e01ef"


def _visible(char: str) -> bool:
    if char < "\x80":
        return " " < char < "\x7f"
    return char not in _BLANK and unicodedata.category(char)[0] not in "CZ" and not _selector(char)


def _varies(base: str, selector: str, after: str) -> bool:
    """Whether ``selector`` after ``base`` is a variation sequence as text writes one: U+FE00-FE0F after a symbol
    or a letter beyond ASCII (an emoji's U+FE0F), or after a digit, ``#`` or ``*`` in a keycap; U+E0100-E01EF after
    a CJK ideograph. Anywhere else it carries something unseen (one selector can hide a byte)."""
    if selector >= "\U000e0100":
        return any(start <= base <= end for start, end in _IDEOGRAPHS)
    if base < "\x80":
        return base in "0123456789#*" and selector == "\ufe0f" and after == "\u20e3"
    return unicodedata.category(base)[0] in "LS"


_IDEOGRAPHS = (("\u3400", "\u4dbf"), ("\u4e00", "\u9fff"), ("\uf900", "\ufaff"), ("\U00020000", "\U0003134f"))
"""The CJK ideographs, which ideographic variation selectors (U+E0100-E01EF) follow."""


def _hides(char: str) -> bool:
    return char in _BLANK or _selector(char) or unicodedata.category(char) == "Cf"  # bidi controls are Cf


def hidden_at(text: str) -> list[int]:
    """The indices of the characters in ``text`` that a reader does not see but a model reads: bidi controls,
    format characters (zero-width spaces, word joiners, the Unicode tags of "ASCII smuggling", U+FFF9-FFFB),
    blank fillers, and variation selectors and joiners out of place. A variation selector right after a character
    it varies (an emoji's U+FE0F, see :func:`_varies`) and a joiner between two visible characters not both ASCII
    (``\u200d`` in an emoji sequence, ``\u200c`` in a Persian word) are text as written; a selector after an
    ASCII letter or another selector, or a joiner next to a space, an ASCII pair or another invisible character,
    hides something."""
    if text.isascii():
        return []
    hidden: list[int] = []
    base = ""  # the visible character the one at hand follows ("" when it follows none)
    selected = False  # a variation selector followed it already
    for index, char in enumerate(text):
        if _visible(char):
            base, selected = char, False
            continue
        after = text[index + 1] if index + 1 < len(text) else ""
        if _selector(char) and base and not selected and _varies(base, char, after):
            selected = True
            continue
        if char in _JOINERS and base and _visible(after) and not (base + after).isascii():
            base = ""
            continue
        if _hides(char):
            hidden.append(index)
        base = ""
    return hidden


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


def check_whole(value: str | None, what: str) -> None:
    """Refuse free text (a push's message, a move's reason) holding half of a surrogate pair: no database can
    store it (a command-line argument whose bytes are not UTF-8 reads as such halves).

    Raises:
        RegistryError: naming ``what``.
    """
    if value and (found := SURROGATE.search(value)) is not None:
        from .errors import RegistryError

        raise RegistryError(
            f"the {what} holds U+{ord(found.group()):04X}, half of a UTF-16 surrogate pair, which cannot be stored"
            " (text that is not UTF-8, on a command line, reads as such halves)"
        )
