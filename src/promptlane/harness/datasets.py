"""Dataset rows for scenarios, read one at a time: a 100,000-row file is never held in memory.

JSONL (one object a line) and CSV (a header row) stream; YAML (a list of mappings) is read whole, so use
JSONL or CSV for big datasets. Every row error names the file and line.

A scenario file names its dataset by a path relative to its own folder; :func:`resolve_dataset` keeps that path
inside the project (or a folder the settings allow), so a scenario file pushed or edited through the server
cannot make it read the server's other files.

The columns of a dataset, for the check made before a run, cost a row: a CSV file's header names them all; a
JSONL file's first row names those of the first row, and only when that is not enough (a column the run
needs is missing from it) does :func:`all_columns` read the whole file for the union of its rows' keys.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._unicode import find_surrogate
from .._yaml import load_yaml
from ..errors import SpecError

__all__ = [
    "FirstColumns",
    "Row",
    "all_columns",
    "count_rows",
    "first_columns",
    "iter_rows",
    "resolve_dataset",
    "row_lines",
]


@dataclass(slots=True)
class Row:
    """One dataset row."""

    index: int
    """1-based position among the rows (``tickets[row-3]``)."""
    line: int
    """Line in the file where it starts."""
    values: dict[str, Any]
    """Column -> value."""


def resolve_dataset(scenario_file: Path, name: str, *, roots: Sequence[Path]) -> Path:
    """The dataset a scenario file names, if it lies inside one of ``roots``.

    The path is joined to the scenario file's folder, then resolved (``..`` and every symbolic link on the
    way) before it is compared, so ``../../etc/passwd``, an absolute path and a link pointing out of the
    project are all refused, whether or not the file they name exists: the error does not tell which.

    Args:
        scenario_file: The scenario file that names the dataset.
        name: The path as written in the file.
        roots: The folders allowed: the project root, then the settings' ``dataset_roots``
            (:attr:`~promptlane.config.Settings.dataset_root_dirs`).

    Returns:
        The path as joined (not resolved), for messages that name it as the author wrote it.

    Raises:
        SpecError: the path resolves outside every root; the caller adds the scenario file's line.
    """
    path = scenario_file.parent / name
    real = path.resolve()
    if any(real.is_relative_to(root.resolve()) for root in roots):
        return path
    # Named only when a symbolic link took it there: the author wrote the rest.
    link = f" (a symbolic link to {real})" if real != Path(os.path.abspath(path)) else ""
    raise SpecError(
        f"dataset {name}{link} is outside the project folder: a dataset is read only from the project, or from "
        "a folder listed in the `dataset_roots` setting",
        path=scenario_file,
    )


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


def iter_rows(path: Path, variables: Mapping[str, Mapping[str, Any]] | None = None) -> Generator[Row, None, None]:
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


def _whole_characters(values: Any, path: Path, line: int) -> None:
    """Refuse half of a surrogate pair (a lone ``\\ud800`` JSON escape): no run record could store it."""
    if (found := find_surrogate(values)) is not None:
        loc, half = found
        raise SpecError(
            f"U+{ord(half):04X} is half of a UTF-16 surrogate pair, without its other half: write the character"
            " itself, or escape both halves",
            path=path,
            line=line,
            key=".".join(map(str, loc)) or None,
        )


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
            if "\\u" in line:
                _whole_characters(values, path, line_number)
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
            # A short row lacks its last columns (the reader pads them with None): the row has no such column,
            # which is not the same as a cell holding a value.
            values = {
                column: _coerce(cell, variables.get(column, {}).get("type"))
                for column, cell in record.items()
                if cell is not None
            }
            if any("\\u" in cell for cell in record.values() if cell):  # a JSON cell's escapes
                _whole_characters(values, path, start)
            yield Row(index=index, line=start, values=values)


def _yaml(path: Path) -> Iterator[Row]:
    document = load_yaml(path.read_text(encoding="utf-8-sig"), path)
    if not isinstance(document.data, list):
        raise document.error("a YAML dataset is a list of mappings")
    for index, values in enumerate(document.data, start=1):
        if not isinstance(values, dict):
            raise document.error("a row must be a mapping", (index - 1,))
        yield Row(index=index, line=document.line((index - 1,)) or 1, values=values)


def row_lines(path: Path) -> Iterator[int]:
    """The line where each row starts, in order, without keeping the rows (JSONL lines are not parsed)."""
    if path.suffix.lower() == ".jsonl":
        with path.open(encoding="utf-8-sig") as file:
            yield from (number for number, line in enumerate(file, start=1) if line.strip())
    else:
        yield from (row.line for row in iter_rows(path))


def count_rows(path: Path) -> int:
    """The number of rows, without keeping them (for progress and planning)."""
    return sum(1 for _ in row_lines(path))


@dataclass(frozen=True)
class FirstColumns:
    """The columns a dataset shows before any row is run."""

    columns: frozenset[str]
    """The CSV header, the first JSONL row's keys, or every YAML row's keys."""
    complete: bool
    """True when no row can have another column (CSV, YAML); False for JSONL, whose rows each have their own."""
    line: int | None
    """Where they were read: the CSV header's line, the first JSONL row's line; None for YAML."""


def first_columns(path: Path) -> FirstColumns | None:
    """The columns the header or the first row names (None for a dataset without rows or header)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            with path.open(encoding="utf-8-sig", newline="") as file:
                header = next(csv.reader(file), None)
        except OSError as exc:
            raise SpecError(f"cannot read: {exc.strerror}", path=path) from None
        except UnicodeDecodeError:
            raise SpecError("not UTF-8 text", path=path) from None
        return FirstColumns(columns=frozenset(header), complete=True, line=1) if header else None
    if suffix in (".yaml", ".yml"):
        rows = list(iter_rows(path))  # a YAML dataset is read whole anyway
        keys = frozenset(column for row in rows for column in row.values)
        return FirstColumns(columns=keys, complete=True, line=None) if rows else None
    rows = iter_rows(path)
    try:
        first = next(rows, None)
    finally:
        rows.close()
    return None if first is None else FirstColumns(columns=frozenset(first.values), complete=False, line=first.line)


def all_columns(path: Path) -> frozenset[str]:
    """Every column some row has: one pass over the file, keeping only the keys. Lines that do not parse are
    passed over (the run reports them, at their line)."""
    if path.suffix.lower() != ".jsonl":
        first = first_columns(path)
        return first.columns if first is not None else frozenset()
    keys: set[str] = set()
    try:
        with path.open(encoding="utf-8-sig") as file:
            for line in file:
                if line.strip():
                    try:
                        values = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(values, dict):
                        keys.update(values)
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror}", path=path) from None
    except UnicodeDecodeError:
        raise SpecError("not UTF-8 text", path=path) from None
    return frozenset(keys)
