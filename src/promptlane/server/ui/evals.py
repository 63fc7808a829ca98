"""Pages for testing: a prompt's scenarios, run from the browser against a chosen version (its configured
models, or replaying recorded answers) with progress; the runs list; a run, failures first; two runs compared."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from ...errors import ConfigError, NotFoundError, PromptlaneError
from ...registry.runs import CaseResult
from .._http import HttpError
from ..state import state
from ._page import Page, page, redirect, render

__all__: list[str] = []

log = logging.getLogger("promptlane.server")

MAX_RUNNING = 4
"""Runs started from the browser at once, per server process (each drives models and the CPU)."""
_JOBS_KEPT = 200


@dataclass(kw_only=True)
class Job:
    """A run started from the browser, in this process."""

    total: int
    done: int = 0
    finished: bool = False
    failure: str | None = None


def _keep(jobs: dict[str, Any], run_id: str, job: Job) -> None:
    """Remember ``job``, forgetting the oldest finished ones beyond ``_JOBS_KEPT``."""
    jobs[run_id] = job
    finished = [key for key, kept in jobs.items() if kept.finished]
    for key in finished[: max(len(jobs) - _JOBS_KEPT, 0)]:
        del jobs[key]


def _scenario_refs(registry: Any, name: str) -> list[Any]:
    """The scenario files of the gate's requirements (which list the datasets they read after them)."""
    from ...registry.fingerprint import is_scenario_file

    refs = registry.gate_requirements(name).scenario_files
    return [ref for ref in refs if is_scenario_file(registry.settings.root / ref.path)]


def _refuse_code_from_the_version(prompt: Any, documents: list[Any]) -> None:
    """A ``python:`` model named by the version (which any write token can push) is code this server would
    import and call: a run started from the browser runs code only when a scenario file on the server names it.

    Raises:
        ConfigError: a scenario would run on the version's ``python:`` model.
    """
    model = prompt.model or ""
    if not model.startswith("python:"):
        return
    for document in documents:
        if not document.spec.model and any(not scenario.model for scenario in document.spec.scenarios):
            raise ConfigError(
                f"{prompt.name}@{prompt.version} names the model {model!r}, which is Python code: from the browser, "
                f"the server runs code only when a scenario file names it (set `model:` in {document.path})"
            )


@page("read", write="write")
async def scenarios(view: Page) -> Response:
    name = view.request.path_params["name"]
    registry = view.registry
    if view.writing:
        form = await view.request.form()
        return await _start(view, name, str(form.get("version") or ""), str(form.get("mode") or "configured"))

    def gather() -> dict[str, Any]:
        from ...harness.scenarios import load_scenario_file

        versions = registry.versions(name)[::-1]  # newest first
        files = []
        for ref in _scenario_refs(registry, name):
            try:
                document = load_scenario_file(registry.settings.root / ref.path, settings=registry.settings)
                files.append({"path": ref.path, "scenarios": document.spec.scenarios, "model": document.spec.model})
            except PromptlaneError as exc:
                files.append({"path": ref.path, "error": str(exc), "scenarios": []})
        runs = registry.store.list_runs(name, limit=10)
        return {"versions": versions, "files": files, "runs": runs}

    return render(view, "scenarios.html", name=name, **await run_in_threadpool(gather))


async def _start(view: Page, name: str, version_text: str, mode: str) -> Response:
    """Start a run in a thread of this process and go to its page."""
    from ...harness import EvalOptions, EvalRun
    from ...harness.scenarios import load_scenario_file
    from ...harness.telemetry import otlp_providers

    registry, settings = view.registry, view.registry.settings
    if not (version_text.isascii() and version_text.isdigit()):
        raise NotFoundError(f"no version {version_text!r}")
    jobs = state(view.request).jobs
    if sum(not job.finished for job in jobs.values()) >= MAX_RUNNING:
        raise HttpError(429, f"{MAX_RUNNING} runs started from the browser are still running: wait for one to end")

    def prepare() -> tuple[EvalRun, Callable[[], None]]:
        refs = _scenario_refs(registry, name)
        if not refs:
            raise NotFoundError(f"no scenario files for {name} under {settings.evals_dir}")
        documents = [load_scenario_file(settings.root / ref.path, settings=settings) for ref in refs]
        prompt = registry.get(name, version=int(version_text))
        _refuse_code_from_the_version(prompt, documents)
        options = EvalOptions(
            version_code=False,  # the server runs only code its own scenario files name
            cache="replay" if mode == "replay" else "off",
            recordings=settings.recordings_dir,
            root=settings.root,
            judge_model=settings.judge_model,
            providers=settings.providers,
            created_by=view.who,
        )
        # Traces go where the server's environment says (OTEL_EXPORTER_OTLP_ENDPOINT), as for `promptlane eval`.
        tracer_provider, logger_provider, shutdown = otlp_providers(None)
        try:
            run = EvalRun(
                store=registry.store,
                prompt=prompt,
                documents=documents,
                options=options,
                tracer_provider=tracer_provider,
                logger_provider=logger_provider,
            )
        except BaseException:
            shutdown()
            raise
        return run, shutdown

    run, shutdown = await run_in_threadpool(prepare)
    job = Job(total=run.total)

    def count(_: CaseResult) -> None:
        job.done += 1

    run.on_case = count
    _keep(jobs, run.record.id, job)

    def work() -> None:
        try:
            asyncio.run(run.run())
        except Exception as exc:  # the run's record says what happened; the page says it too
            log.exception("the run %s started from the browser failed", run.record.id)
            job.failure = str(exc)
        finally:
            shutdown()  # flushes the run's spans
            job.finished = True

    threading.Thread(target=work, name=f"ui-run-{run.record.id[:8]}", daemon=True).start()
    return redirect(f"/runs/{run.record.id}")


@page("read")
async def runs(view: Page) -> Response:
    prompt = view.request.query_params.get("prompt") or None
    records = await run_in_threadpool(lambda: view.registry.store.list_runs(prompt, limit=100))
    return render(view, "runs.html", runs=records, prompt=prompt)


@page("read")
async def run_page(view: Page) -> Response:
    run_id = view.request.path_params["run_id"]
    job = state(view.request).jobs.get(run_id)
    running = job is not None and not job.finished  # before reading the record: a run may end meanwhile
    store: Any = view.registry.store
    try:
        record = await run_in_threadpool(store.get_run, run_id)
    except NotFoundError:
        if job is None:
            raise
        return render(view, "run.html", record=None, run_id=run_id, job=job, cases=[], paging=None)
    counts = await run_in_threadpool(store.count_cases, record.id)
    paging = CasePaging.of(view.request.query_params, counts)
    shown = await run_in_threadpool(paging.read, store, record.id)
    return render(view, "run.html", record=record, run_id=record.id, job=job if running else None, cases=shown,
                  paging=paging, failure=job.failure if job else None)  # fmt: skip


CASES_PER_PAGE = 100
"""Cases a run page shows at once; the others are a page away, never read for this one."""
_VIEWS = {"failing": ("error", "failed"), "passed": ("passed",), "all": ("error", "failed", "passed")}


@dataclass(frozen=True, kw_only=True)
class CasePaging:
    """Which cases of a run a page shows: a view (failing, passed, all: errors first, then failures, then
    passes, each in the order they finished) and a page of it."""

    view: str
    """``failing``, ``passed`` or ``all``."""
    page: int
    """1-based."""
    counts: dict[str, int]
    """The run's stored cases by status."""

    @classmethod
    def of(cls, query: Mapping[str, str], counts: dict[str, int]) -> CasePaging:
        """The paging the page's address asks for; by default the failing cases when there are any."""
        failing = counts.get("error", 0) + counts.get("failed", 0)
        view = query.get("show") or ""
        if view not in _VIEWS:
            view = "failing" if failing else "all"
        text = query.get("page") or "1"
        number = int(text) if text.isascii() and text.isdigit() and len(text) < 10 else 1
        paging = cls(view=view, page=1, counts=counts)
        return cls(view=view, page=min(max(number, 1), paging.pages), counts=counts)

    def total(self, view: str | None = None) -> int:
        """How many cases ``view`` (default: this one) has."""
        return sum(self.counts.get(status, 0) for status in _VIEWS[view or self.view])

    @property
    def pages(self) -> int:
        return max((self.total() + CASES_PER_PAGE - 1) // CASES_PER_PAGE, 1)

    @property
    def first(self) -> int:
        """The 0-based position of this page's first case in the view."""
        return (self.page - 1) * CASES_PER_PAGE

    def link(self, *, view: str | None = None, page: int = 1) -> str:
        """This run page's address for ``view`` (default: this one) at ``page``."""
        query = {"show": view or self.view, **({"page": str(page)} if page > 1 else {})}
        return f"?{urlencode(query)}"

    def read(self, store: Any, run_id: str) -> list[CaseResult]:
        """This page's cases, read a status at a time from the store (only the rows shown)."""
        cases: list[CaseResult] = []
        skip, wanted = self.first, CASES_PER_PAGE
        for status in _VIEWS[self.view]:
            stored = self.counts.get(status, 0)
            if skip >= stored:
                skip -= stored
                continue
            rows = store.case_slice(run_id, offset=skip, limit=wanted - len(cases), statuses=[status])
            cases += [CaseResult.from_json(json.loads(data)) for _, data in rows]
            skip = 0
            if len(cases) >= wanted:
                break
        return cases


@page("read")
async def progress(view: Page) -> Response:
    job = state(view.request).jobs.get(view.request.path_params["run_id"])
    if job is None:
        return JSONResponse({"done": 0, "total": 0, "finished": True})
    return JSONResponse({"done": job.done, "total": job.total, "finished": job.finished})


@page("read")
async def compare(view: Page) -> Response:
    from ...harness.reports import compare_runs

    query = view.request.query_params
    a, b = query.get("a") or "", query.get("b") or ""
    store = view.registry.store

    def gather() -> Any:
        before, after = store.get_run(a), store.get_run(b)
        return compare_runs(before, after, store.run_cases(before.id), store.run_cases(after.id))

    if not a or not b:
        return redirect("/runs")
    return render(view, "compare.html", comparison=await run_in_threadpool(gather))
