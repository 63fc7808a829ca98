"""How runs read on the terminal: a summary, the scenarios' tallies, and failures first with their reasons."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich.markup import escape
from rich.table import Table

from ..registry.runs import CaseResult, RunRecord
from ._app import out

__all__ = ["print_case", "print_run", "short"]

_STATUS_STYLE = {"passed": "green", "failed": "red", "error": "magenta", "stopped": "yellow", "interrupted": "yellow"}


def short(run_id: str) -> str:
    """A run id as shown: its first 12 digits (commands accept any unique prefix)."""
    return run_id[:12]


def _status(status: str, text: str | None = None) -> str:
    style = _STATUS_STYLE.get(status, "white")
    return f"[{style}]{text or status}[/{style}]"


def _compact(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def print_run(record: RunRecord) -> None:
    """The run's headline and its scenarios' tallies."""
    seconds = (record.finished_at - record.started_at).total_seconds() if record.finished_at else 0.0
    headline = (
        f"[bold]{escape(record.prompt)}[/bold] v{record.version}"
        + (f" ({escape(record.label)})" if record.label else "")
        + f"  {_status(record.status)}"
        + (f" ({escape(record.reason)})" if record.reason and record.reason != record.status else "")
        + f"  {record.passed}/{record.cases} passed ({record.pass_rate:.0%})"
        + (f", {record.errored} errors" if record.errored else "")
        + f"  {seconds:.2f}s"
        + (f"  ${record.cost_usd:.4f}" if record.cost_usd else "")
    )
    out.print(headline)
    out.print(
        f"  run {short(record.id)}  model {escape(record.model)}"
        + (f"  trace {record.trace_id}" if record.trace_id else ""),
        style="dim",
    )
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("  scenario", "cases", "passed", "failed", "errors", "pass rate", "needs", ""):
        table.add_column(column, justify="right" if column in ("cases", "passed", "failed", "errors") else "left")
    for stats in record.scenarios:
        verdict = (
            "[green]ok[/green]" if stats.met else "[red]below[/red]" if stats.cases else "[yellow]not run[/yellow]"
        )
        if stats.skipped and stats.cases:
            verdict = f"[yellow]{stats.skipped} not run[/yellow]"
        table.add_row(
            f"  {escape(stats.name)}",
            str(stats.cases),
            str(stats.passed),
            str(stats.failed),
            str(stats.errored),
            f"{stats.pass_rate:.0%}",
            f"{stats.threshold:.0%}",
            verdict,
        )
    out.print(table)


def print_case(case: CaseResult, *, detail: bool = True) -> None:
    """A case: its status and place, what failed and why, and (with ``detail``) its variables, tool
    trajectory and output."""
    title = f"[bold]{escape(case.case)}[/bold]"  # the case id starts with its scenario's name
    out.print(f"{_status(case.status, case.status.upper())} {title}  [dim]{escape(case.location)}[/dim]")
    if case.error is not None:
        out.print(f"    {escape(case.error.type)}: {escape(case.error.message)}")
    for evaluation in case.failures:
        why = evaluation.error or evaluation.reason or "failed"
        out.print(f"    [red]x[/red] {escape(evaluation.name)}: {escape(why)}")
    if not detail:
        return
    if case.variables:
        out.print(f"    [dim]variables[/dim] {escape(_compact(case.variables))}")
    for call in case.tool_calls:
        answer = f"error: {call.error}" if call.error is not None else _compact(call.result, 100)
        out.print(f"    [dim]tool[/dim] {escape(call.name)}({escape(_compact(call.args, 100))}) -> {escape(answer)}")
    if case.output is not None:
        out.print(f"    [dim]output[/dim] {escape(_compact(case.output, 300))}")


def print_cases(cases: Iterable[CaseResult], *, limit: int | None, detail: bool = True) -> int:
    """Print cases (up to ``limit``); the number not printed."""
    hidden = 0
    for number, case in enumerate(cases):
        if limit is not None and number >= limit:
            hidden += 1
            continue
        print_case(case, detail=detail)
    return hidden
