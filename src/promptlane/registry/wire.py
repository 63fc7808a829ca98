"""The registry's records as JSON: what the server sends and the HTTP store reads back.

Plain functions over plain data (no pydantic on this path: the SDK parses these on every refresh). Times are
ISO 8601 in UTC; a label's target is ``{"3": 90, "4": 10}`` (JSON object keys are strings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from .runs import RunRecord
from .store import LabelEvent, LabelState, PromptSummary, PromptVersion, Target, TokenRecord

__all__ = [
    "event_from_json",
    "event_to_json",
    "label_from_json",
    "label_to_json",
    "run_from_json",
    "run_to_json",
    "summary_from_json",
    "summary_to_json",
    "target_in",
    "target_out",
    "time_in",
    "time_out",
    "token_from_json",
    "token_to_json",
    "version_from_json",
    "version_to_json",
]


def time_out(value: datetime | None) -> str | None:
    """``2026-11-24T04:53:29.123456Z``."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def time_in(value: str | None) -> datetime | None:
    """The inverse of :func:`time_out` (any ISO 8601 time with an offset)."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def target_out(target: Target | None) -> dict[str, int] | None:
    """``{3: 90}`` -> ``{"3": 90}``."""
    return None if target is None else {str(version): weight for version, weight in sorted(target.items())}


def target_in(data: Mapping[str, Any] | None) -> dict[int, int] | None:
    """``{"3": 90}`` -> ``{3: 90}``."""
    return None if data is None else {int(version): int(weight) for version, weight in data.items()}


def version_to_json(version: PromptVersion) -> dict[str, Any]:
    return {
        "name": version.name,
        "number": version.number,
        "content_hash": version.content_hash,
        "spec": version.spec,
        "message": version.message,
        "author": version.author,
        "created_at": time_out(version.created_at),
    }


def version_from_json(data: Mapping[str, Any]) -> PromptVersion:
    return PromptVersion(
        name=data["name"],
        number=data["number"],
        content_hash=data["content_hash"],
        spec=data["spec"],
        message=data.get("message"),
        author=data.get("author"),
        created_at=time_in(data.get("created_at")),
    )


def label_to_json(state: LabelState) -> dict[str, Any]:
    return {
        "prompt": state.prompt,
        "label": state.label,
        "target": target_out(state.target),
        "updated_at": time_out(state.updated_at),
        "updated_by": state.updated_by,
    }


def label_from_json(data: Mapping[str, Any]) -> LabelState:
    return LabelState(
        prompt=data["prompt"],
        label=data["label"],
        target=target_in(data["target"]) or {},
        updated_at=time_in(data["updated_at"]),  # type: ignore[arg-type]
        updated_by=data.get("updated_by"),
    )


def event_to_json(event: LabelEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "prompt": event.prompt,
        "label": event.label,
        "kind": event.kind,
        "from_target": target_out(event.from_target),
        "to_target": target_out(event.to_target),
        "actor": event.actor,
        "reason": event.reason,
        "gate": event.gate,
        "evidence": event.evidence,
        "undoes": event.undoes,
        "at": time_out(event.at),
    }


def event_from_json(data: Mapping[str, Any]) -> LabelEvent:
    return LabelEvent(
        id=data["id"],
        prompt=data["prompt"],
        label=data["label"],
        kind=data["kind"],
        from_target=target_in(data.get("from_target")),
        to_target=target_in(data["to_target"]) or {},
        actor=data.get("actor"),
        reason=data.get("reason"),
        gate=data.get("gate"),
        evidence=data.get("evidence"),
        undoes=data.get("undoes"),
        at=time_in(data["at"]),  # type: ignore[arg-type]
    )


def summary_to_json(summary: PromptSummary) -> dict[str, Any]:
    return {
        "name": summary.name,
        "latest": summary.latest,
        "updated_at": time_out(summary.updated_at),
        "description": summary.description,
        "labels": {label: target_out(target) for label, target in sorted(summary.labels.items())},
    }


def summary_from_json(data: Mapping[str, Any]) -> PromptSummary:
    return PromptSummary(
        name=data["name"],
        latest=data["latest"],
        updated_at=time_in(data["updated_at"]),  # type: ignore[arg-type]
        description=data.get("description"),
        labels={label: target_in(target) or {} for label, target in (data.get("labels") or {}).items()},
    )


def run_to_json(record: RunRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "prompt": record.prompt,
        "version": record.version,
        "label": record.label,
        "model": record.model,
        "status": record.status,
        "reason": record.reason,
        "started_at": time_out(record.started_at),
        "finished_at": time_out(record.finished_at),
        "trace_id": record.trace_id,
        "cost_usd": record.cost_usd,
        "created_by": record.created_by,
        "cases": record.cases,
        "passed": record.passed,
        "failed": record.failed,
        "errored": record.errored,
        "complete": record.complete,
        "scenario_files": [asdict(ref) for ref in record.scenario_files],
        "scenarios": [asdict(stats) for stats in record.scenarios],
        "settings": record.settings,
    }


def run_from_json(data: Mapping[str, Any]) -> RunRecord:
    record = RunRecord(
        id=data["id"],
        prompt=data["prompt"],
        version=data["version"],
        label=data.get("label"),
        model=data["model"],
        status=data.get("status", "running"),
        reason=data.get("reason"),
        started_at=time_in(data["started_at"]),  # type: ignore[arg-type]
        finished_at=time_in(data.get("finished_at")),
        trace_id=data.get("trace_id"),
        cost_usd=data.get("cost_usd", 0.0),
        created_by=data.get("created_by"),
    )
    return record.with_details(
        {
            "scenario_files": [dict(ref) for ref in data.get("scenario_files", ())],
            "scenarios": [dict(stats) for stats in data.get("scenarios", ())],
            "settings": data.get("settings", {}),
        }
    )


def token_to_json(token: TokenRecord) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "scopes": sorted(token.scopes),
        "created_at": time_out(token.created_at),
        "created_by": token.created_by,
        "revoked_at": time_out(token.revoked_at),
        "revoked_by": token.revoked_by,
        "active": token.active,
    }


def token_from_json(data: Mapping[str, Any]) -> TokenRecord:
    return TokenRecord(
        id=data["id"],
        name=data["name"],
        scopes=frozenset(data["scopes"]),
        created_at=time_in(data["created_at"]),  # type: ignore[arg-type]
        created_by=data.get("created_by"),
        revoked_at=time_in(data.get("revoked_at")),
        revoked_by=data.get("revoked_by"),
    )
