"""Recorded responses: the folder layout, atomic writes, and recording keys (deterministic, timestamp-free)."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_ai.messages import (
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.usage import RequestUsage

from promptlane.harness.recordings import RecordingKey, Recordings

T1 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
T2 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
KEY = "ab" + "0" * 62


def response(text: str = "Let me look.") -> ModelResponse:
    return ModelResponse(
        parts=[
            TextPart(text),
            ToolCallPart("lookup_order", {"order_id": "123", "deep": True}, tool_call_id="call-1"),
            ToolCallPart("refund", '{"order_id": "123"}', tool_call_id="call-2"),
        ],
        usage=RequestUsage(input_tokens=120, output_tokens=35, cache_read_tokens=4, details={"reasoning_tokens": 9}),
        model_name="gpt-4o-mini",
        timestamp=T1,
        provider_name="openai",
        provider_response_id="resp-1",
        finish_reason="tool_call",
    )


def files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


# --- Recordings -------------------------------------------------------------------------------------------


def test_put_then_get(tmp_path: Path) -> None:
    recordings = Recordings(tmp_path / "recordings", "on")
    recorded = response()

    assert recordings.get(KEY) is None
    recordings.put(KEY, recorded)

    assert recordings.get(KEY) == recorded
    # A new Recordings over the same folder (a later run) reads it too, in either mode.
    assert Recordings(tmp_path / "recordings", "replay").get(KEY) == recorded
    assert Recordings(tmp_path / "recordings", "replay").get("ab" + "1" * 62) is None


def test_layout(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    recordings = Recordings(folder, "on")
    keys = ["ab" + "0" * 62, "ab" + "1" * 62, "cd" + "2" * 62]

    for index, key in enumerate(keys):
        recordings.put(key, response(f"answer {index}"))

    assert files(folder) == [f"ab/{keys[0]}.json", f"ab/{keys[1]}.json", f"cd/{keys[2]}.json"]
    stored = json.loads((folder / "cd" / f"{keys[2]}.json").read_text())
    assert [part["part_kind"] for part in stored["parts"]] == ["text", "tool-call", "tool-call"]
    assert (stored["parts"][0]["content"], stored["model_name"], stored["usage"]["input_tokens"]) == (
        "answer 2",
        "gpt-4o-mini",
        120,
    )


def test_put_replaces_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    recordings = Recordings(folder, "on")

    recordings.put(KEY, response("first"))
    recordings.put(KEY, response("second"))

    assert recordings.get(KEY) == response("second")
    assert files(folder) == [f"ab/{KEY}.json"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "recordings"
    recordings = Recordings(folder, "on")
    recordings.put(KEY, response("first"))

    def interrupted(source: Any, target: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        recordings.put(KEY, response("second"))
    monkeypatch.undo()

    assert recordings.get(KEY) == response("first")
    assert files(folder) == [f"ab/{KEY}.json"]


# --- RecordingKey -----------------------------------------------------------------------------------------

BASE = {"model": "openai:gpt-4o-mini", "settings": {"temperature": 0.2}, "tools": [], "schema": None, "repeat": 1}


def turns(at: datetime) -> list[list[Any]]:
    """A request, a response with a tool call, and the tool's return, built at time ``at``."""
    return [
        [SystemPromptPart("Be kind", timestamp=at), UserPromptPart("Where is order 123?", timestamp=at)],
        [TextPart("Checking."), ToolCallPart("lookup_order", {"order_id": "123"}, tool_call_id="c1")],
        [ToolReturnPart("lookup_order", {"status": "shipped"}, tool_call_id="c1", timestamp=at)],
    ]


def key_of(fixed: dict[str, Any], parts: list[list[Any]]) -> str:
    key = RecordingKey(fixed)
    for turn in parts:
        key.add(turn)
    return key.current()


def test_key_is_deterministic_and_ignores_timestamps() -> None:
    key = key_of(BASE, turns(T1))

    assert re.fullmatch("[0-9a-f]{64}", key)
    assert key_of(BASE, turns(T1)) == key
    assert key_of(BASE, turns(T2)) == key
    # The fixed inputs are canonical JSON: key order does not matter, and 400 and 400.0 are one number.
    assert key_of(dict(reversed(list(BASE.items()))), turns(T1)) == key
    assert key_of({**BASE, "settings": {"temperature": 0.2, "max_tokens": 400.0}}, turns(T1)) == key_of(
        {**BASE, "settings": {"max_tokens": 400, "temperature": 0.2}}, turns(T1)
    )


def test_current_does_not_change_the_key() -> None:
    key = RecordingKey(BASE)
    first = key.current()

    assert key.current() == first
    key.add(turns(T1)[0])
    second = key.current()

    assert second != first
    assert key.current() == second
    assert RecordingKey(BASE).current() == first


def test_key_differs_by_repeat_and_fixed_inputs() -> None:
    keys = [
        key_of(BASE, turns(T1)),
        key_of({**BASE, "repeat": 2}, turns(T1)),
        key_of({**BASE, "model": "openai:gpt-4o"}, turns(T1)),
        key_of({**BASE, "settings": {"temperature": 0.3}}, turns(T1)),
        key_of({**BASE, "schema": {"type": "object"}}, turns(T1)),
    ]

    assert len(set(keys)) == len(keys)


VARIANTS: dict[str, tuple[int, int, Any]] = {
    "system-prompt": (0, 0, SystemPromptPart("Be curt", timestamp=T1)),
    "user-prompt": (0, 1, UserPromptPart("Where is order 124?", timestamp=T1)),
    "user-prompt-as-system": (0, 1, SystemPromptPart("Where is order 123?", timestamp=T1)),
    "text": (1, 0, TextPart("Checking!")),
    "tool-name": (1, 1, ToolCallPart("find_order", {"order_id": "123"}, tool_call_id="c1")),
    "tool-args": (1, 1, ToolCallPart("lookup_order", {"order_id": "124"}, tool_call_id="c1")),
    "tool-call-id": (1, 1, ToolCallPart("lookup_order", {"order_id": "123"}, tool_call_id="c2")),
    "tool-return": (2, 0, ToolReturnPart("lookup_order", {"status": "lost"}, tool_call_id="c1", timestamp=T1)),
    "tool-return-outcome": (
        2,
        0,
        ToolReturnPart("lookup_order", {"status": "shipped"}, tool_call_id="c1", timestamp=T1, outcome="failed"),
    ),
}


@pytest.mark.parametrize(("turn", "index", "part"), list(VARIANTS.values()), ids=list(VARIANTS))
def test_key_differs_when_any_part_differs(turn: int, index: int, part: Any) -> None:
    changed = turns(T1)
    changed[turn][index] = part

    assert key_of(BASE, changed) != key_of(BASE, turns(T1))


def test_key_depends_on_turn_boundaries_and_order() -> None:
    request, answer, tool_return = turns(T1)

    assert (
        len(
            {
                key_of(BASE, [request, answer, tool_return]),
                key_of(BASE, [request, answer + tool_return]),
                key_of(BASE, [request + answer, tool_return]),
                key_of(BASE, [request, tool_return, answer]),
                key_of(BASE, [request, answer]),
            }
        )
        == 5
    )


TIMES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc))
TEXT = st.text(max_size=20)
ARGS = st.dictionaries(TEXT, st.none() | st.booleans() | st.integers() | TEXT, max_size=3)


@st.composite
def conversations(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Turns as plain data, so the same conversation can be built at different times."""
    kinds = st.sampled_from(["system", "user", "text", "call", "return"])
    return draw(st.lists(st.tuples(kinds, TEXT, TEXT, ARGS), min_size=1, max_size=6))


def build(conversation: list[tuple[str, Any]], at: datetime) -> list[list[Any]]:
    parts: list[Any] = []
    for kind, text, name, args in conversation:
        if kind == "system":
            parts.append(SystemPromptPart(text, timestamp=at))
        elif kind == "user":
            parts.append(UserPromptPart(text, timestamp=at))
        elif kind == "text":
            parts.append(TextPart(text))
        elif kind == "call":
            parts.append(ToolCallPart(name or "t", args, tool_call_id=f"id-{text}"))
        else:
            parts.append(ToolReturnPart(name or "t", args, tool_call_id=f"id-{text}", timestamp=at))
    return [[part] for part in parts]


@given(conversations(), TIMES, st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=999)))
def test_key_is_a_function_of_content_not_time(
    conversation: list[tuple[str, Any]], at: datetime, later: timedelta
) -> None:
    assert key_of(BASE, build(conversation, at)) == key_of(BASE, build(conversation, at + later))


@given(conversations(), st.integers(min_value=1, max_value=1000), st.integers(min_value=1, max_value=1000))
def test_key_differs_by_repeat_index(conversation: list[tuple[str, Any]], first: int, second: int) -> None:
    parts = build(conversation, T1)
    same = key_of({**BASE, "repeat": first}, parts) == key_of({**BASE, "repeat": second}, parts)

    assert same is (first == second)


@given(conversations(), TEXT)
def test_key_differs_when_a_text_differs(conversation: list[tuple[str, Any]], suffix: str) -> None:
    changed = [(kind, text + suffix, name, args) for kind, text, name, args in conversation]
    same = key_of(BASE, build(conversation, T1)) == key_of(BASE, build(changed, T1))

    assert same is (suffix == "")
