"""Reports on recorded runs: JSON and JUnit files, and the comparison of two runs.

Reports on a run copy its cases from the store a page at a time, as the store keeps them (the JSON text each
case was encoded to once, when it was saved), so a report on a run of 100,000 cases stays in bounded memory and
never decodes a case to encode it again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO
from xml.sax.saxutils import escape, quoteattr

from ..registry.runs import CaseResult, RunRecord, case_text
from ..registry.wire import time_out

__all__ = [
    "CaseChange",
    "Comparison",
    "compare_runs",
    "comparison_json",
    "run_json",
    "stored_cases",
    "write_json",
    "write_junit",
    "write_run_json",
]


def run_json(record: RunRecord) -> dict[str, Any]:
    """A run as JSON data (without its cases)."""
    data = asdict(record)
    data.update(
        counts={"cases": record.cases, "passed": record.passed, "failed": record.failed, "errored": record.errored},
        pass_rate=record.pass_rate,
        started_at=time_out(record.started_at),
        finished_at=time_out(record.finished_at),
    )
    data["scenarios"] = [
        {**asdict(stats), "pass_rate": stats.pass_rate, "met": stats.met} for stats in record.scenarios
    ]
    return data


def stored_cases(store: Any, run_id: str) -> Iterator[str]:
    """A run's cases in the order they finished, each the JSON text of ``CaseResult.to_json``: as stored, from a
    store that keeps them (``case_texts``: SQLite, PostgreSQL); from a remote registry, whose client decodes
    them, encoded again as a store does."""
    texts = getattr(store, "case_texts", None)
    if texts is not None:
        return texts(run_id)
    return (case_text(case) for case in store.run_cases(run_id))


def write_run_json(stream: TextIO, record: RunRecord, cases: Iterable[str]) -> None:
    """Write ``{...run, "cases": [...]}`` to ``stream``, each case's JSON text (:func:`stored_cases`) copied as it
    comes (a run may hold 100,000)."""
    head = json.dumps(run_json(record), ensure_ascii=False, default=str)
    stream.write(head[:-1] + ', "cases": [')
    separator = ""
    for text in cases:
        stream.write(separator)
        stream.write(text)
        separator = ","
    stream.write("]}")


def write_json(path: Path, runs: Iterable[tuple[RunRecord, Iterable[str]]]) -> None:
    """Write ``{"runs": [{...run, "cases": [...]}]}``, streaming each run's case texts."""
    with path.open("w", encoding="utf-8") as file:
        file.write('{"runs": [')
        for index, (record, cases) in enumerate(runs):
            file.write("," if index else "")
            write_run_json(file, record, cases)
        file.write("]}\n")


_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 cannot hold, not even as character references."""


def _xml_safe(text: str) -> str:
    """``text`` with the characters XML cannot hold written as escapes (``\\x1b``), so the file stays XML."""
    return _NOT_XML.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _attribute(text: str) -> str:
    return quoteattr(_xml_safe(text))


def _text(text: str) -> str:
    return escape(_xml_safe(text), {"\r": "&#13;"})  # a bare CR would read back as a line feed


def _failure_text(case: CaseResult) -> str:
    lines = [f"{e.name}: {e.error or e.reason or 'failed'}" for e in case.failures]
    if case.error is not None:
        lines.insert(0, f"{case.error.type}: {case.error.message}")
    lines.append(f"output: {json.dumps(case.output, ensure_ascii=False, default=str)[:2000]}")
    return "\n".join(lines)


def write_junit(path: Path, runs: Iterable[tuple[RunRecord, Iterable[str]]]) -> None:
    """Write JUnit XML: a test suite per run, a test case per case (``classname`` is prompt and scenario), each
    written as its JSON text (:func:`stored_cases`) is read, so no run's cases are held at once."""
    with path.open("w", encoding="utf-8") as file:
        file.write('<?xml version="1.0" encoding="utf-8"?>\n<testsuites>\n')
        for record, cases in runs:
            name = f"{record.prompt}@{record.version}"
            seconds = (record.finished_at - record.started_at).total_seconds() if record.finished_at else 0.0
            file.write(
                f'  <testsuite name={_attribute(name)} tests="{record.cases}" failures="{record.failed}" '
                f'errors="{record.errored}" time="{seconds:.3f}">\n'
                f'    <properties><property name="promptlane.run.id" value={_attribute(record.id)}/>'
                f'<property name="model" value={_attribute(record.model)}/></properties>\n'
            )
            for text in cases:
                _write_testcase(file, record, json.loads(text))
            file.write("  </testsuite>\n")
        file.write("</testsuites>\n")


def _write_testcase(file: TextIO, record: RunRecord, data: dict[str, Any]) -> None:
    """One case, from its stored JSON data: a passing case needs four of its fields; a failing one is read whole,
    for its reasons."""
    classname = f"{record.prompt}.{data['scenario']}"
    attributes = (
        f"classname={_attribute(classname)} name={_attribute(data['case'])} "
        f'time="{data["latency_ms"] / 1000:.3f}" file={_attribute(data["file"])}'
    )
    if data["status"] == "passed":
        file.write(f"    <testcase {attributes}/>\n")
        return
    case = CaseResult.from_json(data)
    tag = "error" if case.status == "error" else "failure"
    first = case.error.message if case.error else (case.failures[0].reason or "failed") if case.failures else ""
    file.write(
        f"    <testcase {attributes}>\n      <{tag} message={_attribute(first[:500])}>"
        f"{_text(_failure_text(case))}</{tag}>\n    </testcase>\n"
    )


@dataclass(kw_only=True)
class CaseChange:
    """One case in two runs."""

    key: str
    """``scenario::case``."""
    before: str | None
    """Its status in the first run (None: not in it)."""
    after: str | None
    """Its status in the second run."""
    scores: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    """Scored expectations whose score changed: name -> (before, after)."""
    reason: str | None = None
    """Why it fails now, for newly failing cases."""


@dataclass(kw_only=True)
class Comparison:
    """How a second run differs from a first, case by case."""

    before: RunRecord
    """The first run."""
    after: RunRecord
    """The second run."""
    newly_failing: list[CaseChange] = field(default_factory=list)
    """Passed before, fail or error now."""
    newly_passing: list[CaseChange] = field(default_factory=list)
    """Failed or errored before, pass now."""
    unchanged: int = 0
    """Cases with the same status in both."""
    added: list[CaseChange] = field(default_factory=list)
    """Cases only in the second run."""
    removed: list[CaseChange] = field(default_factory=list)
    """Cases only in the first run."""
    score_changes: list[CaseChange] = field(default_factory=list)
    """Cases whose scores moved (judge, scored python checks)."""


def _summary(case: CaseResult) -> tuple[str, dict[str, float | None], str | None]:
    scores: dict[str, float | None] = {e.name: e.score for e in case.evaluations if e.score is not None}
    reason = None
    if case.status != "passed":
        first = case.failures[0] if case.failures else None
        reason = case.error.message if case.error else (first.error or first.reason) if first else None
    return case.status, scores, reason


def compare_runs(
    before: RunRecord, after: RunRecord, before_cases: Iterable[CaseResult], after_cases: Iterable[CaseResult]
) -> Comparison:
    """Compare two runs (of one prompt, across versions or models): cases matched by scenario and case id."""
    comparison = Comparison(before=before, after=after)
    earlier = {f"{c.scenario}::{c.case}": _summary(c) for c in before_cases}
    for case in after_cases:
        key = f"{case.scenario}::{case.case}"
        status, scores, reason = _summary(case)
        previous = earlier.pop(key, None)
        if previous is None:
            comparison.added.append(CaseChange(key=key, before=None, after=status, reason=reason))
            continue
        old_status, old_scores, _ = previous
        change = CaseChange(key=key, before=old_status, after=status, reason=reason)
        for name in sorted(set(scores) | set(old_scores)):
            if scores.get(name) != old_scores.get(name):
                change.scores[name] = (old_scores.get(name), scores.get(name))
        if old_status == "passed" and status != "passed":
            comparison.newly_failing.append(change)
        elif old_status != "passed" and status == "passed":
            comparison.newly_passing.append(change)
        else:
            comparison.unchanged += 1
        if change.scores:
            comparison.score_changes.append(change)
    comparison.removed = [CaseChange(key=key, before=value[0], after=None) for key, value in earlier.items()]
    return comparison


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """A comparison as JSON data: both runs (without cases) and the case changes."""

    def changes(items: Iterable[CaseChange]) -> list[dict[str, Any]]:
        return [
            {
                "key": change.key,
                "before": change.before,
                "after": change.after,
                "reason": change.reason,
                "scores": {name: list(pair) for name, pair in change.scores.items()},
            }
            for change in items
        ]

    return {
        "before": run_json(comparison.before),
        "after": run_json(comparison.after),
        "newly_failing": changes(comparison.newly_failing),
        "newly_passing": changes(comparison.newly_passing),
        "added": changes(comparison.added),
        "removed": changes(comparison.removed),
        "score_changes": changes(comparison.score_changes),
        "unchanged": comparison.unchanged,
    }
