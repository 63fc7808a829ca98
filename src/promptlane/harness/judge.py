"""LLM-as-judge: a model scores a case's output against a rubric, with structured output through pydantic-ai.

The judge's request goes through the same model client as the cases: it is retried, rate-limited, and
recorded and replayed with ``--cache``, so a CI run with ``--cache replay`` judges for free and the same way.
It is traced as a chat span under the case it judges.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)

from ..registry.runs import EvaluationResult
from .evaluators import CaseContext, Evaluator
from .models import ModelClient, output_parameters
from .recordings import RecordingKey
from .scenarios import _JudgeArgs
from .tracing import CURRENT_CASE, ChatRequest, ChatTrace, chat_request, text_message_json

__all__ = ["JudgeFactory"]

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "0: fails the rubric, 1: fully meets it",
        },
        "reason": {"type": "string", "description": "One or two sentences on why"},
    },
    "required": ["score", "reason"],
}

INSTRUCTIONS = (
    "You are an impartial evaluator. You are given a rubric, the conversation an assistant received, and the "
    "assistant's final output. Score how well the output meets the rubric, from 0 (fails it) to 1 (fully meets "
    "it), and explain the score in one or two sentences. Judge only against the rubric."
)


def _conversation_text(ctx: CaseContext) -> str:
    lines = []
    for message in ctx.messages:
        content = message.get("content")
        if content is None and message.get("tool_calls"):
            content = json.dumps(message["tool_calls"], ensure_ascii=False)
        lines.append(f"[{message.get('role', '?')}] {content}")
    for call in ctx.tool_calls:
        outcome = call.error or json.dumps(call.result, default=str)
        lines.append(f"[tool {call.name}({json.dumps(call.args, default=str)})] {outcome}")
    return "\n".join(lines)


@dataclass
class _Judge(Evaluator):
    client: ModelClient
    rubric: str
    threshold: float
    name: str = "judge"
    _requests: dict[bool, ChatRequest] = field(default_factory=dict[bool, ChatRequest], repr=False)
    """The span attributes of its requests, with and without content (made once)."""

    async def evaluate(self, ctx: CaseContext) -> EvaluationResult:
        prompt = (
            f"RUBRIC:\n{self.rubric}\n\nCONVERSATION:\n{_conversation_text(ctx)}\n\nOUTPUT:\n{ctx.text}\n\n"
            "Give your verdict as JSON with `score` and `reason`."
        )
        messages: list[ModelMessage] = [ModelRequest(parts=[SystemPromptPart(INSTRUCTIONS), UserPromptPart(prompt)])]
        parameters, output_tool = output_parameters(self.client.model, [], VERDICT_SCHEMA)
        key = None
        if self.client.recordings is not None:
            recording = RecordingKey({"judge": self.client.spec, "schema": VERDICT_SCHEMA})
            recording.add(list(messages[0].parts))
            key = recording.current()
        case = CURRENT_CASE.get()
        chat = None
        if case is not None:
            request = self._requests.get(case.content)
            if request is None:
                request = self._requests[case.content] = chat_request(
                    self.client.spec, self.client.model, None, parameters, content=case.content, judge=True
                )
            shaped = None
            if case.content:
                shaped = f"[{text_message_json('system', INSTRUCTIONS)},{text_message_json('user', prompt)}]"
            chat = ChatTrace(request=request, start_ns=time.time_ns(), messages=shaped)
            case.chats.append(chat)
        try:
            answer = await self.client.request(messages, None, parameters, key=key)
        except BaseException as exc:
            if chat is not None:
                chat.fail(exc)
            raise
        if chat is not None:
            chat.finish(answer, content=case is not None and case.content)
        verdict = _verdict(answer.response.parts, output_tool)
        score = min(max(float(verdict["score"]), 0.0), 1.0)
        reason = str(verdict.get("reason") or "")
        return EvaluationResult(
            name=self.name,
            passed=score >= self.threshold,
            score=score,
            reason=f"{score:.2f} (pass at {self.threshold:g}): {reason}",
        )


def _verdict(parts: Sequence[Any], output_tool: str | None) -> dict[str, Any]:
    for part in parts:
        if isinstance(part, ToolCallPart) and (output_tool is None or part.tool_name == output_tool):
            data = part.args_as_dict()
            if "score" in data:
                return data
    text = "".join(part.content for part in parts if isinstance(part, TextPart)).strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError(f"the judge did not answer with JSON holding `score` and `reason`: {text[:200]!r}") from None
    if not isinstance(data, dict) or not isinstance(data.get("score"), (int, float)):
        raise ValueError(f"the judge's answer has no numeric `score`: {text[:200]!r}")
    return data


class JudgeFactory:
    """Builds judge evaluators, sharing one client per judge model."""

    def __init__(self, client_for: Callable[[str], ModelClient], *, default_model: str | None) -> None:
        self._client_for = client_for
        self.default_model = default_model

    def build(self, args: str | _JudgeArgs, *, fallback_model: str) -> Evaluator:
        """A judge for a ``judge`` expectation; its model: the expectation's, the configured judge model, or
        the case's."""
        spec = _JudgeArgs(rubric=args) if isinstance(args, str) else args
        model = spec.model or self.default_model or fallback_model
        return _Judge(self._client_for(model), spec.rubric, spec.threshold)
