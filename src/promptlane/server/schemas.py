"""The shapes of the server's JSON: request bodies (validated) and responses (for the OpenAPI document).

Responses are built by :mod:`promptlane.registry.wire`; the models here describe them, and the schemathesis test
checks every response against them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

from ..registry.store import MAX_VERSION
from ..spec import NAME_MAX_LENGTH, NAME_PATTERN

__all__ = [
    "ACTOR_MAX_LENGTH",
    "LABEL_PATTERN",
    "MAX_COUNT",
    "MAX_JSON_INT",
    "NO_NUL",
    "TOKEN_NAME_PATTERN",
    "CaseIn",
    "CasePage",
    "CasesIn",
    "DecisionIn",
    "Error",
    "Event",
    "GateIn",
    "GateReport",
    "JsonValue",
    "Label",
    "LabelMoveIn",
    "LabelRequestOut",
    "PromoteIn",
    "PromptOut",
    "PushIn",
    "PushOut",
    "Resolve",
    "RollbackIn",
    "Run",
    "Snapshot",
    "Summary",
    "Token",
    "TokenIn",
    "Version",
]

# Every bound below is one the server enforces; the OpenAPI document states them all (tests/test_server.py runs
# schemathesis's conformance checks against it, on SQLite and PostgreSQL). The database's own bounds come
# from registry/tables.py: Integer columns are 32-bit on PostgreSQL, String(n) columns hold n characters.

NO_NUL = r"^[^\x00]*$"
"""Text that reaches the database: no NUL character (PostgreSQL cannot store one)."""
LABEL_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
"""A label's name, as :func:`promptlane.registry.labels.check_label_name` checks it (``latest`` is reserved)."""
TOKEN_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
"""A token's name, as :func:`promptlane.registry.tokens.check_token_name` checks it."""
MAX_COUNT = 10_000_000
"""The largest tally of one scenario: a run's tallies are sums over at most :data:`MAX_SCENARIOS` scenarios and
must fit an Integer column."""
MAX_SCENARIOS = 200
ACTOR_MAX_LENGTH = 255 - len(" (token )") - 63
"""The longest name a client may give for who made a change: the server records it with the token's name
(``alice (token ci)``) in a 255-character column."""

MAX_JSON_INT = 2**63 - 1
"""The largest integer anywhere in a body (the server refuses a larger one, as SQLite cannot store it)."""
Int64 = Annotated[int, Field(ge=-MAX_JSON_INT, le=MAX_JSON_INT)]
_Key = Annotated[str, Field(pattern=NO_NUL)]
JsonValue = TypeAliasType(
    "JsonValue",
    Annotated[str, Field(pattern=NO_NUL)]
    | Int64
    | float
    | bool
    | list["JsonValue"]  # pyright: ignore[reportInvalidTypeForm]  (a recursive alias)
    | Annotated[dict[_Key, "JsonValue"], Field(json_schema_extra={"additionalProperties": False})]  # pyright: ignore[reportInvalidTypeForm]
    | None,
)
"""Any JSON, as the server takes it anywhere in a body (the free-form parts: a spec, a run's settings, a case's
output): no string or key holds a NUL character and integers fit 64 bits (nesting stops at 64 levels too)."""
JsonObject = Annotated[dict[_Key, JsonValue], Field(json_schema_extra={"additionalProperties": False})]

PromptName = Annotated[str, Field(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NAME_PATTERN.pattern)]
Actor = Annotated[str, Field(max_length=ACTOR_MAX_LENGTH, pattern=NO_NUL)]
Text = Annotated[str, Field(max_length=10_000, pattern=NO_NUL)]
Weights = dict[str, int]
"""``{"3": 90, "4": 10}``: version number -> weight, summing to 100."""
WeightsIn = Annotated[
    dict[str, Annotated[int, Field(ge=1, le=100)]],
    Field(
        min_length=1,
        max_length=100,
        json_schema_extra={"propertyNames": {"pattern": r"^[1-9][0-9]{0,9}$"}},
        description="Version number (plain decimal digits, 1 to 2147483647) -> weight; the weights sum to 100.",
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests ---------------------------------------------------------------------------------------------


class ScenarioFileIn(_Strict):
    """One part of a run's fingerprint: a scenario file, a dataset, a Python module (``python:checks``), the judge
    model (``judge model``) or the version (``version``)."""

    path: str = Field(min_length=1, max_length=1024, pattern=NO_NUL)
    sha256: str = Field(
        min_length=1,
        max_length=512,
        pattern=NO_NUL,
        description="A SHA-256, or the part's value: `missing`, `dist:NAME==VERSION`, a model.",
    )


class GateIn(_Strict):
    """What the client's project asks of a run (its scenario files now, and the gate model)."""

    scenario_files: list[ScenarioFileIn] = Field(default_factory=list, max_length=10_000)
    model: str | None = Field(default=None, max_length=255, pattern=NO_NUL)


class PushIn(_Strict):
    """A version to store. With ``content_hash``, ``spec`` is frozen content (what ``promptlane push`` sends),
    checked by freezing it again; without, it is a prompt spec as written in a file, frozen by the server.

    No string or key anywhere in the body may hold a NUL character, nesting stops at 64 levels and integers at
    64 bits (the server refuses the body whole, 422)."""

    spec: JsonObject = Field(description="A prompt spec (its templates must compile: checked at push, 422).")
    content_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    message: Text | None = None
    author: Actor | None = None


MAX_BATCH = 200
"""Versions one batch push may hold."""


class BatchItemIn(_Strict):
    name: PromptName
    spec: JsonObject = Field(description="A prompt spec as written in a file; the server freezes it.")


class PushBatchIn(_Strict):
    """Prompt specs to store all or nothing, in the order given (a prompt after the ones of the batch it
    includes): what `promptlane push` sends to a server. Same body rules as a single push."""

    versions: list[BatchItemIn] = Field(min_length=1, max_length=MAX_BATCH)
    message: Text | None = None
    author: Actor | None = None


class LabelMoveIn(_Strict):
    target: WeightsIn
    kind: Literal["move", "rollout"] = "move"
    reason: Text | None = None
    force: bool = False
    actor: Actor | None = None
    gated: bool = False
    requirements: GateIn | None = None


class RollbackIn(_Strict):
    reason: Text | None = None
    force: bool = False
    actor: Actor | None = None
    requirements: GateIn | None = None


class PromoteIn(_Strict):
    version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    reason: Text | None = None
    actor: Actor | None = None
    requirements: GateIn | None = None


class DecisionIn(_Strict):
    """An approval or a rejection of the move of a label that waits for a second person."""

    request: int | None = Field(
        default=None, ge=1, le=MAX_VERSION, description="Only if the pending move is this request."
    )
    reason: Text | None = None
    actor: Actor | None = None


Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


class ScenarioStatsIn(BaseModel):
    name: str = Field(max_length=255, pattern=NO_NUL)
    file: str = Field(max_length=1024, pattern=NO_NUL)
    threshold: float = Field(default=1.0, ge=0, le=1)
    cases: Count = 0
    passed: Count = 0
    failed: Count = 0
    errored: Count = 0
    skipped: Count = 0
    deselected: Count = 0


class RunIn(BaseModel):
    """A run as ``promptlane eval`` records it (derived fields such as ``passed`` are ignored)."""

    id: str = Field(pattern=r"^[0-9a-f]{32}$")
    prompt: PromptName
    version: int = Field(ge=1, le=MAX_VERSION)
    label: str | None = Field(default=None, max_length=63, pattern=NO_NUL)
    model: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    status: Literal["running", "passed", "failed", "error", "interrupted", "stopped"] = "running"
    reason: str | None = Field(default=None, pattern=NO_NUL)
    started_at: str = Field(json_schema_extra={"format": "date-time"})
    finished_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    trace_id: str | None = Field(default=None, max_length=32, pattern=NO_NUL)
    cost_usd: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    created_by: str | None = Field(default=None, max_length=255, pattern=NO_NUL)
    scenario_files: list[ScenarioFileIn] = Field(default_factory=list)
    scenarios: list[ScenarioStatsIn] = Field(default_factory=list, max_length=MAX_SCENARIOS)
    settings: JsonObject = Field(default_factory=dict)


class ToolCallIn(BaseModel):
    turn: Int64
    id: str
    name: str
    args: JsonValue = None
    result: JsonValue = None
    error: str | None = None


class EvaluationIn(BaseModel):
    name: str
    passed: bool
    score: float | None = None
    reason: str | None = None
    error: str | None = None


class CaseErrorIn(BaseModel):
    type: str
    message: str


class CaseIn(BaseModel):
    """One finished case, as :meth:`promptlane.registry.runs.CaseResult.to_json` writes it (unknown keys are
    ignored)."""

    scenario: str = Field(max_length=255)
    case: str = Field(max_length=255)
    file: str
    line: Int64 | None = None
    row: Int64 | None = None
    repeat: Int64 = 1
    status: Literal["passed", "failed", "error"] = "passed"
    variables: JsonObject = Field(default_factory=dict)
    messages: list[JsonObject] = Field(default_factory=list)
    output: JsonValue = None
    tool_calls: list[ToolCallIn] = Field(default_factory=list)
    evaluations: list[EvaluationIn] = Field(default_factory=list)
    turns: Int64 = 0
    latency_ms: float = 0.0
    input_tokens: Int64 = 0
    output_tokens: Int64 = 0
    cost_usd: float | None = None
    error: CaseErrorIn | None = None


class CasesIn(_Strict):
    cases: list[CaseIn] = Field(max_length=10_000)


class TokenIn(_Strict):
    """A token registered by its hash: the client made the secret and keeps it."""

    name: str = Field(min_length=1, max_length=63, pattern=TOKEN_NAME_PATTERN)
    scopes: list[Literal["read", "write", "promote", "admin"]] = Field(min_length=1, max_length=4)
    secret_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_by: Actor | None = None


# --- responses --------------------------------------------------------------------------------------------


class Error(BaseModel):
    error: str
    type: str
    problems: list[str] | None = None
    details: list[dict[str, Any]] | None = None


class Version(BaseModel):
    name: str
    number: int
    content_hash: str
    spec: dict[str, Any]
    message: str | None
    author: str | None
    created_at: str | None


class PushOut(BaseModel):
    version: Version
    created: bool


class BatchPushed(BaseModel):
    version: Version
    created: bool
    latest: int = Field(description="The prompt's newest version number after the push.")


class PushBatchOut(BaseModel):
    versions: list[BatchPushed]


class Summary(BaseModel):
    name: str
    latest: int
    updated_at: str
    description: str | None
    labels: dict[str, Weights]


class Label(BaseModel):
    prompt: str
    label: str
    target: Weights
    updated_at: str
    updated_by: str | None


class PromptOut(Summary):
    versions: int


class Event(BaseModel):
    id: int
    prompt: str
    label: str
    kind: str
    from_target: Weights | None
    to_target: Weights
    actor: str | None
    reason: str | None
    gate: str | None
    evidence: str | None
    undoes: int | None
    at: str
    requested_by: str | None = Field(description="For a move approved by a second person (`actor`): who asked.")
    requested_at: str | None = Field(description="When it was asked for.")


class LabelRequestOut(BaseModel):
    """A label move waiting for approval (`require_approval`), or one decided."""

    id: int
    prompt: str
    label: str
    kind: str
    from_target: Weights | None
    after_event: int | None = Field(description="The label's newest audit event when the move was asked for.")
    to_target: Weights
    reason: str | None
    requested_by: str | None
    requester: str
    requested_at: str
    evidence: str | None
    status: Literal["pending", "approved", "rejected", "superseded"]
    decided_by: str | None
    decided_at: str | None
    decision: str | None
    event_id: int | None


class Resolve(BaseModel):
    label: str
    target: Weights
    version: Version


class SnapshotEntry(BaseModel):
    target: Weights
    versions: dict[str, Version]


class Snapshot(BaseModel):
    label: str
    prompts: dict[str, SnapshotEntry]


class Run(BaseModel):
    id: str
    prompt: str
    version: int
    label: str | None
    model: str
    status: str
    reason: str | None
    started_at: str
    finished_at: str | None
    trace_id: str | None
    cost_usd: float
    created_by: str | None
    runner: str | None = Field(description="The token that recorded the run (set by the server).")
    cases: int
    passed: int
    failed: int
    errored: int
    complete: bool
    scenario_files: list[dict[str, Any]]
    scenarios: list[dict[str, Any]]
    settings: dict[str, Any]


class CasePage(BaseModel):
    cases: list[dict[str, Any]]
    next: int | None


class Token(BaseModel):
    id: int
    name: str
    scopes: list[str]
    created_at: str
    created_by: str | None
    revoked_at: str | None
    revoked_by: str | None
    active: bool


class FingerprintPart(BaseModel):
    name: str = Field(description="A scenario file's path, a dataset's, `python:module`, `judge model` or `version`.")
    now: str = Field(description="Its value now: a SHA-256, `missing`, `dist:NAME==VERSION`, a model.")
    then: str | None = Field(description="Its value when the run was made (null: the run did not record it).")
    state: Literal["current", "changed", "not covered"]


class RateTest(BaseModel):
    """Pass counts compared: a one-sided Fisher's exact test."""

    candidate_passed: int
    candidate_total: int
    baseline_passed: int
    baseline_total: int
    p_value: float
    confidence: float
    regressed: bool


class ScoreTest(BaseModel):
    """Mean scores compared: a bootstrap interval of the change."""

    candidate_mean: float | None = Field(description="null: the candidate has no scores.")
    baseline_mean: float | None = Field(description="null: the serving version has no scores.")
    candidate_n: int
    baseline_n: int
    low: float
    high: float
    confidence: float
    method: Literal["bootstrap", "normal", "too few"]
    regressed: bool


class ScenarioComparison(BaseModel):
    scenario: str
    file: str
    rate: RateTest
    score: ScoreTest | None
    regressed: bool
    description: str = Field(description="For people: `greets: 7/10 (70%) vs 10/10 (100%) serving, p=0.105`.")


class Comparison(BaseModel):
    """The evidence run against the serving version's newest complete run on the same inputs."""

    serving: Version
    baseline: Run | None = Field(description="null: the serving version has no run to compare with.")
    scenarios: list[ScenarioComparison]


class GateVerdict(BaseModel):
    passed: bool
    run: Run | None = Field(description="The evidence run (or the newest run looked at); null: none.")
    problems: list[str] = Field(description="What would open the gate, one line each (empty when it is open).")
    comparison: Comparison | None = Field(description="Where the label's no-regression rule applies.")


class GateReport(BaseModel):
    """The gate's verdict on a version for a label, part by part (what `promptlane gate` prints)."""

    version: Version
    label: str
    gated: bool = Field(description="Whether moves of the label go through the gate (it is protected).")
    verdict: GateVerdict
    parts: list[FingerprintPart]
