"""Regression tests of the release gate: Fisher's exact test on pass counts, a bootstrap interval on judge scores."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptlane.registry import regression
from promptlane.registry.regression import rate_test, score_test


def brute_fisher(candidate_passed: int, candidate_total: int, baseline_passed: int, baseline_total: int) -> Fraction:
    """P(X <= candidate_passed), X hypergeometric, summed exactly over every term with math.comb."""
    passed, total = candidate_passed + baseline_passed, candidate_total + baseline_total
    tail = sum(
        math.comb(passed, x) * math.comb(total - passed, candidate_total - x)
        for x in range(max(0, passed - baseline_total), candidate_passed + 1)
    )
    return Fraction(tail, math.comb(total, candidate_total))


def log_space_fisher(candidate_passed: int, candidate_total: int, baseline_passed: int, baseline_total: int) -> float:
    """The same tail for large tables: every term's logarithm from log-gamma, added with log-sum-exp."""

    def log_comb(n: int, k: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)

    passed, total = candidate_passed + baseline_passed, candidate_total + baseline_total
    low = max(0, passed - baseline_total)
    logs = [
        log_comb(passed, x) + log_comb(total - passed, candidate_total - x) - log_comb(total, candidate_total)
        for x in range(low, candidate_passed + 1)
    ]
    top = max(logs)
    return math.exp(top + math.log(math.fsum(math.exp(v - top) for v in logs)))


@st.composite
def tables(draw: st.DrawFn, max_total: int = 40) -> tuple[int, int, int, int]:
    candidate_total = draw(st.integers(0, max_total))
    baseline_total = draw(st.integers(0, max_total))
    return (
        draw(st.integers(0, candidate_total)),
        candidate_total,
        draw(st.integers(0, baseline_total)),
        baseline_total,
    )


scores = st.floats(0.0, 1.0)


# rate_test: known values


def test_none_passed_against_all_passed_is_one_table_in_184756() -> None:
    result = rate_test(0, 10, 10, 10)
    assert result.p_value == pytest.approx(1 / 184756, rel=1e-12)
    assert result.regressed


def test_seven_of_ten_against_ten_of_ten() -> None:
    result = rate_test(7, 10, 10, 10)
    assert result.p_value == pytest.approx(2 / 19, rel=1e-12)  # C(17, 7) / C(20, 10) = 19448 / 184756
    assert not result.regressed
    assert result.describe() == "7/10 (70%) vs 10/10 (100%) serving, p=0.105"


@pytest.mark.parametrize(
    "table", [(3, 8, 6, 8), (1, 5, 4, 6), (12, 40, 20, 35), (5, 5, 0, 3), (0, 1, 1, 1), (30, 60, 31, 60)]
)
def test_p_values_are_fishers(table: tuple[int, int, int, int]) -> None:
    assert rate_test(*table).p_value == pytest.approx(float(brute_fisher(*table)), rel=1e-12)


@settings(max_examples=300)
@given(tables())
def test_p_values_are_the_exact_sum_rounded_once(table: tuple[int, int, int, int]) -> None:
    if table[1] == 0 or table[3] == 0:
        assert rate_test(*table).p_value == 1.0
    else:
        assert rate_test(*table).p_value == float(brute_fisher(*table))


@pytest.mark.parametrize(
    "table", [(100, 5000, 160, 5000), (100, 5000, 160, 5001), (4990, 5001, 5001, 5001), (4999, 5000, 4990, 5001)]
)
def test_the_exact_and_the_floating_sums_meet(table: tuple[int, int, int, int]) -> None:
    """10,000 cases in all are summed in integers, 10,001 in floating point: both are Fisher's p-value."""
    assert rate_test(*table).p_value == pytest.approx(float(brute_fisher(*table)), rel=1e-10)


@pytest.mark.parametrize(
    "table",
    [
        (49_000, 100_000, 50_000, 100_000),
        (50_100, 100_000, 50_000, 100_000),
        (99_990, 100_000, 100_000, 100_000),
        (700, 1_000, 80_000, 100_000),
        (81_000, 100_000, 800, 1_000),
    ],
)
def test_large_tables_are_exact(table: tuple[int, int, int, int]) -> None:
    assert rate_test(*table).p_value == pytest.approx(log_space_fisher(*table), rel=1e-7)


def test_the_extremes_of_large_tables_neither_overflow_nor_fail() -> None:
    assert rate_test(0, 100_000, 100_000, 100_000).p_value == 0.0  # 1 / C(200000, 100000) is below any float
    assert rate_test(100_000, 100_000, 0, 100_000).p_value == 1.0
    assert rate_test(100_000, 100_000, 100_000, 100_000).p_value == 1.0
    assert rate_test(0, 100_000, 0, 100_000).p_value == 1.0
    assert rate_test(99_999, 100_000, 100_000, 100_000).p_value == pytest.approx(0.5, rel=1e-9)


# rate_test: properties


@settings(max_examples=300)
@given(tables(max_total=2000))
def test_p_value_is_a_probability(table: tuple[int, int, int, int]) -> None:
    assert 0.0 <= rate_test(*table).p_value <= 1.0


@settings(max_examples=300)
@given(tables(max_total=500))
def test_more_candidate_passes_never_lower_p(table: tuple[int, int, int, int]) -> None:
    candidate_passed, candidate_total, baseline_passed, baseline_total = table
    if candidate_passed < candidate_total:
        fewer = rate_test(candidate_passed, candidate_total, baseline_passed, baseline_total).p_value
        more = rate_test(candidate_passed + 1, candidate_total, baseline_passed, baseline_total).p_value
        assert more >= fewer


@settings(max_examples=300)
@given(tables(max_total=500))
def test_more_baseline_passes_never_raise_p(table: tuple[int, int, int, int]) -> None:
    candidate_passed, candidate_total, baseline_passed, baseline_total = table
    if baseline_passed < baseline_total:
        fewer = rate_test(candidate_passed, candidate_total, baseline_passed, baseline_total).p_value
        more = rate_test(candidate_passed, candidate_total, baseline_passed + 1, baseline_total).p_value
        assert more <= fewer


@settings(max_examples=100)
@given(st.data())
def test_large_tables_are_monotone_to_their_precision(data: st.DataObject) -> None:
    """Past 10,000 cases the sums are floating point, right to about 1e-10 of the p-value."""
    candidate_total, baseline_total = data.draw(st.integers(5001, 100_000)), data.draw(st.integers(5001, 100_000))
    candidate_passed = data.draw(st.integers(0, candidate_total - 1))
    baseline_passed = data.draw(st.integers(0, baseline_total - 1))
    p = rate_test(candidate_passed, candidate_total, baseline_passed, baseline_total).p_value
    more_candidate = rate_test(candidate_passed + 1, candidate_total, baseline_passed, baseline_total).p_value
    more_baseline = rate_test(candidate_passed, candidate_total, baseline_passed + 1, baseline_total).p_value
    assert more_candidate >= p * (1 - 1e-9)
    assert more_baseline <= p * (1 + 1e-9)


@settings(max_examples=300)
@given(
    st.integers(0, 5000).flatmap(lambda total: st.tuples(st.integers(0, total), st.just(total))),
    st.floats(0.5, 1.0, exclude_min=True, exclude_max=True),
)
def test_equal_counts_are_never_refused(counts: tuple[int, int], confidence: float) -> None:
    passed, total = counts
    result = rate_test(passed, total, passed, total, confidence=confidence)
    assert result.p_value > 0.5
    assert not result.regressed


def test_few_cases_are_not_enough_and_more_are() -> None:
    assert not rate_test(2, 3, 3, 3).regressed
    assert rate_test(2, 30, 30, 30).regressed


def test_confidence_sets_the_bar() -> None:
    assert not rate_test(7, 10, 10, 10).regressed  # p = 0.105
    assert rate_test(7, 10, 10, 10, confidence=0.85).regressed
    assert rate_test(7, 10, 10, 10, confidence=0.85).confidence == 0.85


def test_a_side_that_ran_nothing_is_no_evidence() -> None:
    for table in [(0, 0, 10, 10), (0, 10, 0, 0), (0, 0, 0, 0)]:
        result = rate_test(*table)
        assert (result.p_value, result.regressed) == (1.0, False)
    assert rate_test(0, 0, 10, 10).describe() == "0/0 (no cases) vs 10/10 (100%) serving, p=1"


def test_describe_does_not_round_a_difference_away() -> None:
    assert rate_test(999, 1000, 1000, 1000).describe() == "999/1000 (>99%) vs 1000/1000 (100%) serving, p=0.5"
    assert rate_test(1, 1000, 0, 1000).describe() == "1/1000 (<1%) vs 0/1000 (0%) serving, p=1"
    assert rate_test(2, 30, 30, 30).describe() == "2/30 (7%) vs 30/30 (100%) serving, p<0.001"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((-1, 10, 10, 10), {}, "candidate_passed must be a non-negative int, got -1"),
        ((11, 10, 10, 10), {}, r"candidate_passed \(11\) is more than candidate_total \(10\)"),
        ((1, 10, 11, 10), {}, r"baseline_passed \(11\) is more than baseline_total \(10\)"),
        ((1, -10, 1, 10), {}, "candidate_total must be a non-negative int, got -10"),
        ((1, 10, 1, 10.0), {}, "baseline_total must be a non-negative int, got 10.0"),
        ((1, 10, True, 10), {}, "baseline_passed must be a non-negative int, got True"),
        ((1, 10, 1, 10), {"confidence": 1.0}, "confidence must be a number between 0 and 1"),
        ((1, 10, 1, 10), {"confidence": 0}, "confidence must be a number between 0 and 1"),
        ((1, 10, 1, 10), {"confidence": math.nan}, "confidence must be a number between 0 and 1"),
    ],
)
def test_rate_test_refuses_bad_arguments(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rate_test(*args, **kwargs)


# score_test


def noisy(count: int, center: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [min(1.0, max(0.0, rng.gauss(center, 0.15))) for _ in range(count)]


def test_the_same_seed_gives_the_same_interval() -> None:
    candidate, baseline = noisy(40, 0.6, 1), noisy(40, 0.7, 2)
    first = score_test(candidate, baseline, seed=7)
    assert score_test(candidate, baseline, seed=7) == first
    assert first.method == "bootstrap"
    assert first.low < first.candidate_mean - first.baseline_mean < first.high


def test_a_clear_drop_is_a_regression() -> None:
    result = score_test([0.2] * 30, [0.9] * 30)
    assert result.regressed
    assert (result.low, result.high) == pytest.approx((-0.7, -0.7))
    assert result.describe() == "mean score 0.20 vs 0.90 serving, 95% interval of the change [-0.70, -0.70]"
    noisy_drop = score_test(noisy(30, 0.55, 3), noisy(30, 0.8, 4))
    assert noisy_drop.regressed
    assert noisy_drop.low < noisy_drop.high < 0


def test_a_small_drop_within_the_noise_is_not() -> None:
    result = score_test(noisy(30, 0.68, 5), noisy(30, 0.7, 6))
    assert not result.regressed
    assert result.low < 0 < result.high


@settings(max_examples=100)
@given(st.lists(scores, max_size=60), st.integers(0, 2**32))
def test_identical_scores_are_never_a_regression(values: list[float], seed: int) -> None:
    assert not score_test(values, list(values), seed=seed).regressed


@settings(max_examples=100)
@given(st.lists(scores, min_size=2, max_size=2), st.lists(scores, min_size=2, max_size=2))
def test_two_scores_a_side_are_too_few_to_refuse(candidate: list[float], baseline: list[float]) -> None:
    result = score_test(candidate, baseline)
    assert (result.method, result.low, result.high, result.regressed) == ("too few", -1.0, 1.0, False)


def test_too_few_scores_are_said_so() -> None:
    result = score_test([0.7, 0.7], [0.8, 0.8])  # a bootstrap alone would call this interval [-0.1, -0.1]
    assert not result.regressed
    assert result.describe() == "mean score 0.70 vs 0.80 serving, too few scores (2 vs 2) to tell a change"
    assert score_test([0.0] * 3, [1.0] * 4).method == "too few"  # C(7, 3) = 35 splits: 1/35 > 2.5%
    assert score_test([0.0] * 4, [1.0] * 4).regressed  # C(8, 4) = 70 splits: 1/70 < 2.5%
    assert score_test([0.0] * 4, [1.0] * 4, confidence=0.99).method == "too few"  # 1/70 > 0.5%
    assert score_test([0.0], [1.0] * 40).regressed
    assert score_test([0.0], [1.0] * 39).method == "too few"


def test_an_empty_side_is_no_evidence() -> None:
    for candidate, baseline in [([], [0.5, 0.9]), ([0.1] * 50, []), ([], [])]:
        result = score_test(candidate, baseline)
        assert (result.low, result.high, result.regressed) == (-1.0, 1.0, False)
    empty = score_test([], [0.5, 0.9])
    assert math.isnan(empty.candidate_mean)
    assert empty.describe() == "mean score n/a vs 0.70 serving, no candidate scores to compare"
    assert score_test([0.5], []).describe() == "mean score 0.50 vs n/a serving, no serving scores to compare"


def test_large_inputs_take_the_normal_approximation() -> None:
    candidate, baseline = noisy(50_000, 0.695, 7), noisy(50_000, 0.7, 8)
    result = score_test(candidate, baseline)
    assert result.method == "normal"
    assert result.regressed  # 0.005 is a real drop with 50,000 scores a side
    assert result.high - result.low == pytest.approx(2 * 1.96 * math.sqrt(2 * 0.15**2 / 50_000), rel=0.05)
    assert not score_test(candidate, candidate).regressed


def test_the_normal_approximation_agrees_with_the_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    candidate, baseline = noisy(600, 0.6, 9), noisy(600, 0.62, 10)
    normal = score_test(candidate, baseline)
    monkeypatch.setattr(regression, "_BOOTSTRAP_MAX_SCORES", 10_000)
    bootstrap = score_test(candidate, baseline)
    assert (normal.method, bootstrap.method) == ("normal", "bootstrap")
    assert (normal.low, normal.high) == pytest.approx((bootstrap.low, bootstrap.high), abs=0.003)


def test_resamples_are_capped_to_bound_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(regression, "_BOOTSTRAP_DRAWS", 2000)
    candidate, baseline = noisy(20, 0.6, 11), noisy(20, 0.7, 12)
    # 50 resamples of 40 scores fill the budget
    assert score_test(candidate, baseline, resamples=10_000) == score_test(candidate, baseline, resamples=50)


def test_confidence_sets_the_width() -> None:
    candidate, baseline = noisy(40, 0.6, 13), noisy(40, 0.65, 14)
    wide, narrow = score_test(candidate, baseline, confidence=0.99), score_test(candidate, baseline, confidence=0.8)
    assert wide.low < narrow.low < narrow.high < wide.high
    assert wide.describe().startswith("mean score 0.61 vs 0.65 serving, 99% interval of the change [")


@pytest.mark.parametrize(
    ("candidate", "baseline", "kwargs", "message"),
    [
        ([0.5, math.nan], [0.5], {}, r"candidate_scores\[1\] is nan: scores must be finite numbers in \[0, 1\]"),
        ([0.5], [0.5, 0.2, 1.5], {}, r"baseline_scores\[2\] is 1.5"),
        ([-0.1], [0.5], {}, r"candidate_scores\[0\] is -0.1"),
        ([0.5], [math.inf], {}, r"baseline_scores\[0\] is inf"),
        (["0.5"], [0.5], {}, r"candidate_scores\[0\] is '0.5'"),
        ([0.5], [True], {}, r"baseline_scores\[0\] is True"),
        ([0.5], [0.5], {"confidence": 1.5}, "confidence must be a number between 0 and 1"),
        ([0.5], [0.5], {"resamples": 0}, "resamples must be a positive int, got 0"),
        ([0.5], [0.5], {"resamples": 10.0}, "resamples must be a positive int, got 10.0"),
    ],
)
def test_score_test_refuses_bad_arguments(candidate: list, baseline: list, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score_test(candidate, baseline, **kwargs)


def test_all_is_sorted_and_complete() -> None:
    assert regression.__all__ == sorted(regression.__all__)
    assert all(callable(getattr(regression, name)) for name in regression.__all__)
