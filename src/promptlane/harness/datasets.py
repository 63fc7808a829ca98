"""Dataset rows for scenarios, read one at a time: a 100,000-row file is never held in memory.

JSONL (one object a line) and CSV (a header row) stream; YAML (a list of mappings) is read whole, so use
JSONL or CSV for big datasets. Every row error names the file and line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._yaml import load_yaml
from ..errors import SpecError

__all__ = ["Row", "count_rows", "iter_rows"]


@dataclass(slots=True)
class Row:
    """One dataset row."""

    index: int
    """1-based position among the rows (``tickets[row-3]``)."""
    line: int
    """Line in the file where it starts."""
    values: dict[str, Any]
    """Column -> value."""


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def _coerce(value: str, kind: Any) -> Any:
    """A CSV cell as the variable's declared type (CSV has only text); left as text when it does not convert
    (the variables check then names the column and the expected type)."""
    kinds = [kind] if isinstance(kind, str) else list(kind or [])
    if not kinds or "string" in kinds:
        return value  # an empty cell is an empty string when strings are allowed
    if value == "" and "null" in kinds:
        return None
    text = value.strip()
    for name, convert in (("integer", int), ("number", _number)):
        if name in kinds:
            try:
                return convert(text)
            except ValueError:
                pass
    if "boolean" in kinds and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    if {"array", "object"} & set(kinds):
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def iter_rows(path: Path, variables: Mapping[str, Mapping[str, Any]] | None = None) -> Iterator[Row]:
    """The rows of a dataset file, in order.

    Args:
        path: A .jsonl, .csv, .yaml or .yml file.
        variables: The prompt's variables schema; CSV cells of declared non-string variables are converted.

    Raises:
        SpecError: a row that is not a mapping or does not parse, naming the file and line.
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            yield from _jsonl(path)
        elif suffix == ".csv":
            yield from _csv(path, variables or {})
        elif suffix in (".yaml", ".yml"):
            yield from _yaml(path)
        else:
            raise SpecError("a dataset is a .jsonl, .csv or .yaml file", path=path)
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror}", path=path) from None
    except UnicodeDecodeError:
        raise SpecError("not UTF-8 text", path=path) from None


def _jsonl(path: Path) -> Iterator[Row]:
    index = 0
    with path.open(encoding="utf-8-sig") as file:  # -sig: a byte order mark is not part of the data
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                values = json.loads(line)
            except ValueError as exc:
                raise SpecError(f"invalid JSON: {exc}", path=path, line=line_number) from None
            if not isinstance(values, dict):
                raise SpecError("a row must be a JSON object", path=path, line=line_number)
            index += 1
            yield Row(index=index, line=line_number, values=values)


def _csv(path: Path, variables: Mapping[str, Mapping[str, Any]]) -> Iterator[Row]:
    with path.open(encoding="utf-8-sig", newline="") as file:  # Excel's "CSV UTF-8" starts with a byte order mark
        reader = csv.DictReader(file)
        if not reader.fieldnames:
            return
        if len(set(reader.fieldnames)) != len(reader.fieldnames):
            raise SpecError("the header names a column twice", path=path, line=1)
        for index, record in enumerate(reader, start=1):
            # The reader is past the row's last line; a quoted cell may span lines: report the first.
            start = reader.line_num - sum(str(cell).count("\n") for cell in record.values() if cell is not None)
            if None in record:
                raise SpecError("the row has more cells than the header", path=path, line=start)
            values = {
                column: _coerce(cell, variables.get(column, {}).get("type")) if cell is not None else None
                for column, cell in record.items()
            }
            yield Row(index=index, line=start, values=values)


def _yaml(path: Path) -> Iterator[Row]:
    document = load_yaml(path.read_text(encoding="utf-8-sig"), path)
    if not isinstance(document.data, list):
        raise document.error("a YAML dataset is a list of mappings")
    for index, values in enumerate(document.data, start=1):
        if not isinstance(values, dict):
            raise document.error("a row must be a mapping", (index - 1,))
        yield Row(index=index, line=document.line((index - 1,)) or 1, values=values)


def count_rows(path: Path) -> int:
    """The number of rows, without keeping them (for progress and planning)."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open(encoding="utf-8-sig") as file:
            return sum(1 for line in file if line.strip())
    return sum(1 for _ in iter_rows(path))
