"""Canonical JSON and content hashes: what makes a version content-addressed (no pydantic, so the store can use it)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["canonical_json", "content_hash", "json_equal"]


def _normalized(value: Any) -> Any:
    # JSON has one number type: `temperature: 1` and `temperature: 1.0` are the same content.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _normalized(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalized(item) for item in value]
    return value


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON data: Python has ``1 == True``, JSON does not (at any depth)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[key], b[key]) for key in a)
    return bool(a == b)


def canonical_json(data: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept as is, integral floats written as integers."""
    return json.dumps(_normalized(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_hash(data: Any) -> str:
    """The sha256 hex digest of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()
