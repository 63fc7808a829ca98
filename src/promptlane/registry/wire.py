"""The registry's records as JSON: what the server sends and the HTTP store reads back.

Plain functions over plain data (no pydantic on this path: the SDK parses these on every refresh). Times are
ISO 8601 in UTC; a label's target is ``{"3": 90, "4": 10}`` (JSON object keys are strings).

What the SDK serves is read strictly (:func:`version_from_json`, :func:`target_from_json`,
:func:`snapshot_from_json`): wrong shapes and types, content that does not match its content hash, and a version
or label other than the one asked for are a ``ValueError`` saying which, never a version served.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .._canonical import content_hash
from ..errors import LabelError
from .gate import GateReport, GateVerdict, PartState
from .labels import check_target
from .runs import RunRecord
from .store import LabelEvent, LabelRequest, LabelState, PromptSummary, PromptVersion, Target, TokenRecord

if TYPE_CHECKING:  # the statistics load only when a gate report is read
    from .no_regression import Comparison
    from .regression import ScoreTest

__all__ = [
    "event_from_json",
    "event_to_json",
    "gate_report_from_json",
    "gate_report_to_json",
    "label_from_json",
    "label_to_json",
    "run_from_json",
    "run_to_json",
    "snapshot_from_json",
    "summary_from_json",
    "summary_to_json",
    "target_from_json",
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


_HASH = re.compile(r"^[0-9a-f]{64}$")


def version_from_json(data: Any, *, name: str | None = None, number: int | None = None) -> PromptVersion:
    """A version read from a server or a snapshot file, checked before anything serves it.

    Args:
        data: The JSON of :func:`version_to_json`.
        name: The prompt asked for (None: any).
        number: The version asked for (None: any).

    Raises:
        ValueError: a field is missing or of the wrong type, the spec does not hash to the content hash (the
            content was altered, or is not what the hash names), or it is another prompt or version than asked.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a version must be an object, not {_kind(data)}")
    got_name, got_number, digest, spec = (data.get(key) for key in ("name", "number", "content_hash", "spec"))
    if not isinstance(got_name, str) or not got_name:
        raise ValueError(f"a version's name must be a non-empty string, not {_kind(got_name)}")
    if not isinstance(got_number, int) or isinstance(got_number, bool) or got_number < 1:
        raise ValueError(f"{got_name}: a version number must be a positive integer, not {got_number!r}")
    where = f"{got_name} v{got_number}"
    if not isinstance(digest, str) or not _HASH.match(digest):
        raise ValueError(f"{where}: the content hash must be 64 lowercase hex digits, not {_kind(digest)}")
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: the spec must be an object, not {_kind(spec)}")
    for key in ("message", "author", "created_at"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ValueError(f"{where}: {key} must be a string or null, not {_kind(data[key])}")
    if name is not None and got_name != name:
        raise ValueError(f"asked for a version of {name!r}, got one of {got_name!r}")
    if number is not None and got_number != number:
        raise ValueError(f"asked for {got_name} v{number}, got v{got_number}")
    if content_hash(spec) != digest:
        raise ValueError(f"{where}: the content does not match its content hash {digest[:12]}")
    return PromptVersion(
        name=got_name,
        number=got_number,
        content_hash=digest,
        spec=spec,
        message=data.get("message"),
        author=data.get("author"),
        created_at=time_in(data.get("created_at")),
    )


def target_from_json(data: Any) -> dict[int, int]:
    """A label's target read from a server or a snapshot file: ``{"3": 90, "4": 10}`` -> ``{3: 90, 4: 10}``,
    checked as a label move checks it (positive integer weights summing to 100 over positive versions).

    Raises:
        ValueError: saying what is wrong.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f'a target must be an object like {{"3": 100}}, not {_kind(data)}')
    target: dict[int, int] = {}
    for version, weight in data.items():
        if (
            not isinstance(version, str)
            or not version.isascii()
            or not version.isdigit()
            or version != str(int(version))
        ):
            raise ValueError(f'a target\'s versions must be numbers like "3", not {version!r}')
        if not _is_int(weight):
            raise ValueError(f"the weight of v{version} must be an integer, not {_kind(weight)}")
        target[int(version)] = weight
    try:
        return check_target(target)
    except LabelError as exc:
        raise ValueError(str(exc)) from None


def snapshot_from_json(data: Any, label: str) -> dict[str, tuple[dict[int, int], list[PromptVersion]]]:
    """A server's snapshot of ``label`` (``{"label": ..., "prompts": {name: {"target": ..., "versions": {"3":
    version}}}}``): for each prompt, its target and the versions it names, each checked as
    :func:`version_from_json` checks it.

    Raises:
        ValueError: the answer has another shape, is of another label, or a version is not the one its
            prompt and target name.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("prompts"), Mapping):
        raise ValueError(f"a snapshot must be an object with `prompts`, not {_kind(data)}")
    if data.get("label") != label:
        raise ValueError(f"asked for a snapshot of label {label!r}, got one of {data.get('label')!r}")
    prompts: dict[str, tuple[dict[int, int], list[PromptVersion]]] = {}
    for name, entry in data["prompts"].items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("versions"), Mapping):
            raise ValueError(f"{name}: a snapshot entry must be an object with `target` and `versions`")
        target = target_from_json(entry.get("target"))
        if set(entry["versions"]) != {str(number) for number in target}:
            raise ValueError(f"{name}: the snapshot's versions are not the ones its target names")
        versions = [version_from_json(item, name=name, number=int(key)) for key, item in entry["versions"].items()]
        prompts[name] = (target, versions)
    return prompts


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    """What a JSON value is, for an error message (the value itself may be huge)."""
    if value is None:
        return "null"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


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
        "requested_by": event.requested_by,
        "requested_at": time_out(event.requested_at),
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
        requested_by=data.get("requested_by"),
        requested_at=time_in(data.get("requested_at")),
    )


def request_to_json(request: LabelRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "prompt": request.prompt,
        "label": request.label,
        "kind": request.kind,
        "from_target": target_out(request.from_target),
        "after_event": request.after_event,
        "to_target": target_out(request.to_target),
        "reason": request.reason,
        "requested_by": request.requested_by,
        "requester": request.requester,
        "requested_at": time_out(request.requested_at),
        "evidence": request.evidence,
        "status": request.status,
        "decided_by": request.decided_by,
        "decided_at": time_out(request.decided_at),
        "decision": request.decision,
        "event_id": request.event_id,
    }


def request_from_json(data: Mapping[str, Any]) -> LabelRequest:
    return LabelRequest(
        id=data["id"],
        prompt=data["prompt"],
        label=data["label"],
        kind=data["kind"],
        from_target=target_in(data.get("from_target")),
        after_event=data.get("after_event"),
        to_target=target_in(data["to_target"]) or {},
        reason=data.get("reason"),
        requested_by=data.get("requested_by"),
        requester=data["requester"],
        requested_at=time_in(data["requested_at"]),  # type: ignore[arg-type]
        evidence=data.get("evidence"),
        status=data["status"],
        decided_by=data.get("decided_by"),
        decided_at=time_in(data.get("decided_at")),
        decision=data.get("decision"),
        event_id=data.get("event_id"),
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
        "runner": record.runner,
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
            "runner": data.get("runner"),
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


def gate_report_to_json(report: GateReport) -> dict[str, Any]:
    """The gate's verdict on a version for a label, explained: what ``promptlane gate --json`` prints and
    ``GET /api/v1/prompts/{name}/-/gate`` answers.

    ``{"version", "label", "gated", "verdict": {"passed", "run", "problems", "comparison"}, "parts"}``: the
    version and the runs as :func:`version_to_json` and :func:`run_to_json` write them; each part with its
    ``state`` (``current``, ``changed``, ``not covered``); the comparison with the version the label serves, each
    scenario with its tests and their ``description`` (a mean score there is none of is null).
    """
    verdict = report.verdict
    return {
        "version": version_to_json(report.version),
        "label": report.label,
        "gated": report.gated,
        "verdict": {
            "passed": verdict.passed,
            "run": None if verdict.run is None else run_to_json(verdict.run),
            "problems": list(verdict.problems),
            "comparison": None if verdict.comparison is None else _comparison_to_json(verdict.comparison),
        },
        "parts": [{"name": p.name, "now": p.now, "then": p.then, "state": p.state} for p in report.parts],
    }


def gate_report_from_json(data: Mapping[str, Any], *, name: str | None = None) -> GateReport:
    """The inverse of :func:`gate_report_to_json` (derived fields are ignored); ``name``: the prompt asked for.

    Raises:
        ValueError: a version is not what it should be (see :func:`version_from_json`). KeyError, TypeError:
            the document has another shape.
    """
    verdict = data["verdict"]
    comparison = verdict.get("comparison")
    return GateReport(
        version=version_from_json(data["version"], name=name),
        label=data["label"],
        gated=bool(data["gated"]),
        verdict=GateVerdict(
            passed=bool(verdict["passed"]),
            run=None if verdict.get("run") is None else run_from_json(verdict["run"]),
            problems=[str(problem) for problem in verdict.get("problems") or ()],
            comparison=None if comparison is None else _comparison_from_json(comparison, name),
        ),
        parts=[PartState(name=part["name"], now=part["now"], then=part.get("then")) for part in data["parts"]],
    )


def _comparison_to_json(comparison: Comparison) -> dict[str, Any]:
    return {
        "serving": version_to_json(comparison.serving),
        "baseline": None if comparison.baseline is None else run_to_json(comparison.baseline),
        "scenarios": [
            {
                "scenario": scenario.scenario,
                "file": scenario.file,
                "rate": asdict(scenario.rate),
                "score": None if scenario.score is None else _score_to_json(scenario.score),
                "regressed": scenario.regressed,
                "description": scenario.describe(),
            }
            for scenario in comparison.scenarios
        ],
    }


def _comparison_from_json(data: Mapping[str, Any], name: str | None) -> Comparison:
    from .no_regression import Comparison, ScenarioComparison
    from .regression import RateTest

    return Comparison(
        serving=version_from_json(data["serving"], name=name),
        baseline=None if data.get("baseline") is None else run_from_json(data["baseline"]),
        scenarios=[
            ScenarioComparison(
                scenario=item["scenario"],
                file=item["file"],
                rate=RateTest(**{field.name: item["rate"][field.name] for field in fields(RateTest)}),
                score=None if item.get("score") is None else _score_from_json(item["score"]),
            )
            for item in data["scenarios"]
        ],
    )


_MEANS = ("candidate_mean", "baseline_mean")


def _score_to_json(score: ScoreTest) -> dict[str, Any]:
    """A score test; the mean of no scores (nan) is null, as JSON has no nan."""
    data = asdict(score)
    for key in _MEANS:
        if math.isnan(data[key]):
            data[key] = None
    return data


def _score_from_json(data: Mapping[str, Any]) -> ScoreTest:
    from .regression import ScoreTest

    values = {field.name: data[field.name] for field in fields(ScoreTest)}
    for key in _MEANS:
        values[key] = math.nan if values[key] is None else float(values[key])
    return ScoreTest(**values)
