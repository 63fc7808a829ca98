"""``promptlane eval``: run scenario files against prompt versions; ``promptlane schema``: JSON Schemas for editors.

Exit status: 0 when every scenario meets its threshold; 1 when one does not (or a run was stopped); 2 for usage
and configuration errors (bad scenario files, unknown models, bad data); 3 when the registry cannot be reached,
or when no case failed on its merits and every case error is the model provider being unreachable (connection
refused, timeouts, 5xx, rate limits after the retries): CI can tell an outage from a regression.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

import click

from ..errors import PromptlaneError, SpecError
from ._app import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    app,
    argument,
    err,
    exit_status,
    fail,
    out,
    registry,
    resume_collection,
    settings,
)
from ._table import printable

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ..harness import EvalRun, ScenariosDocument
    from ..harness.recordings import CacheMode
    from ..harness.telemetry import OtlpExport
    from ..registry import Registry
    from ..registry.runs import RunRecord

__all__: list[str] = []


@app.command()
@argument("kind", type=click.Choice(["scenario", "prompt"]), help="scenario or prompt")
def schema(kind: str) -> None:
    """Print the JSON Schema of scenario or prompt files (for editor completion and checks)."""
    if kind == "scenario":
        from ..harness.scenarios import ScenarioFile

        document = ScenarioFile.model_json_schema()
    else:
        from ..spec import PromptSpec

        document = PromptSpec.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


@app.command("eval")
@argument(
    "paths", nargs=-1, type=click.Path(path_type=Path), help="Scenario files or folders (default: the evals folder)."
)
@click.option("--prompt", help="Only scenarios of this prompt.")
@click.option("--version", type=click.IntRange(min=1), help="Evaluate this version.")
@click.option("--label", help="Evaluate the version this label points at.")
@click.option(
    "--model", help="Model for every case: provider:model (openai:gpt-4o-mini), test, or python:module:function."
)
@click.option(
    "--concurrency", "-c", type=click.IntRange(min=1), default=16, show_default=True, help="Cases in flight at once."
)
@click.option("--repeat", type=click.IntRange(min=1), help="Runs of each case (over the scenarios').")
@click.option(
    "--cache",
    type=click.Choice(["off", "on", "replay"]),
    default="off",
    show_default=True,
    help="Recorded responses: off, on (record), replay.",
)
@click.option("--max-cost", type=click.FloatRange(min=0), help="USD after which no new case starts.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.001),
    default=60.0,
    show_default=True,
    help="Seconds a model request may take.",
)
@click.option("--rpm", type=click.IntRange(min=1), help="Requests per minute per model.")
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="Extra attempts after a rate limit, a 5xx, a timeout or a dropped connection.",
)
@click.option("--json", "json_file", type=click.Path(path_type=Path), help="Write the runs and their cases as JSON.")
@click.option("--junit", "junit_file", type=click.Path(path_type=Path), help="Write JUnit XML.")
@click.option(
    "--otlp-endpoint",
    help="Export traces with OTLP/HTTP: a base URL (http://host:4318) or the traces URL (.../v1/traces).",
)
@click.option("--no-trace-content", is_flag=True, help="Keep prompts and outputs off spans.")
@click.option(
    "--failures", type=click.IntRange(min=0), default=10, show_default=True, help="Failing cases to print per run."
)
@click.option(
    "--allow-version-code",
    is_flag=True,
    help="With --version/--label: run a python: model that only the stored version names (code from the registry).",
)
@click.pass_context
def eval_(
    ctx: click.Context,
    paths: tuple[Path, ...],
    prompt: str | None,
    version: int | None,
    label: str | None,
    model: str | None,
    concurrency: int,
    repeat: int | None,
    cache: str,
    max_cost: float | None,
    timeout: float,
    rpm: int | None,
    retries: int,
    json_file: Path | None,
    junit_file: Path | None,
    otlp_endpoint: str | None,
    no_trace_content: bool,
    failures: int,
    allow_version_code: bool,
) -> None:
    """Run scenarios against prompt versions, record the runs, and say which scenarios pass."""
    if version is not None and label is not None:
        raise click.BadParameter("give --version or --label, not both")
    # Imported here, not at the top: the harness imports pydantic-ai, which the other commands do not need.
    from .._extras import require

    require("eval", "promptlane eval")
    from ..harness import EvalOptions
    from ..harness.models import RequestPolicy
    from ..harness.scenarios import discover_scenario_files, load_scenario_file
    from ..harness.telemetry import otlp_export, signal_url

    for option, target in (("--json", json_file), ("--junit", junit_file)):
        _check_writable(option, target)
    if otlp_endpoint is not None:
        try:
            signal_url(otlp_endpoint, "traces")
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--otlp-endpoint") from None
    config = settings(ctx)
    try:
        # Options first: a bad --model or judge model is refused before anything is pushed.
        options = EvalOptions(
            model=model,
            concurrency=concurrency,
            repeat=repeat,
            cache=cast("CacheMode", cache),  # one of the choices
            recordings=config.recordings_dir,
            max_cost=max_cost,
            policy=RequestPolicy(timeout=timeout, rpm=rpm, retries=retries),
            trace_content=not no_trace_content,
            judge_model=config.judge_model,
            root=config.root,
            providers=config.providers,
            created_by=config.author,
            # The prompt files of this project are pushed and run by default; a stored version is anyone's.
            version_code=(version is None and label is None) or allow_version_code,
        )
        reg = registry(ctx)
        where = list(paths) or [config.evals_dir]
        files = discover_scenario_files(where)
        if not files:
            raise PromptlaneError(f"no scenario files in {', '.join(str(p) for p in where)}")
        groups: dict[str, list[ScenariosDocument]] = defaultdict(list)
        for path in files:
            document = load_scenario_file(path, settings=config)
            groups[document.spec.prompt].append(document)
        if prompt is not None:
            if prompt not in groups:
                raise PromptlaneError(f"no scenarios for prompt {prompt!r} (found: {', '.join(sorted(groups))})")
            groups = {prompt: groups[prompt]}
        if (version is not None or label is not None) and len(groups) > 1:
            raise click.BadParameter(
                f"scenarios target several prompts ({', '.join(sorted(groups))}); pick one with --prompt",
                param_hint="--version/--label",
            )
    except PromptlaneError as exc:
        raise fail(exc) from None
    export = otlp_export(otlp_endpoint)
    records: list[RunRecord] = []
    stopped_status = 0
    try:
        try:
            runs = _create_runs(reg, groups, options, export, version=version, label=label)
        except PromptlaneError as exc:
            raise fail(exc) from None
        for run in runs:
            try:
                records.append(_run_one(reg, run, failures))
            except _Stopped as stopped:
                records.append(stopped.record)
                stopped_status = max(stopped_status, stopped.status)
    finally:
        _flush(export)
    # A lost export is reported, never the run's verdict: the exit status below is the runs' alone.
    _write_reports(reg, records, json_file, junit_file, export.to_json())
    if stopped_status:
        raise click.exceptions.Exit(stopped_status)
    failing = [record for record in records if record.status != "passed"]
    if failing:
        raise click.exceptions.Exit(_failure_status(reg, failing))


def _flush(export: OtlpExport) -> None:
    """Send the last spans and logs (a bounded wait), and say on stderr what could not be sent."""
    for line in export.flush():
        err(f"warning: {printable(line)}")


def _check_writable(option: str, path: Path | None) -> None:
    """Refuse a report path that cannot be written before the run, not after it."""
    import os

    if path is None:
        return
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise click.BadParameter(f"{path} is a folder: give a file name", param_hint=option)
    if not folder.is_dir():
        raise click.BadParameter(f"the folder {folder} does not exist", param_hint=option)
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise click.BadParameter(f"{path} cannot be written", param_hint=option)


def _failure_status(reg: Registry, records: list[RunRecord]) -> int:
    """1 when a case failed on its merits (or a run was stopped); else 3 when a provider (of the model or a
    judge) could not be reached, or 2 when every failure is a provider refusing the configuration (a bad key,
    an unknown model): CI can tell a regression from an outage."""
    from ..harness.models import error_kind

    kinds: set[str | None] = set()
    for record in records:
        if record.status in ("stopped", "interrupted"):
            return EXIT_FAILED  # stopped by the cost ceiling, or interrupted: not every case ran
        for case in reg.store.run_cases(record.id, statuses=["failed", "error"]):
            if case.error is not None:
                kinds.add(error_kind(case.error.type, case.error.message))
            for evaluation in case.failures:
                if evaluation.error is None:
                    kinds.add(None)  # an expectation not met
                else:
                    type_name, _, message = evaluation.error.partition(": ")
                    kinds.add(error_kind(type_name, message))
            if None in kinds:
                return EXIT_FAILED
    return EXIT_UNREACHABLE if "outage" in kinds else EXIT_USAGE if kinds else EXIT_FAILED


def _create_runs(
    reg: Registry,
    groups: Mapping[str, list[ScenariosDocument]],
    options: Any,
    export: OtlpExport,
    *,
    version: int | None,
    label: str | None,
) -> list[EvalRun]:
    """The run of each prompt, planned and stored, with the prompt files pushed first (unless a version or label
    is given): one transaction on a SQL store, so a run that cannot be created leaves no version behind. A
    remote registry has no transaction: there each run is created when it starts, as its push was stored."""
    from ..harness import EvalRun
    from ..harness.session import resolve_versions

    def create() -> list[EvalRun]:
        versions = resolve_versions(reg, sorted(groups), version=version, label=label)
        runs = [
            EvalRun(
                store=reg.store,
                prompt=versions[name],
                documents=documents,
                options=options,
                tracer_provider=export.tracer_provider,
                logger_provider=export.logger_provider,
            )
            for name, documents in groups.items()
        ]
        if atomic is not None:
            for run in runs:
                run.create()
        return runs

    atomic = getattr(reg.store, "atomic", None)
    return atomic(create) if atomic is not None else create()


def _run_one(reg: Registry, run: EvalRun, failures: int) -> RunRecord:
    from ._runs_view import print_cases, print_run, short

    resume_collection()  # a run's cases make garbage in proportion to their number
    try:
        record = _with_progress(run)
    except KeyboardInterrupt:
        record = run.record
        print_run(record)
        err(f"interrupted: the {record.cases} finished cases are saved as run {short(record.id)}")
        raise click.exceptions.Exit(130) from None
    except PromptlaneError as exc:  # a dataset row that does not parse, half way: the finished cases are saved
        print_run(run.record)
        err(f"error: {printable(str(exc), multiline=True)}")
        # Bad data (a dataset row that does not parse) is a usage error; the registry going away is an outage.
        raise _Stopped(run.record, EXIT_USAGE if isinstance(exc, SpecError) else exit_status(exc)) from None
    print_run(record)
    hidden = print_cases(reg.store.run_cases(record.id, statuses=["failed", "error"]), limit=failures)
    if hidden:
        out(f"  ... and {hidden} more: promptlane runs show {short(record.id)}")
    out()
    return record


class _Stopped(Exception):
    """A run ended half way by an error (its exit status applies once the reports are written)."""

    def __init__(self, record: RunRecord, status: int) -> None:
        self.record = record
        self.status = status


class _ProgressLine:
    """``support/reply v2 120/300 00:04`` on a terminal, rewritten in place as cases finish (at most ten times a
    second: a run of fast cases must not wait for its progress line), and wiped when the run ends."""

    def __init__(
        self, title: str, total: Callable[[], int], stream: TextIO, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.title = printable(title)
        self.total = total
        self.stream = stream
        self.clock = clock
        self.done = 0
        self.started = self.drawn_at = clock()
        self.width = 0

    def advance(self, _case: object = None) -> None:
        """One more case finished."""
        self.done += 1
        if self.clock() - self.drawn_at >= 0.1:
            self.draw()

    def draw(self) -> None:
        """Show the line now."""
        self.drawn_at = self.clock()
        seconds = int(self.drawn_at - self.started)
        line = f"{self.title} {self.done}/{self.total()} {seconds // 60:02d}:{seconds % 60:02d}"
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def clear(self) -> None:
        """Wipe the line: the run's report takes its place."""
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def _with_progress(run: Any) -> Any:
    """Run ``run``, with a progress line on stderr when it is a terminal (never in a pipe, a file or CI logs)."""
    import asyncio

    if not sys.stderr.isatty():
        return asyncio.run(run.run())
    progress = _ProgressLine(f"{run.prompt.name} v{run.prompt.version}", lambda: run.total, sys.stderr)
    run.on_case = progress.advance
    progress.draw()
    try:
        return asyncio.run(run.run())
    finally:
        progress.clear()


def _write_reports(
    reg: Registry,
    records: list[RunRecord],
    json_file: Path | None,
    junit_file: Path | None,
    export: dict[str, Any] | None,
) -> None:
    """``--json``: ``{"runs": [...], "export": ...}``, the export's outcome (None when nothing was exported);
    ``--junit``: JUnit XML. The cases are copied from the store as it keeps them, a page at a time."""
    if json_file is None and junit_file is None:
        return
    from ..harness.reports import stored_cases, write_junit, write_run_json

    if json_file is not None:
        with json_file.open("w", encoding="utf-8") as file:
            file.write('{"runs": [')
            for index, record in enumerate(records):
                file.write("," if index else "")
                write_run_json(file, record, stored_cases(reg.store, record.id))
            file.write(f'], "export": {json.dumps(export, ensure_ascii=False)}}}\n')
    if junit_file is not None:
        write_junit(junit_file, ((record, stored_cases(reg.store, record.id)) for record in records))
