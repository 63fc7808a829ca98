"""Regression tests for the release gate: is a candidate version worse than the version a label serves now?

The gate compares the two versions' eval runs scenario by scenario, with two tests:

- :func:`rate_test` compares pass counts (cases passed out of cases run) with a one-sided Fisher's exact test
  (R. A. Fisher, *Statistical Methods for Research Workers*, 1925): given the passes of both runs together, how
  likely is it that the candidate's share of them is as small as it is, if both versions pass a case equally often?
  The p-value is the lower tail of the hypergeometric distribution, summed in integers up to 10,000 cases in all
  (so it is exact, rounded once) and in log-space floating point beyond (100,000 cases a side take milliseconds).
- :func:`score_test` compares mean judge scores in [0, 1] with a percentile bootstrap (B. Efron, *Bootstrap
  methods: another look at the jackknife*, 1979) of the difference of the means: the interval between the
  percentiles of that difference over resamples of both score lists. A drop is a regression when the whole
  interval is below zero. The work is bounded: past 1,000 scores in all, the interval is the normal approximation
  the bootstrap converges to (the two means' difference plus or minus z standard errors), and below that the
  resamples are capped at 2,000,000 drawn scores in all. With so few scores that no test could tell a drop from
  chance (see :func:`score_test`), nothing is refused.

Standard library only: the gate must not make promptlane heavy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

__all__ = ["RateTest", "ScoreTest", "rate_test", "score_test"]

_BOOTSTRAP_MAX_SCORES = 1000
"""Past this many scores (candidate and baseline together), :func:`score_test` uses the normal approximation."""
_BOOTSTRAP_DRAWS = 2_000_000
"""At most this many scores drawn by one bootstrap (resamples x scores); ``resamples`` is capped to fit."""
_EXACT_CASES = 10_000
"""Up to this many cases in all, Fisher's p-value is summed in integers (some milliseconds at most); past it, in
floating point from a log-gamma start, to a relative error around 1e-10."""
_NEGLIGIBLE = 1e-17
"""A tail's sum stops at a term this small relative to the sum so far: the terms after it shrink faster still."""


@dataclass(frozen=True, kw_only=True)
class RateTest:
    """Whether a candidate's pass rate is lower than the serving version's: a one-sided Fisher's exact test."""

    candidate_passed: int
    """Cases the candidate passed."""
    candidate_total: int
    """Cases the candidate ran (rows x repeats)."""
    baseline_passed: int
    """Cases the serving version passed."""
    baseline_total: int
    """Cases the serving version ran."""
    p_value: float
    """How likely a pass count this low (or lower) is if the candidate passes as often as the serving version:
    small is evidence of a drop. 1.0 when either side ran no case."""
    confidence: float
    """The confidence the test was run at."""
    regressed: bool
    """``p_value < 1 - confidence``: the candidate passes significantly less often."""

    def describe(self) -> str:
        """The comparison for people, e.g. ``7/10 (70%) vs 10/10 (100%) serving, p=0.105``."""
        candidate = _rate(self.candidate_passed, self.candidate_total)
        baseline = _rate(self.baseline_passed, self.baseline_total)
        p = f"p={self.p_value:.3g}" if self.p_value >= 0.001 else "p<0.001"
        return f"{candidate} vs {baseline} serving, {p}"


@dataclass(frozen=True, kw_only=True)
class ScoreTest:
    """Whether a candidate's mean score is lower than the serving version's: a percentile bootstrap interval of
    the change."""

    candidate_mean: float
    """The candidate's mean score (nan when it has none)."""
    baseline_mean: float
    """The serving version's mean score (nan when it has none)."""
    candidate_n: int
    """How many scores the candidate has."""
    baseline_n: int
    """How many scores the serving version has."""
    low: float
    """The low end of the confidence interval of ``candidate_mean - baseline_mean``."""
    high: float
    """The high end of that interval; (-1, 1), every change there can be, when there are too few scores to tell."""
    confidence: float
    """The confidence of the interval."""
    method: Literal["bootstrap", "normal", "too few"]
    """How the interval was found: a percentile bootstrap, the normal approximation (past the bootstrap's bound on
    work), or not at all (too few scores to tell a drop from chance)."""
    regressed: bool
    """``high < 0``: the whole interval is a drop."""

    def describe(self) -> str:
        """The comparison for people, e.g. ``mean score 0.61 vs 0.82 serving, 95% interval of the change
        [-0.35, -0.08]``."""
        means = f"mean score {_mean(self.candidate_mean)} vs {_mean(self.baseline_mean)} serving"
        if self.candidate_n == 0 or self.baseline_n == 0:
            side = "candidate" if self.candidate_n == 0 else "serving"
            return f"{means}, no {side} scores to compare"
        if self.method == "too few":
            return f"{means}, too few scores ({self.candidate_n} vs {self.baseline_n}) to tell a change"
        level = f"{self.confidence * 100:.4g}%"
        return f"{means}, {level} interval of the change [{self.low:.2f}, {self.high:.2f}]"


def rate_test(
    candidate_passed: int,
    candidate_total: int,
    baseline_passed: int,
    baseline_total: int,
    *,
    confidence: float = 0.95,
) -> RateTest:
    """Whether the candidate passes significantly fewer cases than the serving version (the baseline).

    The one-sided Fisher's exact test of the 2x2 table (passed, failed) x (candidate, baseline): with the margins
    fixed, the candidate's passes follow a hypergeometric distribution, and the p-value is its lower tail at the
    candidate's count.

    Args:
        candidate_passed: Cases the candidate passed.
        candidate_total: Cases the candidate ran.
        baseline_passed: Cases the serving version passed.
        baseline_total: Cases the serving version ran.
        confidence: How sure the test must be of a drop to call it a regression, in (0, 1).

    Raises:
        ValueError: A count is not an int, is negative, or passes more cases than it ran; or ``confidence`` is not
            in (0, 1). The message names the argument.
    """
    for name, value in (
        ("candidate_total", candidate_total),
        ("baseline_total", baseline_total),
        ("candidate_passed", candidate_passed),
        ("baseline_passed", baseline_passed),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    if candidate_passed > candidate_total:
        raise ValueError(f"candidate_passed ({candidate_passed}) is more than candidate_total ({candidate_total})")
    if baseline_passed > baseline_total:
        raise ValueError(f"baseline_passed ({baseline_passed}) is more than baseline_total ({baseline_total})")
    _check_confidence(confidence)
    if candidate_total == 0 or baseline_total == 0:
        p_value = 1.0  # no evidence either way (the sum says so too: X can only be what it is)
    else:
        p_value = _fisher_lower_tail(
            candidate_passed, candidate_total, baseline_passed + candidate_passed, candidate_total + baseline_total
        )
    return RateTest(
        candidate_passed=candidate_passed,
        candidate_total=candidate_total,
        baseline_passed=baseline_passed,
        baseline_total=baseline_total,
        p_value=p_value,
        confidence=confidence,
        regressed=p_value < 1 - confidence,
    )


def score_test(
    candidate_scores: Iterable[float],
    baseline_scores: Iterable[float],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> ScoreTest:
    """Whether the candidate's mean score is significantly lower than the serving version's (the baseline).

    The interval is a percentile bootstrap of ``mean(candidate) - mean(baseline)``, drawn from ``random.Random(seed)``
    so the same scores always give the same answer. Its work is bounded: past 1,000 scores in all it is the normal
    approximation ``difference +- z * standard error``, and below that the resamples are capped at 2,000,000 drawn
    scores in all.

    Too few scores are not judged: when even the most lopsided split (every candidate score below every baseline
    score) is as likely as the interval's upper tail, ``1 / C(n_c + n_b, n_c) >= (1 - confidence) / 2``, no test of
    exchangeable scores could tell a drop from chance, and a bootstrap of such samples is much too narrow (two equal
    scores a side make an interval of one point). The interval is then (-1, 1). At 95% that is an empty side, 1 score vs
    39 or fewer, 2 vs 7 or fewer, 3 vs 4 or fewer; 4 vs 4 is judged.

    Args:
        candidate_scores: The candidate's scores, finite numbers in [0, 1].
        baseline_scores: The serving version's scores, finite numbers in [0, 1].
        confidence: The confidence of the interval, in (0, 1).
        resamples: How many bootstrap resamples, a positive int (capped as above).
        seed: The seed of the resamples.

    Raises:
        ValueError: A score is not a finite number in [0, 1] (the message names the side and the index), or
            ``confidence`` or ``resamples`` is out of range.
    """
    candidate = _scores("candidate_scores", candidate_scores)
    baseline = _scores("baseline_scores", baseline_scores)
    _check_confidence(confidence)
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be a positive int, got {resamples!r}")
    n_c, n_b = len(candidate), len(baseline)
    method: Literal["bootstrap", "normal", "too few"]
    if _too_few(n_c, n_b, confidence):
        method, low, high = "too few", -1.0, 1.0
    elif n_c + n_b > _BOOTSTRAP_MAX_SCORES:
        method = "normal"
        low, high = _normal_interval(candidate, baseline, confidence)
    else:
        method = "bootstrap"
        resamples = min(resamples, _BOOTSTRAP_DRAWS // (n_c + n_b))
        low, high = _bootstrap_interval(candidate, baseline, confidence, resamples, seed)
    low, high = max(-1.0, low), min(1.0, high)
    return ScoreTest(
        candidate_mean=_mean_of(candidate),
        baseline_mean=_mean_of(baseline),
        candidate_n=n_c,
        baseline_n=n_b,
        low=low,
        high=high,
        confidence=confidence,
        method=method,
        regressed=high < 0,
    )


def _fisher_lower_tail(passed: int, total: int, all_passed: int, all_total: int) -> float:
    """P(X <= passed) for X hypergeometric: ``total`` cases drawn from ``all_total``, of which ``all_passed`` passed.

    Up to :data:`_EXACT_CASES` cases in all, the tail is a sum of integers and one division, so the float is the
    exact value rounded once. Past that, in floating point: the terms fall away from the mode on both sides, so
    the shorter way is summed, down from ``passed`` when it is at or below the mode, else the upper tail from
    ``passed + 1``, taken from 1. The sum is kept relative to its first term (whose logarithm comes from
    log-gamma), and stops where the terms no longer count, so it neither overflows nor underflows.
    """
    others = all_total - all_passed  # cases failed, both sides together
    lowest = max(0, all_passed - (all_total - total))
    if all_total <= _EXACT_CASES:
        term = math.comb(all_passed, passed) * math.comb(others, total - passed)
        tail = term
        for x in range(passed, lowest, -1):  # P(x - 1) / P(x); each partial product is a whole term
            term = term * x * (others - total + x) // ((all_passed - x + 1) * (total - x + 1))
            tail += term
        return tail / math.comb(all_total, total)  # int / int rounds the exact quotient once
    mode = (total + 1) * (all_passed + 1) // (all_total + 2)
    if passed <= mode:
        start, step, stop = passed, -1, lowest
    elif passed == min(total, all_passed):
        return 1.0  # the upper tail is empty
    else:
        start, step, stop = passed + 1, 1, min(total, all_passed)
    relative, term, x = 1.0, 1.0, start
    while x != stop:
        if step < 0:  # P(x - 1) / P(x)
            term *= x * (others - total + x) / ((all_passed - x + 1) * (total - x + 1))
        else:  # P(x + 1) / P(x)
            term *= (all_passed - x) * (total - x) / ((x + 1) * (others - total + x + 1))
        x += step
        relative += term
        if term < relative * _NEGLIGIBLE:
            break
    log_first = _log_comb(all_passed, start) + _log_comb(others, total - start) - _log_comb(all_total, total)
    tail = math.exp(log_first + math.log(relative))
    return min(1.0, tail) if step < 0 else max(0.0, 1.0 - tail)


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _too_few(n_c: int, n_b: int, confidence: float) -> bool:
    """Whether the most lopsided split of the scores, chance ``1 / C(n_c + n_b, n_c)``, is at least as likely as the
    interval's upper tail, ``(1 - confidence) / 2``."""
    smaller, n = min(n_c, n_b), n_c + n_b
    splits, enough = 1, 2 / (1 - confidence)
    for i in range(1, smaller + 1):  # C(n, i), stopping as soon as it is enough
        splits = splits * (n - smaller + i) // i
        if splits > enough * (1 + 1e-9):  # 1 - 0.95 is a hair over 0.05: without slack, C = 40 would do
            return False
    return True


def _bootstrap_interval(
    candidate: list[float], baseline: list[float], confidence: float, resamples: int, seed: int
) -> tuple[float, float]:
    rng = random.Random(seed)
    n_c, n_b = len(candidate), len(baseline)
    changes = sorted(
        sum(rng.choices(candidate, k=n_c)) / n_c - sum(rng.choices(baseline, k=n_b)) / n_b for _ in range(resamples)
    )
    tail = (1 - confidence) / 2
    return _percentile(changes, tail), _percentile(changes, 1 - tail)


def _percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolating between the two nearest."""
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def _normal_interval(candidate: list[float], baseline: list[float], confidence: float) -> tuple[float, float]:
    """The difference of the means plus or minus z standard errors, with the plug-in variances the bootstrap
    resamples from."""
    mean_c, mean_b = _mean_of(candidate), _mean_of(baseline)
    variance_c = math.fsum((x - mean_c) ** 2 for x in candidate) / len(candidate)
    variance_b = math.fsum((x - mean_b) ** 2 for x in baseline) / len(baseline)
    error = math.sqrt(variance_c / len(candidate) + variance_b / len(baseline))
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    change = mean_c - mean_b
    return change - z * error, change + z * error


def _mean_of(scores: list[float]) -> float:
    return math.fsum(scores) / len(scores) if scores else math.nan


def _scores(name: str, scores: Iterable[float]) -> list[float]:
    checked = []
    for index, score in enumerate(scores):
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
            raise ValueError(f"{name}[{index}] is {score!r}: scores must be finite numbers in [0, 1]")
        checked.append(float(score))
    return checked


def _check_confidence(confidence: float) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number between 0 and 1 (exclusive), got {confidence!r}")


def _rate(passed: int, total: int) -> str:
    if total == 0:
        return "0/0 (no cases)"
    percent = round(100 * passed / total)
    # Rounding must not hide a failure or a pass: 999/1000 is not 100%.
    shown = ">99%" if percent == 100 and passed < total else "<1%" if percent == 0 and passed > 0 else f"{percent}%"
    return f"{passed}/{total} ({shown})"


def _mean(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"
