"""Models for the harness: resolving model strings, and one client per model that makes requests.

A client makes one pydantic-ai request at a time (``Model.request``, not ``Agent.run``: the harness runs the
tool-calling loop itself, and an Agent run costs about 50 times more CPU) and adds what an eval run needs
around it: record/replay of
responses, retries with backoff on rate limits, server errors and timeouts (honouring Retry-After), a
per-request timeout, and a requests-per-minute limit shared by every case using the model.

``pydantic_ai.direct.model_request`` would add what the harness does not use: carrying ``instructions`` from
earlier requests (the harness sends system prompt parts), rendering retry-feedback parts (it sends tool returns)
and a deadline (it has its own timeout); every model's ``request`` still runs pydantic-ai's request preparation.

A ``python:`` model's tokens are the ones its function reports (a ``ModelResponse`` with ``usage``). An answer
that reports none (a string, or a response without usage) is *unmeasured*, as pydantic-ai marks a provider's
response without usage: its case records 0 tokens (what a ``max_tokens`` expectation sees) and its chat span
no token counts. pydantic-ai's ``FunctionModel`` would instead guess them from the words of every message of
every request (a regex over the whole conversation, about a quarter of such a request's time), numbers meant
for its own tests, not counts of anything a model read or wrote. A function that wants token counts reports
them: ``ModelResponse(parts=..., usage=RequestUsage(input_tokens=..., output_tokens=...))``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    ModelHTTPError,
    ModelRequestTimeout,
    UserError,
)
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.output import OutputObjectDefinition
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.usage import RequestUsage

from .._model_strings import OpenAIEndpoint
from ..errors import ConfigError
from ._imports import load_callable
from .recordings import Recordings, ReplayMissError

__all__ = ["ErrorKind", "ModelClient", "RequestPolicy", "error_kind", "output_parameters", "resolve_model"]

_RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}
# pydantic-ai's error classes, by name as runs record them: a categorised HTTP error is a private subclass named
# `_HTTP<Category>` (`_HTTPModelServerError`), so the prefix is dropped before looking a name up.
_OUTAGE_TYPES = {
    "ModelConnectionError", "ModelTimeoutError", "ModelRequestTimeout", "TimeoutError", "ModelRateLimitError",
    "ModelQuotaExceededError", "ModelUnavailableError", "ModelOverloadedError", "ModelServerError",
}  # fmt: skip
_CONFIG_TYPES = {"ModelAuthenticationError", "ModelNotFoundError"}
_CONFIG_STATUS = {401, 403, 404}
_STATUS = re.compile(r"\bstatus_code: (\d{3})\b")

ErrorKind = Literal["outage", "config"]


def error_kind(type_name: str, message: str) -> ErrorKind | None:
    """What a recorded error says about the run, from its type and message (runs keep both as text):

    - ``outage``: the provider could not be reached: a refused or dropped connection, a timeout, a rate limit or a
      5xx that outlasted the retries;
    - ``config``: the provider refused who or what was asked for: a bad key (401/403), an unknown model (404);
    - None: anything else, the prompt's or the case's own failure.
    """
    name = type_name.removeprefix("_HTTP")
    if name in _OUTAGE_TYPES:
        return "outage"
    if name in _CONFIG_TYPES:
        return "config"
    status = _STATUS.search(message) if name == "ModelHTTPError" else None
    if status is not None:
        code = int(status.group(1))
        return "outage" if code in _RETRYABLE_STATUS or code >= 500 else "config" if code in _CONFIG_STATUS else None
    return None


def _function_model(reference: str, root: Path | None) -> Model:
    from pydantic_ai.models.function import FunctionModel

    function = load_callable(reference, what=f"model python:{reference}", root=root)

    class ScenarioFunctionModel(FunctionModel):
        """A FunctionModel that prepares each distinct request configuration once.

        A run makes thousands of requests with the same settings and parameters objects (one pair per
        scenario), and pydantic-ai's request preparation copies the parameters three times per request;
        its result may be reused across requests (pydantic-ai does not mutate it).
        """

        def __init__(self) -> None:
            super().__init__(call, model_name=f"python:{reference}")
            self._prepared: dict[tuple[int, int], tuple[Any, Any, Any]] = {}

        def prepare_request(self, model_settings: Any, model_request_parameters: Any) -> Any:
            key = (id(model_settings), id(model_request_parameters))
            hit = self._prepared.get(key)
            if hit is not None and hit[0] is model_settings and hit[1] is model_request_parameters:
                return hit[2]
            prepared = super().prepare_request(model_settings, model_request_parameters)
            if len(self._prepared) < 1024:
                self._prepared[key] = (model_settings, model_request_parameters, prepared)
            return prepared

    async def call(messages: list[ModelMessage], info: Any) -> ModelResponse:
        # Called directly, not in a worker thread as pydantic-ai does for sync functions (200 us a call):
        # model functions for evals are quick and deterministic. A string is a text answer.
        result = function(messages, info)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, str):
            return ModelResponse(parts=[TextPart(result)], usage=RequestUsage(unmeasured_requests=1))
        if isinstance(result, ModelResponse) and not result.usage.has_values() and not result.usage.unmeasured_requests:
            result.usage = RequestUsage(unmeasured_requests=1)  # reported none: unmeasured, not estimated
        return result

    return ScenarioFunctionModel()


def _extras() -> frozenset[str]:
    """promptlane's extras, as installed (provider extras come and go with releases)."""
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        return frozenset(metadata("promptlane").get_all("Provides-Extra") or ())
    except PackageNotFoundError:  # pragma: no cover - run from a source tree that is not installed
        return frozenset()


def _install_line(error: ImportError) -> str:
    """The ``pip install`` line for the package a provider lacks: promptlane's extra of the pydantic-ai group
    the error names (``ollama:`` and ``vllm:`` use the OpenAI client: ``promptlane[openai]``), else the group
    from pydantic-ai-slim itself."""
    group = re.search(r"pydantic-ai-slim\[([\w-]+)\]", str(error))
    if group is None:
        return str(error)
    extra = group.group(1)
    return f"pip install 'promptlane[{extra}]'" if extra in _extras() else f"pip install 'pydantic-ai-slim[{extra}]'"


def _endpoint_model(endpoint: OpenAIEndpoint, name: str, spec: str) -> Model:
    """A model served by an OpenAI-compatible endpoint the config declares, through the OpenAI client."""
    api_key = "not-needed"  # local servers (Ollama, vLLM) take any key, and the OpenAI client wants one
    if endpoint.api_key_env is not None:
        api_key = os.environ.get(endpoint.api_key_env, "")
        if not api_key:
            message = f"{endpoint.api_key_env} is not set: the {endpoint.name!r} provider's API key is read from it"
            raise ConfigError(message, source=f"model {spec}")
    try:
        from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
        from pydantic_ai.providers.openai import OpenAIProvider
    except ImportError as exc:
        message = f"an OpenAI-compatible endpoint needs the OpenAI client: {_install_line(exc)}"
        raise ConfigError(message, source=f"model {spec}") from None
    provider = OpenAIProvider(base_url=endpoint.base_url, api_key=api_key)
    if endpoint.protocol == "responses":
        return OpenAIResponsesModel(name, provider=provider)
    return OpenAIChatModel(name, provider=provider)


def resolve_model(
    spec: str, *, root: Path | None = None, providers: Mapping[str, OpenAIEndpoint] | None = None
) -> Model:
    """The pydantic-ai model a model string names.

    ``test`` is pydantic-ai's TestModel; ``python:module:function`` wraps a function
    ``(messages, info) -> ModelResponse | str`` (sync or async) in a FunctionModel (its tokens: the usage the
    response reports, else none); ``NAME:model-id`` with a NAME of ``providers`` (the config's
    OpenAI-compatible endpoints) is that model on that endpoint; anything else goes to pydantic-ai
    (``openai:gpt-4o-mini``, ``anthropic:claude-...``).

    Raises:
        ConfigError: unknown provider, missing provider package (with the install line), missing API key.
    """
    if spec == "test":
        from pydantic_ai.models.test import TestModel

        return TestModel()
    if spec.startswith("python:"):
        return _function_model(spec.removeprefix("python:"), root)
    provider, _, name = spec.partition(":")
    endpoint = (providers or {}).get(provider)
    if endpoint is not None:
        return _endpoint_model(endpoint, name, spec)
    from pydantic_ai.models import infer_model

    try:
        return infer_model(spec)
    except ImportError as exc:
        message = f"the {provider!r} provider needs its package: {_install_line(exc)}"
        raise ConfigError(message, source=f"model {spec}") from None
    except UserError as exc:
        message = str(exc).split(". To try")[0]
        raise ConfigError(message, source=f"model {spec}") from None


class _Watchdog:
    """Times out requests with one timer for all of them.

    ``asyncio.timeout`` puts a timer in the event loop's heap for every request, and thousands of cancelled
    timers cost more than the requests they guard. Here each request only registers its deadline; one task
    wakes a few times a second and cancels the requests that are over it (as ``asyncio.timeout`` does: cancel,
    then ``uncancel`` and raise TimeoutError).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadlines: dict[asyncio.Task[Any], float] = {}
        self.expired: set[asyncio.Task[Any]] = set()
        self.watcher: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while self.deadlines:
            await asyncio.sleep(min(self.seconds / 4, 0.25))
            now = loop.time()
            for task, deadline in list(self.deadlines.items()):
                if deadline <= now and task not in self.expired:
                    self.expired.add(task)
                    task.cancel()
        self.watcher = None

    async def run(self, request: Awaitable[ModelResponse]) -> ModelResponse:
        task = asyncio.current_task()
        if task is None or sys.version_info < (3, 11):  # pragma: no cover - Python 3.10
            return await asyncio.wait_for(request, self.seconds)
        loop = asyncio.get_running_loop()
        self.deadlines[task] = loop.time() + self.seconds
        if self.watcher is None or self.watcher.done():
            self.watcher = loop.create_task(self._watch())
        try:
            return await request
        except asyncio.CancelledError:
            if task in self.expired:
                task.uncancel()
                raise TimeoutError from None
            raise
        finally:
            self.deadlines.pop(task, None)
            self.expired.discard(task)


@dataclass(frozen=True)
class RequestPolicy:
    """How requests are made."""

    timeout: float = 60.0
    """Seconds a single request may take."""
    retries: int = 4
    """Extra attempts after a rate limit, a 5xx, a timeout or a dropped connection."""
    backoff: float = 0.5
    """First backoff in seconds; it doubles each attempt (with jitter), capped at 30 s."""
    rpm: int | None = None
    """Requests per minute allowed to this model (None: no limit)."""


class _Pace:
    """Spaces request starts at least 60/rpm seconds apart (shared by every case of a model)."""

    def __init__(self, rpm: int) -> None:
        self.interval = 60.0 / rpm
        self.next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        start = max(now, self.next)
        self.next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


def _retry_delay(exc: BaseException, attempt: int, policy: RequestPolicy) -> float | None:
    """Seconds to wait before retrying after ``exc``, or None when it is not worth retrying."""
    if isinstance(exc, ModelHTTPError):
        if exc.status_code not in _RETRYABLE_STATUS:
            return None
        hinted = getattr(exc, "retry_after", None)
        if hinted is not None:
            return float(hinted)
    elif not isinstance(exc, (TimeoutError, ModelConnectionError, ModelRequestTimeout)):
        return None
    base = min(policy.backoff * (2**attempt), 30.0)
    return base / 2 + random.uniform(0, base / 2)


@dataclass
class Response:
    """A model response and how it was obtained."""

    response: ModelResponse
    """The response."""
    cached: bool
    """True when it came from the recordings."""
    attempts: int
    """Requests made for it (0 when cached)."""


class ModelClient:
    """Requests to one model, for every case of a run that uses it."""

    def __init__(
        self,
        spec: str,
        model: Model,
        *,
        policy: RequestPolicy,
        recordings: Recordings | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.spec = spec
        """The model string."""
        self.model = model
        """The pydantic-ai model."""
        self.policy = policy
        self.recordings = recordings
        self._pace = _Pace(policy.rpm) if policy.rpm else None
        self._watchdog = _Watchdog(policy.timeout)
        self._sleep = sleep
        # Provider SDKs retry on their own; the harness retries (with backoff it controls), so they must not.
        self.is_remote = not (spec == "test" or spec.startswith("python:"))

    async def request(
        self,
        messages: list[ModelMessage],
        settings: ModelSettings | None,
        parameters: ModelRequestParameters,
        *,
        key: str | None,
    ) -> Response:
        """One response for ``messages``: replayed, or requested (and recorded) according to the cache mode.

        Raises:
            ReplayMissError: replay mode and nothing recorded under ``key``.
            ModelAPIError, TimeoutError, UnexpectedModelBehavior...: after the retries are spent.
        """
        recordings = self.recordings
        if recordings is not None and key is not None:
            recorded = recordings.get(key)
            if recorded is not None:
                return Response(recorded, cached=True, attempts=0)
            if recordings.mode == "replay":
                raise ReplayMissError(f"no recorded response for this request (key {key[:16]}) in {recordings.folder}")
        if self.is_remote:
            settings = {**(settings or {}), "max_retries": 0}  # type: ignore[typeddict-item]
        attempt = 0
        while True:
            if self._pace is not None:
                await self._pace.wait()
            try:
                response = await self._watchdog.run(self.model.request(messages, settings, parameters))
                break
            except (ModelAPIError, TimeoutError) as exc:
                delay = _retry_delay(exc, attempt, self.policy) if attempt < self.policy.retries else None
                if delay is None:
                    if isinstance(exc, TimeoutError):
                        raise TimeoutError(f"the model did not answer within {self.policy.timeout:g}s") from None
                    raise
                attempt += 1
                await self._sleep(delay)
        if recordings is not None and key is not None and recordings.mode == "on":
            recordings.put(key, response)
        return Response(response, cached=False, attempts=attempt + 1)


OUTPUT_TOOL = "final_result"


def output_parameters(
    model: Model, tools: list[ToolDefinition], schema: dict[str, Any] | None
) -> tuple[ModelRequestParameters, str | None]:
    """Request parameters offering ``tools``, and asking for structured output the way the model supports:
    native JSON output where the model has it, else an output tool (whose name is returned)."""
    if schema is None:
        return ModelRequestParameters(function_tools=tools), None
    profile = getattr(model, "profile", None)
    native = (
        profile.get("supports_json_schema_output")
        if isinstance(profile, Mapping)
        else getattr(profile, "supports_json_schema_output", False)
    )
    if native:
        output = OutputObjectDefinition(json_schema=schema, name="output")
        return ModelRequestParameters(function_tools=tools, output_mode="native", output_object=output), None
    output_tool = ToolDefinition(name=OUTPUT_TOOL, parameters_json_schema=schema, kind="output")
    parameters = ModelRequestParameters(
        function_tools=tools, output_mode="tool", output_tools=[output_tool], allow_text_output=False
    )
    return parameters, OUTPUT_TOOL
