"""``promptlane gate``: the gate's verdict on a version for a label, explained.

Exit status: 0 when the gate is open, 1 when it is closed (as a failed check), 2 for a usage or configuration error.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

import typer

from ._app import EXIT_FAILED, AsJson, app, out, print_json, registry

if TYPE_CHECKING:
    from ..registry.gate import GateReport
    from ..registry.runs import RunRecord

__all__: list[str] = []

_HASH = re.compile(r"[0-9a-f]{64}")
_STATE_STYLE = {"current": "green", "changed": "red", "not covered": "yellow"}


@app.command()
def gate(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt.")],
    version: Annotated[int | None, typer.Option("--version", help="The version (default: the newest).", min=1)] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="The label (default: the first protected one, else production).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Explain the gate's verdict on a version for a label: the evidence run, each part of its fingerprint
    (current or changed), each scenario's pass rate (and the serving version's, with the test), and what would
    open the gate. Exits 0 when it is open, 1 when it is closed."""
    report = registry(ctx).gate_report(name, version=version, label=label)
    if as_json:
        from ..registry.wire import gate_report_to_json

        print_json(gate_report_to_json(report))
    else:
        _print_report(report)
    if not report.verdict.passed:
        raise typer.Exit(EXIT_FAILED)


def _print_report(report: GateReport) -> None:
    """The report for people: the verdict, the run, the parts, the scenarios, and what would open the gate."""
    from rich.markup import escape

    verdict, version = report.verdict, report.version
    state = "[green]open[/green]" if verdict.passed else "[red]closed[/red]"
    note = "" if report.gated else f" ({escape(report.label)} is not protected: only `promote` goes through the gate)"
    out.print(f"[bold]{escape(version.ref)}[/bold] -> {escape(report.label)}: {state}{note}")
    run = verdict.run
    if run is None:
        out.print("  evidence: no run")
    else:
        # A run that qualified is the evidence even where the comparison refuses the move.
        title = "evidence" if verdict.passed or verdict.comparison is not None else "newest run looked at"
        out.print(f"  {title}: {_describe_run(run)}")
    _print_parts(report)
    if run is not None:
        _print_scenarios(report, run)
    if verdict.passed:
        out.print(f"The gate is open: {version.ref} may take {report.label}.", markup=False)
        return
    out.print("To open the gate:")
    for problem in verdict.problems:
        out.print(f"  - {problem}", markup=False)


def _describe_run(run: RunRecord) -> str:
    """``run 3f2a9c1b0d4e passed, 2026-11-27 22:41 UTC, model openai:gpt-4o, by alice (token ci)``, escaped."""
    from rich.markup import escape

    by = run.created_by or ""
    if run.runner:
        by = f"{by} (token {run.runner})" if by else f"token {run.runner}"
    status = f"[{'green' if run.status == 'passed' else 'red'}]{run.status}[/]"
    when = run.started_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"run {run.id[:12]} {status}, {when}, model {escape(run.model)}, by {escape(by or '-')}"


def _print_parts(report: GateReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    if not report.parts:
        return
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("  part", "state", "then", "now"):
        table.add_column(column)
    for part in report.parts:
        style = _STATE_STYLE[part.state]
        then = "-" if part.then is None else _short(part.then)
        table.add_row(f"  {escape(part.name)}", f"[{style}]{part.state}[/]", escape(then), escape(_short(part.now)))
    out.print(table)


def _print_scenarios(report: GateReport, run: RunRecord) -> None:
    from rich.markup import escape
    from rich.table import Table

    if run.scenarios:
        table = Table(box=None, pad_edge=False, show_edge=False)
        for column in ("  scenario", "file", "passed", "pass rate", "needs", ""):
            table.add_column(column, justify="right" if column in ("passed", "pass rate", "needs") else "left")
        for stats in run.scenarios:
            met = "[green]ok[/]" if stats.met else "[red]below[/]" if stats.cases else "[yellow]not run[/]"
            table.add_row(
                f"  {escape(stats.name)}",
                escape(stats.file),
                f"{stats.passed}/{stats.cases}",
                f"{stats.pass_rate:.0%}",
                f"{stats.threshold:.0%}",
                met,
            )
        out.print(table)
    comparison = report.verdict.comparison
    if comparison is None:
        return
    serving = f"against {escape(comparison.serving.ref)}, which {escape(report.label)} serves"
    if comparison.baseline is None:
        out.print(f"{serving}: it has no complete run on the current inputs to compare with")
        return
    out.print(f"{serving} (run {comparison.baseline.id[:12]}):")
    for scenario in comparison.scenarios:
        flag = "  [red]regressed[/]" if scenario.regressed else ""
        out.print(f"  {escape(scenario.describe())}{flag}")


def _short(value: str) -> str:
    """A content hash as shown (its first 12 digits); other values (a model, ``missing``) whole."""
    return value[:12] if _HASH.fullmatch(value) else value
