"""pydantic-evals evaluators in scenario files: ``pydantic_evals: {EqualsExpected: null, Contains: {value: x}}``.

Needs the optional extra: ``pip install 'promptlane[pydantic-evals]'``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..registry.runs import EvaluationResult
from .evaluators import CaseContext, Evaluator, result_from_value

__all__ = ["pydantic_evals_evaluator"]


def _registry() -> dict[str, type[Any]]:
    try:
        from pydantic_evals.evaluators.common import DEFAULT_EVALUATORS
    except ImportError:
        raise ConfigError(
            "pydantic_evals expectations need pydantic-evals: pip install 'promptlane[pydantic-evals]'"
        ) from None
    return {cls.get_serialization_name(): cls for cls in DEFAULT_EVALUATORS}


@dataclass
class _PydanticEvals(Evaluator):
    evaluator: Any
    name: str

    async def evaluate(self, ctx: CaseContext) -> EvaluationResult:
        from pydantic_evals.evaluators import EvaluationReason, EvaluatorContext
        from pydantic_evals.otel._errors import SpanTreeRecordingError

        context = EvaluatorContext(
            name=ctx.case,
            inputs=ctx.variables,
            metadata=None,
            expected_output=ctx.expected,
            output=ctx.output,
            duration=ctx.latency_ms / 1000,
            _span_tree=SpanTreeRecordingError("promptlane does not record span trees for pydantic-evals evaluators"),
            attributes={},
            metrics={},
        )
        value = self.evaluator.evaluate(context)
        if inspect.isawaitable(value):
            value = await value
        if isinstance(value, EvaluationReason):
            value = (value.value, value.reason)
        if isinstance(value, dict):  # several named results: all must pass
            results = [result_from_value(f"{self.name}.{key}", item) for key, item in value.items()]
            failed = [r for r in results if not r.passed]
            reason = "; ".join(f"{r.name}: {r.reason or 'failed'}" for r in failed) or None
            return EvaluationResult(name=self.name, passed=not failed, reason=reason)
        if isinstance(value, str):  # a label: reported, not judged
            return EvaluationResult(name=self.name, passed=True, reason=value)
        return result_from_value(self.name, value)


def pydantic_evals_evaluator(spec: dict[str, Any]) -> Evaluator:
    """The evaluator for ``{Name: args}`` (args: None, one positional value, or a mapping of keywords)."""
    from pydantic_evals.evaluators import EvaluatorSpec

    registry = _registry()
    name, args = next(iter(spec.items()))
    cls = registry.get(name)
    if cls is None:
        raise ConfigError(f"unknown pydantic-evals evaluator {name!r}; known: {', '.join(sorted(registry))}")
    parsed = EvaluatorSpec.model_validate(name if args is None else {name: args})
    try:
        evaluator = cls(*parsed.args, **parsed.kwargs)
    except TypeError as exc:
        raise ConfigError(f"pydantic-evals evaluator {name}: {exc}") from None
    return _PydanticEvals(evaluator, f"pydantic_evals:{name}")
