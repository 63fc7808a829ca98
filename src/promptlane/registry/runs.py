"""Eval runs as the registry keeps them: the run, its scenarios' tallies, and per case everything needed to see why.

Plain dataclasses inside; ``to_json``/``from_json`` at the store boundary.

A run is a lease: the process running it refreshes its heartbeat every :data:`HEARTBEAT_SECONDS` (and with
every batch of cases it saves). A ``running`` run whose heartbeat is older than the lease (:func:`run_lease`,
60 s unless ``PROMPTLANE_RUN_LEASE`` says otherwise) lost its process (killed, crashed, the machine went away):
whoever reads it next sees it ``interrupted``, tallied from the cases it stored (:func:`retally`), and saves it so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from ..errors import ConfigError

__all__ = [
    "HEARTBEAT_SECONDS",
    "LEASE_ENV",
    "LEASE_EXPIRED",
    "LEASE_SECONDS",
    "CaseError",
    "CaseResult",
    "CaseStatus",
    "EvaluationResult",
    "RunRecord",
    "RunStatus",
    "ScenarioFileRef",
    "ScenarioStats",
    "ToolCallRecord",
    "case_inserts",
    "case_text",
    "retally",
    "run_lease",
]

_CASE_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)
_CASE_COLUMNS = "run_id, scenario, case_key, status, data"
_ROWS_PER_INSERT = 190
"""Cases in one INSERT: 950 parameters, within the 999 of older SQLite builds."""

CaseStatus = Literal["passed", "failed", "error"]
RunStatus = Literal["running", "passed", "failed", "error", "interrupted", "stopped"]

HEARTBEAT_SECONDS = 10.0
"""How often the process running a run refreshes its heartbeat."""
LEASE_SECONDS = 60.0
"""How long a ``running`` run lives without a heartbeat before it counts as interrupted (the default)."""
LEASE_ENV = "PROMPTLANE_RUN_LEASE"
"""The environment variable that sets the lease, in seconds (read where runs are read: the CLI, the server)."""
LEASE_EXPIRED = "its process stopped: no heartbeat within the lease"
"""The reason of a run found interrupted by its lease (a heartbeat from a live owner takes it back)."""


def run_lease() -> float:
    """The lease in seconds: ``PROMPTLANE_RUN_LEASE`` when set, else :data:`LEASE_SECONDS`.

    Raises:
        ConfigError: the variable is not a number of seconds, 0 or more.
    """
    text = os.environ.get(LEASE_ENV, "").strip()
    if not text:
        return LEASE_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ConfigError(f"{text!r} is not a number of seconds (0 or more)", source=LEASE_ENV)
    return seconds


@dataclass(kw_only=True)
class EvaluationResult:
    """One expectation's verdict on one case."""

    name: str
    """The expectation (``contains``, ``judge``, ``python:checks.polite``...)."""
    passed: bool
    """Whether the case meets it."""
    score: float | None = None
    """A score in [0, 1], for expectations that score (judge, python returning a number)."""
    reason: str | None = None
    """Why, in words: what was expected and what was found."""
    error: str | None = None
    """The evaluator raised: ``TypeError: ...`` (the case is then an error, not a failure)."""

    @property
    def status(self) -> CaseStatus:
        """``passed``, ``failed`` or ``error``."""
        return "error" if self.error else "passed" if self.passed else "failed"


@dataclass(kw_only=True)
class ToolCallRecord:
    """One tool call the model made, and what the mock answered."""

    turn: int
    """The model request (1-based) that made the call."""
    id: str
    """The call id."""
    name: str
    """The tool."""
    args: Any
    """The arguments the model gave (a mapping, or the raw text when it was not valid JSON)."""
    result: Any = None
    """The mocked result."""
    error: str | None = None
    """The mocked failure (or why the call could not be answered)."""


@dataclass(kw_only=True)
class CaseError:
    """Why a case could not be evaluated: the model or an evaluator raised, a replay missed..."""

    type: str
    """The exception type (``ModelHTTPError``, ``TimeoutError``, ``ReplayMiss``...)."""
    message: str
    """Its message."""


def case_text(case: CaseResult) -> str:
    """A case as a store keeps it: the JSON text of :meth:`CaseResult.to_json`."""
    return _CASE_ENCODER.encode(case.to_json())


def case_inserts(table: str, mark: str, run_id: str, cases: Sequence[CaseResult]) -> Iterator[tuple[str, list[Any]]]:
    """The statements that append ``cases`` to a run, each with its parameters (``mark``: the driver's
    placeholder): one statement for many rows, not one a row, because the driver lets go of the GIL for every
    statement it steps, and a writer thread taking it back from a busy event loop waits up to the interpreter's
    switch interval (5 ms) each time: 200 cases took 1.8 s that way beside a run of a fast model.

    Every case is encoded before the first statement, so none is encoded inside the caller's transaction."""
    rows = [(run_id, case.scenario, case.case, case.status, case_text(case)) for case in cases]
    row = f"({', '.join([mark] * 5)})"
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        values = ", ".join([row] * len(chunk))
        yield f"INSERT INTO {table} ({_CASE_COLUMNS}) VALUES {values}", [value for one in chunk for value in one]


@dataclass(kw_only=True)
class CaseResult:
    """One case of a run."""

    scenario: str
    """The scenario's name."""
    case: str
    """The case id: ``refund``, ``tickets[row-3]``, ``tickets[row-3][repeat-2]``."""
    file: str
    """The scenario file, or the dataset, for dataset cases."""
    line: int | None = None
    """The scenario's line in the scenario file, or the row's line in the dataset, for dataset cases."""
    row: int | None = None
    """The dataset row (1-based), for dataset cases."""
    repeat: int = 1
    """Which repeat (1-based)."""
    status: CaseStatus = "passed"
    """``passed``, ``failed`` (an expectation not met) or ``error`` (something raised)."""
    variables: dict[str, Any] = field(default_factory=dict)
    """The variables it rendered with."""
    messages: list[dict[str, Any]] = field(default_factory=list)
    """The messages sent to the model first: the rendered prompt and the scenario's history."""
    output: Any = None
    """The final answer: text, or the structured output's data."""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    """The tool-calling trajectory."""
    evaluations: list[EvaluationResult] = field(default_factory=list)
    """Each expectation's verdict."""
    turns: int = 0
    """Model requests made."""
    latency_ms: float = 0.0
    """Wall time of the case, model calls included."""
    input_tokens: int = 0
    """Input tokens over every request."""
    output_tokens: int = 0
    """Output tokens over every request."""
    cost_usd: float | None = None
    """Cost of the requests, when the model's prices are known."""
    error: CaseError | None = None
    """Why the case is an error."""

    @property
    def location(self) -> str:
        """Where the case comes from, for people: ``evals/support.yaml:12``, or for a dataset case its row,
        ``evals/datasets/tickets.jsonl:7``."""
        return f"{self.file}:{self.line}" if self.line else self.file

    @property
    def failures(self) -> list[EvaluationResult]:
        """The expectations not met (or that raised)."""
        return [evaluation for evaluation in self.evaluations if evaluation.status != "passed"]

    def to_json(self) -> dict[str, Any]:
        """JSON data for the store (written field by field: ``dataclasses.asdict`` deep-copies every value, and
        this runs once per case)."""
        return {
            "scenario": self.scenario,
            "case": self.case,
            "file": self.file,
            "line": self.line,
            "row": self.row,
            "repeat": self.repeat,
            "status": self.status,
            "variables": self.variables,
            "messages": self.messages,
            "output": self.output,
            "tool_calls": [
                {"turn": c.turn, "id": c.id, "name": c.name, "args": c.args, "result": c.result, "error": c.error}
                for c in self.tool_calls
            ],
            "evaluations": [
                {"name": e.name, "passed": e.passed, "score": e.score, "reason": e.reason, "error": e.error}
                for e in self.evaluations
            ],
            "turns": self.turns,
            "latency_ms": self.latency_ms,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "error": None if self.error is None else {"type": self.error.type, "message": self.error.message},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseResult:
        """The inverse of :meth:`to_json`."""
        data = dict(data)
        data["tool_calls"] = [ToolCallRecord(**call) for call in data.get("tool_calls", ())]
        data["evaluations"] = [EvaluationResult(**evaluation) for evaluation in data.get("evaluations", ())]
        data["error"] = CaseError(**data["error"]) if data.get("error") else None
        return cls(**data)


@dataclass(kw_only=True)
class ScenarioFileRef:
    """A scenario file as a run used it."""

    path: str
    """Its path, relative to the project root when under it."""
    sha256: str
    """Its content hash at the time of the run."""


@dataclass(kw_only=True)
class ScenarioStats:
    """One scenario's tally in a run."""

    name: str
    """The scenario."""
    file: str
    """Its scenario file."""
    threshold: float = 1.0
    """The least pass rate it needs."""
    cases: int = 0
    """Cases run."""
    passed: int = 0
    """Cases that met every expectation."""
    failed: int = 0
    """Cases with an expectation not met."""
    errored: int = 0
    """Cases where something raised."""
    skipped: int = 0
    """Cases not run (the run stopped or was interrupted first)."""
    deselected: int = 0
    """Cases left out by a selection (``pytest -k``/``-m``): a run with any is not complete."""

    @property
    def pass_rate(self) -> float:
        """Passed over cases run (0 when none ran)."""
        return self.passed / self.cases if self.cases else 0.0

    @property
    def met(self) -> bool:
        """Whether every planned case ran and the pass rate reaches the threshold."""
        return self.cases > 0 and not self.skipped and self.pass_rate >= self.threshold - 1e-12

    def count(self, status: CaseStatus) -> None:
        """Tally one case."""
        self.cases += 1
        if status == "passed":
            self.passed += 1
        elif status == "failed":
            self.failed += 1
        else:
            self.errored += 1


@dataclass(kw_only=True)
class RunRecord:
    """One execution of one prompt version against scenarios."""

    id: str
    """The run id (32 hex digits; commands accept a unique prefix)."""
    prompt: str
    """The prompt."""
    version: int
    """The version evaluated."""
    label: str | None = None
    """The label it was resolved through, if any."""
    model: str
    """The model the cases ran on (a scenario may override it for its own cases)."""
    status: RunStatus = "running"
    """``running``, then ``passed``, ``failed``, ``error``, ``interrupted`` or ``stopped``."""
    reason: str | None = None
    """Why it ended as it did, when that needs words (``cost ceiling``, an error)."""
    started_at: datetime
    """When it started (UTC)."""
    finished_at: datetime | None = None
    """When it ended."""
    trace_id: str | None = None
    """The OpenTelemetry trace id of the run (32 hex digits)."""
    scenario_files: list[ScenarioFileRef] = field(default_factory=list)
    """The scenario files, with their content hashes."""
    scenarios: list[ScenarioStats] = field(default_factory=list)
    """Each scenario's tally."""
    settings: dict[str, Any] = field(default_factory=dict)
    """How it ran: concurrency, repeat, cache mode, cost ceiling."""
    cost_usd: float = 0.0
    """Total cost, where prices are known."""
    created_by: str | None = None
    """Who started it (as its client says)."""
    runner: str | None = None
    """The token that recorded it, for a run recorded through a registry server (the server sets it; a client
    cannot); None for a run stored directly, whose identity is then :attr:`created_by`."""

    @property
    def identity(self) -> str | None:
        """Who made the run, as the gate's ``gate_trusted_runners`` names it: the token's name for a run recorded
        through a server, else the author that started it."""
        return self.runner or self.created_by

    @property
    def cases(self) -> int:
        """Cases run."""
        return sum(stats.cases for stats in self.scenarios)

    @property
    def passed(self) -> int:
        """Cases passed."""
        return sum(stats.passed for stats in self.scenarios)

    @property
    def failed(self) -> int:
        """Cases failed."""
        return sum(stats.failed for stats in self.scenarios)

    @property
    def errored(self) -> int:
        """Cases errored."""
        return sum(stats.errored for stats in self.scenarios)

    @property
    def pass_rate(self) -> float:
        """Passed over cases run."""
        return self.passed / self.cases if self.cases else 0.0

    @property
    def complete(self) -> bool:
        """Every case of every scenario ran: nothing deselected, skipped or left unrun (and there was one)."""
        return bool(self.scenarios) and all(
            stats.cases > 0 and not stats.deselected and not stats.skipped for stats in self.scenarios
        )

    def conclude(self) -> RunStatus:
        """The status a finished run earns from its tallies (when not interrupted or stopped); scenarios a
        selection left out entirely do not count."""
        counted = [stats for stats in self.scenarios if stats.cases or not stats.deselected]
        if counted and all(stats.met for stats in counted):
            return "passed"
        return "error" if self.errored else "failed"

    def details(self) -> dict[str, Any]:
        """The JSON part of the stored run."""
        return {
            "scenario_files": [asdict(ref) for ref in self.scenario_files],
            "scenarios": [asdict(stats) for stats in self.scenarios],
            "settings": self.settings,
            "runner": self.runner,
        }

    def with_details(self, data: dict[str, Any]) -> RunRecord:
        """This record with the JSON part restored."""
        self.scenario_files = [ScenarioFileRef(**ref) for ref in data.get("scenario_files", ())]
        self.scenarios = [ScenarioStats(**stats) for stats in data.get("scenarios", ())]
        self.settings = dict(data.get("settings", {}))
        self.runner = data.get("runner")
        return self


def retally(record: RunRecord, cases: Iterable[str]) -> RunRecord:
    """``record``'s scenario tallies and cost counted again from its stored cases (their JSON text, as
    :meth:`CaseResult.to_json` wrote them): what a run that lost its process really did. A scenario's planned
    cases that were not stored count as skipped, so the run is not complete."""
    fresh = [
        ScenarioStats(name=stats.name, file=stats.file, threshold=stats.threshold, deselected=stats.deselected)
        for stats in record.scenarios
    ]
    planned = [stats.cases + stats.skipped for stats in record.scenarios]
    by_name: dict[str, list[ScenarioStats]] = {}
    for stats in fresh:
        by_name.setdefault(stats.name, []).append(stats)
    cost = 0.0
    for text in cases:
        data = json.loads(text)
        named = by_name.get(data["scenario"])
        if not named:  # a scenario the record did not list (saved by another client): count it too
            named = by_name[data["scenario"]] = [ScenarioStats(name=data["scenario"], file=data["file"])]
            fresh.append(named[0])
            planned.append(0)
        # Two scenario files may name a scenario alike: the case's file tells them apart (a dataset case
        # names its dataset, so it goes to the first).
        stats = next((s for s in named if s.file == data["file"]), named[0])
        stats.count(data["status"])
        cost += data.get("cost_usd") or 0.0
    for stats, count in zip(fresh, planned, strict=True):
        stats.skipped = max(count - stats.cases, 0)
    record.scenarios = fresh
    record.cost_usd = cost
    return record
