"""The adapters' examples (examples/adapters/), each run as a reader runs it: offline, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "adapters"
INSTRUCTIONS = "You are Acme's support assistant. You help Ana (free plan)."

EXPECTED = {
    "openai_chat.py": [
        "answer: (offline) /v1/chat/completions: gpt-4o-mini, messages ['system', 'user'], tools ['lookup_order']",
    ],
    "openai_responses.py": [
        f"answer: (offline) /v1/responses: gpt-4o-mini, instructions {INSTRUCTIONS!r}, input ['user'], "
        "tools ['lookup_order'], max_output_tokens 400",
    ],
    "anthropic_messages.py": [
        f"answer: (offline) /v1/messages: claude-haiku-4-5, system {INSTRUCTIONS!r}, messages ['user'], "
        "tools ['lookup_order'], max_tokens 400",
    ],
    "langchain_messages.py": [
        "messages: ['SystemMessage', 'HumanMessage']",
        "answer: Is {order: A1} shipped? It says {status}.",
    ],
    "pydantic_ai_agent.py": [
        "settings: {'max_tokens': 400, 'temperature': 0.2}",
        "tool calls: ['lookup_order']",
        'answer: {"lookup_order":"Order a shipped yesterday."}',
    ],
}


def test_every_example_is_checked() -> None:
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs_offline(script: str, tmp_path: Path) -> None:
    # Offline whatever the developer's shell says: no live switch, no keys, no proxy settings for the clients.
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("PROMPTLANE_", "OPENAI_", "ANTHROPIC_"))
    }
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == EXPECTED[script]
