"""Choosing a version from a weighted rollout.

With a targeting key the choice is sticky and order-independent: the sha256 of ``prompt:label:key`` is a
point in [0, 100), and the versions, sorted by number, own consecutive slices of that interval sized by
their weights. Moving weight between two neighbouring versions only moves the keys in the slice that
changed hands; reordering the mapping changes nothing.

A target written as text (``3=90`` on the command line, ``{"3": 90}`` in JSON) names each version in plain
decimal digits only: :func:`version_from_key` is the one reader every path uses.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping
from typing import Any

from ..errors import LabelError
from .store import MAX_VERSION

__all__ = ["bucket", "choose_version", "target_from_keys", "version_from_key"]

_VERSION_KEY = re.compile(r"[1-9][0-9]*")

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


def version_from_key(key: object) -> int:
    """The version number a target's key names: ``"3"`` -> 3.

    Only plain decimal digits name a version, though Python's ``int()`` reads more: a sign (``+1``), a leading
    zero (``01``), spaces (`` 1``), underscores (``1_000``), non-ASCII digits (an Arabic-Indic one); and an
    exponent (``1e0``) reads as a number elsewhere. Each would be a second spelling of one version, so two
    entries could name the same version, and what a reviewer reads in an audit log would not be what was sent.

    Raises:
        LabelError: naming the key.
    """
    shown = repr(key[:20] + "..." if isinstance(key, str) and len(key) > 20 else key)
    if not isinstance(key, str) or not (key == "0" or _VERSION_KEY.fullmatch(key)):
        raise LabelError(
            f"invalid version {shown} in the rollout target: write a version number in plain decimal digits, "
            "like 3 (no sign, spaces, leading zeros or other characters)"
        )
    # Ten digits hold every version; the length comes first, as int() refuses a key of 4301 digits.
    if key == "0" or len(key) > 10 or int(key) > MAX_VERSION:
        raise LabelError(
            f"invalid version {shown} in the rollout target: versions are numbered from 1 to {MAX_VERSION}"
        )
    return int(key)


def target_from_keys(data: Mapping[Any, Any]) -> dict[int, int]:
    """A target whose versions are text keys (``{"3": 90, "4": 10}``, as JSON has them) with numbers for keys.

    Only the keys and the weights' type are checked here; :func:`~promptlane.registry.labels.check_target`
    checks the whole (weights positive, summing to 100).

    Raises:
        LabelError: a key that is not a plain decimal version number (:func:`version_from_key`), or a weight
            that is not an integer.
    """
    target: dict[int, int] = {}
    for key, weight in data.items():
        number = version_from_key(key)
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise LabelError(f"invalid weight {weight!r} for v{number}: weights are positive integers")
        target[number] = weight
    return target
