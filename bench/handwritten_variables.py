"""The hand-written variables checker that src/promptlane/variables.py used until it compiled variables schemas with
jsonschema-rs (its last version, verbatim but for absolute imports and this docstring), kept so that
``bench/sdk.py`` measures the old and the new validation side by side in one run. Not used by promptlane.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from promptlane._canonical import json_equal
from promptlane.errors import VariableError

__all__ = ["VariablesValidator", "compile_variables", "parse_typed"]


def parse_typed(raw: str, declared: str | None) -> Any:
    """A value typed as text (``--var count=3``, a form field) for a variable of type ``declared``: a string
    stays a string; anything else is read as JSON, then YAML (``[a, b]``), else left as the text."""
    if declared in (None, "string"):
        return raw
    import json

    from promptlane._yaml import load_data
    from promptlane.errors import SpecError

    try:
        return json.loads(raw)  # first: 1e3 is a number, and yes is not a boolean
    except (ValueError, RecursionError):
        pass
    try:
        return load_data(raw)
    except SpecError:
        return raw


Check = Callable[[Any, str], None]

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (Mapping,),
    "null": (type(None),),
}


class _Invalid(Exception):
    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


Fill = Callable[[Any], Any]


def _compile_fill(schema: Mapping[str, Any]) -> Fill | None:
    """A function filling in the defaults of nested properties, or None when the schema has none (the
    common case, which then costs nothing)."""
    item_fill = _compile_fill(schema["items"]) if schema.get("items") is not None else None
    properties = schema.get("properties") or {}
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


def _compile(schema: Mapping[str, Any]) -> Check:
    """One closure checking type, enum, items and properties; isinstance on precomputed tuples, because this
    runs for every variable of every render."""
    kind = schema.get("type")
    kinds = [] if kind is None else [kind] if isinstance(kind, str) else list(kind)
    types = tuple(t for k in kinds for t in _PYTHON_TYPES[k])
    bool_ok = "boolean" in kinds
    expected = " or ".join(kinds)
    allowed = list(schema["enum"]) if "enum" in schema else None
    allowed_strings = frozenset(v for v in allowed if isinstance(v, str)) if allowed is not None else frozenset()
    check_item = _compile(schema["items"]) if schema.get("items") is not None else None
    properties = {n: _compile(sub) for n, sub in (schema.get("properties") or {}).items()}
    required = schema.get("required")
    if required is None:
        required = [n for n, sub in (schema.get("properties") or {}).items() if "default" not in sub]

    def check(value: Any, path: str) -> None:
        if types and (not bool_ok if isinstance(value, bool) else not isinstance(value, types)):
            raise _Invalid(path, f"expected {expected}, got {_describe(value)}")
        if allowed is not None and not (
            value in allowed_strings if type(value) is str else any(json_equal(value, option) for option in allowed)
        ):
            raise _Invalid(path, f"{value!r} is not one of {allowed!r}")
        if check_item is not None and isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                check_item(item, f"{path}[{index}]")
        if properties and isinstance(value, Mapping):
            for name in required:
                if name not in value:
                    raise _Invalid(f"{path}.{name}", "missing required property")
            for name, check_property in properties.items():
                if name in value:
                    check_property(value[name], f"{path}.{name}")

    return check


class VariablesValidator:
    """Checks the variables of one render and fills in defaults."""

    __slots__ = ("_checks", "_defaults", "_fills", "_names", "_required", "_required_order", "prompt", "version")

    def __init__(self, schema: Mapping[str, Mapping[str, Any]], *, prompt: str | None, version: int | None):
        self.prompt = prompt
        self.version = version
        self._names = frozenset(schema)
        self._checks = tuple((name, _compile(sub)) for name, sub in schema.items() if sub)
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
        try:
            for name, check in self._checks:
                if name in values:
                    check(values[name], name)
        except _Invalid as exc:
            raise self._error(exc.path, exc.message) from None
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
    """A validator for ``schema`` (a version's ``variables``)."""
    return VariablesValidator(schema, prompt=prompt, version=version)
