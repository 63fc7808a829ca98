"""Plain-text tables and safe single lines for the terminal.

A cell is whatever a registry holds: a prompt's description, a reason, a model's output. It may come from
someone else (a shared registry, a hostile prompt file), so it is printed as text, never as terminal input:
control characters (newlines, tabs, ESC, bidi overrides) are shown escaped, so that a cell cannot break the
table's layout, move the cursor or recolour the terminal. Columns are as wide as their widest cell (a wide CJK
character counts two), separated by two spaces; nothing is truncated or wrapped, whatever the terminal's width.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Iterable, Sequence

from .._unicode import BIDI_CONTROLS

__all__ = ["format_table", "printable", "width"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in BIDI_CONTROLS


def printable(text: str, *, multiline: bool = False) -> str:
    """``text`` with its control characters escaped (``\\n``, ``\\x1b``, ``\\u202e``); with ``multiline``, line
    breaks and tabs are kept (an error message of several lines)."""
    if text.isprintable():  # the usual case, and a fast one
        return text
    keep = "\n\t" if multiline else ""
    return "".join(_escaped(char) if char not in keep and _unsafe(char) else char for char in text)


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
