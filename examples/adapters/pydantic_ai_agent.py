"""A prompt from the registry as a pydantic-ai ``Agent``: ``rendered.agent(tools=...)`` has the version's model,
its system messages as instructions, the other messages as the history every run starts from, its settings and
its tools bound to your functions by name.

Offline by default: the model is pydantic-ai's ``TestModel``, which calls every tool once and then answers with
what the tools returned. With ``PROMPTLANE_EXAMPLES_LIVE=1`` (and ``OPENAI_API_KEY``) it is the version's model,
``openai:gpt-4o-mini``.

Run: ``python examples/adapters/pydantic_ai_agent.py``
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic_ai.models.test import TestModel

from promptlane import Registry, RenderedPrompt, Settings

TICKET = "Where is order A1?"

SUPPORT = Path(__file__).resolve().parents[1] / "support"
"""The example project: ``prompts/support/reply.yaml`` is a chat prompt with a tool, ``lookup_order``."""


def rendered_reply() -> RenderedPrompt:
    """support/reply pushed to a throwaway SQLite registry, then got and rendered as an application does."""
    with tempfile.TemporaryDirectory() as folder:
        registry = Registry(settings=Settings(root=SUPPORT, registry=f"sqlite:///{folder}/registry.db"))
        registry.push()
        prompt = registry.get("support/reply", label="latest")
        registry.close()
    return prompt.render(customer="Ana", ticket=TICKET)


def lookup_order(order_id: str) -> str:
    """The function behind the prompt's ``lookup_order`` tool (its schema comes from the prompt file)."""
    return f"Order {order_id} shipped yesterday."


def main() -> None:
    rendered = rendered_reply()
    overrides: dict[str, Any] = {} if os.environ.get("PROMPTLANE_EXAMPLES_LIVE") == "1" else {"model": TestModel()}
    agent = rendered.agent(tools={"lookup_order": lookup_order}, **overrides)

    result = agent.run_sync()

    calls = [
        part.tool_name for message in result.all_messages() for part in message.parts if part.part_kind == "tool-call"
    ]
    print("settings:", agent.model_settings)
    print("tool calls:", calls)
    print(f"answer: {result.output}")


if __name__ == "__main__":
    main()
