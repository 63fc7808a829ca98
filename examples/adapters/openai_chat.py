"""A prompt from the registry sent with OpenAI's Chat Completions: ``rendered.to_openai()`` is what
``client.chat.completions.create`` takes (messages, model, settings under OpenAI's names, tools).

Offline by default: the OpenAI client's HTTP transport answers like the API, with a summary of the request it
received, and nothing leaves the machine. With ``PROMPTLANE_EXAMPLES_LIVE=1`` (and ``OPENAI_API_KEY``) it calls
OpenAI.

Run: ``python examples/adapters/openai_chat.py``
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import httpx2
import openai

from promptlane import Registry, RenderedPrompt, Settings

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


def offline_client() -> openai.OpenAI:
    """An OpenAI client whose transport answers every completion with what the request carried."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent = json.loads(request.content)
        roles = [message["role"] for message in sent["messages"]]
        tools = [tool["function"]["name"] for tool in sent.get("tools", [])]
        text = f"(offline) {request.url.path}: {sent['model']}, messages {roles}, tools {tools}"
        return httpx2.Response(
            200,
            json={
                "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": sent["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            },
        )  # fmt: skip

    return openai.OpenAI(api_key="offline", http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))


def main() -> None:
    rendered = rendered_reply()
    client = openai.OpenAI() if os.environ.get("PROMPTLANE_EXAMPLES_LIVE") == "1" else offline_client()

    completion = client.chat.completions.create(**rendered.to_openai())

    message = completion.choices[0].message
    for call in message.tool_calls or []:  # a live model may look the order up first
        if call.type == "function":
            print(f"tool call: {call.function.name}({call.function.arguments})")
    if message.content:
        print(f"answer: {message.content}")


if __name__ == "__main__":
    main()
