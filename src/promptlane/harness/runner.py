"""Running a prompt version against scenario files: planning cases, running them concurrently, recording.

Cases are planned lazily (dataset rows are read as they are needed) and run by ``concurrency`` workers.
Finished cases go to the registry in batches, so memory holds tallies, not cases: a 100,000-row dataset
runs in bounded memory. Once ``max_cost`` is spent, no new case starts and the run ends ``stopped``; a
Ctrl-C cancels the cases in flight and saves what finished as ``interrupted``.

The event loop only hands finished cases over: one thread per run (:class:`_CaseWriter`) encodes and stores
them, in the order they finished, and keeps the run's lease. A batch written on the loop stalled every request
in flight for as long as it took (tens of milliseconds with SQLite's fsync). The thread stores a batch every
:data:`_FLUSH_CASES` cases, and every second the cases that waited (so a ``kill -9`` loses at most that), and
refreshes the run's heartbeat, even while a model call holds the event loop. When it falls behind by
:data:`_BACKLOG` cases, workers wait for it before starting more. A run whose process died stops
heartbeating, and readers then see it ``interrupted`` (:mod:`..registry.runs`). Every case is stored before
the run is saved finished; a write that fails stops the run, which ends ``error`` with the write's error.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition

from .._model_strings import OpenAIEndpoint
from ..errors import ConfigError, TemplateError
from ..registry.fingerprint import (
    file_parts,
    judge_part,
    merge,
    model_parts,
    relative_path,
    repeat_part,
    version_part,
)
from ..registry.labels import LATEST
from ..registry.prompt import Prompt
from ..registry.runs import HEARTBEAT_SECONDS, CaseResult, RunRecord, ScenarioFileRef, ScenarioStats
from ..registry.store import Store
from ..spec import check_model
from ..templates import TextTemplate
from ._imports import load_callable
from ._shared import REUSE_FROM, SharedMessages
from .cases import CasePlan, ScenarioPlan, case_variables, history_items, run_case
from .datasets import count_rows, iter_rows
from .evaluators import build_evaluators
from .judge import JudgeFactory
from .mocks import mocked_tools
from .models import ModelClient, RequestPolicy, output_parameters, resolve_model
from .pydantic_evals import pydantic_evals_evaluator
from .recordings import CacheMode, Recordings
from .scenarios import ScenariosDocument, ScenarioSpec, ToolDeclaration, scenario_needs
from .tracing import RunTracer, chat_request, message_fragments

__all__ = ["EvalOptions", "EvalRun", "Progress"]

log = logging.getLogger("promptlane")

_FLUSH_CASES = 200
_FLUSH_SECONDS = 1.0
_BACKLOG = 5 * _FLUSH_CASES
"""Finished cases waiting for the writer at most: past it, workers wait for room before starting another case
(a slow disk, a remote registry, a writer starved of the GIL), so memory stays bounded whatever the store."""


@dataclass(frozen=True, kw_only=True)
class EvalOptions:
    """How to run."""

    model: str | None = None
    """Model for every case (over the scenario's, the file's and the version's)."""
    concurrency: int = 16
    """Cases in flight at once."""
    repeat: int | None = None
    """Repeats of every case (over each scenario's ``repeat``)."""
    cache: CacheMode = "off"
    """``off``, ``on`` (replay what was recorded, record the rest) or ``replay`` (a miss is a case error)."""
    recordings: Path | None = None
    """Where recorded responses live."""
    max_cost: float | None = None
    """USD after which no new case starts."""
    policy: RequestPolicy = field(default_factory=RequestPolicy)
    """Timeouts, retries and rate limits of model requests."""
    trace_content: bool = True
    """Put prompts and outputs on spans."""
    judge_model: str | None = None
    """Default model of ``judge`` expectations (else the case's model)."""
    root: Path | None = None
    """The project root: recorded paths are relative to it, and ``module:function`` imports from it."""
    providers: Mapping[str, OpenAIEndpoint] = field(default_factory=dict)
    """OpenAI-compatible endpoints by name (the config's ``providers``), for ``NAME:model-id`` models."""
    select: Callable[[ScenariosDocument, ScenarioSpec, str], bool] | None = None
    """Keeps only the cases for which it is true (document, scenario, case id)."""
    created_by: str | None = None
    """Recorded as who started the run."""
    version_code: bool = True
    """Run a ``python:`` model that only the version names (no scenario file, config or option does). A version
    comes from a registry, where a write token chose its content: `promptlane eval --version/--label`, the pytest
    plugin with a version or label, and runs started from the web UI set this False unless told otherwise."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError("must be at least 1", key="concurrency")
        if self.repeat is not None and self.repeat < 1:
            raise ConfigError("must be at least 1", key="repeat")
        if self.cache not in ("off", "on", "replay"):
            raise ConfigError(f"{self.cache!r} is not one of off, on, replay", key="cache")
        if self.cache != "off" and self.recordings is None:
            raise ConfigError("--cache on/replay needs a recordings folder", key="recordings")
        for key, model in (("model", self.model), ("judge_model", self.judge_model)):
            if model is not None:
                try:
                    check_model(model)
                except ValueError as exc:
                    raise ConfigError(str(exc), key=key) from None


Progress = Callable[[CaseResult], None]
"""Called with every finished case (a progress bar, the pytest plugin)."""


class EvalRun:
    """One run of one prompt version against a set of scenario files."""

    def __init__(
        self,
        *,
        store: Store,
        prompt: Prompt,
        documents: Sequence[ScenariosDocument],
        options: EvalOptions,
        tracer_provider: Any = None,
        logger_provider: Any = None,
        on_case: Progress | None = None,
    ) -> None:
        if prompt.version is None:
            raise ConfigError("an eval run needs a pushed version (push the prompt first)")
        self.store = store
        self.prompt = prompt
        self.documents = list(documents)
        self.options = options
        self.on_case = on_case
        self.created = False
        """Whether the run record is stored (by :meth:`create`, else by :meth:`run` when it starts)."""
        self._clients: dict[str, ModelClient] = {}
        self._recordings = (
            Recordings(options.recordings, options.cache) if options.recordings and options.cache != "off" else None
        )
        self.record = RunRecord(
            id=uuid.uuid4().hex,
            prompt=prompt.name,
            version=prompt.version,
            label=prompt.label,
            model="",
            started_at=datetime.now(timezone.utc),
            scenario_files=[],
            settings={
                "concurrency": options.concurrency,
                "repeat": options.repeat,
                "cache": options.cache,
                "max_cost": options.max_cost,
                "timeout": options.policy.timeout,
                "rpm": options.policy.rpm,
            },
            created_by=options.created_by,
        )
        self.tracer = RunTracer(
            run_id=self.record.id,
            prompt=prompt.name,
            version=prompt.version,
            label=_span_label(store, prompt),
            tracer_provider=tracer_provider,
            logger_provider=logger_provider,
            trace_content=options.trace_content,
        )
        self._judges = JudgeFactory(self._client, default_model=options.judge_model)
        self.plans = [plan for document in self.documents for plan in self._plan(document)]
        models = sorted({plan.client.spec for plan in self.plans})
        self.record.model = ", ".join(models)
        self.record.scenario_files = _fingerprint(self.documents, prompt.content_hash, models, options)
        self.stats = {
            id(plan): ScenarioStats(name=plan.spec.name, file=plan.file, threshold=plan.spec.threshold)
            for plan in self.plans
        }
        self.planned = {id(plan): self._count(plan) for plan in self.plans}
        for plan in self.plans:
            if self.planned[id(plan)] >= REUSE_FROM:
                plan.shared = SharedMessages(prompt, plan.spec.variables)

    # --- planning -----------------------------------------------------------------------------------------

    def _client(self, spec: str) -> ModelClient:
        client = self._clients.get(spec)
        if client is None:
            model = resolve_model(spec, root=self.options.root, providers=self.options.providers)
            client = self._clients[spec] = ModelClient(
                spec, model, policy=self.options.policy, recordings=self._recordings
            )
        return client

    def _model_for(self, document: ScenariosDocument, scenario: ScenarioSpec) -> str:
        spec = self.options.model or scenario.model or document.spec.model
        if spec:
            return spec
        spec = self.prompt.model
        if not spec:
            raise ConfigError(
                f"no model for scenario {scenario.name!r}: set `model:` in the prompt or the scenario file, "
                "or pass --model",
                source=str(document.path),
            )
        if spec.startswith("python:") and not self.options.version_code:
            # Code named by content a registry holds (any write token chose it) runs only when the user says so.
            raise ConfigError(
                f"{self.prompt.name}@{self.prompt.version} names the model {spec!r}, Python code that comes from the "
                "registry, not from this project: name the model in the scenario file or with --model, or pass "
                "--allow-version-code to run it",
                source=str(document.path),
            )
        return spec

    def _plan(self, document: ScenariosDocument) -> Iterator[ScenarioPlan]:
        if document.spec.prompt != self.prompt.name:
            raise ConfigError(
                f"scenario file is for {document.spec.prompt!r}, not {self.prompt.name!r}", source=str(document.path)
            )
        for index, scenario in enumerate(document.spec.scenarios):
            try:
                yield self._plan_scenario(document, index, scenario)
            except (ConfigError, TemplateError) as exc:
                # A model, mock, check or expectation template that does not load: name the file and line.
                raise document.document.error(str(exc), ("scenarios", index)) from None

    def _plan_scenario(self, document: ScenariosDocument, index: int, scenario: ScenarioSpec) -> ScenarioPlan:
        offered = {tool["name"]: tool for tool in self.prompt.tools}
        schema = self.prompt.output_schema
        client = self._client(self._model_for(document, scenario))
        tools = dict(offered)
        for name, mocks in scenario.tools.items():
            if isinstance(mocks, ToolDeclaration):
                tools[name] = {"name": name, "description": mocks.description, "parameters": mocks.parameters}
            elif name not in offered:
                raise document.document.error(
                    f"tool {name!r} is not offered by {self.prompt.name}@{self.prompt.version}; declare it here "
                    "with `description`, `parameters` and `mocks`",
                    ("scenarios", index, "tools", name),
                )
        definitions = [
            ToolDefinition(
                name=t["name"], description=t.get("description") or None, parameters_json_schema=t["parameters"]
            )
            for t in tools.values()
        ]
        parameters, output_tool = output_parameters(client.model, definitions, schema)
        settings = cast("ModelSettings", dict(self.prompt.model_settings)) or None  # checked keys (spec.py)
        history, history_dicts = history_items(scenario.history)

        def compile_template(text: str) -> Callable[[Any], str]:
            return TextTemplate(text, name=f"{scenario.name} expectation").render

        evaluators = build_evaluators(
            scenario.expect,
            compile_template=compile_template,
            load_function=lambda ref, what: load_callable(ref, what=what, root=self.options.root),
            judge=lambda args, _model=client.spec: self._judges.build(args, fallback_model=_model),
            pydantic_evals=pydantic_evals_evaluator,
        )
        needs = scenario_needs(
            document,
            index,
            variables=self.prompt.variables,
            prompt=f"{self.prompt.name}@{self.prompt.version}",
            root=self.options.root,
        )
        dataset = document.dataset_path(scenario)
        return ScenarioPlan(
            document=document,
            spec=scenario,
            index=index,
            file=relative_path(document.path, self.options.root),
            dataset_file=relative_path(dataset, self.options.root) if dataset is not None else None,
            needs=needs.columns,
            text_names=needs.text,
            client=client,
            settings=settings,
            parameters=parameters,
            output_tool=output_tool,
            output_schema=schema,
            mocks=mocked_tools(scenario.tools, root=self.options.root),
            evaluators=evaluators,
            history=history,
            history_dicts=history_dicts,
            history_json=message_fragments(history) if self.options.trace_content else [],
            chat=chat_request(client.spec, client.model, settings, parameters, content=self.options.trace_content),
            tool_descriptions={name: tool["description"] for name, tool in tools.items() if tool.get("description")},
            key_base={
                "model": client.spec,
                "settings": settings,
                "tools": [tool for tool in tools.values()],
                "output_schema": schema,
            },
            repeat=self.options.repeat or scenario.repeat,
        )

    def _count(self, plan: ScenarioPlan) -> int:
        dataset = plan.document.dataset_path(plan.spec)
        rows = count_rows(dataset) if dataset is not None else 1
        return rows * plan.repeat

    def cases(self) -> Iterator[CasePlan]:
        """Every case, in order, dataset rows read as they come."""
        declared = self.prompt.variables
        select = self.options.select
        for plan in self.plans:
            dataset = plan.document.dataset_path(plan.spec)
            rows = iter_rows(dataset, declared) if dataset is not None else iter([None])
            for row in rows:
                variables, extra = case_variables(plan.spec, row, declared)
                base = plan.spec.name if row is None else f"{plan.spec.name}[row-{row.index}]"
                for repeat in range(1, plan.repeat + 1):
                    case = base if plan.repeat == 1 else f"{base}[repeat-{repeat}]"
                    if select is not None and not select(plan.document, plan.spec, case):
                        self.planned[id(plan)] -= 1
                        self.stats[id(plan)].deselected += 1
                        continue
                    yield CasePlan(scenario=plan, case=case, variables=variables, row=row, repeat=repeat, extra=extra)

    @property
    def total(self) -> int:
        """Cases planned."""
        return sum(self.planned.values())

    # --- running ------------------------------------------------------------------------------------------

    def create(self) -> None:
        """Store the run record (``running``, every planned case not run yet) before :meth:`run`: inside the
        store's transaction that pushes the version, so that the version and its run are stored together or not
        at all. :meth:`run` then refreshes its lease (a reader may have taken it for dead while it waited)."""
        self._tally()  # the planned cases, all not run yet: what a reader tallies a lost run against
        self.store.create_run(self.record)
        self.created = True

    async def run(self) -> RunRecord:
        """Run every case and record the run; the record is saved even when the run is interrupted."""
        # The objects alive now (modules, pydantic-ai, the plans) live through the run: frozen, the cyclic
        # collector's full passes stop rescanning them every time cases produce garbage. That made the
        # collector's pauses most of the jitter of runs with many requests in flight.
        gc.freeze()
        try:
            return await self._run()
        finally:
            gc.unfreeze()

    async def _run(self) -> RunRecord:
        record = self.record
        if self.created:
            self.store.heartbeat_run(record.id)  # its lease starts now, not when it was created
        else:
            self.create()
        spent = 0.0
        stop_reason: str | None = None
        cases = self.cases()

        async def worker() -> None:
            nonlocal spent, stop_reason
            while stop_reason is None and writer.error is None:
                if self.options.max_cost is not None and spent >= self.options.max_cost:
                    stop_reason = "cost ceiling"
                    return
                case = next(cases, None)
                if case is None:
                    return
                result = await run_case(case, self.prompt, self.tracer)
                spent += result.cost_usd or 0.0
                self.stats[id(case.scenario)].count(result.status)
                writer.add(result)
                if self.on_case is not None:
                    self.on_case(result)
                await writer.room()

        with self.tracer.run(self.prompt.name, model=record.model) as span:
            record.trace_id = self.tracer.trace_id(span)
            writer = _CaseWriter(self.store, record.id)
            try:
                await _all([worker() for _ in range(self.options.concurrency)])
                await asyncio.to_thread(writer.close)  # the last batch, off the loop
            except (asyncio.CancelledError, KeyboardInterrupt):
                writer.close()  # what finished is stored before the run is saved
                self._finish(span, spent, "interrupted", _with_loss("interrupted", writer))
                raise
            except Exception as exc:  # a dataset that stops parsing half way: keep what finished
                writer.close()
                self._finish(span, spent, "error", _with_loss(f"{type(exc).__name__}: {exc}", writer))
                raise
            if writer.error is not None:
                self._finish(span, spent, "error", _with_loss(None, writer))
                raise writer.error
            self._finish(span, spent, "stopped" if stop_reason else None, stop_reason)
        return record

    def _tally(self) -> None:
        """Put the scenarios' tallies on the record, planned cases not run counted as skipped."""
        for key, stats in self.stats.items():
            stats.skipped = max(self.planned[key] - stats.cases, 0)
        self.record.scenarios = list(self.stats.values())

    def _finish(self, span: Any, spent: float, status: Any, reason: str | None) -> None:
        """Save the run's outcome (also when it did not complete); its cases are stored already."""
        record = self.record
        self._tally()
        record.cost_usd = spent
        record.finished_at = datetime.now(timezone.utc)
        record.status = status or record.conclude()
        record.reason = reason
        self.tracer.finish_run(span, record)
        self.store.update_run(record)


async def _all(workers: list[Coroutine[Any, Any, None]]) -> None:
    """Run ``workers`` to the end; when one raises, or the run is cancelled, the others are cancelled and waited
    for before the error goes on, so that no case finishes after the run is saved."""
    tasks = [asyncio.ensure_future(worker) for worker in workers]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _with_loss(reason: str | None, writer: _CaseWriter) -> str | None:
    """A run's reason, with the failure to store its cases when there was one."""
    error = writer.error
    if error is None:
        return reason
    loss = f"saving cases failed: {type(error).__name__}: {error}"
    if writer.unsaved:
        loss += f" ({writer.unsaved} finished cases not saved)"
    return loss if reason is None else f"{reason}; {loss}"


class _CaseWriter:
    """The thread that stores a run's finished cases and keeps its lease.

    The event loop hands each finished case over (:meth:`add`: an append); this thread encodes and stores them
    in batches, in the order they finished: when :data:`_FLUSH_CASES` are waiting, and every second the ones
    that waited. A worker awaits :meth:`room` after each case, which holds it while :data:`_BACKLOG` wait.
    Every :data:`HEARTBEAT_SECONDS` without a write, it refreshes the run's heartbeat. It works even while a
    model call holds the event loop.

    A write that fails keeps its cases waiting and stops the writing (a later batch is never stored before an
    earlier one); the failure stays in :attr:`error`, which stops the run. :meth:`close` makes a last try. A
    heartbeat that fails is logged, never raised (an outage, an old server without heartbeats: the case writes
    report an outage).
    """

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.error: BaseException | None = None
        """The first write that failed (the writing stopped there)."""
        self._pending: list[CaseResult] = []
        self._writing = 0  # cases of the batch being written
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._drained = asyncio.Event()  # set on the loop after every write, for workers waiting for room
        self._closing = False
        self._every = _FLUSH_SECONDS
        self._heartbeat = HEARTBEAT_SECONDS
        self._warned = False
        self._thread = threading.Thread(target=self._keep, name=f"promptlane-cases-{run_id[:8]}", daemon=True)
        self._thread.start()

    def add(self, case: CaseResult) -> None:
        """Hand a finished case over, to be stored after those handed over before it."""
        with self._lock:
            self._pending.append(case)
            full = len(self._pending) >= _FLUSH_CASES
        if full:
            self._wake.set()

    async def room(self) -> None:
        """Wait while :data:`_BACKLOG` finished cases wait for the writer (not at all after a failed write: the
        run stops on it)."""
        while self.error is None and self.unsaved >= _BACKLOG:
            self._drained.clear()
            self._wake.set()
            await self._drained.wait()

    @property
    def unsaved(self) -> int:
        """Cases handed over and not stored, the batch being written included (after :meth:`close`: the ones
        lost)."""
        with self._lock:
            return len(self._pending) + self._writing

    def close(self) -> None:
        """Store every case handed over (a last try after a failed write), then stop."""
        self._closing = True
        self._wake.set()
        self._thread.join()

    def _keep(self) -> None:
        beaten = time.monotonic()
        while True:
            self._wake.wait(self._every)
            self._wake.clear()
            closing = self._closing
            if self.error is None or closing:
                try:
                    if self._save():
                        beaten = time.monotonic()  # storing cases refreshed the heartbeat
                except Exception as exc:  # the run reads it, stops, and ends with it
                    self.error = self.error or exc
                if not closing:
                    with suppress(RuntimeError):  # the loop is closed: nobody waits for room any more
                        self._loop.call_soon_threadsafe(self._drained.set)
            if closing:
                return
            if self.error is None and time.monotonic() - beaten >= self._heartbeat:
                beaten = time.monotonic()
                try:
                    self.store.heartbeat_run(self.run_id)
                except Exception as exc:
                    if not self._warned:
                        self._warned = True
                        log.warning("promptlane: could not refresh the lease of run %s: %s", self.run_id, exc)

    def _save(self) -> bool:
        """Store the waiting cases, in the order they finished; whether there were any. On failure they wait
        again, ahead of any handed over since."""
        with self._lock:
            batch, self._pending = self._pending, []
            self._writing = len(batch)
        if not batch:
            return False
        try:
            self.store.add_cases(self.run_id, batch)
        except BaseException:
            with self._lock:
                self._pending[:0] = batch
                self._writing = 0
            raise
        with self._lock:
            self._writing = 0
        return True


def _span_label(store: Store, prompt: Prompt) -> str | None:
    """The label on the run's spans: the one the version was resolved through, else ``latest`` when the version
    is the newest (a run of the prompt files just pushed), else none (an older version asked for by number)."""
    if prompt.label is not None:
        return prompt.label
    return LATEST if prompt.version == store.latest_number(prompt.name) else None


def _fingerprint(
    documents: Sequence[ScenariosDocument], content_hash: str, models: Sequence[str], options: EvalOptions
) -> list[ScenarioFileRef]:
    """What the run depends on, as the gate recomputes it (:mod:`promptlane.registry.fingerprint`): each scenario
    file with the datasets and Python modules it names, the judge model, the version, and the Python models run."""
    root = options.root
    parts = [part for d in documents for part in file_parts(d.path, d.sha256, d.document.data, root)]
    parts += judge_part([d.document.data for d in documents], options.judge_model, root)
    parts.append(version_part(content_hash))
    parts.append(repeat_part(options.repeat))
    for model in models:
        parts += model_parts(model, root)
    return merge(parts)
