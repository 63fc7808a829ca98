"""A prompt from the registry sent with Anthropic's Messages API: ``rendered.to_anthropic()`` is what
``client.messages.create`` takes (``system`` split out, tools with ``input_schema``, ``max_tokens`` always set).

support/reply names an OpenAI model; ``model=`` replaces it, as any keyword given to an adapter replaces the
prompt's. Offline by default: the Anthropic client's HTTP transport answers like the API, with a summary of the
request it received, and nothing leaves the machine. With ``PROMPTLANE_EXAMPLES_LIVE=1`` (and
``ANTHROPIC_API_KEY``) it calls Anthropic.

Run: ``python examples/adapters/anthropic_messages.py``
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import anthropic
import httpx2

from promptlane import Registry, RenderedPrompt, Settings

MODEL = "claude-haiku-4-5"

SUPPORT = Path(__file__).resolve().parents[1] / "support"
"""The example project: ``prompts/support/reply.yaml`` is a chat prompt with a tool, ``lookup_order``."""


def rendered_reply() -> RenderedPrompt:
    """support/reply pushed to a throwaway SQLite registry, then got and rendered as an application does."""
    with tempfile.TemporaryDirectory() as folder:
        registry = Registry(settings=Settings(root=SUPPORT, registry=f"sqlite:///{folder}/registry.db"))
        registry.push()
        prompt = registry.get("support/reply", label="latest")
        registry.close()
    return prompt.render(customer="Ana", ticket="Where is order A1?")


def offline_client() -> anthropic.Anthropic:
    """An Anthropic client whose transport answers every message with what the request carried."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent = json.loads(request.content)
        roles = [message["role"] for message in sent["messages"]]
        tools = [tool["name"] for tool in sent.get("tools", [])]
        text = (
            f"(offline) {request.url.path}: {sent['model']}, system {sent['system'].splitlines()[0]!r}, "
            f"messages {roles}, tools {tools}, max_tokens {sent['max_tokens']}"
        )
        return httpx2.Response(
            200,
            json={
                "id": "msg_1", "type": "message", "role": "assistant", "model": sent["model"],
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1},
            },
        )  # fmt: skip

    return anthropic.Anthropic(api_key="offline", http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))


def main() -> None:
    rendered = rendered_reply()
    client = anthropic.Anthropic() if os.environ.get("PROMPTLANE_EXAMPLES_LIVE") == "1" else offline_client()

    message = client.messages.create(**rendered.to_anthropic(model=MODEL))

    for block in message.content:  # a live model may look the order up first
        if block.type == "tool_use":
            print(f"tool call: {block.name}({json.dumps(block.input)})")
        elif block.type == "text":
            print(f"answer: {block.text}")


if __name__ == "__main__":
    main()
