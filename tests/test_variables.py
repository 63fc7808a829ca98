"""Render variables checked against a version's schema: missing, unknown, wrong type, enum, nested, defaults."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptlane.errors import VariableError
from promptlane.registry import Registry
from promptlane.variables import VariablesValidator, compile_variables

ORDER_SCHEMA = {
    "order": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "default": 1}},
                },
            },
            "note": {"type": ["string", "null"]},
        },
        "required": ["id", "items"],
    }
}


def _validator(schema: Mapping[str, Mapping[str, Any]]) -> VariablesValidator:
    return compile_variables(schema, prompt="shop/order", version=2)


def _error(schema: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]) -> VariableError:
    with pytest.raises(VariableError) as info:
        _validator(schema)(values)
    return info.value


def test_valid_values_come_back_with_defaults_filled_in() -> None:
    schema = {
        "customer": {"type": "string"},
        "tier": {"type": "string", "enum": ["free", "pro"], "default": "free"},
        "limit": {"type": "integer", "default": 10},
    }
    validate = _validator(schema)
    assert validate({"customer": "Ana"}) == {"customer": "Ana", "tier": "free", "limit": 10}
    assert validate({"customer": "Ana", "tier": "pro", "limit": 3}) == {"customer": "Ana", "tier": "pro", "limit": 3}


def test_missing_required_variable() -> None:
    error = _error({"customer": {"type": "string"}, "ticket": {}}, {"customer": "Ana"})
    assert (error.prompt, error.version, error.variable, error.reason) == (
        "shop/order",
        2,
        "ticket",
        "missing required variable",
    )
    assert str(error) == "shop/order@2, variable 'ticket': missing required variable"


def test_unknown_variable_suggests_the_closest_name() -> None:
    error = _error({"customer": {"type": "string"}, "ticket": {}}, {"customer": "Ana", "ticket": "x", "custmer": 1})
    assert (error.variable, error.reason) == ("custmer", "unknown variable (did you mean 'customer'?)")
    assert str(error) == "shop/order@2, variable 'custmer': unknown variable (did you mean 'customer'?)"


def test_unknown_variable_without_a_close_name_lists_the_declared_ones() -> None:
    error = _error({"ticket": {}, "customer": {}}, {"ticket": 1, "customer": 2, "zzz": 3})
    assert error.reason == "unknown variable (declared: customer, ticket)"
    assert _error({}, {"anything": 1}).reason == "unknown variable (the prompt declares none)"


def test_unknown_variables_are_reported_before_missing_ones() -> None:
    assert _error({"customer": {}}, {"custmer": "Ana"}).reason == "unknown variable (did you mean 'customer'?)"


def test_error_without_a_version_names_only_the_prompt() -> None:
    with pytest.raises(VariableError) as info:
        compile_variables({"a": {}}, prompt="draft")({})
    assert str(info.value) == "draft, variable 'a': missing required variable"
    with pytest.raises(VariableError) as info:
        compile_variables({"a": {}})({})
    assert str(info.value) == "variable 'a': missing required variable"


TYPES: dict[str, tuple[list[Any], list[tuple[Any, str]]]] = {
    "string": (["", "text"], [(1, "int 1"), (None, "NoneType None"), (["a"], "list ['a']")]),
    "integer": ([0, -3, 10**30], [(True, "bool True"), (False, "bool False"), (1.0, "float 1.0"), ("1", "str '1'")]),
    "number": ([0, 1.5, -2], [(True, "bool True"), ("1.5", "str '1.5'"), (None, "NoneType None")]),
    "boolean": ([True, False], [(1, "int 1"), (0, "int 0"), ("true", "str 'true'")]),
    "array": ([[], [1, "a"], (1, 2)], [("ab", "str 'ab'"), ({"a": 1}, "dict {'a': 1}"), ({1}, "set {1}")]),
    "object": ([{}, {"a": 1}, OrderedDict(b=2)], [([], "list []"), ("{}", "str '{}'"), (None, "NoneType None")]),
    "null": ([None], [(0, "int 0"), ("", "str ''"), (False, "bool False")]),
}


@pytest.mark.parametrize("kind", list(TYPES))
def test_each_json_type_accepts_its_values_and_refuses_others(kind: str) -> None:
    good, bad = TYPES[kind]
    validate = _validator({"v": {"type": kind}})
    for value in good:
        assert validate({"v": value}) == {"v": value}
    for value, described in bad:
        with pytest.raises(VariableError) as info:
            validate({"v": value})
        assert (info.value.variable, info.value.reason) == ("v", f"expected {kind}, got {described}")


def test_long_values_are_shortened_in_the_message() -> None:
    error = _error({"n": {"type": "integer"}}, {"n": "x" * 100})
    assert error.reason == "expected integer, got str '" + "x" * 56 + "..."


def test_a_type_list_accepts_any_of_its_types() -> None:
    validate = _validator({"note": {"type": ["string", "null"]}})
    assert validate({"note": "hi"}) == {"note": "hi"}
    assert validate({"note": None}) == {"note": None}
    with pytest.raises(VariableError) as info:
        validate({"note": 1})
    assert info.value.reason == "expected string or null, got int 1"
    integer_or_bool = _validator({"flag": {"type": ["integer", "boolean"]}})
    assert integer_or_bool({"flag": True}) == {"flag": True}
    assert integer_or_bool({"flag": 2}) == {"flag": 2}


def test_enum() -> None:
    validate = _validator({"tier": {"enum": ["free", "pro"]}, "n": {"type": "integer", "enum": [1, 2]}})
    assert validate({"tier": "pro", "n": 2}) == {"tier": "pro", "n": 2}
    error = _error({"tier": {"enum": ["free", "pro"]}}, {"tier": "Pro"})
    assert (error.variable, error.reason) == ("tier", "'Pro' is not one of ['free', 'pro']")
    assert _error({"n": {"enum": [1, 2]}}, {"n": 3}).reason == "3 is not one of [1, 2]"


def test_booleans_are_not_numbers_in_an_enum() -> None:
    # 1 == True in Python; not in JSON.
    assert _error({"n": {"enum": [1, 2]}}, {"n": True}).reason == "True is not one of [1, 2]"
    assert _error({"n": {"enum": [0]}}, {"n": False}).reason == "False is not one of [0]"
    assert _error({"b": {"enum": [True]}}, {"b": 1}).reason == "1 is not one of [True]"
    assert _validator({"b": {"enum": [True, None]}})({"b": None}) == {"b": None}
    assert _validator({"n": {"enum": [1, 2]}})({"n": 1.0}) == {"n": 1.0}  # 1.0 is 1 in JSON


def test_type_is_checked_before_enum() -> None:
    assert _error({"n": {"type": "integer", "enum": [1]}}, {"n": True}).reason == "expected integer, got bool True"


def test_nested_values_are_checked_with_their_path() -> None:
    validate = _validator(ORDER_SCHEMA)
    good = {"order": {"id": 1, "items": [{"sku": "a"}, {"sku": "b", "qty": 2}], "note": None}}
    filled = {"order": {"id": 1, "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}], "note": None}}
    assert validate(good) == filled  # qty's default filled in
    cases = [
        ({"id": 1, "items": [{"sku": "a"}, {"sku": 3}]}, "order.items[1].sku", "expected string, got int 3"),
        ({"id": 1, "items": [{"sku": "a", "qty": "2"}]}, "order.items[0].qty", "expected integer, got str '2'"),
        ({"id": 1, "items": [{"qty": 2}]}, "order.items[0].sku", "missing required property"),
        ({"items": []}, "order.id", "missing required property"),
        ({"id": 1, "items": "abc"}, "order.items", "expected array, got str 'abc'"),
        ({"id": 1, "items": [], "note": 5}, "order.note", "expected string or null, got int 5"),
        ({"id": 1, "items": [["sku"]]}, "order.items[0]", "expected object, got list ['sku']"),
        ([1], "order", "expected object, got list [1]"),
    ]
    for order, variable, reason in cases:
        with pytest.raises(VariableError) as info:
            validate({"order": order})
        assert (info.value.variable, info.value.reason) == (variable, reason)
        assert str(info.value) == f"shop/order@2, variable {variable!r}: {reason}"


def test_properties_without_a_default_are_required_unless_required_is_given() -> None:
    implicit = _validator({"o": {"properties": {"a": {}, "b": {"default": 0}}}})
    assert implicit({"o": {"a": 1}}) == {"o": {"a": 1, "b": 0}}
    with pytest.raises(VariableError, match=r"variable 'o\.a': missing required property"):
        implicit({"o": {"b": 1}})
    explicit = _validator({"o": {"properties": {"a": {"type": "string"}}, "required": []}})
    assert explicit({"o": {}}) == {"o": {}}
    with pytest.raises(VariableError, match=r"variable 'o\.a': expected string"):
        explicit({"o": {"a": 1}})


def test_undeclared_properties_and_untyped_variables_are_accepted() -> None:
    validate = _validator({"o": {"properties": {"a": {}}}, "anything": {}})
    value = {"o": {"a": 1, "extra": object()}, "anything": object()}
    assert validate(value) == value


def test_nested_arrays_report_every_index() -> None:
    schema = {"grid": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}}
    error = _error(schema, {"grid": [[1, 2], [3, "4"]]})
    assert (error.variable, error.reason) == ("grid[1][1]", "expected integer, got str '4'")


def test_default_null_makes_a_variable_optional() -> None:
    validate = _validator({"note": {"type": ["string", "null"], "default": None}, "name": {"type": "string"}})
    assert validate({"name": "Bo"}) == {"name": "Bo", "note": None}
    assert validate({"name": "Bo", "note": "hi"}) == {"name": "Bo", "note": "hi"}
    assert _error({"note": {"type": "string", "default": None}}, {"note": None}).reason == (
        "expected string, got NoneType None"
    )


def test_given_values_are_checked_even_when_a_default_exists() -> None:
    error = _error({"tier": {"enum": ["free", "pro"], "default": "free"}}, {"tier": "gold"})
    assert (error.variable, error.reason) == ("tier", "'gold' is not one of ['free', 'pro']")


# --- through Prompt.render -----------------------------------------------------------------------------------


def _push_order_prompt(registry: Registry) -> None:
    registry.push_spec(
        "shop/order",
        {
            "template": "Order {{ order.id }} for {{ customer }}{% for item in order['items'] %}, {{ item.sku }}"
            "{% endfor %}{{ ' (' ~ note ~ ')' if note }} [{{ tier }}]",
            "variables": {
                **ORDER_SCHEMA,
                "customer": {"type": "string"},
                "note": {"type": ["string", "null"], "default": None},
                "tier": {"enum": ["free", "pro"], "default": "free"},
            },
        },
    )


def test_prompt_render_checks_and_fills_variables(registry: Registry) -> None:
    _push_order_prompt(registry)
    prompt = registry.get("shop/order", label="latest")
    order = {"id": 7, "items": [{"sku": "mug"}, {"sku": "tea"}]}
    assert prompt.render(order=order, customer="Ana").text == "Order 7 for Ana, mug, tea [free]"
    assert prompt.render({"order": order, "customer": "Ana", "tier": "free"}, tier="pro", note="gift").text == (
        "Order 7 for Ana, mug, tea (gift) [pro]"
    )


@pytest.mark.parametrize(
    ("variables", "variable", "reason"),
    [
        ({"order": {"id": 7, "items": []}}, "customer", "missing required variable"),
        ({"order": {"id": 7, "items": []}, "customer": "Ana", "costumer": "x"}, "costumer", "unknown variable"),
        ({"order": {"id": 7, "items": [{"sku": 1}]}, "customer": "Ana"}, "order.items[0].sku", "expected string"),
        ({"order": {"id": True, "items": []}, "customer": "Ana"}, "order.id", "expected integer, got bool True"),
        ({"order": {"id": 7, "items": []}, "customer": "Ana", "tier": "gold"}, "tier", "'gold' is not one of"),
    ],
)
def test_prompt_render_refuses_bad_variables(
    registry: Registry, variables: dict[str, Any], variable: str, reason: str
) -> None:
    _push_order_prompt(registry)
    with pytest.raises(VariableError) as info:
        registry.get("shop/order", label="latest").render(variables)
    error = info.value
    assert (error.prompt, error.version, error.variable) == ("shop/order", 1, variable)
    assert error.reason.startswith(reason)
    assert str(error).startswith(f"shop/order@1, variable {variable!r}: {reason}")


def test_inferred_variables_are_required_strings(registry: Registry) -> None:
    registry.push_spec("hello", {"template": "Hello {{ name }}"})
    prompt = registry.get("hello", label="latest")
    assert prompt.variables == {"name": {"type": "string"}}
    with pytest.raises(VariableError, match="hello@1, variable 'name': expected string, got int 3"):
        prompt.render(name=3)
    with pytest.raises(VariableError, match="missing required variable"):
        prompt.render()


# --- property: the type check agrees with JSON's types -------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


def _json_types(value: Any) -> set[str]:
    """The JSON Schema types ``value`` (as json.loads would build it) is an instance of."""
    if value is None:
        return {"null"}
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"number"}
    if isinstance(value, str):
        return {"string"}
    return {"array"} if isinstance(value, list) else {"object"}


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, kinds=st.lists(st.sampled_from(list(TYPES)), min_size=1, max_size=3, unique=True))
def test_type_check_agrees_with_json_types(value: Any, kinds: list[str]) -> None:
    validate = _validator({"v": {"type": kinds if len(kinds) > 1 else kinds[0]}})
    if _json_types(value) & set(kinds):
        assert validate({"v": value}) == {"v": value}
    else:
        with pytest.raises(VariableError) as info:
            validate({"v": value})
        assert info.value.reason.startswith(f"expected {' or '.join(kinds)}, got ")


SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([0.0, 1.0, 2.5]) | st.sampled_from("ab")


@settings(max_examples=300, deadline=None)
@given(value=SCALARS, options=st.lists(SCALARS, max_size=4))
def test_enum_agrees_with_json_equality(value: Any, options: list[Any]) -> None:
    validate = _validator({"v": {"enum": options}})
    # JSON equality is Python's, except that booleans never equal numbers.
    if any(value == option and isinstance(value, bool) == isinstance(option, bool) for option in options):
        assert validate({"v": value}) == {"v": value}
    else:
        with pytest.raises(VariableError, match="is not one of"):
            validate({"v": value})


def test_booleans_are_not_numbers_inside_enum_arrays_and_objects() -> None:
    validate = _validator({"v": {"enum": [[1], {"a": 1}]}})
    for value in ([True], {"a": True}):
        with pytest.raises(VariableError):
            validate({"v": value})


def test_defaults_of_nested_properties_are_filled_in() -> None:
    schema = {
        "order": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "items": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"sku": {"type": "string"}, "qty": {"default": 1}}},
                },
                "gift": {"type": "boolean", "default": False},
            },
        }
    }
    validate = compile_variables(schema, prompt="p", version=1)
    order = {"id": "o1", "items": [{"sku": "a"}, {"sku": "b", "qty": 3}]}

    assert validate({"order": order}) == {
        "order": {"id": "o1", "gift": False, "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 3}]}
    }
    assert order == {"id": "o1", "items": [{"sku": "a"}, {"sku": "b", "qty": 3}]}  # the caller's value is untouched
