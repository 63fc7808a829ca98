"""A frozen spec as its author would write it, and the differences between two, field by field: for
``promptlane show`` and ``diff`` and the web UI's side-by-side diff."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from ._unicode import hidden_at

__all__ = ["FieldDiff", "Row", "authoring_order", "diff_specs", "spec_yaml"]

_FIELD_ORDER = (
    "description", "model", "model_settings", "variables", "template", "messages", "tools", "output_schema",
    "includes",
)  # fmt: skip
_ITEM_ORDER = ("role", "name", "type", "enum", "default", "description", "content", "parameters", "version", "template")


def _ordered(mapping: Mapping[str, Any], order: Sequence[str]) -> dict[str, Any]:
    rank = {key: index for index, key in enumerate(order)}
    return dict(sorted(mapping.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def authoring_order(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A frozen spec (stored with sorted keys) in the order an author writes a prompt file."""
    shown = _ordered(spec, _FIELD_ORDER)
    for key in ("messages", "tools"):
        if key in shown:
            shown[key] = [_ordered(item, _ITEM_ORDER) for item in shown[key]]
    for key in ("variables", "includes"):
        if key in shown:
            shown[key] = {name: _ordered(item, _ITEM_ORDER) for name, item in shown[key].items()}
    return shown


def spec_yaml(spec: Mapping[str, Any]) -> str:
    """YAML of a spec, in authoring order (multi-line strings as blocks)."""
    return to_yaml(authoring_order(spec))


def to_yaml(value: Any) -> str:
    """``value`` as YAML that reads back as ``value`` and shows every character a reader would not see escaped
    (a string holding one is double-quoted, ``\\u202e``); multi-line strings as blocks."""
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


_FOLDED = frozenset("\x85\u2028\u2029")
"""The line breaks other than ``\\n``: PyYAML's plain and quoted styles fold them, so a string holding one is
written escaped, or the YAML would read back otherwise."""


class _Dumper(yaml.SafeDumper):
    """Unicode as it is, except in a string holding a line break of ``_FOLDED`` or a character it hides (YAML
    counts bidi controls and zero-width characters printable, so they would reorder or hide text of ``promptlane
    show`` on a terminal): that one is double-quoted with every non-ASCII character escaped (``\\u202e``), and
    reads back the same."""

    def analyze_scalar(self, scalar: str) -> Any:
        with self._ascii_if_escaped(scalar):
            return super().analyze_scalar(scalar)

    def write_double_quoted(self, text: str, split: bool = True) -> None:
        with self._ascii_if_escaped(text):
            super().write_double_quoted(text, split)

    @contextmanager
    def _ascii_if_escaped(self, text: str) -> Iterator[None]:
        if _FOLDED.isdisjoint(text) and not hidden_at(text):
            yield
            return
        allowed, self.allow_unicode = self.allow_unicode, False
        try:
            yield
        finally:
            self.allow_unicode = allowed


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def field_text(value: Any) -> str:
    """One field's value as text to compare: a string as it is, anything else as YAML."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return to_yaml(value)


@dataclass(frozen=True)
class Row:
    """One line of a side-by-side diff: the old line, the new line (None where a side has none)."""

    kind: Literal["same", "changed", "removed", "added"]
    before: str | None
    after: str | None


@dataclass
class FieldDiff:
    """The change to one field of a spec."""

    field: str
    before: str
    """The old value as text (empty when the field is new)."""
    after: str
    rows: list[Row] = dataclasses.field(default_factory=list)

    def unified(self, old: str, new: str, context: int = 3) -> list[str]:
        """The change as unified diff lines (without the file header)."""
        lines = difflib.unified_diff(*_both_lines(self.before, self.after), old, new, lineterm="", n=context)
        return list(lines)[2:]


def diff_specs(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldDiff]:
    """The fields that differ between two specs, in authoring order, each with side-by-side rows."""
    old, new = authoring_order(before), authoring_order(after)
    changes = []
    for name in _ordered(dict.fromkeys([*old, *new]), _FIELD_ORDER):
        if old.get(name) == new.get(name):
            continue
        change = FieldDiff(name, field_text(old.get(name)), field_text(new.get(name)))
        change.rows = _rows(*_both_lines(change.before, change.after))
        changes.append(change)
    return changes


def _lines(text: str) -> list[str]:
    """The lines of ``text``, ended by ``\\n`` only: a ``\\r``, ``\\x0b`` or U+2028 stays in its line (shown
    escaped), so that a change of line break is a changed line."""
    return text.removesuffix("\n").split("\n") if text else []


_NO_NEWLINE = "\\ no newline at end"


def _both_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """The lines of two texts; when only one of them ends with a line break, the other's last line is followed
    by ``\\ no newline at end``, so that the difference shows."""
    old, new = _lines(before), _lines(after)
    if before and after and before.endswith("\n") != after.endswith("\n"):
        (new if before.endswith("\n") else old).append(_NO_NEWLINE)
    return old, new


def _rows(before: list[str], after: list[str]) -> list[Row]:
    rows: list[Row] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
        if tag == "equal":
            rows += [Row("same", line, line) for line in before[i1:i2]]
        elif tag == "delete":
            rows += [Row("removed", line, None) for line in before[i1:i2]]
        elif tag == "insert":
            rows += [Row("added", None, line) for line in after[j1:j2]]
        else:
            old, new = before[i1:i2], after[j1:j2]
            for index in range(max(len(old), len(new))):
                left = old[index] if index < len(old) else None
                right = new[index] if index < len(new) else None
                kind = "changed" if left is not None and right is not None else "removed" if right is None else "added"
                rows.append(Row(kind, left, right))
    return rows
