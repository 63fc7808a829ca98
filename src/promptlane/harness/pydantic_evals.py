"""pydantic-evals evaluators in scenario files: ``pydantic_evals: {EqualsExpected: null, Contains: {value: x}}``.

Needs the optional extra: ``pip install 'promptlane[pydantic-evals]'``. Only pydantic-evals' public names are used
(``pydantic_evals.evaluators`` and ``pydantic_evals.otel``), so that the bridge keeps working across its releases.
"""

# pydantic-evals is an extra the development environment leaves out (tests/test_pydantic_evals.py says why).
# pyright: reportMissingImports=false
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from .._extras import require
from ..errors import ConfigError
from ..registry.runs import EvaluationResult
from .evaluators import CaseContext, Evaluator, result_from_value

__all__ = ["pydantic_evals_evaluator"]


def _registry() -> dict[str, type[Any]]:
    """The case evaluators pydantic-evals exports, by the name its dataset files use."""
    require("pydantic-evals", "a pydantic_evals expectation")
    import pydantic_evals.evaluators as public

    found: dict[str, type[Any]] = {}
    for export in public.__all__:
        cls = getattr(public, export, None)
        if isinstance(cls, type) and issubclass(cls, public.Evaluator) and not inspect.isabstract(cls):
            found[cls.get_serialization_name()] = cls
    return found


@dataclass
class _PydanticEvals(Evaluator):
    evaluator: Any
    name: str

    async def evaluate(self, ctx: CaseContext) -> EvaluationResult:
        from pydantic_evals.evaluators import EvaluationReason, EvaluatorContext
        from pydantic_evals.otel import SpanTreeRecordingError

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
    registry = _registry()  # first: without pydantic-evals, the pip install line
    from pydantic_evals.evaluators import EvaluatorSpec

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
