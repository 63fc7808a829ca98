"""How runs read on the terminal: a summary, the scenarios' tallies, and failures first with their reasons."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..registry.runs import CaseResult, RunRecord
from ._app import out
from ._table import format_table, printable

__all__ = ["print_case", "print_cases", "print_run", "short"]


def short(run_id: str) -> str:
    """A run id as shown: its first 12 digits (commands accept any unique prefix)."""
    return run_id[:12]


def _compact(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = printable(text.replace("\n", " "))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def print_run(record: RunRecord) -> None:
    """The run's headline and its scenarios' tallies."""
    seconds = (record.finished_at - record.started_at).total_seconds() if record.finished_at else 0.0
    headline = (
        f"{record.prompt} v{record.version}"
        + (f" ({record.label})" if record.label else "")
        + f"  {record.status}"
        + (f" ({record.reason})" if record.reason and record.reason != record.status else "")
        + f"  {record.passed}/{record.cases} passed ({record.pass_rate:.0%})"
        + (f", {record.errored} errors" if record.errored else "")
        + f"  {seconds:.2f}s"
        + (f"  ${record.cost_usd:.4f}" if record.cost_usd else "")
    )
    out(printable(headline))
    trace = f"  trace {record.trace_id}" if record.trace_id else ""
    out(printable(f"  run {short(record.id)}  model {record.model}{trace}"))
    rows = []
    for stats in record.scenarios:
        verdict = "ok" if stats.met else "below" if stats.cases else "not run"
        if stats.skipped and stats.cases:
            verdict = f"{stats.skipped} not run"
        rows.append(
            (
                stats.name,
                str(stats.cases),
                str(stats.passed),
                str(stats.failed),
                str(stats.errored),
                f"{stats.pass_rate:.0%}",
                f"{stats.threshold:.0%}",
                verdict,
            )
        )
    header = ("scenario", "cases", "passed", "failed", "errors", "pass rate", "needs", "")
    out(format_table(header, rows, right=(1, 2, 3, 4), indent="  "), end="")


def print_case(case: CaseResult, *, detail: bool = True) -> None:
    """A case: its status and place, what failed and why, and (with ``detail``) its variables, tool
    trajectory and output."""
    # The case id starts with its scenario's name.
    out(printable(f"{case.status.upper()} {case.case}  {case.location}"))
    if case.error is not None:
        out(f"    {printable(case.error.type)}: {printable(case.error.message)}")
    for evaluation in case.failures:
        why = evaluation.error or evaluation.reason or "failed"
        out(f"    x {printable(evaluation.name)}: {printable(why)}")
    if not detail:
        return
    if case.variables:
        out(f"    variables {_compact(case.variables)}")
    for call in case.tool_calls:
        answer = f"error: {printable(call.error)}" if call.error is not None else _compact(call.result, 100)
        out(f"    tool {printable(call.name)}({_compact(call.args, 100)}) -> {answer}")
    if case.output is not None:
        out(f"    output {_compact(case.output, 300)}")


def print_cases(cases: Iterable[CaseResult], *, limit: int | None, detail: bool = True) -> int:
    """Print cases (up to ``limit``); the number not printed."""
    hidden = 0
    for number, case in enumerate(cases):
        if limit is not None and number >= limit:
            hidden += 1
            continue
        print_case(case, detail=detail)
    return hidden
