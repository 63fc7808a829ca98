"""JSON Schema (draft 2020-12) for render variables: the keywords a variable's schema may use, the bounds it must
stay within, its compilation by jsonschema-rs, and its failures in plain words.

Why jsonschema-rs: it validates in Rust without generating code from the schema (a hostile ``pattern``, property
name or ``default`` is only ever data), its regex engine runs in linear time (no catastrophic backtracking: a
pattern it cannot run that way, with lookaround or backreferences, is refused when the schema is compiled), it
fetches nothing here (every ``$ref`` must point inside the schema, and the retriever refuses), and it is faster
on the render path than the hand-written checker it replaced (``bench/sdk.py``).

promptlane's own rules are written into the schema it compiles:
- an object schema with ``properties`` and no ``required`` requires every property that has no ``default``;
- ``type: integer`` takes ints only: JSON Schema also counts ``1.0``, which a template would print as "1.0".
"""

from __future__ import annotations

import difflib
import math
import operator
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from typing import Any
from urllib.parse import unquote

import jsonschema_rs

from ._unicode import find_surrogate

__all__ = [
    "FORMATS",
    "KEYWORDS",
    "CompiledSchema",
    "OutputSchema",
    "SchemaProblem",
    "check_bounds",
    "compile_output_schema",
    "compile_schema",
    "format_problem",
    "pattern_problem",
    "ref_problem",
    "unknown_keyword",
]

SUBSCHEMA = frozenset(
    {
        "items", "contains", "additionalProperties", "propertyNames", "if", "then", "else", "not",
        "unevaluatedItems", "unevaluatedProperties", "contentSchema",
    }
)  # fmt: skip
"""Keywords whose value is one schema."""
SUBSCHEMA_LISTS = frozenset({"prefixItems", "allOf", "anyOf", "oneOf"})
"""Keywords whose value is a list of schemas."""
SUBSCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
"""Keywords whose value maps names to schemas."""
ANNOTATIONS = frozenset(
    {
        "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly", "$comment",
        "contentEncoding", "contentMediaType", "contentSchema",
    }
)  # fmt: skip
"""Keywords that check nothing."""
KEYWORDS = (
    SUBSCHEMA
    | SUBSCHEMA_LISTS
    | SUBSCHEMA_MAPS
    | ANNOTATIONS
    | {
        "$ref", "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
        "maxLength", "minLength", "pattern", "format", "maxItems", "minItems", "uniqueItems", "maxContains",
        "minContains", "maxProperties", "minProperties", "required", "dependentRequired",
    }
)  # fmt: skip
"""Every keyword a variable's schema may use: draft 2020-12's, less those that name or fetch other documents
(``$id``, ``$schema``, ``$anchor``, ``$dynamicRef``, ``$dynamicAnchor``, ``$vocabulary``)."""

_RENAMED = {
    "definitions": "draft 2020-12 calls it '$defs'",
    "dependencies": "draft 2020-12 splits it into 'dependentRequired' and 'dependentSchemas'",
    "additionalItems": "draft 2020-12 writes 'items' after 'prefixItems'",
    "$id": "a variable's schema is one document, refer inside it with $ref: '#/$defs/NAME'",
    "$schema": "a variable's schema is always draft 2020-12",
    "$anchor": "refer with a JSON pointer instead: $ref: '#/$defs/NAME'",
    "$dynamicRef": "refer with a JSON pointer instead: $ref: '#/$defs/NAME'",
    "$dynamicAnchor": "refer with a JSON pointer instead: $ref: '#/$defs/NAME'",
}

FORMATS = {
    "date": "date (YYYY-MM-DD)",
    "date-time": "date-time (RFC 3339, like 2024-05-01T12:00:00Z)",
    "time": "time (RFC 3339, like 12:00:00Z)",
    "duration": "duration (ISO 8601, like P3D)",
    "email": "email address",
    "idn-email": "email address",
    "hostname": "hostname",
    "idn-hostname": "hostname",
    "ipv4": "IPv4 address",
    "ipv6": "IPv6 address",
    "uri": "URI",
    "uri-reference": "URI reference",
    "iri": "IRI",
    "iri-reference": "IRI reference",
    "uri-template": "URI template",
    "json-pointer": "JSON pointer",
    "relative-json-pointer": "relative JSON pointer",
    "uuid": "UUID",
}
"""The formats checked at render, each with what a value must be."""

MAX_DEPTH = 32
"""Schemas nested in schemas, at most."""
MAX_SUBSCHEMAS = 1000
"""Schemas in one variable's schema, at most."""
MAX_PATTERNS = 64
"""Regular expressions (``pattern``, ``patternProperties``) in the variables of one prompt, at most."""
MAX_VALUE_DEPTH = 100
"""Levels of containers, at most, in a value checked by a schema that refers to itself (deeper, the validator
would overflow its stack; the same bound as YAML's)."""
MAX_PATTERN_LENGTH = 1000
"""Characters of one regular expression, at most."""
REGEX_SIZE = 256 * 1024
"""Bytes one compiled regular expression (and its matching cache) may take: with MAX_PATTERNS, a prompt's regexes
stay within tens of megabytes whatever its author wrote."""

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REGEX = jsonschema_rs.RegexOptions(size_limit=REGEX_SIZE, dfa_size_limit=REGEX_SIZE)
_INTEGER = "promptlane:integer"
"""The keyword added beside ``type: integer`` (not a name an author can write: the schema's keys are checked)."""
_NOT_JSON = math.nan
"""What a value that is not JSON data is checked as: a number that no type, enum or const accepts."""


class SchemaProblem(ValueError):
    """A schema promptlane cannot check variables against."""

    def __init__(self, message: str, path: Sequence[str | int] = ()) -> None:
        super().__init__(message)
        self.message = message
        """What is wrong."""
        self.path = tuple(path)
        """Where, as keys from the variable's schema down (``("properties", "code", "pattern")``)."""


def unknown_keyword(key: str) -> str:
    """The message for a key that is no keyword of a variable's schema."""
    if key in _RENAMED:
        return f"unknown key {key!r} ({_RENAMED[key]})"
    close = difflib.get_close_matches(key, sorted(KEYWORDS), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "a variable's schema takes JSON Schema (draft 2020-12) keywords"
    return f"unknown key {key!r} ({hint})"


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be checked at render, or None when it can."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"pattern is {len(pattern)} characters long, over the limit of {MAX_PATTERN_LENGTH}"
    if _compiles(pattern, _REGEX):
        return None
    if _compiles(pattern, jsonschema_rs.RegexOptions()):
        return (
            f"pattern {pattern!r} compiles to more than {REGEX_SIZE // 1024} KiB (a counted repetition of a large "
            "class, like [\\p{L}]{1,100}, is better written with + and a maxLength)"
        )
    if _compiles(pattern, jsonschema_rs.FancyRegexOptions()):
        return f"pattern {pattern!r} uses lookaround or a backreference, which the linear-time regex engine lacks"
    return f"invalid pattern {pattern!r}: not a regular expression (ECMA-262 syntax)"


def _compiles(pattern: str, options: jsonschema_rs.RegexOptions | jsonschema_rs.FancyRegexOptions) -> bool:
    try:
        jsonschema_rs.Draft202012Validator({"pattern": pattern}, pattern_options=options)
    except jsonschema_rs.ValidationError:
        return False
    return True


def format_problem(name: str) -> str | None:
    """Why ``format: name`` cannot be checked at render, or None when it can."""
    if name in FORMATS:
        return None
    close = difflib.get_close_matches(name, list(FORMATS), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"format {name!r} is not one promptlane checks ({hint}checked: {', '.join(FORMATS)})"


def ref_problem(ref: object) -> str | None:
    """Why ``$ref: ref`` is refused: only references inside the schema (``#``, ``#/$defs/...``) resolve, so that
    nothing that validates against it (every application rendering the prompt) fetches what its author chose."""
    if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")):
        return None
    return (
        f"$ref {ref!r} points outside the schema: only references inside it resolve (#/$defs/NAME); "
        "promptlane never fetches a schema"
    )


def subschemas(node: Mapping[str, Any]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """The schemas directly inside ``node``, each with its path from it."""
    for key, value in node.items():
        if key in SUBSCHEMA:
            yield (key,), value
        elif key in SUBSCHEMA_LISTS and isinstance(value, list):
            for index, item in enumerate(value):
                yield (key, index), item
        elif key in SUBSCHEMA_MAPS and isinstance(value, Mapping):
            for name, item in value.items():
                yield (key, name), item


def _patterns(node: Mapping[str, Any]) -> int:
    keys = node.get("patternProperties")
    return ("pattern" in node) + (len(keys) if isinstance(keys, Mapping) else 0)


def check_bounds(schema: Any) -> SchemaProblem | None:
    """The first bound ``schema`` (a variable's, as written: anything) goes over, or None. Cheap: it runs before
    anything else reads the schema."""
    count = patterns = 0
    stack: list[tuple[tuple[str | int, ...], Any, int]] = [((), schema, 0)]
    while stack:
        path, node, depth = stack.pop()
        if not isinstance(node, Mapping):
            continue
        if depth > MAX_DEPTH:
            return SchemaProblem(f"schemas nested more than {MAX_DEPTH} levels deep", path)
        count += 1
        if count > MAX_SUBSCHEMAS:
            return SchemaProblem(f"the schema holds more than {MAX_SUBSCHEMAS} schemas")
        patterns += _patterns(node)
        if patterns > MAX_PATTERNS:
            return SchemaProblem(f"the schema holds more than {MAX_PATTERNS} regular expressions (pattern, ...)")
        stack.extend(((*path, *sub), child, depth + 1) for sub, child in subschemas(node))
    return None


def _target(schema: Any, ref: str) -> tuple[str | int, ...]:
    """Where the local ``ref`` points in ``schema``; KeyError/IndexError/ValueError/TypeError if at nothing."""
    node: Any = schema
    path: list[str | int] = []
    for raw in ref[2:].split("/") if ref != "#" else ():
        key = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(key)]
            path.append(int(key))
        else:
            node = node[key]
            path.append(key)
    if not isinstance(node, (Mapping, bool)):
        raise ValueError(ref)
    return tuple(path)


def _recursive(schema: Any) -> bool:
    """Whether ``schema`` reaches itself through ``$ref`` (a tree, a linked list): the validator then descends
    as deep as a value goes, and a deep enough value would overflow its (native) stack."""
    edges: dict[tuple[str | int, ...], list[tuple[str | int, ...]]] = {}
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), schema)]
    while stack:
        path, node = stack.pop()
        edges[path] = []
        if isinstance(node, Mapping):
            edges[path] = [(*path, *sub) for sub, _ in subschemas(node)]
            if isinstance(node.get("$ref"), str):
                edges[path].append(_target(schema, node["$ref"]))
            stack.extend(((*path, *sub), child) for sub, child in subschemas(node))
    if any(target not in edges for targets in edges.values() for target in targets):
        return True  # a reference to a mapping that is no schema of it: read as one, it could hold anything
    done: set[tuple[str | int, ...]] = set()
    for start in edges:
        on_path, walk = {start}, [(start, iter(edges[start]))]
        while walk:
            node, targets = walk[-1]
            target = next(targets, None)
            if target is None:
                walk.pop()
                on_path.discard(node)
                done.add(node)
            elif target in on_path:
                return True
            elif target not in done:
                on_path.add(target)
                walk.append((target, iter(edges[target])))
    return False


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests containers more than ``limit`` deep (a value that contains itself does)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, Mapping):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
    return False


class _PythonInteger:
    """``type: integer`` (or a list of types with integer and not number) takes ints only."""

    __slots__ = ("validate",)

    def __init__(self, parent_schema: Mapping[str, Any], value: Any, schema_path: Any) -> None:
        # operator.index refuses floats (and every non-int) in C: the cheap check for the common `type: integer`.
        self.validate = operator.index if parent_schema.get("type") == "integer" else _not_float


_KEYWORDS: dict[str, Any] = {_INTEGER: _PythonInteger}


def _not_float(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("not an integer")


def _prepare(node: Any, path: tuple[str | int, ...], base: str, root: Any) -> Any:
    """``node`` as jsonschema-rs is to check it: promptlane's rules written in, references moved under ``base``."""
    if isinstance(node, bool):
        return node
    if not isinstance(node, Mapping):
        raise SchemaProblem("a schema is a mapping of keywords (or true or false)", path)
    prepared: dict[str, Any] = {}
    for key, value in node.items():
        if not isinstance(key, str) or key not in KEYWORDS:
            raise SchemaProblem(unknown_keyword(str(key)), (*path, key))
        if key in SUBSCHEMA:
            prepared[key] = _prepare(value, (*path, key), base, root)
        elif key in SUBSCHEMA_LISTS and isinstance(value, list):
            prepared[key] = [_prepare(item, (*path, key, i), base, root) for i, item in enumerate(value)]
        elif key in SUBSCHEMA_MAPS and isinstance(value, Mapping):
            prepared[key] = {name: _prepare(item, (*path, key, name), base, root) for name, item in value.items()}
        else:
            prepared[key] = value
    if "$ref" in node:
        ref = node["$ref"]
        problem = ref_problem(ref)
        if problem is not None:
            raise SchemaProblem(problem, (*path, "$ref"))
        try:
            _target(root, ref)
        except (KeyError, IndexError, ValueError, TypeError):
            raise SchemaProblem(f"$ref {ref!r} points at no schema inside this one", (*path, "$ref")) from None
        prepared["$ref"] = base + ref[1:]
    if "format" in node:
        problem = format_problem(node["format"]) if isinstance(node["format"], str) else "format must be a string"
        if problem is not None:
            raise SchemaProblem(problem, (*path, "format"))
    regexes = [(("pattern",), node.get("pattern"))]
    if isinstance(node.get("patternProperties"), Mapping):
        regexes += [(("patternProperties", key), key) for key in node["patternProperties"]]
    for where, pattern in regexes:
        if isinstance(pattern, str) and (problem := pattern_problem(pattern)) is not None:
            raise SchemaProblem(problem, (*path, *where))
    properties = node.get("properties")
    if isinstance(properties, Mapping) and "required" not in node:
        prepared["required"] = [
            name for name, sub in properties.items() if not (isinstance(sub, Mapping) and "default" in sub)
        ]
    kinds = node.get("type")
    if kinds == "integer" or (isinstance(kinds, list) and "integer" in kinds and "number" not in kinds):
        prepared[_INTEGER] = True
    return prepared


@dataclass(frozen=True)
class CompiledSchema:
    """The variables schema of one prompt, compiled: one jsonschema-rs validator for all the variables."""

    is_valid: Callable[[Any], bool]
    """The validator's ``is_valid``: True when the variables (a mapping) pass every variable's schema."""
    validator: jsonschema_rs.Validator
    """The validator, for the errors of variables that failed."""
    root: Mapping[str, Any]
    """The schema it compiled: ``{"properties": {name: variable's schema}}``, promptlane's rules written in."""
    recursive: tuple[str, ...]
    """The variables whose schema refers to itself, whose values are bounded in depth before they are checked."""

    def too_deep(self, values: Mapping[str, Any]) -> str | None:
        """The first variable whose schema refers to itself and whose value nests deeper than MAX_VALUE_DEPTH."""
        return next((n for n in self.recursive if n in values and _deeper_than(values[n], MAX_VALUE_DEPTH)), None)

    def failure(self, values: Mapping[str, Any]) -> tuple[str, str] | None:
        """The first problem of ``values``, as (dotted path from the variable, plain words), or None if there
        is none. Checked as the JSON data they stand for: a Mapping as an object, a tuple as an array, an
        infinite float as the largest float; a value that is no JSON data (a date, a set, NaN) as one that no
        type accepts."""
        try:
            return _first_failure(self.validator, values, self.root)
        except ValueError:  # jsonschema-rs reads values nested up to 254 levels (a value inside itself is deeper)
            deep = next((name for name, value in values.items() if _deeper_than(value, 200)), next(iter(values)))
            return deep, "nested too deep to check (more than 250 levels, or inside itself)"


def _first_failure(validator: jsonschema_rs.Validator, data: Any, root: Any) -> tuple[str, str] | None:
    """The first problem ``validator`` finds in ``data`` (checked as the JSON data it stands for), as (dotted
    path, plain words), or None.

    Raises:
        ValueError: ``data`` nests deeper than jsonschema-rs reads.
    """
    try:
        errors = list(islice(validator.iter_errors(_as_json(data)), 20))
    except UnicodeEncodeError as exc:  # a string jsonschema-rs cannot read (a truncated emoji, "\ud83d" in JSON)
        try:
            found = find_surrogate(data)
        except RecursionError:  # a value inside itself
            found = None
        path, half = found or ((), exc.object[exc.start])
        return _dotted(path), f"holds U+{ord(half):04X}, half of a UTF-16 surrogate pair without its other half"
    if not errors:
        return None
    # A value of the wrong type is reported as such, whatever else its other keywords say about it.
    first = errors[0]
    same_place = (e for e in errors if e.instance_path == first.instance_path and _is_type_error(e))
    error = next(same_place, first)
    return _dotted(error.instance_path, _extra_step(error)), _reason(error, data, root)


@dataclass(frozen=True)
class OutputSchema:
    """A JSON Schema a model's output is checked against (a scenario's ``json_schema`` expectation), compiled as
    variables' schemas are (a linear-time regex engine: a model's output cannot make a ``pattern`` backtrack for
    ever; nothing fetched), and read as written: none of promptlane's rules for variables."""

    validator: jsonschema_rs.Validator
    schema: Mapping[str, Any]
    recursive: bool
    """The schema refers to itself: a value is bounded in depth before it is checked."""

    def failure(self, data: Any) -> tuple[str, str] | None:
        """The first problem of ``data``, as (dotted path, plain words; the path is empty for the whole value),
        or None if there is none."""
        if self.recursive and _deeper_than(data, MAX_VALUE_DEPTH):
            return "", f"nests more than {MAX_VALUE_DEPTH} levels deep, too deep for a schema that refers to itself"
        try:
            return _first_failure(self.validator, data, self.schema)
        except ValueError:
            return "", "nested too deep to check (more than 250 levels)"


def compile_output_schema(schema: Mapping[str, Any]) -> OutputSchema:
    """The validator of an output schema.

    Raises:
        SchemaProblem: the schema is invalid, or refers outside itself (nothing is fetched).
    """
    try:
        validator = jsonschema_rs.Draft202012Validator(
            dict(schema), pattern_options=_REGEX, retriever=_refuse_retrieval
        )
    except jsonschema_rs.ValidationError as exc:  # the schema fails the draft's meta-schema, or refers outside
        if unresolved := re.match(r"Resource '(.*?)' is not present", exc.message):
            raise SchemaProblem(
                f"$ref {unresolved.group(1)!r} points outside the schema: only references inside it resolve "
                "(#/$defs/NAME, an $anchor, its $id); promptlane never fetches a schema"
            ) from None
        where = [str(part) for part in exc.instance_path]
        pattern = _at(schema, exc.instance_path) if exc.message.endswith('is not a "regex"') else None
        raise SchemaProblem((isinstance(pattern, str) and pattern_problem(pattern)) or exc.message, where) from None
    except (jsonschema_rs.ReferencingError, ValueError) as exc:
        raise SchemaProblem(str(exc).splitlines()[0]) from None
    try:
        recursive = _recursive(schema)
    except (KeyError, IndexError, TypeError, ValueError):  # a reference by $anchor or $id: it may well be
        recursive = True
    return OutputSchema(validator=validator, schema=schema, recursive=recursive)


def compile_schema(schemas: Mapping[str, Any]) -> CompiledSchema | None:
    """The validator of a prompt's variables (``{name: schema}``), or None when no schema checks anything.

    Raises:
        SchemaProblem: a schema over a bound, with an unknown keyword, a reference outside itself, or invalid;
            its path starts with the variable's name.
    """
    properties: dict[str, Any] = {}
    recursive: list[str] = []
    patterns = 0
    for name, schema in schemas.items():
        if not isinstance(schema, Mapping):
            raise SchemaProblem("a variable's schema is a mapping of keywords", (name,))
        if not IDENTIFIER.fullmatch(name):
            raise SchemaProblem(f"variable name {name!r} must be an identifier (letters, digits, '_')", (name,))
        problem = check_bounds(schema)
        if problem is not None:
            raise SchemaProblem(problem.message, (name, *problem.path))
        try:
            prepared = _prepare(schema, (), f"#/properties/{name}", schema)
        except SchemaProblem as exc:
            raise SchemaProblem(exc.message, (name, *exc.path)) from None
        patterns += _count_patterns(schema)
        if set(schema) - ANNOTATIONS:
            properties[name] = prepared
        if _recursive(schema):
            recursive.append(name)
    if patterns > MAX_PATTERNS:
        raise SchemaProblem(
            f"the variables hold {patterns} regular expressions (pattern, patternProperties), over the limit of "
            f"{MAX_PATTERNS}"
        )
    if not properties:
        return None
    root = {"properties": properties}
    try:
        validator = jsonschema_rs.Draft202012Validator(
            root,
            validate_formats=True,
            ignore_unknown_formats=False,
            pattern_options=_REGEX,
            retriever=_refuse_retrieval,
            keywords=_KEYWORDS,
        )
    except jsonschema_rs.ValidationError as exc:  # the schema fails the draft's meta-schema
        where = [str(part) for part in exc.instance_path[1:]]
        raise SchemaProblem(exc.message, where) from None
    except (jsonschema_rs.ReferencingError, ValueError) as exc:
        raise SchemaProblem(str(exc).splitlines()[0]) from None
    return CompiledSchema(is_valid=validator.is_valid, validator=validator, root=root, recursive=tuple(recursive))


def _count_patterns(schema: Any) -> int:
    count, stack = 0, [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            count += _patterns(node)
            stack.extend(child for _, child in subschemas(node))
    return count


def _refuse_retrieval(uri: str) -> Any:
    raise ValueError(f"{uri} is outside the schema: promptlane never fetches a schema")


def _as_json(value: Any) -> Any:
    """``value`` as the JSON data jsonschema-rs reads (see :meth:`CompiledSchema.failure`). Without recursion,
    and a container met twice (shared, or inside itself) is converted once: any value ends."""
    holder = [value]
    copies: dict[int, Any] = {}
    stack: list[tuple[Any, Any]] = [(holder, 0)]
    while stack:
        parent, key = stack.pop()
        item = parent[key]
        if item is None or type(item) in (bool, int, str, Decimal):
            continue
        if id(item) in copies:
            parent[key] = copies[id(item)]
        elif isinstance(item, float):
            parent[key] = math.copysign(sys.float_info.max, item) if math.isinf(item) else float.__float__(item)
        elif isinstance(item, str):
            parent[key] = str.__str__(item)
        elif isinstance(item, int):
            parent[key] = int.__int__(item)
        elif isinstance(item, Mapping) and all(isinstance(name, str) for name in item):
            copy = copies[id(item)] = {str.__str__(name): child for name, child in item.items()}
            parent[key] = copy
            stack.extend((copy, name) for name in copy)
        elif isinstance(item, (list, tuple)):
            copy = copies[id(item)] = list(item)
            parent[key] = copy
            stack.extend((copy, index) for index in range(len(copy)))
        else:
            parent[key] = _NOT_JSON
    return holder[0]


# --- failures in plain words ----------------------------------------------------------------------------------


def _is_type_error(error: jsonschema_rs.ValidationError) -> bool:
    kind = error.kind
    return isinstance(kind, jsonschema_rs.ValidationErrorKind.Type) or (
        isinstance(kind, jsonschema_rs.ValidationErrorKind.Custom) and kind.keyword == _INTEGER
    )


def _dotted(path: Sequence[str | int], extra: str | None = None) -> str:
    parts = [*path, extra] if extra else path
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts).removeprefix(".")


def _extra_step(error: jsonschema_rs.ValidationError) -> str | None:
    """A missing property is named by its own path (``order.id``), as a wrong one is."""
    return error.kind.property if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Required) else None


def _at(data: Any, path: Sequence[str | int]) -> Any:
    for part in path:
        data = data[part]
    return data


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(value: Any) -> str:
    """A value for a message: its type and its (shortened) repr."""
    return f"{type(value).__name__} {_short(value)}"


def _count(size: int, word: str, words: str) -> str:
    return f"{size} {word if size == 1 else words}"


def _reason(error: jsonschema_rs.ValidationError, values: Any, root: Any) -> str:
    """What ``error`` means, in the words promptlane uses (``expected string, got int 3``)."""
    try:
        value = _at(values, error.instance_path)
    except (KeyError, IndexError, TypeError):
        value = error.instance
    try:
        node = _at(root, error.schema_path[:-1])
    except (KeyError, IndexError, TypeError):
        node = None
    node = node if isinstance(node, Mapping) else {}
    keyword = error.schema_path[-1] if error.schema_path else ""
    size = len(value) if isinstance(value, (Mapping, list, tuple, str)) else 0
    kinds = jsonschema_rs.ValidationErrorKind
    match error.kind:
        case kinds.Type(types):
            return _expected(node.get("type", types), value)
        case kinds.Custom(keyword=name) if name == _INTEGER:
            return _expected(node.get("type", "integer"), value)
        case kinds.Enum(options):
            return f"{_short(value)} is not one of {_short(node.get('enum', options))}"
        case kinds.Constant(expected):
            return f"expected {_short(expected)}, got {describe(value)}"
        case kinds.Required(name) if keyword == "dependentRequired" and isinstance(value, Mapping):
            given = [key for key, needs in node.get(keyword, {}).items() if key in value and name in needs]
            return f"missing property (required when {given[0]!r} is given)" if given else "missing property"
        case kinds.Required():
            return "missing required property"
        case kinds.Pattern(pattern):
            return f"does not match pattern {pattern!r}: {_short(value)}"
        case kinds.Format(name):
            return f"is not a valid {FORMATS.get(name, name)}: {_short(value)}"
        case kinds.MinLength(limit):
            return f"is shorter than {_count(limit, 'character', 'characters')}: {_short(value)}"
        case kinds.MaxLength(limit):
            return f"is longer than {_count(limit, 'character', 'characters')}: {_short(value)}"
        case kinds.Minimum(limit):
            return f"is less than the minimum {limit}: {_short(value)}"
        case kinds.Maximum(limit):
            return f"is more than the maximum {limit}: {_short(value)}"
        case kinds.ExclusiveMinimum(limit):
            return f"must be more than {limit}: {_short(value)}"
        case kinds.ExclusiveMaximum(limit):
            return f"must be less than {limit}: {_short(value)}"
        case kinds.MultipleOf(factor):
            return f"is not a multiple of {factor}: {_short(value)}"
        case kinds.MinItems(limit):
            return f"has {_count(size, 'item', 'items')}, expected at least {limit}"
        case kinds.MaxItems(limit):
            return f"has {_count(size, 'item', 'items')}, expected at most {limit}"
        case kinds.MinProperties(limit):
            return f"has {_count(size, 'property', 'properties')}, expected at least {limit}"
        case kinds.MaxProperties(limit):
            return f"has {_count(size, 'property', 'properties')}, expected at most {limit}"
        case kinds.UniqueItems():
            return "has duplicate items (uniqueItems)"
        case kinds.Contains() if keyword == "minContains":
            return f"has fewer than {node.get(keyword)} items matching `contains`"
        case kinds.Contains() if keyword == "maxContains":
            return f"has more than {node.get(keyword)} items matching `contains`"
        case kinds.Contains():
            return "has no item matching `contains`"
        case kinds.AdditionalProperties(unexpected) | kinds.UnevaluatedProperties(unexpected):
            names = ", ".join(map(repr, unexpected))
            return f"unexpected {'property' if len(unexpected) == 1 else 'properties'} {names} ({keyword} is false)"
        case kinds.UnevaluatedItems(unexpected):
            return f"unexpected items at {', '.join(map(str, unexpected))} (unevaluatedItems is false)"
        case kinds.FalseSchema():
            return "no value is allowed here (its schema is false)"
        case kinds.Not():
            return f"must not match the `not` schema: {_short(value)}"
        case kinds.OneOfMultipleValid():
            return "matches more than one of the `oneOf` alternatives (it must match exactly one)"
        case kinds.OneOfNotValid(context) | kinds.AnyOf(context):
            return f"matches none of the `{keyword}` alternatives ({_alternatives(context, error, values, root)})"
        case kinds.PropertyNames(inner):
            return f"has an invalid property name: {_reason(inner, inner.instance, {})}"
        case _:
            return error.message


def _expected(declared: str | list[str], value: Any) -> str:
    return f"expected {' or '.join([declared] if isinstance(declared, str) else declared)}, got {describe(value)}"


def _alternatives(
    context: list[list[jsonschema_rs.ValidationError]], error: jsonschema_rs.ValidationError, values: Any, root: Any
) -> str:
    """The first failure of each alternative, numbered from 1, with its path when it is deeper."""
    parts = []
    for number, failures in enumerate(context[:5], start=1):
        if failures:
            first = failures[0]
            where = _dotted(first.instance_path[len(error.instance_path) :], _extra_step(first))
            parts.append(f"{number}: {where + ': ' if where else ''}{_reason(first, values, root)}")
    return "; ".join(parts) + ("; ..." if len(context) > 5 else "")
