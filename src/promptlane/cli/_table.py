"""Plain-text tables and safe single lines for the terminal.

A cell is whatever a registry holds: a prompt's description, a reason, a model's output. It may come from
someone else (a shared registry, a hostile prompt file), so it is printed as text, never as terminal input:
control characters (newlines, tabs, ESC) and the characters that hide text (bidi overrides, zero-width and
tag characters) are shown escaped, so that a cell cannot break the table's layout, move the cursor, recolour the
terminal or say other than it holds. Columns are as wide as their widest cell (a wide CJK
character counts two), separated by two spaces; nothing is truncated or wrapped, whatever the terminal's width.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Collection, Iterable, Sequence

from .._unicode import escape_char, hidden_at

__all__ = ["format_table", "printable", "printable_json", "width"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    return _NAMED.get(char) or escape_char(char)


def printable(text: str, *, multiline: bool = False) -> str:
    """``text`` with its control characters and the characters it hides escaped (``\\n``, ``\\x1b``,
    ``\\u202e``, ``\\U000e0049``: see :func:`~promptlane._unicode.hidden_at`); with ``multiline``, line breaks
    and tabs are kept (an error message of several lines)."""
    if text.isascii() and text.isprintable():  # the usual case, and a fast one
        return text
    keep = "\n\t" if multiline else ""
    hidden = set(hidden_at(text))
    return "".join(
        _escaped(char)
        if index in hidden or (char not in keep and unicodedata.category(char) in ("Cc", "Zl", "Zp"))
        else char
        for index, char in enumerate(text)
    )


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def printable_json(text: str) -> str:
    """JSON text (written with ``ensure_ascii=False``) with the characters its strings hide escaped as JSON
    escapes (``\\u202e``, ``\\udb40\\udc49``): the same data, which cannot reorder or hide text on a terminal."""
    if text.isascii():
        return text

    def escape(match: re.Match[str]) -> str:
        literal = match.group()
        hidden = {index + 1 for index in hidden_at(literal[1:-1])}  # the string's text, without its quotes
        if not hidden:
            return literal
        return "".join(json.dumps(char)[1:-1] if index in hidden else char for index, char in enumerate(literal))

    return _JSON_STRING.sub(escape, text)


def width(text: str) -> int:
    """Columns ``text`` takes on a terminal: two for a wide (CJK) character, none for a combining mark."""
    if text.isascii():
        return len(text)
    total = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        total += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return total


def format_table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    right: Collection[int] = (),
    indent: str = "",
    title: str | None = None,
) -> str:
    """The lines of a table (each ending with a newline): ``title`` on a line of its own, the header, then the
    rows; the columns whose index is in ``right`` aligned right (numbers), the others left; every line starts
    with ``indent``. Every cell goes through :func:`printable`."""
    table = [[printable(cell) for cell in header], *([printable(cell) for cell in row] for row in rows)]
    widths = [max(width(line[index]) for line in table) for index in range(len(header))]
    lines = [] if title is None else [printable(title)]
    for line in table:
        cells = []
        for index, cell in enumerate(line):
            pad = " " * (widths[index] - width(cell))
            cells.append(pad + cell if index in right else cell + pad)
        lines.append((indent + "  ".join(cells)).rstrip())
    return "".join(line + "\n" for line in lines)
