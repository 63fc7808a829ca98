"""The command line's plain-text tables: aligned columns, nothing truncated, and cells that cannot break the layout
or drive the terminal, whatever a registry holds."""

from __future__ import annotations

import io
import sys

import pytest

from promptlane.cli._app import literal
from promptlane.cli._table import format_table, printable, width


def test_columns_are_as_wide_as_their_widest_cell_two_spaces_apart() -> None:
    text = format_table(("name", "cases", "note"), [("refund", "1", "ok"), ("no-order", "12", "")], right=(1,))
    assert text.splitlines() == [
        "name      cases  note",
        "refund        1  ok",
        "no-order     12",
    ]


def test_title_and_indent() -> None:
    text = format_table(("part", "state"), [("version", "current")], indent="  ", title="parts")
    assert text == "parts\n  part     state\n  version  current\n"


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("two\nlines", "two\\nlines"),
        ("carriage\rreturn", "carriage\\rreturn"),
        ("tab\there", "tab\\there"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),  # no colour, no cursor moves
        ("bell\x07", "bell\\x07"),
        ("c1\x9b31m", "c1\\x9b31m"),  # the one-byte CSI
        ("\u202eevil", "\\u202eevil"),  # a bidi override would reverse what follows
        ("line\u2028sep", "line\\u2028sep"),
        ("[bold]markup[/bold]", "[bold]markup[/bold]"),  # printed as written
        ("Zürich 東京", "Zürich 東京"),
    ],
)
def test_a_hostile_cell_is_escaped_and_stays_on_its_line(cell: str, shown: str) -> None:
    text = format_table(("prompt", "description", "labels"), [("a", cell, "prod"), ("bb", "plain", "-")])
    lines = text.splitlines()
    column = max(width("description"), width(shown))
    assert lines == [
        "prompt  description" + " " * (column - width("description")) + "  labels",
        "a       " + shown + " " * (column - width(shown)) + "  prod",
        "bb      plain" + " " * (column - width("plain")) + "  -",
    ]
    assert text.replace("\n", "").isprintable()


def test_wide_characters_count_two_columns() -> None:
    text = format_table(("name", "next"), [("東京", "x"), ("abcd", "y"), ("e\u0301", "z")])
    # 東京 takes four columns on a terminal, as abcd does; é (e and a combining accent) takes one.
    assert text.splitlines() == ["name  next", "東京  x", "abcd  y", "e\u0301     z"]


def test_nothing_is_truncated_or_wrapped_whatever_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    long = "x" * 500
    text = format_table(("a", "b"), [(long, "end")])
    assert text.splitlines()[1] == f"{long}  end"


def test_printable_keeps_line_breaks_when_asked() -> None:
    assert printable("one\n\ttwo\x1b[2J", multiline=True) == "one\n\ttwo\\x1b[2J"
    assert printable("plain text") == "plain text"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_literal_text_is_unchanged_into_a_pipe_and_escaped_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "Hello\n\x1b]0;owned\x07there"
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert literal(text) == text
    monkeypatch.setattr(sys, "stdout", _Terminal())
    assert literal(text) == "Hello\n\\x1b]0;owned\\x07there"
