"""Variables schemas are full JSON Schema (draft 2020-12): checked when a prompt file is loaded (file, line and
key), compiled once, and checked at every render in plain words; the first release's subset keeps its hashes and
its behaviour (a property test against the hand-written checker it replaced, kept in bench/)."""

from __future__ import annotations

import datetime
import importlib.util
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptlane._schema import FORMATS, KEYWORDS
from promptlane.errors import SpecError, VariableError
from promptlane.registry import Registry
from promptlane.spec import PromptSpec, content_hash, load_prompt_file
from promptlane.variables import compile_variables

REPO = Path(__file__).resolve().parent.parent


def _error(schema: Mapping[str, Any], values: Mapping[str, Any]) -> VariableError:
    with pytest.raises(VariableError) as info:
        compile_variables(schema, prompt="shop/order", version=2)(values)
    return info.value


# --- render: every keyword family, in plain words ------------------------------------------------------------

RENDER_FAILURES: list[tuple[dict[str, Any], Any, str, str]] = [
    # (schema, value, variable, reason)
    ({"type": "string", "pattern": "^[A-Z]{3}$"}, "ab", "v", "does not match pattern '^[A-Z]{3}$': 'ab'"),
    ({"type": "string", "minLength": 3}, "ab", "v", "is shorter than 3 characters: 'ab'"),
    ({"type": "string", "maxLength": 1}, "ab", "v", "is longer than 1 character: 'ab'"),
    ({"type": "integer", "minimum": 1}, 0, "v", "is less than the minimum 1: 0"),
    ({"type": "integer", "maximum": 10}, 11, "v", "is more than the maximum 10: 11"),
    ({"exclusiveMinimum": 0}, 0, "v", "must be more than 0: 0"),
    ({"exclusiveMaximum": 5}, 5.0, "v", "must be less than 5: 5.0"),
    ({"multipleOf": 2}, 3, "v", "is not a multiple of 2: 3"),
    ({"const": "fixed"}, "other", "v", "expected 'fixed', got str 'other'"),
    ({"type": "array", "minItems": 1}, [], "v", "has 0 items, expected at least 1"),
    ({"type": "array", "maxItems": 1}, [1, 2], "v", "has 2 items, expected at most 1"),
    ({"type": "array", "uniqueItems": True}, ["a", "a"], "v", "has duplicate items (uniqueItems)"),
    ({"type": "array", "items": {"type": "string"}}, ["a", 1], "v[1]", "expected string, got int 1"),
    ({"prefixItems": [{"type": "string"}], "items": False}, ["a", 1], "v[1]", "no value is allowed here"),
    ({"contains": {"const": 1}}, [2], "v", "has no item matching `contains`"),
    ({"contains": {"const": 1}, "minContains": 2}, [1], "v", "has fewer than 2 items matching `contains`"),
    ({"minProperties": 1}, {}, "v", "has 0 properties, expected at least 1"),
    ({"maxProperties": 1}, {"a": 1, "b": 2}, "v", "has 2 properties, expected at most 1"),
    (
        {"properties": {"a": {}}, "additionalProperties": False},
        {"a": 1, "b": 2},
        "v",
        "unexpected property 'b' (additionalProperties is false)",
    ),
    ({"patternProperties": {"^n_": {"type": "integer"}}}, {"n_a": "x"}, "v.n_a", "expected integer, got str 'x'"),
    (
        {"propertyNames": {"pattern": "^[a-z]+$"}},
        {"A": 1},
        "v",
        "has an invalid property name: does not match pattern '^[a-z]+$': 'A'",
    ),
    (
        {"dependentRequired": {"card": ["cvv"]}},
        {"card": "4111"},
        "v.cvv",
        "missing property (required when 'card' is given)",
    ),
    (
        {"oneOf": [{"type": "string", "minLength": 2}, {"type": "integer"}]},
        "a",
        "v",
        "matches none of the `oneOf` alternatives (1: is shorter than 2 characters: 'a'; 2: expected integer, "
        "got str 'a')",
    ),
    (
        {"oneOf": [{"type": "number"}, {"type": "integer"}]},
        1,
        "v",
        "matches more than one of the `oneOf` alternatives (it must match exactly one)",
    ),
    (
        {"anyOf": [{"type": "string"}, {"type": "object", "properties": {"a": {"type": "integer"}}}]},
        {"a": "x"},
        "v",
        "matches none of the `anyOf` alternatives (1: expected string, got dict {'a': 'x'}; 2: a: expected "
        "integer, got str 'x')",
    ),
    ({"allOf": [{"type": "string"}, {"minLength": 2}]}, "a", "v", "is shorter than 2 characters: 'a'"),
    ({"not": {"const": "bad"}}, "bad", "v", "must not match the `not` schema: 'bad'"),
    ({"if": {"type": "string"}, "then": {"maxLength": 2}, "else": {"type": "integer"}}, "abc", "v", "is longer"),
    ({"if": {"type": "string"}, "then": {"maxLength": 2}, "else": {"type": "integer"}}, 1.5, "v", "expected integer"),
    (
        {"$defs": {"positive": {"type": "integer", "exclusiveMinimum": 0}}, "items": {"$ref": "#/$defs/positive"}},
        [1, 0],
        "v[1]",
        "must be more than 0: 0",
    ),
    ({"properties": {"a": {"type": "integer"}}, "unevaluatedProperties": False}, {"a": 1, "b": 1}, "v", "unexpected"),
]


@pytest.mark.parametrize(("schema", "value", "variable", "reason"), RENDER_FAILURES)
def test_render_names_the_variable_path_and_the_failed_keyword(
    schema: dict[str, Any], value: Any, variable: str, reason: str
) -> None:
    error = _error({"v": schema}, {"v": value})
    assert error.variable == variable
    assert error.reason.startswith(reason)
    assert str(error).startswith(f"shop/order@2, variable {variable!r}: {reason}")


def test_the_issue_example_reads_as_written() -> None:
    error = _error({"code": {"type": "string", "pattern": "^[A-Z]{3}$"}}, {"code": "ab"})
    assert str(error) == "shop/order@2, variable 'code': does not match pattern '^[A-Z]{3}$': 'ab'"


def test_values_that_pass_every_keyword_render_with_defaults_filled_in() -> None:
    schema = {
        "code": {"type": "string", "pattern": "^[A-Z]{3}$", "minLength": 3},
        "email": {"type": "string", "format": "email"},
        "amount": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]+$"}]},
        "address": {
            "$defs": {"line": {"type": "string", "maxLength": 40}},
            "type": "object",
            "properties": {"street": {"$ref": "#/$defs/line"}, "country": {"type": "string", "default": "PT"}},
            "additionalProperties": False,
        },
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "default": []},
    }
    validate = compile_variables(schema, prompt="p", version=1)
    values = {"code": "ABC", "email": "ana@example.com", "amount": "12", "address": {"street": "Rua A"}}
    assert validate(values) == {**values, "address": {"street": "Rua A", "country": "PT"}, "tags": []}


# --- formats are asserted ----------------------------------------------------------------------------------

FORMAT_CASES = {
    "email": ("ana@example.com", "ana.example.com"),
    "date": ("2024-02-29", "2024-02-30"),
    "date-time": ("2024-05-01T12:00:00Z", "2024-05-01 12:00"),
    "uri": ("https://example.com/a?b=1", "no scheme here"),
    "uuid": ("123e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456"),
    "ipv4": ("192.168.0.1", "256.1.1.1"),
    "ipv6": ("::1", "::g"),
    "time": ("12:00:00Z", "25:00:00Z"),
    "hostname": ("example.com", "-bad-.com"),
}


@pytest.mark.parametrize("name", list(FORMAT_CASES))
def test_formats_are_checked_not_only_annotations(name: str) -> None:
    good, bad = FORMAT_CASES[name]
    validate = compile_variables({"v": {"type": "string", "format": name}}, prompt="p", version=1)
    assert validate({"v": good}) == {"v": good}
    with pytest.raises(VariableError) as info:
        validate({"v": bad})
    assert info.value.reason == f"is not a valid {FORMATS[name]}: {bad!r}"


def test_every_format_promptlane_lists_is_one_it_checks() -> None:
    for name in FORMATS:
        validate = compile_variables({"v": {"format": name}}, prompt="p", version=1)
        with pytest.raises(VariableError, match="is not a valid"):
            validate({"v": "\x00 not a valid anything \x00"})


# --- the first release's subset: same hashes, same behaviour --------------------------------------------------

ALL_OLD_KEYS = {
    "template": "{{ customer }} {{ order }} {{ tags }} {{ note }} {{ tier }}",
    "variables": {
        "customer": {"type": "string", "description": "Who writes"},
        "tier": {"type": "string", "enum": ["free", "pro"], "default": "free"},
        "note": {"type": ["string", "null"], "default": None},
        "tags": {"type": "array", "items": {"type": "string"}, "default": []},
        "order": {
            "type": "object",
            "description": "The order",
            "properties": {
                "id": {"type": "integer"},
                "lines": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "default": 1}},
                    },
                },
                "plan": {"enum": ["basic", 2, None, True]},
            },
            "required": ["id"],
        },
    },
}
HASH_AT_THE_SUBSET_RELEASE = "300f3db8a5d35b2ee814b2ca58875477d511c668650df1e3adb1106fcc9ebc92"
"""The version hash of ALL_OLD_KEYS, computed by the release whose variables were a hand-checked subset."""


def test_a_schema_of_the_old_subset_keeps_its_version_hash(registry: Registry, project: Path) -> None:
    assert registry.push_spec("pin/all-keys", ALL_OLD_KEYS).version.content_hash == HASH_AT_THE_SUBSET_RELEASE
    assert content_hash(PromptSpec.model_validate(ALL_OLD_KEYS).canonical()) == HASH_AT_THE_SUBSET_RELEASE
    path = project / "prompts" / "all-keys.yaml"
    path.write_text(
        "template: '{{ customer }} {{ order }} {{ tags }} {{ note }} {{ tier }}'\n"
        "variables:\n"
        "  customer: {type: string, description: Who writes}\n"
        "  tier: {type: string, enum: [free, pro], default: free}\n"
        "  note: {type: [string, 'null'], default: null}\n"
        "  tags: {type: array, items: {type: string}, default: []}\n"
        "  order:\n"
        "    type: object\n"
        "    description: The order\n"
        "    properties:\n"
        "      id: {type: integer}\n"
        "      lines:\n"
        "        type: array\n"
        "        items: {type: object, properties: {sku: {type: string}, qty: {type: integer, default: 1}}}\n"
        "      plan: {enum: [basic, 2, null, true]}\n"
        "    required: [id]\n"
    )
    assert content_hash(load_prompt_file(path).spec.canonical()) == HASH_AT_THE_SUBSET_RELEASE


def test_new_keywords_are_stored_under_their_json_schema_names() -> None:
    written = {
        "$defs": {"a": {"type": "string"}},
        "$ref": "#/$defs/a",
        "$comment": "why",
        "if": {"minLength": 1},
        "then": True,
        "else": False,
        "not": {"const": "x"},
    }
    spec = PromptSpec.model_validate({"template": "{{ v }}", "variables": {"v": written}})
    assert spec.canonical()["variables"] == {"v": written}


def _handwritten() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("handwritten_variables", REPO / "bench" / "handwritten_variables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HANDWRITTEN = _handwritten()

NAMES = st.sampled_from(["a", "b", "c"])
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.integers()
    | st.floats(allow_nan=False)
    | st.sampled_from([0.0, 1.0, 2.5])
    | st.sampled_from(["", "a", "b"])
    | st.text(max_size=3)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES | st.text(max_size=2), inner, max_size=3),
    max_leaves=8,
)
TYPES = st.sampled_from(["string", "integer", "number", "boolean", "array", "object", "null"])


def _subset_schema(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A schema of the first release's keywords (``required`` only beside ``properties``: that release read it
    only there)."""
    plain = st.fixed_dictionaries(
        {},
        optional={
            "type": TYPES | st.lists(TYPES, min_size=1, max_size=3, unique=True),
            "enum": st.lists(JSON_SCALARS | st.lists(JSON_SCALARS, max_size=2), max_size=4),
            "default": JSON_VALUES,
            "description": st.text(max_size=5),
            "items": children,
        },
    )
    with_properties = st.fixed_dictionaries(
        {"properties": st.dictionaries(NAMES, children, min_size=1, max_size=3)},
        optional={"type": st.just("object"), "required": st.lists(NAMES, unique=True, max_size=3)},
    )
    return plain | with_properties


SUBSET_SCHEMAS = st.recursive(st.just({}), _subset_schema, max_leaves=6)


def _outcome(validate: Callable[[Mapping[str, Any]], dict[str, Any]], values: dict[str, Any]) -> Any:
    try:
        return ("ok", validate(values))
    except VariableError as exc:
        return ("error", exc.variable, exc.reason)


@settings(max_examples=400)
@given(schema=SUBSET_SCHEMAS, value=JSON_VALUES)
def test_the_compiled_validator_agrees_with_the_handwritten_one_on_the_old_subset(
    schema: dict[str, Any], value: Any
) -> None:
    variables = {"v": schema}
    new = _outcome(compile_variables(variables, prompt="p", version=1), {"v": value})
    old = _outcome(HANDWRITTEN.compile_variables(variables, prompt="p", version=1), {"v": value})
    assert new[0] == old[0], (new, old)  # the same verdict, and for a valid value the same filled-in variables
    if new[0] == "ok":
        assert new == old
    elif _problems(variables, value) == 1:  # one problem only: both must name it the same way
        assert new[1] == old[1]
        if "..." not in new[2]:  # the new one shortens long values in every message, not only type errors
            assert new[2] == old[2]


def _problems(variables: dict[str, Any], value: Any) -> int:
    """How many places (paths) of ``value`` fail the schema."""
    from promptlane._schema import compile_schema

    compiled = compile_schema(variables)
    assert compiled is not None
    places = set()
    for error in compiled.validator.iter_errors({"v": value}):
        extra = getattr(error.kind, "property", None) if error.kind.name == "required" else None
        places.add((*error.instance_path, extra))
    return len(places)


def test_values_that_are_not_json_data_are_checked_as_before() -> None:
    schema = {
        "when": {"type": "string"},
        "mapping": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "pair": {"type": "array", "items": {"type": "integer"}},
        "anything": {},
        "loose": {"properties": {"a": {}}},
    }
    validate = compile_variables(schema, prompt="p", version=1)
    good = {
        "when": "today",
        "mapping": types.MappingProxyType({"n": 1}),
        "pair": (1, 2),
        "anything": object(),
        "loose": {"a": 1, "extra": object()},
    }
    assert validate(good) == good
    with pytest.raises(VariableError) as info:
        validate({**good, "when": datetime.date(2024, 5, 1)})
    assert (info.value.variable, info.value.reason) == ("when", "expected string, got date datetime.date(2024, 5, 1)")
    with pytest.raises(VariableError) as info:
        validate({**good, "pair": (1, {2})})
    assert (info.value.variable, info.value.reason) == ("pair[1]", "expected integer, got set {2}")
    with pytest.raises(VariableError) as info:
        validate({**good, "mapping": types.MappingProxyType({"n": 1.0})})
    assert (info.value.variable, info.value.reason) == ("mapping.n", "expected integer, got float 1.0")


def test_infinity_is_a_number_and_nan_is_not() -> None:
    validate = compile_variables({"n": {"type": "number", "maximum": 5}}, prompt="p", version=1)
    assert validate({"n": float("-inf")}) == {"n": float("-inf")}
    assert _error({"n": {"type": "number", "maximum": 5}}, {"n": float("inf")}).reason == (
        "is more than the maximum 5: inf"
    )
    assert _error({"n": {"type": "number"}}, {"n": float("nan")}).reason == "expected number, got float nan"
    assert _error({"n": {"type": "integer"}}, {"n": float("inf")}).reason == "expected integer, got float inf"


def test_a_type_list_with_integer_and_no_number_refuses_integral_floats() -> None:
    validate = compile_variables({"v": {"type": ["integer", "string"]}}, prompt="p", version=1)
    assert validate({"v": "x"}) == {"v": "x"}
    assert validate({"v": 3}) == {"v": 3}
    assert _error({"v": {"type": ["integer", "string"]}}, {"v": 3.0}).reason == (
        "expected integer or string, got float 3.0"
    )
    assert compile_variables({"v": {"type": ["integer", "number"]}})({"v": 3.0}) == {"v": 3.0}


def test_required_is_applied_without_properties_as_json_schema_says() -> None:
    # The first release read `required` only beside `properties`; JSON Schema reads it on any object.
    assert _error({"o": {"type": "object", "required": ["id"]}}, {"o": {}}).variable == "o.id"


# --- load time: file, line, key ------------------------------------------------------------------------------


def _load_error(write_prompt: Callable[[str, str], Path], variables: str) -> str:
    path = write_prompt("p", "template: '{{ code }}'\nvariables:\n" + variables)
    with pytest.raises(SpecError) as info:
        load_prompt_file(path)
    return str(info.value).replace(f"{path}", "p.yaml")


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            "  code: {type: string, patern: '^a$'}\n",
            "p.yaml:3: variables.code.patern: unknown key 'patern' (did you mean 'pattern'?)",
        ),
        (
            "  code:\n    type: object\n    properties:\n      id: {type: integer, requird: true}\n",
            "p.yaml:6: variables.code.properties.id.requird: unknown key 'requird' (did you mean 'required'?)",
        ),
        (
            "  code:\n    $defs:\n      c: {type: string, minLenght: 1}\n    $ref: '#/$defs/c'\n",
            "p.yaml:5: variables.code.$defs.c.minLenght: unknown key 'minLenght' (did you mean 'minLength'?)",
        ),
        (
            "  code:\n    if: {type: string}\n    els: {minimum: 1}\n",
            "p.yaml:5: variables.code.els: unknown key 'els' (did you mean 'else'?)",
        ),
        (
            "  code: {definitions: {}}\n",
            "p.yaml:3: variables.code.definitions: unknown key 'definitions' (draft 2020-12 calls it '$defs')",
        ),
        (
            "  code: {type: string, minLength: -1}\n",
            "p.yaml:3: variables.code.minLength: Input should be greater than or equal to 0",
        ),
        (
            "  code: {type: string, pattern: '('}\n",
            "p.yaml:3: variables.code.pattern: invalid pattern '(': not a regular expression (ECMA-262 syntax)",
        ),
        (
            "  code: {type: string, pattern: '(?=a)b'}\n",
            "p.yaml:3: variables.code.pattern: pattern '(?=a)b' uses lookaround or a backreference, which the "
            "linear-time regex engine lacks",
        ),
        (
            "  code:\n    type: object\n    patternProperties:\n      '[': {}\n",
            "p.yaml:6: variables.code.patternProperties.[: invalid pattern '[': not a regular expression",
        ),
        (
            "  code: {type: string, format: emial}\n",
            "p.yaml:3: variables.code.format: format 'emial' is not one promptlane checks (did you mean 'email'?",
        ),
        (
            "  code:\n    $defs:\n      Address: {type: string}\n    $ref: '#/$defs/Adress'\n",
            "p.yaml:6: variables.code.$ref: $ref '#/$defs/Adress' points at no schema inside this one",
        ),
        (
            "  code: {type: object, required: [a, a]}\n",
            'p.yaml:3: variables.code.required: ["a","a"] has non-unique elements',
        ),
        ("  code: {oneOf: []}\n", "p.yaml:3: variables.code.oneOf: List should have at least 1 item"),
    ],
)
def test_a_bad_schema_is_an_error_at_load_naming_file_line_and_key(
    write_prompt: Callable[[str, str], Path], variables: str, message: str
) -> None:
    assert _load_error(write_prompt, variables).startswith(message)


def test_the_keywords_accepted_are_draft_2020_12s_without_other_documents() -> None:
    listed_in_the_issue = {
        "type", "enum", "const", "default", "description", "title", "examples", "items", "prefixItems",
        "properties", "required", "additionalProperties", "patternProperties", "minLength", "maxLength", "pattern",
        "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems",
        "maxItems", "uniqueItems", "contains", "minProperties", "maxProperties", "oneOf", "anyOf", "allOf", "not",
        "if", "then", "else", "$ref", "$defs", "dependentRequired", "deprecated", "readOnly", "writeOnly",
    }  # fmt: skip
    assert listed_in_the_issue <= KEYWORDS
    assert not {"$id", "$schema", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary"} & KEYWORDS
    for keyword in KEYWORDS:  # each one is a field of the model, under its JSON Schema name
        value: Any = {"contains": {}} if keyword in ("minContains", "maxContains") else None
        schema = _example(keyword)
        if value is not None:
            schema = {**schema, **value}
        PromptSpec.model_validate({"template": "x", "variables": {"v": schema}})


def _example(keyword: str) -> dict[str, Any]:
    examples: dict[str, Any] = {
        "type": "string", "enum": [1], "const": 1, "default": 1, "title": "t", "description": "d", "examples": [1],
        "deprecated": True, "readOnly": True, "writeOnly": False, "$comment": "c", "minLength": 1, "maxLength": 2,
        "pattern": "^a", "format": "email", "contentEncoding": "base64", "contentMediaType": "text/plain",
        "minimum": 0, "maximum": 1.5, "exclusiveMinimum": 0, "exclusiveMaximum": 2, "multipleOf": 0.5,
        "minContains": 1, "maxContains": 2, "minItems": 0, "maxItems": 3, "uniqueItems": True, "minProperties": 0,
        "maxProperties": 3, "required": ["a"], "dependentRequired": {"a": ["b"]}, "$ref": "#",
    }  # fmt: skip
    return {keyword: examples.get(keyword, {} if keyword not in ("prefixItems", "allOf", "anyOf", "oneOf") else [{}])}


def test_push_of_a_spec_given_as_data_names_the_key(registry: Registry) -> None:
    spec = {"template": "{{ v }}", "variables": {"v": {"type": "object", "properties": {"a": {"patern": "x"}}}}}
    with pytest.raises(SpecError) as info:
        registry.push_spec("p", spec)
    assert "unknown key 'patern' (did you mean 'pattern'?)" in str(info.value)
    assert info.value.key is not None and info.value.key.endswith("a.patern")
