"""YAML loading that remembers where every key and value came from, so errors can name the line.

For string values it also remembers where each line of the *string* sits in the file, which differs from
"start line + n" for folded (``>``), quoted and plain multi-line scalars; template errors use it to report
the file line of a template line.

Every YAML promptlane reads (prompt, scenario and dataset files, editor fields, ``--vars-file``) is untrusted: a
few hundred bytes of aliases can expand to billions of values ("billion laughs"), and deep nesting exhausts the
parser's recursion. Documents are therefore composed first and measured as they would expand, without expanding
them, and refused past :data:`MAX_VALUES` values or :data:`MAX_DEPTH` levels, with the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ._unicode import SURROGATE
from .errors import SpecError

__all__ = ["MAX_DEPTH", "MAX_VALUES", "Position", "YamlDocument", "format_key", "load_data", "load_yaml"]

MAX_VALUES = 200_000
"""Values (scalars and containers) a document may hold once its aliases are expanded, each use counted."""
MAX_DEPTH = 100
"""Containers a document may nest in one another."""


@dataclass(frozen=True)
class Position:
    """Where a value starts in its file."""

    line: int
    """1-based line of the value (of its key, for containers)."""
    lines: tuple[int, ...] = ()
    """For a string: the file line where each of its lines starts (index 0 is the string's first line)."""
    end: int = 0
    """For a string: the file line where it ends."""

    def content_line(self, line_in_value: int) -> int:
        """The file line of line ``line_in_value`` (1-based) of a string value."""
        if not self.lines:
            return self.line
        return self.lines[min(max(line_in_value, 1), len(self.lines)) - 1]

    def content_span(self, line_in_value: int) -> range:
        """The file lines that line ``line_in_value`` of a string value spans (several, once folded)."""
        start = self.content_line(line_in_value)
        following = [line for line in self.lines if line > start]
        return range(start, (following[0] - 1 if following else max(self.end, start)) + 1)


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML document and the position of each value by its key path."""

    path: Path
    """The file it was read from."""
    data: Any
    """The parsed document."""
    positions: dict[tuple[str, ...], Position]
    """Position of every value by its key path (keys and indices as strings); () is the document."""
    source: tuple[str, ...] = ()
    """The file's lines."""

    def position(self, loc: Sequence[str | int]) -> Position | None:
        """The position of the deepest known prefix of ``loc``."""
        found = self.positions.get(())
        key: tuple[str, ...] = ()
        for part in loc:
            key = (*key, str(part))
            found = self.positions.get(key, found)
        return found

    def line(self, loc: Sequence[str | int]) -> int | None:
        """The 1-based line of ``loc``, or of its deepest known parent."""
        position = self.position(loc)
        return position.line if position else None

    def find_line(self, loc: Sequence[str | int], line_in_value: int, pattern: re.Pattern[str]) -> int | None:
        """The file line, among those line ``line_in_value`` of the string at ``loc`` spans, where ``pattern``
        first matches; the span's first line if it matches nowhere."""
        position = self.position(loc)
        if position is None:
            return None
        span = position.content_span(line_in_value)
        for line in span:
            if 0 < line <= len(self.source) and pattern.search(self.source[line - 1]):
                return line
        return span.start

    def error(self, message: str, loc: Sequence[str | int] = ()) -> SpecError:
        """A SpecError at ``loc`` in this file."""
        return SpecError(message, path=self.path, line=self.line(loc), key=format_key(loc) or None)


def format_key(loc: Sequence[str | int]) -> str:
    """``('messages', 0, 'content')`` -> ``messages.0.content``."""
    return ".".join(str(part) for part in loc)


def load_yaml(text: str, path: Path) -> YamlDocument:
    """Parse one YAML document, recording positions.

    Raises:
        SpecError: invalid YAML, a key written twice in one mapping, or a document too big once its aliases are
            expanded or nested too deeply, naming the line.
    """
    node, data = _load(text, path)
    positions: dict[tuple[str, ...], Position] = {}
    indexer = _Indexer(text, path, positions)
    if node is not None:
        indexer.index(node, ())
    return YamlDocument(path=path, data=data, positions=positions, source=tuple(indexer.source))


def load_data(text: str | bytes, path: Path | str | None = None) -> Any:
    """The data of one YAML document (no positions), under the same limits as :func:`load_yaml`.

    Raises:
        SpecError: invalid YAML, too big once expanded, or nested too deeply (naming ``path`` and the line).
    """
    return _load(text, path)[1]


def _load(text: str | bytes, path: Path | str | None) -> tuple[yaml.Node | None, Any]:
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # a character YAML allows nowhere in a file, or bytes not UTF-8
        if exc.encoding != "unicode":
            raise SpecError(f"not {exc.encoding} text", path=path) from None
        decoded = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise SpecError(
            f"invalid YAML: the character U+{exc.character:04X} may not appear in a YAML file; inside double quotes,"
            f" write it as the escape \\u{exc.character:04x}",
            path=path,
            line=decoded[: exc.position].count("\n") + 1,
        ) from None
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_expansion(node, path)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, path, text if isinstance(text, str) else text.decode("utf-8", "replace")) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", path=path) from None
    except RecursionError:
        raise SpecError(f"invalid YAML: nested more than {MAX_DEPTH} levels deep", path=path) from None
    finally:
        loader.dispose()
    return node, data


def _check_expansion(root: yaml.Node, path: Path | str | None) -> None:
    """Refuse a document that expands past MAX_VALUES values or nests past MAX_DEPTH containers, measured on
    the composed graph (where an alias is a shared node) in time linear in its size: never expanded."""
    sizes: dict[int, int] = {}  # id(node) -> values once expanded
    open_nodes: set[int] = set()  # the nodes on the path from the root to the one at hand
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if not children_done:
            if key in open_nodes:
                raise SpecError("invalid YAML: an alias refers to itself", path=path, line=node.start_mark.line + 1)
            if len(open_nodes) >= MAX_DEPTH:
                raise SpecError(
                    f"invalid YAML: nested more than {MAX_DEPTH} levels deep", path=path, line=node.start_mark.line + 1
                )
            if isinstance(node, yaml.ScalarNode):
                _whole_characters(node, path)
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        open_nodes.discard(key)
        values = 1 + sum(sizes[id(child)] for child in children)
        if values > MAX_VALUES:
            raise SpecError(
                f"invalid YAML: this value expands to more than {MAX_VALUES} values (aliases count each time they "
                "are used)",
                path=path,
                line=node.start_mark.line + 1,
            )
        sizes[key] = values


def _whole_characters(node: yaml.ScalarNode, path: Path | str | None) -> None:
    """PyYAML reads the escapes of a UTF-16 surrogate pair (``"\\ud83d\\ude00"``, as JSON writes a character past
    U+FFFF) as two halves, which no file, database or terminal can store: a pair becomes the one character it
    stands for, and a half without its other half is refused, naming the line."""
    value = node.value
    if not isinstance(value, str) or SURROGATE.search(value) is None:
        return
    units = value.encode("utf-16-le", "surrogatepass")
    try:
        node.value = units.decode("utf-16-le")
    except UnicodeDecodeError as exc:
        half = units[exc.start : exc.start + 2].decode("utf-16-le", "surrogatepass")
        raise SpecError(
            f"invalid YAML: the escape \\u{ord(half):04x} is half of a UTF-16 surrogate pair, without its other half;"
            " write the character itself, or escape it whole as \\UXXXXXXXX",
            path=path,
            line=node.start_mark.line + 1,
        ) from None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _yaml_error(exc: yaml.MarkedYAMLError, path: Path | str | None, text: str) -> SpecError:
    reason = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
    mark = exc.problem_mark or exc.context_mark
    last_line = max(len(text.splitlines()), 1)
    # A problem found at the end of the file is about something left open (an unclosed quote or bracket):
    # where it began helps more than the end, which may even be a line past the last one.
    if mark is not None and mark.line + 1 > last_line and exc.context_mark is not None:
        mark = exc.context_mark
    line = min(mark.line + 1, last_line) if mark is not None else None
    return SpecError(f"invalid YAML: {reason}", path=path, line=line)


class _Indexer:
    def __init__(self, text: str, path: Path, positions: dict[tuple[str, ...], Position]) -> None:
        self.source = text.splitlines()
        self.path = path
        self.positions = positions

    def index(self, node: yaml.Node, key: tuple[str, ...]) -> None:
        self.positions.setdefault(key, self._position(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                name = str(key_node.value)
                line = key_node.start_mark.line + 1
                if name in seen and name != "<<":
                    raise SpecError(
                        f"duplicate key {name!r} (first on line {seen[name]})",
                        path=self.path,
                        line=line,
                        key=format_key((*key, name)),
                    )
                seen[name] = line
                child = (*key, name)
                # A container value is located at its key; a scalar at itself.
                if isinstance(value_node, yaml.ScalarNode):
                    self.positions[child] = self._position(value_node)
                else:
                    self.positions[child] = Position(line)
                self.index(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.index(item, (*key, str(index)))

    def _position(self, node: yaml.Node) -> Position:
        line = node.start_mark.line + 1
        if not isinstance(node, yaml.ScalarNode) or (node.style not in ("|", ">") and "\n" not in str(node.value)):
            return Position(line)
        return Position(line, self._string_lines(node), node.end_mark.line + 1)

    def _string_lines(self, node: yaml.ScalarNode) -> tuple[int, ...]:
        """File line of each line of a multi-line string value."""
        first, last = node.start_mark.line, node.end_mark.line  # 0-based
        count = str(node.value).count("\n") + 1
        if node.style == "|":
            # Literal: one file line per string line, starting below the `|` indicator.
            return tuple(first + 2 + i for i in range(count))
        # Folded, quoted and plain scalars: a line break between two text lines folds into a space, and a run
        # of n empty lines is n newlines (the last of which starts the next text line); in double quotes,
        # each `\n` escape is one more.
        start = first + 1 if node.style == ">" else first
        lines = [start + 1]
        blanks: list[int] = []
        for offset, raw in enumerate(self.source[start : last + 1]):
            file_line = start + offset + 1
            if offset and not raw.strip():
                blanks.append(file_line)
                continue
            if blanks:
                lines.extend(blanks[1:])
                lines.append(file_line)
                blanks = []
            if node.style == '"':
                lines.extend(file_line for _ in range(_escaped_newlines(raw)))
        lines = lines[:count]
        return tuple(lines + [lines[-1]] * (count - len(lines)))


def _escaped_newlines(raw: str) -> int:
    count, index = 0, 0
    while index < len(raw) - 1:
        if raw[index] == "\\":
            count += raw[index + 1] == "n"
            index += 2
        else:
            index += 1
    return count
