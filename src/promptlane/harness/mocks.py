"""Mocked tools for tool-calling rehearsal: the first rule whose ``match`` is a subset of the arguments wins."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._canonical import json_equal
from ._imports import load_callable
from .scenarios import ToolDeclaration, ToolMockSpec

__all__ = ["MockOutcome", "MockedTool", "NoMockError", "matches", "mocked_tools"]


class NoMockError(Exception):
    """No rule of a tool's mock matched the call: the case fails (the scenario does not cover this call)."""


@dataclass(frozen=True)
class MockOutcome:
    """What a mocked call gave: a result, or an error message the model sees."""

    result: Any = None
    """The tool's result."""
    error: str | None = None
    """The tool's failure, if it failed."""


def matches(pattern: Any, value: Any) -> bool:
    """``pattern`` is a subset of ``value``: mappings key by key (recursively), anything else by equality."""
    if isinstance(pattern, Mapping):
        return isinstance(value, Mapping) and all(
            key in value and matches(expected, value[key]) for key, expected in pattern.items()
        )
    return json_equal(pattern, value)


def describe_call(name: str, args: Mapping[str, Any]) -> str:
    """``lookup_order({"order_id": "999"})``."""
    return f"{name}({json.dumps(args, sort_keys=True, ensure_ascii=False, default=str)})"


@dataclass(frozen=True)
class _Rule:
    match: Mapping[str, Any] | None
    outcome: MockOutcome | None
    function: Callable[[dict[str, Any]], Any] | None


class MockedTool:
    """A tool whose calls are answered by mock rules."""

    def __init__(self, name: str, rules: Sequence[ToolMockSpec], *, root: Path | None = None) -> None:
        self.name = name
        self._rules = [self._rule(spec, root) for spec in rules]

    def _rule(self, spec: ToolMockSpec, root: Path | None) -> _Rule:
        if spec.python is not None:
            function = load_callable(spec.python, what=f"mock of tool {self.name!r}", root=root)
            return _Rule(spec.match, None, function)
        if spec.error is not None:
            return _Rule(spec.match, MockOutcome(error=spec.error), None)
        return _Rule(spec.match, MockOutcome(result=spec.returns), None)

    def call(self, args: dict[str, Any]) -> MockOutcome:
        """Answer a call.

        Raises:
            NoMockError: no rule matched.
        """
        for rule in self._rules:
            if rule.match is not None and not matches(rule.match, args):
                continue
            if rule.function is None:
                assert rule.outcome is not None
                return rule.outcome
            try:
                return MockOutcome(result=rule.function(dict(args)))
            except Exception as exc:  # a Python mock that raises is a tool failure the model sees
                return MockOutcome(error=f"{type(exc).__name__}: {exc}")
        raise NoMockError(f"no mock for {describe_call(self.name, args)}")


def mocked_tools(
    tools: Mapping[str, list[ToolMockSpec] | ToolDeclaration], *, root: Path | None = None
) -> dict[str, MockedTool]:
    """The scenario's mocks by tool name."""
    return {
        name: MockedTool(name, spec.mocks if isinstance(spec, ToolDeclaration) else spec, root=root)
        for name, spec in tools.items()
    }
