"""``pytest --prompt-evals``: every scenario case a test item, run by the eval harness, promotion at the end.

Without ``--prompt-evals`` the plugin collects nothing and imports nothing beyond pytest and the standard
library. With it, scenario files under the evals folders become items (``evals/support.yaml::refund``,
``...::tickets[row-3][repeat-2]``), scenario tags become markers, and after collection (and ``-k``/``-m``
deselection) the harness runs the selected cases concurrently in a background thread, one recorded run per
prompt version, while pytest reports the items one by one, in order.

A case that errors (the model, an evaluator, a missing variable) is reported as an error in setup; a case
whose expectations fail, as a failure with the reasons, the variables, the output and the tool calls. Rows of
a scenario with ``threshold`` below 1 report pass or xfail, and an extra ``...[threshold]`` item fails when
the pass rate is below the threshold.

With ``--prompt-evals-baseline LABEL``, the version LABEL serves is also run on the same selection, after the
versions under test, and recorded as its own run: the no-regression rule of the gate compares a candidate with
that run when it promotes. The baseline is a measurement, not a test: it has no items, only a line in the
summary, so its failures never fail the session.

Under pytest-xdist, the first worker to take a lock runs the harness for the whole selection; the others
read their cases' results from the registry once the runs are done; the controller promotes, once.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .harness import EvalOptions
    from .harness.scenarios import ScenariosDocument, ScenarioSpec
    from .registry import Prompt, Registry
    from .registry.runs import CaseResult, RunRecord

_CACHE_MODES = ("off", "on", "replay")
_SESSION_ENV = "PROMPTLANE_PYTEST_SESSION"
_PLUGIN_NAME = "promptlane-prompt-evals"


# --- options --------------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("prompt-evals", "promptlane: scenario evals as tests")
    group.addoption("--prompt-evals", action="store_true", default=None, help="Collect and run scenario files.")
    group.addoption("--prompt-evals-version", metavar="N", help="Evaluate this version (default: the files on disk).")
    group.addoption("--prompt-evals-label", metavar="LABEL", help="Evaluate the version this label points at.")
    group.addoption("--prompt-evals-model", metavar="MODEL", help="Model for every case.")
    group.addoption("--prompt-evals-cache", metavar="MODE", help="Recorded responses: off, on or replay.")
    group.addoption("--prompt-evals-concurrency", metavar="N", help="Cases in flight at once (default 16).")
    group.addoption("--prompt-evals-promote", metavar="LABEL", help="After a passing session, promote to LABEL.")
    group.addoption(
        "--prompt-evals-baseline",
        metavar="LABEL",
        help="Also run the version LABEL serves, recorded as the baseline a promotion compares with.",
    )
    group.addoption(
        "--prompt-evals-allow-version-code",
        action="store_true",
        default=None,
        help="With a version or label: run a python: model that only the stored version names.",
    )
    parser.addini("prompt_evals", "Collect and run scenario files (like --prompt-evals).", type="bool", default=False)
    parser.addini("prompt_evals_paths", "Folders of scenario files (default: promptlane's evals).", type="paths")
    parser.addini(
        "prompt_evals_allow_version_code",
        "Run a python: model that only a stored version names.",
        type="bool",
        default=False,
    )
    for name, help_text in (
        ("version", "Version to evaluate."),
        ("label", "Label to evaluate."),
        ("model", "Model for every case."),
        ("cache", "off, on or replay."),
        ("concurrency", "Cases in flight at once."),
        ("promote", "Label to promote to after a passing session."),
        ("baseline", "Label whose version is also run, as the baseline of the no-regression rule."),
    ):
        parser.addini(f"prompt_evals_{name}", help_text, default=None)


@dataclass(frozen=True)
class _Options:
    version: int | None
    label: str | None
    model: str | None
    cache: str
    concurrency: int
    promote: str | None
    paths: tuple[Path, ...]
    baseline: str | None = None
    allow_version_code: bool = False

    @classmethod
    def from_config(cls, config: pytest.Config) -> _Options:
        def value(name: str) -> str | None:
            given = config.getoption(f"prompt_evals_{name}")
            if given is None:
                given = config.getini(f"prompt_evals_{name}")
            return str(given).strip() if given not in (None, "") else None

        def integer(name: str) -> int | None:
            text = value(name)
            if text is None:
                return None
            if not text.isdigit() or int(text) < 1:
                raise pytest.UsageError(f"--prompt-evals-{name} must be a positive integer, got {text!r}")
            return int(text)

        cache = value("cache") or "off"
        if cache not in _CACHE_MODES:
            raise pytest.UsageError(f"--prompt-evals-cache must be one of {', '.join(_CACHE_MODES)}, got {cache!r}")
        version, label = integer("version"), value("label")
        if version is not None and label is not None:
            raise pytest.UsageError("give --prompt-evals-version or --prompt-evals-label, not both")
        model = value("model")
        if model is not None:
            from ._model_strings import check_model
            from .config import load_settings
            from .errors import ConfigError

            try:
                load_settings(config.rootpath)  # declares the config's endpoints, which the model may name
            except ConfigError as exc:
                raise pytest.UsageError(str(exc)) from None
            try:
                check_model(model)
            except ValueError as exc:
                raise pytest.UsageError(f"--prompt-evals-model: {exc}") from None
        baseline = value("baseline")
        if baseline is not None:
            from .errors import LabelError
            from .registry.labels import check_label_name

            try:
                check_label_name(baseline)
            except LabelError as exc:
                raise pytest.UsageError(f"--prompt-evals-baseline: {exc}") from None
        paths = tuple(Path(p) for p in config.getini("prompt_evals_paths"))
        if not paths:
            from .config import load_settings

            paths = (load_settings(config.rootpath).evals_dir,)
        return cls(
            version=version,
            label=label,
            model=model,
            cache=cache,
            concurrency=integer("concurrency") or 16,
            promote=value("promote"),
            paths=tuple(p.resolve() for p in paths),
            baseline=baseline,
            allow_version_code=bool(
                config.getoption("prompt_evals_allow_version_code") or config.getini("prompt_evals_allow_version_code")
            ),
        )


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("prompt_evals") or config.getini("prompt_evals"))


def pytest_configure(config: pytest.Config) -> None:
    if not _enabled(config):
        return
    from ._extras import require
    from .errors import MissingExtraError

    try:
        require("eval", "pytest --prompt-evals")
    except MissingExtraError as exc:
        raise pytest.UsageError(str(exc)) from None
    options = _Options.from_config(config)
    worker = hasattr(config, "workerinput")
    controller = not worker and getattr(config.option, "dist", "no") != "no"
    if not worker:
        # A new id for this session (never one inherited from an outer pytest), which xdist workers, started
        # after this, inherit: it names the folder where they agree on who runs the harness.
        os.environ[_SESSION_ENV] = uuid.uuid4().hex
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        # No paths were given: collect the evals folders too (besides testpaths or the current folder).
        config.args.extend(str(path) for path in options.paths if path.exists() and str(path) not in config.args)
    config.pluginmanager.register(_PromptEvals(config, options, controller=controller), _PLUGIN_NAME)


# --- collection -------------------------------------------------------------------------------------------


def _is_scenario_file(path: Path) -> bool:
    if path.suffix not in (".yaml", ".yml"):
        return False
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    from .registry.fingerprint import looks_like_scenario_file

    return looks_like_scenario_file(text)


def _plugin(config: pytest.Config) -> _PromptEvals:
    plugin = config.pluginmanager.get_plugin(_PLUGIN_NAME)
    assert isinstance(plugin, _PromptEvals)
    return plugin


class ScenarioFile(pytest.File):
    """A scenario file: one item per case (and per threshold)."""

    document: ScenariosDocument

    def collect(self) -> Iterator[pytest.Item]:
        from .errors import SpecError
        from .harness.datasets import row_lines
        from .harness.scenarios import load_scenario_file

        try:
            self.document = load_scenario_file(self.path)
            # The line of each row, so that a dataset case is located at its row (the rows are not kept).
            lines_of = {
                index: list(row_lines(dataset)) if (dataset := self.document.dataset_path(scenario)) else None
                for index, scenario in enumerate(self.document.spec.scenarios)
            }
        except SpecError as exc:
            _plugin(self.config).bad_files += 1
            raise self.CollectError(str(exc)) from None
        for index, scenario in enumerate(self.document.spec.scenarios):
            lines = lines_of[index]
            rows = (
                [(f"[row-{n}]", line) for n, line in enumerate(lines, start=1)] if lines is not None else [("", None)]
            )
            repeats = [f"[repeat-{r}]" for r in range(1, scenario.repeat + 1)] if scenario.repeat > 1 else [""]
            cases = tuple(f"{scenario.name}{row}{repeat}" for row, _ in rows for repeat in repeats)
            for row, line in rows:
                for repeat in repeats:
                    item = CaseItem.from_parent(self, name=f"{scenario.name}{row}{repeat}")
                    item.row_line = line
                    yield self._mark(item, scenario, index)
            if scenario.threshold < 1:
                threshold = ThresholdItem.from_parent(self, name=f"{scenario.name}[threshold]")
                threshold.cases = cases
                yield self._mark(threshold, scenario, index)

    def _mark(self, item: _ScenarioItem, scenario: ScenarioSpec, index: int) -> _ScenarioItem:
        item.scenario, item.index = scenario, index
        for tag in scenario.tags:
            # Registered as it appears, so --strict-markers accepts scenario tags.
            if not any(line.split(":")[0] == tag for line in self.config.getini("markers")):
                self.config.addinivalue_line("markers", f"{tag}: scenarios tagged {tag}")
            item.add_marker(tag)
        return item


class _ScenarioItem(pytest.Item):
    scenario: ScenarioSpec
    index: int

    @property
    def document(self) -> ScenariosDocument:
        assert isinstance(self.parent, ScenarioFile)
        return self.parent.document

    @property
    def runner(self) -> _PromptEvals:
        return _plugin(self.config)

    @property
    def source(self) -> Path:
        """The file the item's cases are located in, as the run records them: the dataset, for dataset cases."""
        return self.document.dataset_path(self.scenario) or self.path

    def reportinfo(self) -> tuple[Path, int, str]:
        line = self.document.line_of(self.index) or 1
        return self.path, line - 1, f"scenario {self.scenario.name}: {self.name}"


class CaseItem(_ScenarioItem):
    """One case of a scenario."""

    result: CaseResult | None = None
    row_line: int | None = None
    """For a dataset case, the row's line in the dataset."""

    def reportinfo(self) -> tuple[Path, int, str]:
        if self.row_line is not None:
            return self.source, self.row_line - 1, f"scenario {self.scenario.name}: {self.name}"
        return super().reportinfo()

    def setup(self) -> None:
        # An error fails the setup, which pytest reports as an error, distinct from a failed expectation.
        self.result = self.runner.result(self)
        if self.result.status == "error" and self.scenario.threshold >= 1:
            pytest.fail(_describe(self.result, self.runner.run_line(self)), pytrace=False)

    def runtest(self) -> None:
        result = self.result
        assert result is not None
        if result.status == "passed":
            return
        if self.scenario.threshold < 1:
            pytest.xfail(_reason(result))
        pytest.fail(_describe(result, self.runner.run_line(self)), pytrace=False)


class ThresholdItem(_ScenarioItem):
    """Fails when a scenario's pass rate over its rows and repeats is below its threshold. Selected without its
    rows (``-k threshold``, or by its node id), it still has every case of the scenario run."""

    cases: tuple[str, ...] = ()

    def runtest(self) -> None:
        results = self.runner.scenario_results(self)
        passed = sum(result.status == "passed" for result in results)
        rate = passed / len(results) if results else 0.0
        if rate < self.scenario.threshold - 1e-12:
            pytest.fail(
                f"{self.scenario.name}: {passed}/{len(results)} passed ({rate:.0%}), "
                f"below the threshold of {self.scenario.threshold:.0%}",
                pytrace=False,
            )


def _reason(result: CaseResult) -> str:
    if result.error is not None:
        return f"{result.error.type}: {result.error.message}"
    return "; ".join(f"{e.name}: {e.error or e.reason or 'failed'}" for e in result.failures) or result.status


def _compact(value: Any, limit: int = 500) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _location(result: CaseResult) -> str:
    """``file:line``: a dataset case's file is its dataset, and the line its row's."""
    return f"{result.file}:{result.line}" if result.line else result.file


def _summary_line(record: RunRecord, tag: str = "") -> str:
    """``greet v2: passed, 9/9 passed (100%), run 3f2c9a1b7e04``, with ``tag`` after the version."""
    return (
        f"{record.prompt} v{record.version}{tag}: {record.status}, {record.passed}/{record.cases} passed "
        f"({record.pass_rate:.0%}), run {record.id[:12]}"
    )


def _describe(result: CaseResult, run_line: str) -> str:
    lines = [f"{result.status.upper()} {result.case} ({_location(result)})"]
    if result.error is not None:
        lines.append(f"  {result.error.type}: {result.error.message}")
    failures = result.failures
    if failures:
        lines.append("  failed expectations:")
        lines += [f"    x {e.name}: {e.error or e.reason or 'failed'}" for e in failures]
    lines.append(f"  variables: {_compact(result.variables)}")
    if result.output is not None:
        lines.append(f"  output: {_compact(result.output)}")
    if result.tool_calls:
        lines.append("  tool calls:")
        for call in result.tool_calls:
            answer = f"error: {call.error}" if call.error is not None else _compact(call.result, 200)
            lines.append(f"    turn {call.turn}: {call.name}({_compact(call.args, 200)}) -> {answer}")
    lines.append(f"  {run_line}")
    return "\n".join(lines)


# --- running ---------------------------------------------------------------------------------------------


_RUN_OUTCOMES = {"error": "errored", "interrupted": "was interrupted", "stopped": "was stopped"}


def _state_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"promptlane-pytest-{os.environ[_SESSION_ENV]}"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


class _PromptEvals:
    """The session's side of the plugin: collection, the harness run, results for items, promotion."""

    def __init__(self, config: pytest.Config, options: _Options, *, controller: bool) -> None:
        self.config = config
        self.options = options
        self.controller = controller
        self.worker = hasattr(config, "workerinput")
        self.results: dict[tuple[str, str, str], CaseResult] = {}  # (prompt, file, case) -> result
        self.runs: dict[str, str] = {}  # prompt -> run id
        self.records: list[RunRecord] = []
        self.baselines: dict[str, str] = {}  # prompt -> the baseline's run id
        self.baseline_records: list[RunRecord] = []
        self.baseline_notes: list[str] = []  # why a prompt has no baseline run
        self.export_problems: list[str] = []  # spans or logs that could not be exported, and why
        self.error: str | None = None
        self.done = threading.Event()
        self.changed = threading.Condition()
        self.thread: threading.Thread | None = None
        self.loop: Any = None
        self.task: Any = None
        self.promoted: list[str] = []
        self.refused = False  # the registry refused a promotion
        self.bad_files = 0  # scenario files that failed to collect
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from .config import load_settings
            from .registry import Registry

            self._registry = Registry(settings=load_settings(self.config.rootpath))
        return self._registry

    # collection

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        resolved = file_path.resolve()
        inside = any(resolved == path or path in resolved.parents for path in self.options.paths)
        if inside and _is_scenario_file(file_path):
            return ScenarioFile.from_parent(parent, path=file_path)
        return None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        items = [item for item in session.items if isinstance(item, _ScenarioItem)]
        option = session.config.option
        others = session.testsfailed - self.bad_files  # collection errors of other files stop pytest (below)
        stopped = session.shouldfail or (others and not option.continue_on_collection_errors)
        if not items or option.collectonly or stopped:
            self.done.set()
            return
        if self.worker and not self._lead():
            self.thread = threading.Thread(target=self._follow, name="promptlane-evals", daemon=True)
        else:
            self.thread = threading.Thread(target=self._lead_run, args=(items,), name="promptlane-evals", daemon=True)
        self.thread.start()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Iterator[None]:
        """A bad scenario file is a collection error, but unlike other collection errors it does not stop the
        session: the rest of the suite runs, and the session still fails. (pytest refuses to run any test after
        a collection error unless ``--continue-on-collection-errors``; its check counts ``testsfailed``.)"""
        hidden = 0 if session.shouldfail else min(self.bad_files, session.testsfailed)
        session.testsfailed -= hidden
        try:
            yield
        finally:
            session.testsfailed += hidden

    def _lead(self) -> bool:
        folder = _state_dir()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(folder / "leader.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    # the leader: run the harness for every selected case

    def _lead_run(self, items: list[_ScenarioItem]) -> None:
        import asyncio

        try:
            asyncio.run(self._run_all(items))
        except asyncio.CancelledError:
            self.error = self.error or "the session was interrupted"
        except BaseException as exc:  # reported on every item, never lost in a thread
            self.error = self.error or f"{type(exc).__name__}: {exc}"
        finally:
            self._publish(done=True)
            self.done.set()
            with self.changed:
                self.changed.notify_all()

    async def _run_all(self, items: list[_ScenarioItem]) -> None:
        import asyncio

        from .errors import PromptlaneError
        from .harness import EvalOptions, EvalRun
        from .harness.session import resolve_versions
        from .harness.telemetry import otlp_export

        self.loop, self.task = asyncio.get_running_loop(), asyncio.current_task()
        settings = self.registry.settings
        selected = {
            (str(item.path.resolve()), case)
            for item in items
            for case in (item.cases if isinstance(item, ThresholdItem) else (item.name,))
        }
        documents: dict[str, list[ScenariosDocument]] = {}
        for item in items:
            group = documents.setdefault(item.document.spec.prompt, [])
            if item.document not in group:
                group.append(item.document)
        try:
            versions = resolve_versions(
                self.registry, sorted(documents), version=self.options.version, label=self.options.label
            )
        except PromptlaneError as exc:
            self.error = str(exc)
            return
        export = otlp_export()
        tracer_provider, logger_provider = export.tracer_provider, export.logger_provider
        options = EvalOptions(
            model=self.options.model,
            concurrency=self.options.concurrency,
            cache=self.options.cache,  # type: ignore[arg-type]
            recordings=settings.recordings_dir,
            judge_model=settings.judge_model,
            root=settings.root,
            providers=settings.providers,
            created_by=settings.author,
            select=lambda document, scenario, case: (str(document.path.resolve()), case) in selected,
            # A version or label picks content from the registry, whose python: model is anyone's code.
            version_code=(self.options.version is None and self.options.label is None)
            or self.options.allow_version_code,
        )
        try:
            for name, group in documents.items():
                try:
                    run = EvalRun(
                        store=self.registry.store,
                        prompt=versions[name],
                        documents=group,
                        options=options,
                        tracer_provider=tracer_provider,
                        logger_provider=logger_provider,
                        on_case=lambda result, prompt=name: self._deliver(prompt, result),
                    )
                except PromptlaneError as exc:
                    self.error = str(exc)
                    return
                self.runs[name] = run.record.id
                self._publish(done=False)
                self.records.append(await run.run())
            self._publish(done=False, ready=True)
            if self.options.baseline is not None:
                # A stored version: its python: model runs only when allowed.
                baseline = replace(options, version_code=self.options.allow_version_code)
                await self._run_baselines(documents, versions, baseline, tracer_provider, logger_provider)
        finally:
            # A bounded wait; what was lost is reported in the summary, and the session's outcome is the tests'.
            self.export_problems = export.flush()

    async def _run_baselines(
        self,
        documents: dict[str, list[ScenariosDocument]],
        versions: dict[str, Prompt],
        options: EvalOptions,
        tracer_provider: Any,
        logger_provider: Any,
    ) -> None:
        """Run the version the baseline label serves, for each prompt, on the candidate's selection. A baseline
        that cannot run is a note in the summary, never the session's error."""
        from .errors import PromptlaneError
        from .harness import EvalRun

        for name, number in self._serving(versions).items():
            try:
                run = EvalRun(
                    store=self.registry.store,
                    prompt=self.registry.get(name, version=number),
                    documents=documents[name],
                    options=options,
                    tracer_provider=tracer_provider,
                    logger_provider=logger_provider,
                )
            except PromptlaneError as exc:
                self.baseline_notes.append(f"{name}: baseline v{number} ({self.options.baseline}) not run: {exc}")
                continue
            self.baselines[name] = run.record.id
            self._publish(done=False, ready=True)
            self.baseline_records.append(await run.run())

    def _serving(self, versions: dict[str, Prompt]) -> dict[str, int]:
        """The version the baseline label serves (the largest share of a rollout) for each prompt, where it is set
        and serves another version than the one under test; a note for each prompt left without one."""
        from .errors import NotFoundError, PromptlaneError

        label = self.options.baseline
        assert label is not None
        serving: dict[str, int] = {}
        for name, prompt in versions.items():
            try:
                target = self.registry.store.get_label(name, label).target
            except NotFoundError:
                target = {}
            except PromptlaneError as exc:
                self.baseline_notes.append(f"{name}: no baseline: {exc}")
                continue
            if not target:
                self.baseline_notes.append(f"{name}: no baseline: {label} is not set")
                continue
            number = max(target, key=lambda n: (target[n], n))
            if number == prompt.version:
                self.baseline_notes.append(f"{name}: no baseline: {label} serves v{number}, the version under test")
                continue
            serving[name] = number
        return serving

    def _deliver(self, prompt: str, result: CaseResult) -> None:
        # Keyed by where the run locates the case (a dataset case: its dataset file), as items are.
        key = (prompt, str((self.registry.settings.root / result.file).resolve()), result.case)
        with self.changed:
            self.results[key] = result
            self.changed.notify_all()

    def _publish(self, *, done: bool, ready: bool = False) -> None:
        """Tell the other processes of an xdist session where the runs are: ``ready`` once the runs of the
        versions under test are finished (the items' results), ``done`` once the baselines are too."""
        if self.worker or self.controller:
            folder = _state_dir()
            folder.mkdir(parents=True, exist_ok=True)
            state = {
                "runs": self.runs,
                "baselines": self.baselines,
                "baseline_notes": self.baseline_notes,
                "export_problems": self.export_problems,
                "error": self.error,
                "ready": ready or done,
                "done": done,
            }
            _write_json(folder / "state.json", state)

    # a follower: wait for the leader's runs, then read the results from the registry

    def _follow(self) -> None:
        try:
            state = self._wait_for_state(lambda s: bool(s.get("ready")))
            self.runs, self.error = dict(state.get("runs", {})), state.get("error")
            for prompt, run_id in self.runs.items():
                for result in self.registry.store.run_cases(run_id):
                    self._deliver(prompt, result)
        except BaseException as exc:  # reported on every item
            self.error = self.error or f"{type(exc).__name__}: {exc}"
        finally:
            self.done.set()
            with self.changed:
                self.changed.notify_all()

    @staticmethod
    def _wait_for_state(ready: Callable[[dict[str, Any]], bool], timeout: float = 24 * 3600) -> dict[str, Any]:
        path = _state_dir() / "state.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                state = json.loads(path.read_text())
                if ready(state):
                    return state
            time.sleep(0.05)
        raise TimeoutError("the prompt-evals run never finished")

    # results for items

    def result(self, item: _ScenarioItem, case: str | None = None) -> CaseResult:
        """The result of the item's case (or of ``case`` in the item's file), once it has finished."""
        case = case or item.name
        key = (item.document.spec.prompt, str(item.source.resolve()), case)
        with self.changed:
            while key not in self.results:
                if self.done.is_set():
                    pytest.fail(f"ERROR {case}: {self.error or 'the case did not run'}", pytrace=False)
                self.changed.wait(0.5)
            return self.results[key]

    def scenario_results(self, item: ThresholdItem) -> list[CaseResult]:
        """Every case of the item's scenario, once all have finished."""
        return [self.result(item, case) for case in item.cases]

    def run_line(self, item: _ScenarioItem) -> str:
        run_id = self.runs.get(item.document.spec.prompt)
        return f"run {run_id[:12]}: promptlane runs show {run_id[:12]}" if run_id else "no run"

    # the end

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.thread is not None and self.thread.is_alive():
            interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
            if interrupted and self.loop is not None and self.task is not None and not self.task.done():
                self.loop.call_soon_threadsafe(self.task.cancel)  # Ctrl-C: the run saves what finished
            self.thread.join()
        if self.worker:
            return
        if self.controller:
            with contextlib.suppress(TimeoutError):
                state = self._wait_for_state(lambda s: bool(s.get("done")), timeout=5)
                self.runs, self.error = dict(state.get("runs", {})), state.get("error")
                self.baselines = dict(state.get("baselines", {}))
                self.baseline_notes = list(state.get("baseline_notes", []))
                self.export_problems = list(state.get("export_problems", []))
            self.records = [self.registry.store.get_run(run_id) for run_id in self.runs.values()]
            self.baseline_records = [self.registry.store.get_run(run_id) for run_id in self.baselines.values()]
        if self.options.promote and not self.error:
            self._promote(self.options.promote, passed=exitstatus == pytest.ExitCode.OK)
            if self.refused and session.exitstatus == pytest.ExitCode.OK:
                # As `promptlane promote` exits 1 when the gate refuses: the step that was to promote fails.
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _promote(self, label: str, *, passed: bool) -> None:
        from .errors import PromptlaneError

        for record in self.records:
            why = None
            if record.status != "passed":
                why = f"the run {_RUN_OUTCOMES.get(record.status, record.status)}"
            elif not record.complete:
                why = "a selection left cases out"
            elif not passed:
                why = "the session did not pass"
            if why is not None:
                self.promoted.append(f"{record.prompt}: not promoted to {label}: {why}")
                continue
            try:
                self.registry.promote(record.prompt, label, version=record.version, reason="pytest --prompt-evals")
            except PromptlaneError as exc:
                self.refused = True
                self.promoted.append(
                    f"{record.prompt}: not promoted to {label}: {exc}{self._baseline_hint(record, label)}"
                )
                continue
            self.promoted.append(f"{record.prompt}: {label} -> v{record.version} (run {record.id[:12]})")

    def _baseline_hint(self, record: RunRecord, label: str) -> str:
        """How to make the run the refusal of ``record``'s version asks for, when it is the serving version's
        baseline and this session did not try to make it."""
        from .errors import PromptlaneError

        if self.options.baseline == label or self.registry.remote is not None:
            return ""
        try:
            verdict = self.registry.gate_verdict(self.registry.version(record.prompt, record.version), label=label)
        except PromptlaneError:
            return ""
        comparison = verdict.comparison
        if comparison is None or comparison.baseline is not None:
            return ""
        return f"\n  (--prompt-evals-baseline {label} runs {comparison.serving.ref} in the same session)"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.worker or not (
            self.records
            or self.baseline_records
            or self.baseline_notes
            or self.export_problems
            or self.error
            or self.promoted
        ):
            return
        terminalreporter.section("prompt evals")
        for record in self.records:
            terminalreporter.write_line(_summary_line(record))
        for record in self.baseline_records:
            terminalreporter.write_line(_summary_line(record, f" (baseline: {self.options.baseline})"))
        for line in self.baseline_notes:
            terminalreporter.write_line(line)
        for line in self.export_problems:
            terminalreporter.write_line(f"warning: {line}", yellow=True)
        if self.error:
            terminalreporter.write_line(f"error: {self.error}")
        for line in self.promoted:
            terminalreporter.write_line(line)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._registry is not None:
            self._registry.close()
        if not self.worker:
            with contextlib.suppress(OSError):
                for path in sorted(_state_dir().glob("*"), reverse=True):
                    path.unlink()
                _state_dir().rmdir()
