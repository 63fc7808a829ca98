"""Rollout selection: weights respected, sticky per key, order-independent, minimal reshuffling."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptlane.errors import LabelError
from promptlane.registry.labels import check_target, parse_weights, rollback_point
from promptlane.registry.rollout import bucket, choose_version, target_from_keys, version_from_key


@st.composite
def rollouts(draw: st.DrawFn, min_versions: int = 1) -> dict[int, int]:
    """A valid target: distinct versions with positive integer weights summing to 100."""
    count = draw(st.integers(min_versions, 5))
    versions = draw(st.lists(st.integers(1, 50), min_size=count, max_size=count, unique=True))
    cuts = sorted(draw(st.lists(st.integers(1, 99), min_size=count - 1, max_size=count - 1, unique=True)))
    bounds = [0, *cuts, 100]
    return {v: bounds[i + 1] - bounds[i] for i, v in enumerate(versions)}


KEYS = [f"user-{i}" for i in range(4000)]


@settings(max_examples=40, deadline=None)
@given(target=rollouts())
def test_weights_are_respected_within_tolerance(target: dict[int, int]) -> None:
    counts = Counter(choose_version(target, "p", "production", key) for key in KEYS)
    for version, weight in target.items():
        share = counts[version] / len(KEYS) * 100
        # 4000 keys: a binomial share's standard deviation is at most ~0.8 points.
        assert abs(share - weight) < 4, (version, weight, share)
    assert set(counts) <= set(target)


@given(target=rollouts(), key=st.text(max_size=40))
def test_a_key_always_gets_the_same_version(target: dict[int, int], key: str) -> None:
    first = choose_version(target, "support/reply", "production", key)
    assert all(choose_version(target, "support/reply", "production", key) == first for _ in range(3))


@given(target=rollouts(min_versions=2), key=st.text(max_size=20))
def test_choice_does_not_depend_on_mapping_order(target: dict[int, int], key: str) -> None:
    reordered = dict(reversed(list(target.items())))
    assert choose_version(target, "p", "l", key) == choose_version(reordered, "p", "l", key)


@settings(max_examples=40, deadline=None)
@given(target=rollouts(min_versions=2), data=st.data())
def test_moving_weight_moves_only_the_needed_share(target: dict[int, int], data: st.DataObject) -> None:
    """Shift weight between two neighbouring versions: only keys in the slice that changed hands move,
    and they move exactly between those two versions."""
    versions = sorted(target)
    index = data.draw(st.integers(0, len(versions) - 2))
    left, right = versions[index], versions[index + 1]
    shift = data.draw(st.integers(-(target[right] - 1), target[left] - 1).filter(lambda s: s != 0))
    after = dict(target)
    after[left] -= shift
    after[right] += shift
    moved = [
        (before_v, after_v)
        for key in KEYS
        if (before_v := choose_version(target, "p", "l", key)) != (after_v := choose_version(after, "p", "l", key))
    ]
    assert all({b, a} == {left, right} for b, a in moved)
    assert abs(len(moved) / len(KEYS) * 100 - abs(shift)) < 4


def test_bucket_is_the_documented_hash() -> None:
    import hashlib

    digest = hashlib.sha256(b"support/reply:production:user-42").digest()
    assert bucket("support/reply", "production", "user-42") == int.from_bytes(digest[:8], "big") / 2**64 * 100


def test_the_label_and_prompt_are_part_of_the_key() -> None:
    target = {1: 50, 2: 50}
    by_label = {choose_version(target, "p", label, "k") for label in (f"l{i}" for i in range(40))}
    by_prompt = {choose_version(target, f"p{i}", "l", "k") for i in range(40)}
    assert by_label == {1, 2} and by_prompt == {1, 2}


def test_without_a_key_the_pick_is_random_but_weighted() -> None:
    counts = Counter(choose_version({1: 80, 2: 20}, "p", "l") for _ in range(4000))
    assert 70 < counts[1] / 40 < 90


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({}, "at least at one version"),
        ({1: 50, 2: 40}, "sum to 100, got 90"),
        ({1: 0, 2: 100}, "positive integers"),
        ({0: 100}, "numbered from 1"),
        ({1: 50.5, 2: 49.5}, "positive integers"),
    ],
)
def test_invalid_targets_are_refused(target: dict[int, int], message: str) -> None:
    with pytest.raises(LabelError, match=message):
        check_target(target)


def test_parse_weights() -> None:
    assert parse_weights(["3=90", "v4=10%"]) == {3: 90, 4: 10}
    with pytest.raises(LabelError, match="VERSION=WEIGHT"):
        parse_weights(["3:90"])
    with pytest.raises(LabelError, match="twice"):
        parse_weights(["3=50", "3=50"])


# Spellings Python's int() (or a JSON reader) takes for a number, that are not a plain decimal version number.
OTHER_SPELLINGS = ["01", "+1", "-1", " 1", "1 ", "1\n", "1_000", "\u0661", "\uff11", "1e0", "1.0", "0x1", "v1", ""]


@pytest.mark.parametrize("key", OTHER_SPELLINGS)
def test_a_version_key_is_plain_decimal_digits(key: str) -> None:
    with pytest.raises(LabelError) as refused:
        version_from_key(key)
    assert str(refused.value) == (
        f"invalid version {key!r} in the rollout target: write a version number in plain decimal digits, like 3 "
        "(no sign, spaces, leading zeros or other characters)"
    )
    with pytest.raises(LabelError, match="plain decimal digits"):
        target_from_keys({key: 100})


def test_plain_decimal_version_keys_are_read() -> None:
    assert [version_from_key(key) for key in ("1", "3", "10", "2147483647")] == [1, 3, 10, 2147483647]
    assert target_from_keys({"3": 90, "4": 10}) == {3: 90, 4: 10}


@pytest.mark.parametrize("key", ["0", "2147483648", "9" * 11, "9" * 5000])
def test_a_version_key_out_of_range_is_refused_by_range(key: str) -> None:
    with pytest.raises(LabelError, match=r"in the rollout target: versions are numbered from 1 to 2147483647$"):
        version_from_key(key)


@pytest.mark.parametrize("weight", ["90", 90.0, True, None])
def test_a_target_weight_is_an_integer(weight: object) -> None:
    with pytest.raises(LabelError, match=r"invalid weight .* for v1: weights are positive integers"):
        target_from_keys({"1": weight})


@pytest.mark.parametrize("key", ["01", "+1", " 1", "1_000", "\u0661", "1e0"])
def test_the_api_refuses_other_spellings_of_a_version(tmp_path: Path, key: str) -> None:
    """PUT a label's target through the HTTP API: 422 naming the key, and the label does not move."""
    from starlette.testclient import TestClient

    from _live import served_registry
    from promptlane.server import create_app

    registry, secrets = served_registry(tmp_path, f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        registry.push_spec("p", {"template": "Hi", "model": "test"}, author="tests")
        registry.set_label("p", "staging", 1)
        client = TestClient(create_app(registry), base_url="http://127.0.0.1:8750")
        response = client.put(
            "/api/v1/prompts/p/-/labels/staging",
            json={"target": {key: 100}},
            headers={"Authorization": f"Bearer {secrets['promote']}"},
        )
        assert response.status_code == 422, response.text
        assert f"invalid version {key!r} in the rollout target" in response.json()["error"]
        assert len(registry.history("p", "staging")) == 1  # only the move above
    finally:
        registry.close()


@pytest.mark.parametrize("key", ["01", "+1", " 1", "1_000", "\u0661", "1e0"])
def test_parse_weights_reads_versions_as_the_domain_does(key: str) -> None:
    with pytest.raises(LabelError, match="plain decimal digits"):
        parse_weights([f"{key}=100"])
    with pytest.raises(LabelError, match="plain decimal digits"):
        parse_weights([f"v{key}=100"])


def test_rollback_point_walks_back_and_skips_undone_moves() -> None:
    from datetime import datetime, timezone

    from promptlane.registry.store import LabelEvent

    def event(id_: int, before: int | None, after: int, kind: str = "move", undoes: int | None = None) -> LabelEvent:
        return LabelEvent(
            id=id_, prompt="p", label="production", kind=kind,
            from_target=None if before is None else {before: 100}, to_target={after: 100},
            actor=None, reason=None, gate=None, undoes=undoes, at=datetime.now(timezone.utc),
        )  # fmt: skip

    history = [event(1, None, 1), event(2, 1, 2), event(3, 2, 3)]
    assert rollback_point(history).id == 3
    history.append(event(4, 3, 2, "rollback", undoes=3))
    assert rollback_point(history).id == 2
    history.append(event(5, 2, 1, "rollback", undoes=2))
    with pytest.raises(LabelError, match="nothing to roll back to"):
        rollback_point(history)
