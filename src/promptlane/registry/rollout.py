"""Choosing a version from a weighted rollout.

With a targeting key the choice is sticky and order-independent: the sha256 of ``prompt:label:key`` is a
point in [0, 100), and the versions, sorted by number, own consecutive slices of that interval sized by
their weights. Moving weight between two neighbouring versions only moves the keys in the slice that
changed hands; reordering the mapping changes nothing.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping

__all__ = ["bucket", "choose_version"]

_SCALE = float(1 << 64)


def bucket(prompt: str, label: str, targeting_key: str) -> float:
    """The key's sticky point in [0, 100)."""
    digest = hashlib.sha256(f"{prompt}:{label}:{targeting_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE * 100.0


def choose_version(target: Mapping[int, int], prompt: str, label: str, targeting_key: str | None = None) -> int:
    """The version ``targeting_key`` gets from ``target``; a random pick without a key."""
    if len(target) == 1:
        return next(iter(target))
    point = bucket(prompt, label, targeting_key) if targeting_key is not None else random.random() * 100.0
    cumulative = 0
    versions = sorted(target)
    for version in versions:
        cumulative += target[version]
        if point < cumulative:
            return version
    return versions[-1]  # only reachable if weights sum below 100, which check_target forbids
