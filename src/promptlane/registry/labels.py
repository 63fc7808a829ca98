"""Label rules that do not need a store: names, rollout weights, and what a rollback returns to."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from ..errors import LabelError
from .rollout import version_from_key
from .store import MAX_VERSION, LabelEvent

__all__ = ["LATEST", "check_label_name", "check_target", "parse_weights", "rollback_point"]

LATEST = "latest"
"""The implicit label that always names the newest version; it cannot be moved."""
_LABEL = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


def check_label_name(label: str) -> str:
    """``label`` if it can be set; LabelError otherwise."""
    if label == LATEST:
        raise LabelError("'latest' is reserved: it always points at the newest version")
    if not _LABEL.fullmatch(label):
        raise LabelError(f"invalid label {label!r}: use lowercase letters, digits, '_', '.', '-' (at most 63)")
    return label


def check_target(target: Mapping[int, int]) -> dict[int, int]:
    """A rollout target with positive integer weights summing to 100 over distinct positive versions."""
    if not target:
        raise LabelError("a label must point at least at one version")
    checked: dict[int, int] = {}
    for version, weight in target.items():
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
            raise LabelError(f"invalid version {version!r}: versions are numbered from 1 to {MAX_VERSION}")
        if isinstance(weight, bool) or not isinstance(weight, int) or weight <= 0:
            raise LabelError(f"invalid weight {weight!r} for v{version}: weights are positive integers")
        checked[version] = weight
    total = sum(checked.values())
    if total != 100:
        raise LabelError(f"rollout weights must sum to 100, got {total}")
    return dict(sorted(checked.items()))


_WEIGHT = re.compile(r"(-?[0-9]{1,6})%?")
"""A weight on the command line: digits, a minus for check_target to refuse by name, an optional ``%``."""


def parse_weights(items: Iterable[str]) -> dict[int, int]:
    """``["3=90", "4=10"]`` -> ``{3: 90, 4: 10}`` (``v3=90%`` reads the same); LabelError naming the bad item.

    The version is read by :func:`~promptlane.registry.rollout.version_from_key`: plain decimal digits only.
    """
    target: dict[int, int] = {}
    for item in items:
        version, sep, weight = item.partition("=")
        share = _WEIGHT.fullmatch(weight)
        if not sep or share is None:
            raise LabelError(f"invalid rollout entry {item!r}: write VERSION=WEIGHT, like 3=90")
        number = version_from_key(version.removeprefix("v"))
        if number in target:
            raise LabelError(f"v{number} appears twice in the rollout")
        target[number] = int(share.group(1))
    return check_target(target)


def rollback_point(events: Sequence[LabelEvent]) -> LabelEvent:
    """The event a rollback undoes: the newest move that is not a rollback and was not undone already.

    Rolling back repeatedly walks back through history: v1 -> v2 -> v3, rollback -> v2, rollback -> v1.

    Raises:
        LabelError: no move is left to undo, or the one left created the label.
    """
    undone = {event.undoes for event in events if event.undoes is not None}
    for event in reversed(events):
        if event.kind == "rollback" or event.id in undone:
            continue
        if event.from_target is None:
            break
        return event
    raise LabelError("nothing to roll back to: the label has no earlier target")
