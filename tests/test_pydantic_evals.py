"""The pydantic-evals bridge: ``pydantic_evals:`` expectations run pydantic-evals' evaluators on a case.

pydantic-evals holds pydantic-ai at its own release, so the development environment leaves it out: these tests
run in the oldest-supported environment (``make test-oldest``), and the missing-extra test runs where it is not.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from promptlane.errors import ConfigError, MissingExtraError
from test_evaluators import build, case, evaluate, failed, passed

HAS_PYDANTIC_EVALS = importlib.util.find_spec("pydantic_evals") is not None
needs_pydantic_evals = pytest.mark.skipif(
    not HAS_PYDANTIC_EVALS, reason="pydantic-evals is not installed (make test-oldest installs it)"
)


@pytest.mark.skipif(HAS_PYDANTIC_EVALS, reason="pydantic-evals is installed")
def test_without_pydantic_evals_the_error_says_the_pip_install_line() -> None:
    with pytest.raises(MissingExtraError) as info:
        build("- pydantic_evals: {Contains: {value: refund}}")

    assert str(info.value) == (
        "a pydantic_evals expectation needs promptlane's 'pydantic-evals' extra (pydantic_evals is not installed): "
        "pip install 'promptlane[pydantic-evals]'"
    )


def test_the_bridge_imports_only_public_names() -> None:
    source = Path(__file__).parents[1] / "src/promptlane/harness/pydantic_evals.py"
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    ]
    from_pydantic_evals = [name for name in imported if name and name.startswith("pydantic_evals")]

    assert from_pydantic_evals
    assert [name for name in from_pydantic_evals if any(part.startswith("_") for part in name.split("."))] == []
    assert set(from_pydantic_evals) <= {"pydantic_evals.evaluators", "pydantic_evals.otel"}


# --- pydantic-evals -------------------------------------------------------------------------------------


@needs_pydantic_evals
def test_pydantic_evals_expectations() -> None:
    evaluators = build(
        """\
        - pydantic_evals: {Contains: {value: refund}, EqualsExpected: null}
        - pydantic_evals: {IsInstance: str}
        """
    )
    good = case(output="refund issued", expected="refund issued")
    bad = case(output="sorry", expected="refund issued")

    assert [evaluator.name for evaluator in evaluators] == [
        "pydantic_evals:Contains",
        "pydantic_evals:EqualsExpected",
        "pydantic_evals:IsInstance",
    ]
    assert [evaluate(evaluator, good) for evaluator in evaluators] == [
        passed("pydantic_evals:Contains"),
        passed("pydantic_evals:EqualsExpected"),
        passed("pydantic_evals:IsInstance"),
    ]
    assert [evaluate(evaluator, bad) for evaluator in evaluators] == [
        failed("pydantic_evals:Contains", "Output string 'sorry' does not contain expected string 'refund'"),
        failed("pydantic_evals:EqualsExpected", None),
        passed("pydantic_evals:IsInstance"),
    ]


@needs_pydantic_evals
def test_unknown_pydantic_evals_evaluator() -> None:
    from pydantic_evals.evaluators.common import DEFAULT_EVALUATORS

    with pytest.raises(ConfigError) as info:
        build("- pydantic_evals: {Containz: {value: x}}")

    message, _, known = str(info.value).partition("; known: ")
    assert message == "unknown pydantic-evals evaluator 'Containz'"
    assert known.split(", ") == sorted(known.split(", "))
    assert {cls.get_serialization_name() for cls in DEFAULT_EVALUATORS} <= set(known.split(", "))


@needs_pydantic_evals
def test_pydantic_evals_evaluator_with_bad_arguments() -> None:
    with pytest.raises(ConfigError) as info:
        build("- pydantic_evals: {Contains: {valu: x}}")

    assert (
        str(info.value)
        == "pydantic-evals evaluator Contains: Contains.__init__() got an unexpected keyword argument 'valu'"
    )
