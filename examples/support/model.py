"""A deterministic stand-in for an LLM, so the example's evals run offline.

Scenario files name it `model: python:examples.support.model:respond`.

It behaves like a small, well-behaved support agent: when the ticket names an order it looks the order up
with the `lookup_order` tool, then answers from what the tool said. A real model goes in its place by
changing one line: `--model openai:gpt-4o-mini`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.usage import RequestUsage

ORDER = re.compile(r"\border\s*(?:number\s*|#\s*)?(\d+)", re.IGNORECASE)
CUSTOMER = re.compile(r"You help (\w+)")


def _texts(messages: list[ModelMessage], kind: type) -> list[str]:
    return [
        str(part.content)
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, kind)
    ]


def _usage(messages: list[ModelMessage], answer: str) -> RequestUsage:
    prompt = sum(len(text) for text in _texts(messages, UserPromptPart) + _texts(messages, SystemPromptPart))
    return RequestUsage(input_tokens=prompt // 4 + 1, output_tokens=len(answer) // 4 + 1)


def respond(messages: list[ModelMessage], info: Any) -> ModelResponse:
    """Answer the last ticket, calling `lookup_order` first when it names an order."""
    system = " ".join(_texts(messages, SystemPromptPart))
    ticket = (_texts(messages, UserPromptPart) or [""])[-1]
    customer = (CUSTOMER.search(system) or [None, "there"])[1]
    last = messages[-1]
    results = [p for p in last.parts if isinstance(p, ToolReturnPart)] if isinstance(last, ModelRequest) else []
    order = ORDER.search(ticket)
    tools = {tool.name for tool in info.function_tools}

    if order and "lookup_order" in tools and not results:
        call = ToolCallPart("lookup_order", {"order_id": order.group(1)}, tool_call_id=f"lookup-{order.group(1)}")
        return ModelResponse(parts=[call], usage=_usage(messages, ""))

    refund = any(phrase in ticket.lower() for phrase in ("refund", "money back"))
    priority = " As a pro customer, your request has priority handling." if "pro plan" in system else ""
    if results and results[0].outcome == "failed":
        number = order.group(1) if order else ""
        answer = f"Hi {customer}, I could not find order {number}: {results[0].content}. Could you check the number?"
    elif results:
        found = results[0].content if isinstance(results[0].content, dict) else {}
        status, total = found.get("status", "unknown"), found.get("total")
        answer = f"Hi {customer}, order {order.group(1) if order else ''} is {status}."
        if refund and total is not None:
            answer += f" I can offer you a refund of ${total:.2f}."
        answer += priority
    elif refund:
        answer = f"Hi {customer}, I'm sorry about that. Which order would you like a refund for?{priority}"
    else:
        answer = f"Hi {customer}, thanks for reaching out. How can I help with your order?{priority}"
    return ModelResponse(parts=[TextPart(answer)], usage=_usage(messages, answer))


def echo(messages: list[ModelMessage], info: Any) -> ModelResponse:
    """Answer with the prompt itself: scenarios of a text prompt (like shared/tone) check what it renders."""
    return ModelResponse(parts=[TextPart((_texts(messages, UserPromptPart) or [""])[-1])])


def judge(messages: list[ModelMessage], info: Any) -> ModelResponse:
    """A deterministic judge for the example's `judge` expectations: polite and mentions a refund."""
    prompt = (_texts(messages, UserPromptPart) or [""])[-1]
    output = prompt.rsplit("OUTPUT:\n", 1)[-1].split("\n\nGive your verdict", 1)[0]
    polite = any(word in output for word in ("Hi ", "sorry", "thanks", "please"))
    refund = "refund" in output.lower()
    score = (0.5 if polite else 0.0) + (0.5 if refund else 0.0)
    reason = f"{'polite' if polite else 'not polite'}, {'offers a refund' if refund else 'no refund offered'}"
    return ModelResponse(parts=[TextPart(f'{{"score": {score}, "reason": "{reason}"}}')])
