"""The gate of protected labels: a version earns them with evidence, a passing eval run.

A protected label (``production`` by default) moves to version V only if the newest finished, complete run of V
on the inputs as they are now and the gate's model passed (a newer failing run closes what an older passing one
opened), ran every case (nothing deselected, skipped or cut short), has the fingerprint the gate recomputes now
(every scenario file that targets the prompt, the datasets and Python modules they name, the judge model, the
version: :mod:`promptlane.registry.fingerprint`; a run on other inputs is stale), and used the model the version
declares, or the model the configuration names for gating.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import LabelError
from .fingerprint import JUDGE_MODEL, NOT_FOUND, REPEAT, VERSION
from .runs import RunRecord, ScenarioFileRef
from .store import PromptVersion

if TYPE_CHECKING:
    from .no_regression import Comparison

__all__ = [
    "GateError",
    "GateReport",
    "GateRequirements",
    "GateVerdict",
    "PartState",
    "candidate_runs",
    "check_gate",
    "newest_comparable",
    "observed_parts",
]

_CANDIDATE_RUNS = 50


class GateError(LabelError):
    """A protected label cannot move: the version has no qualifying run, or is worse than the version the label
    serves. The message lists what is missing."""

    def __init__(
        self,
        label: str,
        version: PromptVersion,
        problems: Sequence[str],
        *,
        protected: bool = True,
        serving: PromptVersion | None = None,
    ) -> None:
        self.problems = list(problems)
        """What is missing, one line each."""
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        if protected:
            head, hint = f"{label} is protected", "override with --force --reason TEXT; the audit log records it"
        else:  # a promotion, which is gated even to an unprotected label
            head, hint = f"promoting to {label}", f"{label} is not protected: `promptlane label` moves it without a run"
        if serving is None:
            what = "needs a passing eval run first"
        else:  # the no-regression rule refused it
            what = f"must not be worse than {serving.ref}, which {label} serves"
        super().__init__(f"{head}: {version.ref} {what}\n{lines}\n  ({hint})")

    @classmethod
    def from_message(cls, message: str, problems: Sequence[str]) -> GateError:
        """The error as a registry server reported it."""
        error = cls.__new__(cls)
        LabelError.__init__(error, message)
        error.problems = list(problems)
        return error


@dataclass(frozen=True)
class GateRequirements:
    """What a qualifying run must show. They come from the project (its scenario files and settings), so a
    client sends its own to a registry server, which checks them against the runs it holds."""

    scenario_files: tuple[ScenarioFileRef, ...]
    """The scenario files that target the prompt now, with their content hashes."""
    model: str | None = None
    """The model the run must have used; None: the model the version declares."""
    unfound: bool = True
    """Whether a ``python:`` module that cannot be found here is a problem (True: a run that found it is no
    evidence here) or is skipped (a registry server without the project's code: its client checks it)."""


@dataclass(frozen=True)
class GateVerdict:
    """Whether a version may take a protected label, and why not."""

    passed: bool
    """The version has a qualifying run."""
    run: RunRecord | None = None
    """The run that qualifies it (or the newest run looked at)."""
    problems: list[str] = field(default_factory=list)
    """What is missing, when it does not pass."""
    comparison: Comparison | None = None
    """The run against the serving version's, scenario by scenario, where the no-regression rule applies."""


@dataclass(frozen=True, kw_only=True)
class PartState:
    """One part of the fingerprint: its value now, and the one the evidence run recorded."""

    name: str
    """The part: a scenario file's path, a dataset's, ``python:module``, ``judge model`` or ``version``."""
    now: str
    """Its value now (a content hash, ``missing``, ``dist:NAME==VERSION``, a model)."""
    then: str | None
    """Its value when the run was made (None: the run did not record it, or there is no run)."""

    @property
    def state(self) -> str:
        """``current``, ``changed`` or ``not covered``."""
        return "not covered" if self.then is None else "current" if self.then == self.now else "changed"


@dataclass(frozen=True, kw_only=True)
class GateReport:
    """The gate's verdict on a version for a label, with everything that explains it (``promptlane gate``)."""

    version: PromptVersion
    """The version."""
    label: str
    """The label."""
    gated: bool
    """Whether moves of the label go through the gate (it is protected); ``promote`` always does."""
    verdict: GateVerdict
    """The verdict: the evidence run (or the newest run looked at), the problems, the comparison with the version
    the label serves."""
    parts: list[PartState]
    """The fingerprint, part by part, against the run's."""


def _model_problem(name: str, run: RunRecord, version: PromptVersion, model: str) -> str:
    """Why a run on another model does not count, and the two ways to satisfy the gate."""
    rerun = f"promptlane eval --prompt {version.name} --version {version.number} --model {model}"
    if model == version.spec.get("model"):
        return (
            f"{name} used {run.model}, and the gate needs {model}, the model {version.ref} declares: run "
            f"`{rerun}`, or accept runs on {run.model} for gating with the `gate_model` setting "
            f'(gate_model = "{run.model}" in promptlane.toml or [tool.promptlane])'
        )
    return f"{name} used {run.model}, and the gate needs {model} (the `gate_model` setting): run `{rerun}`"


def _problems(run: RunRecord, version: PromptVersion, files: Sequence[ScenarioFileRef], model: str | None) -> list[str]:
    problems = []
    name = f"run {run.id[:12]}"
    if run.status != "passed":
        failing = [
            f"{s.name} ({s.passed}/{s.cases} passed, needs {s.threshold:.0%})" for s in run.scenarios if not s.met
        ]
        detail = f": {', '.join(failing)}" if failing else ""
        problems.append(f"{name} {run.status}{f' ({run.reason})' if run.reason else ''}{detail}")
    elif not run.complete:
        partial = [s.name for s in run.scenarios if s.deselected or s.skipped or not s.cases]
        problems.append(f"{name} did not run every case (left out: {', '.join(partial)})")
    if model is not None and run.model != model:
        problems.append(_model_problem(name, run, version, model))
    recorded = {ref.path: ref.sha256 for ref in run.scenario_files}
    for ref in files:
        if ref.path not in recorded:
            problems.append(f"{name} did not cover {ref.path}")
        elif recorded[ref.path] != ref.sha256:
            problems.append(_changed(ref, recorded[ref.path], run))
    return problems


def _changed(part: ScenarioFileRef, then: str, run: RunRecord) -> str:
    """What changed since ``run``, for people: ``evals/datasets/tickets.jsonl changed since run 8c0fee97``."""
    since = f"since run {run.id[:8]}"
    if part.path == JUDGE_MODEL:
        return f"the judge model changed {since} ({then} then, {part.sha256} now)"
    if part.sha256 == NOT_FOUND:
        return f"{part.path} cannot be found here to check it against run {run.id[:8]}, which found it"
    if part.path == REPEAT:
        return f"run {run.id[:8]} ran each case {then} times (--repeat), not as its scenarios say: run without --repeat"
    if part.path == VERSION:
        return f"run {run.id[:8]} evaluated other content (hash {then[:12]}, the version's is {part.sha256[:12]})"
    return f"{part.path} changed {since}"


def check_gate(
    runs: Sequence[RunRecord],
    version: PromptVersion,
    files: Sequence[ScenarioFileRef],
    model: str | None,
    *,
    trusted: Collection[str] = (),
) -> GateVerdict:
    """Whether ``version`` may take a protected label, given its runs (newest first).

    Args:
        runs: The version's runs, newest first.
        version: The version.
        files: The fingerprint's parts as they are now.
        model: The model a qualifying run must have used (None: any).
        trusted: The identities whose runs are evidence (empty: anyone's); the others have no say either way.
    """
    others = [run for run in runs if trusted and run.identity not in trusted]
    if others and len(others) == len(runs):
        names = ", ".join(sorted({repr(run.identity or "unknown") for run in others}))
        return GateVerdict(
            passed=False,
            run=runs[0],
            problems=[
                f"no run of {version.ref} by a trusted runner (gate_trusted_runners: {', '.join(trusted)}); "
                f"its runs were made by {names}"
            ],
        )
    runs = [run for run in runs if run not in others]
    if not files:
        return GateVerdict(
            passed=False, problems=[f"no scenario files target {version.name}: a gated label needs scenarios"]
        )
    if not runs:
        return GateVerdict(
            passed=False,
            problems=[
                f"no eval run of {version.ref}: promptlane eval --prompt {version.name} --version {version.number}"
            ],
        )
    for index, run in enumerate(runs):
        if not _comparable(run, files, model):
            continue  # unfinished, partial, on another model or on other scenario files: no say either way
        # The newest finished, complete run on these scenario files and this model decides: a newer failing run
        # closes what an older passing run opened (flakiness belongs to `repeat` and `threshold`).
        problems = _problems(run, version, files, model)
        if not problems:
            return GateVerdict(passed=True, run=run)
        older = next((o for o in runs[index + 1 :] if not _problems(o, version, files, model)), None)
        if older is not None:
            problems.append(
                f"run {older.id[:12]} passed, but run {run.id[:12]} is newer, on the same scenario files and model: "
                "the newest complete run decides"
            )
        return GateVerdict(passed=False, run=run, problems=problems)
    newest = runs[0]
    return GateVerdict(passed=False, run=newest, problems=_problems(newest, version, files, model))


def _comparable(run: RunRecord, files: Sequence[ScenarioFileRef], model: str | None) -> bool:
    """Whether ``run`` is evidence either way: finished, complete, on ``model``, on the scenario files as they
    are now."""
    if run.status not in ("passed", "failed", "error") or not run.complete:
        return False
    if model is not None and run.model != model:
        return False
    recorded = {ref.path: ref.sha256 for ref in run.scenario_files}
    return all(recorded.get(ref.path) == ref.sha256 for ref in files)


def newest_comparable(
    runs: Sequence[RunRecord], files: Sequence[ScenarioFileRef], model: str | None, trusted: Collection[str] = ()
) -> RunRecord | None:
    """The newest run (of ``runs``, newest first) that is evidence either way: finished, complete, by a trusted
    runner, on ``model`` and these inputs; passed or not (the serving version's baseline need not have passed)."""
    return next(
        (run for run in runs if (not trusted or run.identity in trusted) and _comparable(run, files, model)), None
    )


def observed_parts(runs: Sequence[RunRecord], trusted: Collection[str] = ()) -> list[ScenarioFileRef]:
    """The inputs as the newest finished, complete run (of any version; by a trusted runner, when some are named)
    saw them: its scenario files, datasets and judge model. What a registry server without the project's files
    holds to be current, so an older run on other inputs is stale there too. (Its Python modules and version are
    not: another version's run may have used another model.)"""
    for run in runs:
        if run.status in ("passed", "failed", "error") and run.complete and (not trusted or run.identity in trusted):
            return [part for part in run.scenario_files if part.path != VERSION and not part.path.startswith("python:")]
    return []


def candidate_runs(store: object, version: PromptVersion) -> list[RunRecord]:
    """The runs of ``version`` the gate looks at, newest first."""
    return store.list_runs(version.name, version=version.number, limit=_CANDIDATE_RUNS)  # type: ignore[attr-defined]
