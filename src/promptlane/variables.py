"""Render variables checked against a version's variables schema (JSON Schema, draft 2020-12).

The schema is compiled once per version into one jsonschema-rs validator (see ``_schema``), because validation
runs on every render on the application's hot path: a render pays one call into Rust, and only a failing one
pays for finding and wording its problem.

promptlane's rules on top of JSON Schema: a variable without ``default`` is required, and a ``default`` fills
in; inside an object, ``required`` defaults to every property without a ``default``, and nested defaults fill in.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from ._schema import MAX_VALUE_DEPTH, CompiledSchema, SchemaProblem, compile_schema
from .errors import SpecError, VariableError

__all__ = ["VariablesValidator", "compile_variables", "parse_typed"]


def parse_typed(raw: str, declared: str | None) -> Any:
    """A value typed as text (``--var count=3``, a form field) for a variable of type ``declared``: a string
    stays a string; anything else is read as JSON, then YAML (``[a, b]``), else left as the text."""
    if declared in (None, "string"):
        return raw
    import json

    from ._unicode import find_surrogate
    from ._yaml import load_data
    from .errors import SpecError

    try:
        value = json.loads(raw)  # first: 1e3 is a number, and yes is not a boolean
    except (ValueError, RecursionError):
        pass
    else:
        if find_surrogate(value) is None:  # half of a surrogate pair ("\ud800"): YAML refuses it, so it stays text
            return value
    try:
        return load_data(raw)
    except SpecError:
        return raw


Fill = Callable[[Any], Any]


def _compile_fill(schema: Mapping[str, Any]) -> Fill | None:
    """A function filling in the defaults of nested properties, or None when the schema has none (the
    common case, which then costs nothing). It follows ``properties`` and ``items``, not the alternatives of
    ``oneOf``/``anyOf``/``if`` (which one applies is the validator's business) nor ``$ref``."""
    items = schema.get("items")
    item_fill = _compile_fill(items) if isinstance(items, Mapping) else None
    properties = {name: sub for name, sub in (schema.get("properties") or {}).items() if isinstance(sub, Mapping)}
    defaults = {name: sub["default"] for name, sub in properties.items() if "default" in sub}
    fills = {name: nested for name, sub in properties.items() if (nested := _compile_fill(sub)) is not None}
    if item_fill is None and not defaults and not fills:
        return None

    def fill(value: Any) -> Any:
        if item_fill is not None and isinstance(value, (list, tuple)):
            return [item_fill(item) for item in value]
        if isinstance(value, Mapping) and (defaults or fills):
            filled = {**defaults, **value}
            for name, sub_fill in fills.items():
                if name in filled:
                    filled[name] = sub_fill(filled[name])
            return filled
        return value

    return fill


class VariablesValidator:
    """Checks the variables of one render and fills in defaults."""

    __slots__ = ("_defaults", "_fills", "_names", "_required", "_required_order", "_schema", "prompt", "version")

    def __init__(self, schema: Mapping[str, Mapping[str, Any]], *, prompt: str | None, version: int | None):
        self.prompt = prompt
        self.version = version
        try:
            self._schema: CompiledSchema | None = compile_schema(schema)
        except SchemaProblem as exc:
            who = f"{prompt}@{version}" if prompt and version is not None else prompt
            where = ".".join(map(str, ("variables", *exc.path)))
            raise SpecError(f"{who + ': ' if who else ''}{where}: {exc.message}") from None
        self._names = frozenset(schema)
        self._defaults = {name: sub["default"] for name, sub in schema.items() if "default" in sub}
        self._fills = tuple((name, fill) for name, sub in schema.items() if (fill := _compile_fill(sub)) is not None)
        self._required_order = [name for name in schema if name not in self._defaults]
        self._required = frozenset(self._required_order)

    def __call__(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The variables to render with: checked, defaults applied.

        Raises:
            VariableError: naming the prompt, version and variable.
        """
        keys = values.keys()
        # Set comparisons on the keys run in C; the loops below only run to name the culprit.
        if not keys <= self._names:
            self._unknown(next(name for name in values if name not in self._names))
        if not keys >= self._required:
            missing = next(name for name in self._required_order if name not in values)
            raise self._error(missing, "missing required variable")
        if self._schema is not None:
            if self._schema.recursive and (deep := self._schema.too_deep(values)) is not None:
                raise self._error(deep, f"nested more than {MAX_VALUE_DEPTH} levels deep (its schema refers to itself)")
            try:
                valid = self._schema.is_valid(values)
            except ValueError:  # a value that is not JSON data (a date, a set) where the schema looks at it
                valid = False
            if not valid and (failure := self._schema.failure(values)) is not None:
                raise self._error(*failure)
        result = {**self._defaults, **values} if self._defaults else dict(values)
        for name, fill in self._fills:
            if name in result:
                result[name] = fill(result[name])
        return result

    def _unknown(self, name: str) -> None:
        close = difflib.get_close_matches(name, self._names, n=1)
        if close:
            hint = f"did you mean {close[0]!r}?"
        else:
            hint = f"declared: {', '.join(sorted(self._names))}" if self._names else "the prompt declares none"
        raise self._error(name, f"unknown variable ({hint})")

    def _error(self, variable: str, message: str) -> VariableError:
        return VariableError(message, prompt=self.prompt, version=self.version, variable=variable)


def compile_variables(
    schema: Mapping[str, Mapping[str, Any]], *, prompt: str | None = None, version: int | None = None
) -> VariablesValidator:
    """A validator for ``schema`` (a version's ``variables``).

    Raises:
        SpecError: a schema that cannot be checked against (stored without the checks a push makes, or by
            another release): over a bound, with an unknown keyword, a reference outside itself, or invalid.
    """
    return VariablesValidator(schema, prompt=prompt, version=version)
