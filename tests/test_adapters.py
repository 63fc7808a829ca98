"""The rendered prompt's adapters, each driven through the real client library with a transport that records
what went on the wire and answers like the provider."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from inline_snapshot import snapshot
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from promptlane.adapters import ANTHROPIC_MAX_TOKENS
from promptlane.config import Settings
from promptlane.registry import Registry, RenderedPrompt

ORDER_TOOL = {
    "name": "lookup_order",
    "description": "Look up an order by id",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
}
# Closed, every property required: a schema OpenAI's strict mode accepts.
ANSWER_SCHEMA = {
    "title": "Answer",
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}
SPEC = {
    "model": "openai:gpt-4o-mini",
    "model_settings": {
        "max_tokens": 300, "temperature": 0.2, "top_p": 0.9, "stop_sequences": ["END"], "seed": 7,
        "presence_penalty": 0.1, "frequency_penalty": 0.2, "anthropic_metadata": {"user_id": "u1"},
    },
    "messages": [
        {"role": "system", "content": "You help {{ customer }}."},
        {"role": "user", "content": "Where is order {{ order }}?"},
        {"role": "assistant", "content": "Which order?"},
        {"role": "user", "content": "{{ ticket }}"},
    ],
    "tools": [ORDER_TOOL],
    "output_schema": ANSWER_SCHEMA,
}  # fmt: skip


@pytest.fixture
def render(tmp_path: Path) -> Iterator[Callable[..., RenderedPrompt]]:
    """Push a spec (``SPEC`` with changes) to a fresh SQLite registry, get it back and render it."""
    registry = Registry(settings=Settings(root=tmp_path, registry=f"sqlite:///{tmp_path / 'r.db'}"))

    def push_and_render(**changes: Any) -> RenderedPrompt:
        spec = {key: value for key, value in {**SPEC, **changes}.items() if value is not None}
        version = registry.push_spec("support/reply", spec).version.number
        variables = {"customer": "Ana", "order": "A1", "ticket": "Error {'code': 7} in {name}"}
        return registry.get("support/reply", version=version).render(variables)

    yield push_and_render
    registry.close()


def _recording(answer: dict[str, Any], requests: list[dict[str, Any]]) -> httpx2.Client:
    def handle(request: httpx2.Request) -> httpx2.Response:
        requests.append({"path": request.url.path, **json.loads(request.content)})
        return httpx2.Response(200, json=answer)

    return httpx2.Client(transport=httpx2.MockTransport(handle))


def test_to_openai_is_what_chat_completions_create_sends(render: Callable[..., RenderedPrompt]) -> None:
    requests: list[dict[str, Any]] = []
    answer = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": '{"answer": "on its way"}'}}],
    }  # fmt: skip
    client = openai.OpenAI(api_key="test", http_client=_recording(answer, requests))

    completion = client.chat.completions.create(**render().to_openai())

    assert completion.choices[0].message.content == '{"answer": "on its way"}'
    assert requests == snapshot(
        [
            {
                "path": "/v1/chat/completions",
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "You help Ana."},
                    {"role": "user", "content": "Where is order A1?"},
                    {"role": "assistant", "content": "Which order?"},
                    {"role": "user", "content": "Error {'code': 7} in {name}"},
                ],
                "frequency_penalty": 0.2,
                "max_tokens": 300,
                "presence_penalty": 0.1,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "Answer",
                        "schema": {
                            "additionalProperties": False,
                            "properties": {"answer": {"type": "string"}},
                            "required": ["answer"],
                            "title": "Answer",
                            "type": "object",
                        },
                        "strict": True,
                    },
                },
                "seed": 7,
                "stop": ["END"],
                "temperature": 0.2,
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "lookup_order",
                            "description": "Look up an order by id",
                            "parameters": {
                                "properties": {"order_id": {"type": "string"}},
                                "required": ["order_id"],
                                "type": "object",
                            },
                            "strict": False,
                        },
                    }
                ],
                "top_p": 0.9,
            }
        ]
    )


def test_to_openai_strict_only_where_the_schema_allows(render: Callable[..., RenderedPrompt]) -> None:
    open_schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    kwargs = render(output_schema=open_schema, model_settings=None).to_openai(model="gpt-4.1")

    assert kwargs["response_format"] == snapshot(
        {
            "type": "json_schema",
            "json_schema": {
                "name": "output",
                "schema": {"properties": {"answer": {"type": "string"}}, "type": "object"},
                "strict": False,
            },
        }
    )
    assert kwargs["model"] == "gpt-4.1"
    assert "max_tokens" not in kwargs


def test_to_openai_responses_is_what_responses_create_sends(render: Callable[..., RenderedPrompt]) -> None:
    requests: list[dict[str, Any]] = []
    answer = {
        "id": "resp_1", "object": "response", "created_at": 0, "model": "gpt-4o-mini", "status": "completed",
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": '{"answer": "on its way"}', "annotations": []}]}],
    }  # fmt: skip
    client = openai.OpenAI(api_key="test", http_client=_recording(answer, requests))

    response = client.responses.create(**render().to_openai_responses())

    assert response.output_text == '{"answer": "on its way"}'
    assert requests == snapshot(
        [
            {
                "path": "/v1/responses",
                "model": "gpt-4o-mini",
                "input": [
                    {"role": "user", "content": "Where is order A1?"},
                    {"role": "assistant", "content": "Which order?"},
                    {"role": "user", "content": "Error {'code': 7} in {name}"},
                ],
                "instructions": "You help Ana.",
                "max_output_tokens": 300,
                "temperature": 0.2,
                "text": {
                    "format": {
                        "type": "json_schema",
                        "name": "Answer",
                        "schema": {
                            "additionalProperties": False,
                            "properties": {"answer": {"type": "string"}},
                            "required": ["answer"],
                            "title": "Answer",
                            "type": "object",
                        },
                        "strict": True,
                    }
                },
                "tools": [
                    {
                        "type": "function",
                        "name": "lookup_order",
                        "description": "Look up an order by id",
                        "parameters": {
                            "properties": {"order_id": {"type": "string"}},
                            "required": ["order_id"],
                            "type": "object",
                        },
                        "strict": False,
                    }
                ],
                "top_p": 0.9,
            }
        ]
    )


def test_to_anthropic_is_what_messages_create_sends(render: Callable[..., RenderedPrompt]) -> None:
    requests: list[dict[str, Any]] = []
    answer = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": '{"answer": "on its way"}'}],
        "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5},
    }  # fmt: skip
    client = anthropic.Anthropic(api_key="test", http_client=_recording(answer, requests))

    message = client.messages.create(**render(model="anthropic:claude-sonnet-4-6").to_anthropic())

    assert message.content[0].type == "text"
    assert message.content[0].text == '{"answer": "on its way"}'
    assert requests == snapshot(
        [
            {
                "path": "/v1/messages",
                "max_tokens": 300,
                "messages": [
                    {"role": "user", "content": "Where is order A1?"},
                    {"role": "assistant", "content": "Which order?"},
                    {"role": "user", "content": "Error {'code': 7} in {name}"},
                ],
                "model": "claude-sonnet-4-6",
                "metadata": {"user_id": "u1"},
                "output_config": {
                    "format": {
                        "type": "json_schema",
                        "schema": {
                            "additionalProperties": False,
                            "properties": {"answer": {"type": "string"}},
                            "required": ["answer"],
                            "title": "Answer",
                            "type": "object",
                        },
                    }
                },
                "stop_sequences": ["END"],
                "system": "You help Ana.",
                "tools": [
                    {
                        "name": "lookup_order",
                        "description": "Look up an order by id",
                        "input_schema": {
                            "properties": {"order_id": {"type": "string"}},
                            "required": ["order_id"],
                            "type": "object",
                        },
                    }
                ],
                "temperature": 0.2,
                "top_p": 0.9,
            }
        ]
    )


def test_to_anthropic_always_sends_max_tokens(render: Callable[..., RenderedPrompt]) -> None:
    kwargs = render(model_settings={"temperature": 0.5}, tools=None, output_schema=None).to_anthropic()

    assert kwargs["max_tokens"] == ANTHROPIC_MAX_TOKENS
    assert kwargs["extra_body"] == {"temperature": 0.5}
    assert "tools" not in kwargs
    assert "output_config" not in kwargs


def test_to_langchain_keeps_braces(render: Callable[..., RenderedPrompt]) -> None:
    messages = render().to_langchain()

    assert messages == [
        SystemMessage(content="You help Ana."),
        HumanMessage(content="Where is order A1?"),
        AIMessage(content="Which order?"),
        HumanMessage(content="Error {'code': 7} in {name}"),
    ]
    # Message objects are not templates: a ChatPromptTemplate passes them through, braces and all.
    assert ChatPromptTemplate.from_messages(messages).format_messages() == messages


def test_a_missing_client_library_names_the_pip_line(
    render: Callable[..., RenderedPrompt], monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = render()
    monkeypatch.setitem(sys.modules, "langchain_core.messages", None)
    monkeypatch.setitem(sys.modules, "pydantic_ai", None)

    with pytest.raises(ImportError, match=r"pip install langchain-core$"):
        rendered.to_langchain()
    with pytest.raises(ImportError, match=r"pip install pydantic-ai-slim$"):
        rendered.agent(tools={"lookup_order": str})


def test_agent_runs_with_the_prompts_instructions_history_settings_tools_and_output(
    render: Callable[..., RenderedPrompt],
) -> None:
    calls: list[tuple[list[ModelMessage], AgentInfo]] = []

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls.append((messages, info))
        if len(calls) == 1:
            return ModelResponse(parts=[ToolCallPart("lookup_order", {"order_id": "A1"})])
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"answer": "on its way"})])

    looked_up: list[str] = []

    def lookup_order(order_id: str) -> str:
        looked_up.append(order_id)
        return "shipped"

    agent = render().agent(tools={"lookup_order": lookup_order}, model=FunctionModel(model))
    result = agent.run_sync()

    assert result.output == {"answer": "on its way"}
    assert looked_up == ["A1"]
    messages, info = calls[0]
    assert info.instructions == "You help Ana."
    assert info.model_settings == SPEC["model_settings"]
    assert [(tool.name, tool.description, tool.parameters_json_schema) for tool in info.function_tools] == [
        (ORDER_TOOL["name"], ORDER_TOOL["description"], ORDER_TOOL["parameters"])
    ]
    assert info.output_tools[0].parameters_json_schema == ANSWER_SCHEMA
    assert [_text(message) for message in messages] == [
        ["Where is order A1?"],
        ["Which order?"],
        ["Error {'code': 7} in {name}"],
    ]
    # The request after the tool call has the history once, then the call and its result.
    assert [_text(message) for message in calls[1][0]] == [*[_text(message) for message in messages], [], []]
    # A second run starts from the same history, once, with its own question after it.
    agent.run_sync("Any news?")
    assert [_text(message) for message in calls[2][0]] == [
        ["Where is order A1?"],
        ["Which order?"],
        ["Error {'code': 7} in {name}", "Any news?"],
    ]


def test_agent_takes_the_model_from_the_version(render: Callable[..., RenderedPrompt]) -> None:
    agent = render(model="test", output_schema=None, tools=None).agent()

    assert agent.run_sync().output == "success (no tool calls)"


def test_agent_names_a_tool_without_a_function(render: Callable[..., RenderedPrompt]) -> None:
    rendered = render()

    with pytest.raises(ValueError, match="no function for the prompt's tool 'lookup_order'"):
        rendered.agent(tools={})
    with pytest.raises(ValueError, match="the prompt has no tool 'cancel_order'"):
        rendered.agent(tools={"lookup_order": str, "cancel_order": str})


def test_to_pydantic_ai_still_returns_the_messages(render: Callable[..., RenderedPrompt]) -> None:
    messages = render().to_pydantic_ai()

    assert [type(message) for message in messages] == [ModelRequest, ModelResponse, ModelRequest]
    assert isinstance(messages[0], ModelRequest)
    assert isinstance(messages[0].parts[1], UserPromptPart)


def _text(message: ModelMessage) -> list[str]:
    if isinstance(message, ModelResponse):
        return [part.content for part in message.parts if isinstance(part, TextPart)]
    return [
        part.content for part in message.parts if isinstance(part, UserPromptPart) and isinstance(part.content, str)
    ]
