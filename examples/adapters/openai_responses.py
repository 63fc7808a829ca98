"""A prompt from the registry sent with OpenAI's Responses API: ``rendered.to_openai_responses()`` is what
``client.responses.create`` takes (the system messages as ``instructions``, the others as ``input``, settings
under the Responses API's names, tools).

Offline by default: the OpenAI client's HTTP transport answers like the API, with a summary of the request it
received, and nothing leaves the machine. With ``PROMPTLANE_EXAMPLES_LIVE=1`` (and ``OPENAI_API_KEY``) it calls
OpenAI.

Run: ``python examples/adapters/openai_responses.py``
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
    """An OpenAI client whose transport answers every response request with what the request carried."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent = json.loads(request.content)
        roles = [item["role"] for item in sent["input"]]
        tools = [tool["name"] for tool in sent.get("tools", [])]
        text = (
            f"(offline) {request.url.path}: {sent['model']}, instructions {sent['instructions'].splitlines()[0]!r}, "
            f"input {roles}, tools {tools}, max_output_tokens {sent['max_output_tokens']}"
        )
        return httpx2.Response(
            200,
            json={
                "id": "resp_1", "object": "response", "created_at": 0, "model": sent["model"], "status": "completed",
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                            "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            },
        )  # fmt: skip

    return openai.OpenAI(api_key="offline", http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))


def main() -> None:
    rendered = rendered_reply()
    client = openai.OpenAI() if os.environ.get("PROMPTLANE_EXAMPLES_LIVE") == "1" else offline_client()

    response = client.responses.create(**rendered.to_openai_responses())

    for item in response.output:  # a live model may look the order up first
        if item.type == "function_call":
            print(f"tool call: {item.name}({item.arguments})")
    if response.output_text:
        print(f"answer: {response.output_text}")


if __name__ == "__main__":
    main()
