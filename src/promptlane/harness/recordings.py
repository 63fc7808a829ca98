"""Recorded model responses: how CI gets deterministic, free reruns (``--cache on|replay``).

A response is stored as JSON under a key that covers everything that determines it: the model, the messages
so far, the settings, the tools, the output schema and the repeat index (so repeats stay independent). One
file per response, ``<folder>/<key[:2]>/<key>.json``, written atomically: a folder that reads well in a diff
and can be committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .._canonical import canonical_json

if TYPE_CHECKING:
    from pydantic import TypeAdapter
    from pydantic_ai.messages import ModelResponse

__all__ = ["CacheMode", "RecordingKey", "Recordings", "ReplayMissError"]

CacheMode = Literal["off", "on", "replay"]


@cache
def _response_adapter() -> TypeAdapter[ModelResponse]:
    """Built on first use (about 10 ms of CPU): a run without ``--cache`` never reads or writes a response."""
    from pydantic import TypeAdapter
    from pydantic_ai.messages import ModelResponse

    return TypeAdapter(ModelResponse)


class ReplayMissError(Exception):
    """Replay mode, and no response was recorded for this request."""


class Recordings:
    """A folder of recorded responses."""

    def __init__(self, folder: Path, mode: CacheMode) -> None:
        self.folder = folder
        """Where responses are kept."""
        self.mode = mode
        """``on`` (read, and record what is missing) or ``replay`` (read only)."""

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> ModelResponse | None:
        """The response recorded under ``key``, if any."""
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        return _response_adapter().validate_json(data)

    def put(self, key: str, response: ModelResponse) -> None:
        """Record ``response`` under ``key`` (atomically: a reader never sees half a file)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _response_adapter().dump_json(response, indent=1)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _part_key(part: Any) -> Any:
    """What of a message part determines the next response (no timestamps)."""
    kind = getattr(part, "part_kind", type(part).__name__)
    if kind in ("system-prompt", "user-prompt", "text", "thinking"):
        return [kind, str(part.content)]
    if kind == "tool-call":
        return [kind, part.tool_name, part.args_as_json_str(), part.tool_call_id]
    if kind == "tool-return":
        return [kind, part.tool_name, part.model_response_str(), part.tool_call_id, getattr(part, "outcome", None)]
    return [kind, repr(getattr(part, "content", part))]


class RecordingKey:
    """The key of each request of a case: a hash of the fixed inputs, updated with every turn."""

    def __init__(self, fixed: dict[str, Any]) -> None:
        self._hash = hashlib.sha256(canonical_json(fixed).encode())

    def add(self, parts: list[Any]) -> None:
        """Fold a turn (the parts of a request or a response) into the key."""
        self._hash.update(json.dumps([_part_key(part) for part in parts], default=str).encode())

    def current(self) -> str:
        """The key for the next request."""
        return self._hash.copy().hexdigest()
