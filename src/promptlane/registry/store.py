"""What the registry keeps, and the protocol every store (SQL today, HTTP later) implements."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .runs import CaseResult, RunRecord

__all__ = [
    "MAX_VERSION",
    "LabelEvent",
    "LabelRequest",
    "LabelState",
    "LostRace",
    "PromptSummary",
    "PromptVersion",
    "Store",
    "Target",
    "TokenRecord",
    "format_target",
    "target_from_json",
    "target_to_json",
]

MAX_VERSION = 2**31 - 1
"""The largest version number a store holds (the column is a 32-bit integer on every database)."""

Target = Mapping[int, int]
"""Where a label points: version number -> weight (weights sum to 100); one version is ``{3: 100}``."""


class LostRace(Exception):
    """Inside ``atomic()``, a push lost the race for a version number to another writer: the batch's
    transaction is rolled back and run again. Any other error inside the batch ends it."""


def target_to_json(target: Target | None) -> str | None:
    """A target as stored: ``{"3": 90, "4": 10}``."""
    if target is None:
        return None
    return json.dumps({str(v): w for v, w in sorted(target.items())}, separators=(",", ":"))


def target_from_json(text: str | None) -> dict[int, int] | None:
    """The inverse of :func:`target_to_json`."""
    if text is None:
        return None
    return {int(v): int(w) for v, w in json.loads(text).items()}


def format_target(target: Target | None) -> str:
    """``v3`` for one version, ``v3 90% / v4 10%`` for a rollout, ``-`` for none."""
    if not target:
        return "-"
    if len(target) == 1:
        return f"v{next(iter(target))}"
    return " / ".join(f"v{v} {w}%" for v, w in sorted(target.items()))


@dataclass(frozen=True, kw_only=True)
class PromptVersion:
    """An immutable version of a prompt: the whole frozen spec and who made it."""

    name: str
    """The prompt's name."""
    number: int | None
    """1, 2, 3... per prompt; None for content that was never pushed (a fallback or a file on disk)."""
    content_hash: str
    """sha256 of the canonical JSON of ``spec``."""
    spec: Mapping[str, Any]
    """The frozen spec: template or messages, variables, model, settings, tools, output schema, includes."""
    message: str | None = None
    """The push message."""
    author: str | None = None
    """Who pushed it."""
    created_at: datetime | None = None
    """When it was pushed (UTC)."""

    @property
    def ref(self) -> str:
        """``support/reply@3`` (or just the name, unpushed)."""
        return self.name if self.number is None else f"{self.name}@{self.number}"


@dataclass(frozen=True, kw_only=True)
class LabelState:
    """Where a label points now."""

    prompt: str
    """The prompt's name."""
    label: str
    """The label's name."""
    target: dict[int, int]
    """Version -> weight."""
    updated_at: datetime
    """When it last moved."""
    updated_by: str | None
    """Who moved it."""


@dataclass(frozen=True, kw_only=True)
class LabelEvent:
    """One move of a label, kept forever: the audit log."""

    id: int
    """Increasing id."""
    prompt: str
    """The prompt's name."""
    label: str
    """The label's name."""
    kind: str
    """``move``, ``rollout`` or ``rollback``."""
    from_target: dict[int, int] | None
    """Where it pointed before (None: the label was created)."""
    to_target: dict[int, int]
    """Where it points after."""
    actor: str | None
    """Who moved it."""
    reason: str | None
    """Why, as given."""
    gate: str | None
    """For protected labels: ``ungated`` (no gate yet), ``forced`` (--force), ``passed``; None otherwise."""
    undoes: int | None
    """For a rollback: the id of the event it undid."""
    at: datetime
    """When (UTC)."""
    evidence: str | None = None
    """For a gated move: the id of the passing run that allowed it."""
    requested_by: str | None = None
    """For a move approved by a second person (``actor``): who asked for it."""
    requested_at: datetime | None = None
    """When it was asked for."""


RequestStatus = Literal["pending", "approved", "rejected", "superseded"]


@dataclass(frozen=True, kw_only=True)
class LabelRequest:
    """A move of a label that waits for a second person (``require_approval``): it moves the label once someone
    else approves it, through the gate again."""

    id: int
    """Increasing id."""
    prompt: str
    """The prompt's name."""
    label: str
    """The label's name."""
    kind: str
    """``move``, ``rollout``, ``promote`` or ``rollback``."""
    from_target: dict[int, int] | None
    """Where the label pointed when the move was asked for."""
    after_event: int | None
    """The label's newest audit event when the move was asked for (None: it had none): approving it after the
    label moved again (even away and back) is refused."""
    to_target: dict[int, int]
    """Where it would point."""
    reason: str | None
    """Why, as the requester gave it."""
    requested_by: str | None
    """Who asked (as recorded in the audit log)."""
    requester: str
    """Their identity: a token's name, or the local author. The approver must be another."""
    requested_at: datetime
    """When."""
    evidence: str | None
    """The run the gate accepted when it was asked for (it is checked again at approval)."""
    status: RequestStatus
    """``pending``, ``approved``, ``rejected``, or ``superseded`` (a newer request for the label replaced it)."""
    decided_by: str | None = None
    """Who approved or rejected it."""
    decided_at: datetime | None = None
    """When."""
    decision: str | None = None
    """Why it was rejected (or approved), as given."""
    event_id: int | None = None
    """The audit log's event of the move, once approved."""


@dataclass(frozen=True, kw_only=True)
class PromptSummary:
    """A prompt as listed: newest version and labels."""

    name: str
    """The prompt's name."""
    latest: int
    """The newest version number."""
    updated_at: datetime
    """When the newest version was pushed."""
    description: str | None = None
    """The newest version's description."""
    labels: dict[str, dict[int, int]] = field(default_factory=dict)
    """Label -> target."""


@dataclass(frozen=True, kw_only=True)
class TokenRecord:
    """An API token as the registry keeps it: never the secret, only its sha256."""

    id: int
    """Increasing id."""
    name: str
    """Unique among all tokens, revoked ones included: lowercase letters, digits, ``_.-``, at most 63."""
    scopes: frozenset[str]
    """The scopes as granted (``admin``, not what it implies); see :func:`promptlane.registry.tokens.allows`."""
    created_at: datetime
    """When it was created (UTC)."""
    created_by: str | None
    """Who created it."""
    revoked_at: datetime | None = None
    """When it was revoked (UTC); None while it is active."""
    revoked_by: str | None = None
    """Who revoked it."""

    @property
    def active(self) -> bool:
        """Whether the token still authenticates: it was not revoked."""
        return self.revoked_at is None


class Store(Protocol):
    """Where versions, labels and their history live. Every method is safe to call from many processes."""

    def list_prompts(self) -> list[PromptSummary]:
        """Every prompt, sorted by name."""
        ...

    def get_version(self, name: str, number: int) -> PromptVersion:
        """Version ``number`` of ``name``; NotFoundError if either does not exist."""
        ...

    def latest_number(self, name: str) -> int:
        """The newest version number of ``name``; NotFoundError if it has none."""
        ...

    def list_versions(self, name: str) -> list[PromptVersion]:
        """Every version of ``name``, oldest first; NotFoundError for an unknown prompt."""
        ...

    def push_version(
        self,
        name: str,
        spec: Mapping[str, Any],
        content_hash: str,
        *,
        message: str | None,
        author: str | None,
    ) -> tuple[PromptVersion, bool]:
        """Store a version, numbered next; if one with ``content_hash`` exists, return it. (version, created)."""
        ...

    def get_label(self, name: str, label: str) -> LabelState:
        """Where ``label`` of ``name`` points; NotFoundError if it is not set."""
        ...

    def list_labels(self, name: str) -> list[LabelState]:
        """The labels set on ``name``, sorted."""
        ...

    def move_label(
        self,
        name: str,
        label: str,
        target: Target,
        *,
        kind: str,
        actor: str | None,
        reason: str | None,
        gate: str | None,
        evidence: str | None = None,
        requested: tuple[str | None, datetime] | None = None,
    ) -> LabelEvent:
        """Point ``label`` at ``target`` and record the event, atomically (``requested``: who asked for the move
        and when, for one approved by ``actor``). Unknown versions: NotFoundError."""
        ...

    def rollback_label(
        self,
        name: str,
        label: str,
        *,
        actor: str | None,
        reason: str | None,
        gate: str | None,
        evidence: str | None = None,
        requested: tuple[str | None, datetime] | None = None,
    ) -> LabelEvent:
        """Undo the newest move of ``label`` not yet undone; LabelError when there is nothing to return to."""
        ...

    def label_events(self, name: str, label: str | None = None) -> Sequence[LabelEvent]:
        """The audit log of ``name`` (one label, or all), oldest first."""
        ...

    def create_run(self, record: RunRecord) -> None:
        """Store a new run."""
        ...

    def add_cases(self, run_id: str, cases: Sequence[CaseResult]) -> None:
        """Append finished cases to a run (which also refreshes its heartbeat)."""
        ...

    def heartbeat_run(self, run_id: str) -> None:
        """Say that the process running ``run_id`` is alive: a ``running`` run whose heartbeat is older than the
        lease counts as interrupted (see :mod:`promptlane.registry.runs`)."""
        ...

    def update_run(self, record: RunRecord) -> None:
        """Save a run's status, tallies and end."""
        ...

    def get_run(self, run_id: str) -> RunRecord:
        """A run by id or unique prefix; NotFoundError if none. A ``running`` run past its lease comes back
        ``interrupted``, tallied from its stored cases."""
        ...

    def list_runs(self, name: str | None = None, *, version: int | None = None, limit: int = 50) -> list[RunRecord]:
        """Runs, newest first (of one prompt, or one version)."""
        ...

    def run_cases(self, run_id: str, *, statuses: Sequence[str] | None = None) -> Iterator[CaseResult]:
        """A run's cases in the order they finished."""
        ...

    def case_texts(self, run_id: str) -> Iterator[str]:
        """A run's cases in the order they finished, each the JSON text of :meth:`CaseResult.to_json` as stored,
        for reports that copy them without decoding them (a remote store, which has no such read, is read with
        :meth:`run_cases` instead: see :func:`promptlane.harness.reports.stored_cases`)."""
        ...

    def create_token(
        self, name: str, scopes: Collection[str], secret_hash: str, *, created_by: str | None
    ) -> TokenRecord:
        """Store a token by the sha256 of its secret; TokenError if ``name`` is taken, even by a revoked token."""
        ...

    def list_tokens(self) -> list[TokenRecord]:
        """Every token, revoked ones too, oldest first."""
        ...

    def revoke_token(self, name: str, *, revoked_by: str | None) -> TokenRecord:
        """Revoke the token ``name``; NotFoundError if there is none, TokenError if it was revoked already."""
        ...

    def token_by_hash(self, secret_hash: str) -> TokenRecord | None:
        """The token whose secret hashes to ``secret_hash``, active or revoked (check ``.active``); None if none."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
