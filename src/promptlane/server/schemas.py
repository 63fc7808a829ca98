"""The shapes of the server's JSON: request bodies (validated) and responses (for the OpenAPI document).

Responses are built by :mod:`promptlane.registry.wire`; the models here describe them, and the schemathesis test
checks every response against them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CasePage",
    "CasesIn",
    "Error",
    "Event",
    "GateIn",
    "Label",
    "LabelMoveIn",
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

Name = Field(min_length=1, max_length=255)
Weights = dict[str, int]
"""``{"3": 90, "4": 10}``: version number -> weight, summing to 100."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests ---------------------------------------------------------------------------------------------


class ScenarioFileIn(_Strict):
    path: str = Field(min_length=1, max_length=1024)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class GateIn(_Strict):
    """What the client's project asks of a run (its scenario files now, and the gate model)."""

    scenario_files: list[ScenarioFileIn] = Field(default_factory=list, max_length=10_000)
    model: str | None = Field(default=None, max_length=255)


class PushIn(_Strict):
    """A version to store. With ``content_hash``, ``spec`` is frozen content (what ``promptlane push`` sends),
    checked by freezing it again; without, it is a prompt spec as written in a file, frozen by the server."""

    spec: dict[str, Any]
    content_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    message: str | None = Field(default=None, max_length=10_000)
    author: str | None = Field(default=None, max_length=255)


class LabelMoveIn(_Strict):
    target: Weights = Field(min_length=1, max_length=100)
    kind: Literal["move", "rollout"] = "move"
    reason: str | None = Field(default=None, max_length=10_000)
    force: bool = False
    actor: str | None = Field(default=None, max_length=200)
    gated: bool = False
    requirements: GateIn | None = None


class RollbackIn(_Strict):
    reason: str | None = Field(default=None, max_length=10_000)
    force: bool = False
    actor: str | None = Field(default=None, max_length=200)
    requirements: GateIn | None = None


class PromoteIn(_Strict):
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    reason: str | None = Field(default=None, max_length=10_000)
    actor: str | None = Field(default=None, max_length=200)
    requirements: GateIn | None = None


class ScenarioStatsIn(BaseModel):
    name: str
    file: str
    threshold: float = Field(default=1.0, ge=0, le=1)
    cases: int = Field(default=0, ge=0)
    passed: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    errored: int = Field(default=0, ge=0)
    skipped: int = Field(default=0, ge=0)
    deselected: int = Field(default=0, ge=0)


class RunIn(BaseModel):
    """A run as ``promptlane eval`` records it (derived fields such as ``passed`` are ignored)."""

    id: str = Field(pattern=r"^[0-9a-f]{32}$")
    prompt: str = Name
    version: int = Field(ge=1, le=2**31 - 1)
    label: str | None = Field(default=None, max_length=63)
    model: str = Field(min_length=1, max_length=255)
    status: Literal["running", "passed", "failed", "error", "interrupted", "stopped"] = "running"
    reason: str | None = None
    started_at: str
    finished_at: str | None = None
    trace_id: str | None = Field(default=None, max_length=32)
    cost_usd: float = Field(default=0.0, ge=0)
    created_by: str | None = Field(default=None, max_length=255)
    scenario_files: list[ScenarioFileIn] = Field(default_factory=list)
    scenarios: list[ScenarioStatsIn] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)


class CasesIn(_Strict):
    cases: list[dict[str, Any]] = Field(max_length=10_000)


class TokenIn(_Strict):
    """A token registered by its hash: the client made the secret and keeps it."""

    name: str = Field(min_length=1, max_length=63)
    scopes: list[str] = Field(min_length=1, max_length=4)
    secret_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_by: str | None = Field(default=None, max_length=200)


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
