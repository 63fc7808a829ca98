"""A prompt from the registry given to LangChain: ``rendered.to_langchain()`` is LangChain message objects
(``SystemMessage``, ``HumanMessage``, ``AIMessage``). The text is already rendered and is not parsed again as
a LangChain template, so the braces in the ticket are sent as they are.

Offline by default: the chat model is LangChain's ``ParrotFakeChatModel``, which answers with the last message
it received. With ``PROMPTLANE_EXAMPLES_LIVE=1`` (and ``OPENAI_API_KEY``) it is ``ChatOpenAI``
(``pip install langchain-openai``) with the version's model.

Run: ``python examples/adapters/langchain_messages.py``
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from langchain_core.language_models import BaseChatModel, ParrotFakeChatModel

from promptlane import Registry, RenderedPrompt, Settings

TICKET = "Is {order: A1} shipped? It says {status}."

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


def chat_model(rendered: RenderedPrompt) -> BaseChatModel:
    """The offline parrot, or OpenAI with the version's model (without its ``openai:`` prefix)."""
    if os.environ.get("PROMPTLANE_EXAMPLES_LIVE") != "1":
        return ParrotFakeChatModel()
    from langchain_openai import ChatOpenAI  # pyright: ignore[reportMissingImports]

    return ChatOpenAI(model=rendered.to_openai()["model"])  # pyright: ignore[reportUnknownVariableType]


def main() -> None:
    rendered = rendered_reply()
    messages = rendered.to_langchain()
    print("messages:", [type(message).__name__ for message in messages])

    reply = chat_model(rendered).invoke(messages)

    print(f"answer: {reply.text}")


if __name__ == "__main__":
    main()
