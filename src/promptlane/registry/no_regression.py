"""The no-regression rule of the gate: a version that takes a label must not be worse than the version the label
serves now, on the same scenarios and inputs.

The candidate's evidence run is compared with the serving version's newest complete run on the same fingerprint
(the gate's parts, with the serving version's own content), scenario by scenario: pass counts with a one-sided
Fisher's exact test, and mean scores (the judge's, and any evaluator that scores) with a bootstrap interval
(:mod:`promptlane.registry.regression`). A significant drop in either refuses the move, naming the scenario, both
rates and the p-value or interval. Few samples prove little: 2/3 against 3/3 is no regression; 2/30 against 30/30
is. Settings: ``gate_no_regression`` (the labels it applies to, ``production`` by default) and
``gate_confidence`` (0.95).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .regression import RateTest, ScoreTest, rate_test, score_test
from .runs import CaseResult, RunRecord
from .store import PromptVersion

__all__ = ["Comparison", "ScenarioComparison", "compare", "scores_by_scenario"]


@dataclass(frozen=True, kw_only=True)
class ScenarioComparison:
    """One scenario of the candidate's run against the same scenario of the serving version's."""

    scenario: str
    """The scenario."""
    file: str
    """Its scenario file."""
    rate: RateTest
    """Pass counts compared."""
    score: ScoreTest | None = None
    """Mean scores compared, when the scenario's cases score (a judge)."""

    @property
    def regressed(self) -> bool:
        """A significant drop in the pass rate or the mean score."""
        return self.rate.regressed or (self.score is not None and self.score.regressed)

    def detail(self) -> str:
        """``7/10 (70%) vs 10/10 (100%) serving, p=0.105``, and the scores' comparison when there is one."""
        text = self.rate.describe()
        return f"{text}; {self.score.describe()}" if self.score is not None else text

    def describe(self) -> str:
        """``greets: 7/10 (70%) vs 10/10 (100%) serving, p=0.105`` (and the scores')."""
        return f"{self.scenario}: {self.detail()}"


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """A candidate's run against the serving version's, scenario by scenario."""

    serving: PromptVersion
    """The version the label serves now (the largest share of a rollout)."""
    baseline: RunRecord | None
    """The serving version's newest complete run on the current inputs; None when it has none."""
    scenarios: list[ScenarioComparison]
    """Each scenario both runs ran."""

    @property
    def regressed(self) -> list[ScenarioComparison]:
        """The scenarios with a significant drop."""
        return [scenario for scenario in self.scenarios if scenario.regressed]

    def problems(self, candidate: PromptVersion, label: str) -> list[str]:
        """Why the move is refused, one line each (none when it is not)."""
        if self.baseline is None:
            serving = self.serving
            return [
                f"{label} serves {serving.ref}, which has no complete run on the current inputs to compare "
                f"{candidate.ref} with (gate_no_regression): run `promptlane eval --prompt {serving.name} "
                f"--version {serving.number}`"
            ]
        return [f"{scenario.scenario} regressed: {scenario.detail()}" for scenario in self.regressed]


def scores_by_scenario(cases: Iterable[CaseResult]) -> dict[str, list[float]]:
    """Every score a run's cases got (judges, and evaluators that score), by scenario."""
    scores: dict[str, list[float]] = {}
    for case in cases:
        for evaluation in case.evaluations:
            if evaluation.score is not None:
                scores.setdefault(case.scenario, []).append(evaluation.score)
    return scores


def compare(
    serving: PromptVersion,
    candidate: RunRecord,
    baseline: RunRecord | None,
    *,
    scores: tuple[Mapping[str, list[float]], Mapping[str, list[float]]] | None = None,
    confidence: float = 0.95,
) -> Comparison:
    """The candidate's run against the serving version's ``baseline`` run, scenario by scenario.

    Args:
        serving: The version the label serves now.
        candidate: The candidate's evidence run.
        baseline: The serving version's newest complete run on the same inputs (None: there is none).
        scores: (candidate's, baseline's) scores by scenario (:func:`scores_by_scenario`), when the runs score.
        confidence: The confidence of the tests.
    """
    if baseline is None:
        return Comparison(serving=serving, baseline=None, scenarios=[])
    theirs = {(stats.file, stats.name): stats for stats in baseline.scenarios}
    compared = []
    for stats in candidate.scenarios:
        other = theirs.get((stats.file, stats.name))
        if other is None:
            continue  # a scenario the serving version's run did not have: nothing to compare with
        rate = rate_test(stats.passed, stats.cases, other.passed, other.cases, confidence=confidence)
        score = None
        if scores is not None and (scores[0].get(stats.name) or scores[1].get(stats.name)):
            score = score_test(scores[0].get(stats.name, []), scores[1].get(stats.name, []), confidence=confidence)
        compared.append(ScenarioComparison(scenario=stats.name, file=stats.file, rate=rate, score=score))
    return Comparison(serving=serving, baseline=baseline, scenarios=compared)
