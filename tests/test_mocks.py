"""Mocked tools: subset matching, first match wins, error and Python outcomes, and the no-mock error."""

from __future__ import annotations

import datetime
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from promptlane.errors import ConfigError
from promptlane.harness.mocks import MockedTool, MockOutcome, NoMockError, describe_call, matches, mocked_tools
from promptlane.harness.scenarios import ScenarioFile, ToolMockSpec

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)
OBJECTS = st.dictionaries(st.text(max_size=5), JSON, max_size=6)


def rules(text: str) -> list[ToolMockSpec]:
    return [ToolMockSpec.model_validate(rule) for rule in yaml.safe_load(textwrap.dedent(text))]


@pytest.fixture
def python_module(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Write a module (unique name) into tmp_path; returns its name. Forgotten again after the test."""
    names: list[str] = []
    saved_path = list(sys.path)

    def write(source: str) -> str:
        name = f"mocks_{uuid.uuid4().hex[:12]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return name

    yield write
    sys.path[:] = saved_path
    for name in names:
        sys.modules.pop(name, None)


# --- matches ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ({}, {"a": 1}, True),
        ({}, {}, True),
        ({"a": 1}, {"a": 1, "b": 2}, True),
        ({"a": 1, "b": 2}, {"a": 1}, False),
        ({"a": 1}, {"a": 2}, False),
        ({"a": 1}, {"a": 1.0}, True),  # JSON has one number type
        ({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}, True),  # nested mappings are subsets too
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1}}, False),
        ({"a": {"b": 1}}, {"a": "x"}, False),
        ({"a": [1, 2]}, {"a": [1, 2]}, True),
        ({"a": [1]}, {"a": [1, 2]}, False),  # lists match exactly, not as subsets
        ({"a": [2, 1]}, {"a": [1, 2]}, False),
        ({"a": [{"b": 1}]}, {"a": [{"b": 1, "c": 2}]}, False),
        ({"a": True}, {"a": 1}, False),
        ({"a": 1}, {"a": True}, False),
        ({"a": False}, {"a": 0}, False),
        ({"a": True}, {"a": True}, True),
        ({"a": None}, {}, False),  # a key set to null is not a missing key
        ({"a": None}, {"a": None}, True),
        ({"a": "1"}, {"a": 1}, False),
        ({"a": 1}, [("a", 1)], False),
        ("x", "x", True),
        (True, 1, False),
    ],
)
def test_matches(pattern: Any, value: Any, expected: bool) -> None:
    assert matches(pattern, value) is expected


@given(JSON)
def test_matches_is_reflexive(value: Any) -> None:
    assert matches(value, value)


@given(OBJECTS, OBJECTS, st.data())
def test_a_subset_of_the_arguments_matches(value: dict[str, Any], extra: dict[str, Any], data: st.DataObject) -> None:
    keys = data.draw(st.sets(st.sampled_from(sorted(value))) if value else st.just(set()))
    pattern = {key: value[key] for key in keys}

    assert matches(pattern, value)
    assert matches(pattern, {**extra, **value})  # more arguments never unmatch
    assert matches({"nested": pattern}, {**extra, "nested": value})


@given(OBJECTS, OBJECTS, OBJECTS)
def test_a_bigger_pattern_never_matches_more(
    pattern: dict[str, Any], value: dict[str, Any], extra: dict[str, Any]
) -> None:
    if not matches(pattern, value):
        assert not matches({**extra, **pattern}, value)


@given(OBJECTS, st.text(max_size=5), JSON)
def test_a_key_the_arguments_lack_never_matches(value: dict[str, Any], key: str, expected: Any) -> None:
    missing = {k: v for k, v in value.items() if k != key}

    assert not matches({key: expected}, missing)


@given(st.integers(), st.booleans())
def test_booleans_never_match_numbers(number: int, flag: bool) -> None:
    assert not matches({"x": flag}, {"x": number})
    assert not matches({"x": number}, {"x": flag})


def test_booleans_do_not_match_numbers_inside_lists() -> None:
    assert not matches({"flags": [True]}, {"flags": [1]})


# --- MockedTool -------------------------------------------------------------------------------------------


def test_first_matching_rule_wins() -> None:
    tool = MockedTool(
        "lookup_order",
        rules(
            """\
            - match: {order_id: "123"}
              returns: {status: delivered}
            - match: {order_id: "123", region: eu}
              returns: {status: never-reached}
            - match: {filters: {status: open}}
              returns: [open-1]
            - match: {order_id: "404"}
              returns: null
            - error: order not found
            """
        ),
    )

    assert [
        tool.call({"order_id": "123"}),
        tool.call({"order_id": "123", "region": "eu"}),
        tool.call({"filters": {"status": "open", "page": 2}}),
        tool.call({"order_id": "404"}),
        tool.call({"order_id": "999"}),
        tool.call({}),
    ] == [
        MockOutcome(result={"status": "delivered"}),
        MockOutcome(result={"status": "delivered"}),
        MockOutcome(result=["open-1"]),
        MockOutcome(result=None),
        MockOutcome(error="order not found"),
        MockOutcome(error="order not found"),
    ]


def test_no_mock_for_the_call() -> None:
    tool = MockedTool("lookup_order", rules('- {match: {order_id: "123"}, returns: ok}'))

    with pytest.raises(NoMockError) as info:
        tool.call({"order_id": "999"})

    assert str(info.value) == 'no mock for lookup_order({"order_id": "999"})'


def test_a_tool_without_rules_has_no_mock() -> None:
    with pytest.raises(NoMockError, match=r"^no mock for refund\(\{\}\)$"):
        MockedTool("refund", []).call({})


def test_python_mock(tmp_path: Path, python_module: Callable[[str], str]) -> None:
    module = python_module(
        """\
        def lookup(args):
            order_id = args.pop("order_id")  # mutates its copy only
            if order_id == "bad":
                raise TypeError("order_id must be digits")
            return {"order_id": order_id, "status": "shipped"}
        """
    )
    tool = MockedTool(
        "lookup_order",
        rules(
            f"""\
            - match: {{order_id: "123"}}
              returns: {{status: delivered}}
            - python: {module}:lookup
            """
        ),
        root=tmp_path,
    )
    args = {"order_id": "7"}

    assert [tool.call({"order_id": "123"}), tool.call(args), tool.call({"order_id": "bad"})] == [
        MockOutcome(result={"status": "delivered"}),
        MockOutcome(result={"order_id": "7", "status": "shipped"}),
        MockOutcome(error="TypeError: order_id must be digits"),
    ]
    assert args == {"order_id": "7"}


def test_python_mock_that_does_not_load(tmp_path: Path, python_module: Callable[[str], str]) -> None:
    module = python_module("lookup = 42\n")

    with pytest.raises(ConfigError) as missing_module:
        MockedTool("lookup_order", rules("- python: no_such_module_xyz:lookup"), root=tmp_path)
    with pytest.raises(ConfigError) as missing_function:
        MockedTool("lookup_order", rules(f"- python: {module}:find"), root=tmp_path)
    with pytest.raises(ConfigError) as not_callable:
        MockedTool("lookup_order", rules(f"- python: {module}:lookup"), root=tmp_path)

    assert [str(missing_module.value), str(missing_function.value), str(not_callable.value)] == [
        "mock of tool 'lookup_order': cannot import 'no_such_module_xyz': "
        "ModuleNotFoundError: No module named 'no_such_module_xyz'",
        f"mock of tool 'lookup_order': {module!r} has no attribute 'find'",
        f"mock of tool 'lookup_order': '{module}:lookup' is not callable",
    ]


def test_mocked_tools_from_a_scenario() -> None:
    spec = ScenarioFile.model_validate(
        yaml.safe_load(
            """\
            prompt: support/reply
            scenarios:
              - name: refund
                tools:
                  lookup_order:
                    - returns: {status: shipped}
                  refund:
                    description: Refund an order
                    mocks:
                      - match: {order_id: "123"}
                        returns: refunded
                      - error: not refundable
            """
        )
    )

    tools = mocked_tools(spec.scenarios[0].tools)

    assert {name: tool.name for name, tool in tools.items()} == {"lookup_order": "lookup_order", "refund": "refund"}
    assert [
        tools["lookup_order"].call({"order_id": "1"}),
        tools["refund"].call({"order_id": "123"}),
        tools["refund"].call({"order_id": "1"}),
    ] == [
        MockOutcome(result={"status": "shipped"}),
        MockOutcome(result="refunded"),
        MockOutcome(error="not refundable"),
    ]


# --- describe_call --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ({}, "refund({})"),
        ({"order_id": "999"}, 'refund({"order_id": "999"})'),
        ({"b": 1, "a": [True, None]}, 'refund({"a": [true, null], "b": 1})'),  # keys sorted
        ({"city": "Zürich"}, 'refund({"city": "Zürich"})'),  # text kept readable
        ({"on": datetime.date(2024, 5, 1)}, 'refund({"on": "2024-05-01"})'),  # not JSON: as text, no crash
    ],
)
def test_describe_call(args: dict[str, Any], text: str) -> None:
    assert describe_call("refund", args) == text
