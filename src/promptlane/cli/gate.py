"""``promptlane gate``: the gate's verdict on a version for a label, explained.

Exit status: 0 when the gate is open, 1 when it is closed (as a failed check), 2 for a usage or configuration error.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import click

from ._app import EXIT_FAILED, app, argument, as_json, out, print_json, registry
from ._table import format_table, printable

if TYPE_CHECKING:
    from ..registry.gate import GateReport
    from ..registry.runs import RunRecord

__all__: list[str] = []

_HASH = re.compile(r"[0-9a-f]{64}")


@app.command()
@argument("name", help="The prompt.")
@click.option("--version", type=click.IntRange(min=1), help="The version (default: the newest).")
@click.option("--label", help="The label (default: the first protected one, else production).")
@as_json
@click.pass_context
def gate(ctx: click.Context, name: str, version: int | None, label: str | None, as_json: bool) -> None:
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
        raise click.exceptions.Exit(EXIT_FAILED)


def _print_report(report: GateReport) -> None:
    """The report for people: the verdict, the run, the parts, the scenarios, and what would open the gate."""
    verdict, version = report.verdict, report.version
    state = "open" if verdict.passed else "closed"
    note = "" if report.gated else f" ({report.label} is not protected: only `promote` goes through the gate)"
    out(printable(f"{version.ref} -> {report.label}: {state}{note}"))
    run = verdict.run
    if run is None:
        out("  evidence: no run")
    else:
        # A run that qualified is the evidence even where the comparison refuses the move.
        title = "evidence" if verdict.passed or verdict.comparison is not None else "newest run looked at"
        out(f"  {title}: {_describe_run(run)}")
    _print_parts(report)
    if run is not None:
        _print_scenarios(report, run)
    if verdict.passed:
        out(printable(f"The gate is open: {version.ref} may take {report.label}."))
        return
    out("To open the gate:")
    for problem in verdict.problems:
        out(f"  - {printable(problem)}")


def _describe_run(run: RunRecord) -> str:
    """``run 3f2a9c1b0d4e passed, 2026-11-27 22:41 UTC, model openai:gpt-4o, by alice (token ci)``, escaped."""
    by = run.created_by or ""
    if run.runner:
        by = f"{by} (token {run.runner})" if by else f"token {run.runner}"
    when = run.started_at.strftime("%Y-%m-%d %H:%M UTC")
    return printable(f"run {run.id[:12]} {run.status}, {when}, model {run.model}, by {by or '-'}")


def _print_parts(report: GateReport) -> None:
    if not report.parts:
        return
    rows = [
        (part.name, part.state, "-" if part.then is None else _short(part.then), _short(part.now))
        for part in report.parts
    ]
    out(format_table(("part", "state", "then", "now"), rows, indent="  "), end="")


def _print_scenarios(report: GateReport, run: RunRecord) -> None:
    if run.scenarios:
        rows = [
            (
                stats.name,
                stats.file,
                f"{stats.passed}/{stats.cases}",
                f"{stats.pass_rate:.0%}",
                f"{stats.threshold:.0%}",
                "ok" if stats.met else "below" if stats.cases else "not run",
            )
            for stats in run.scenarios
        ]
        header = ("scenario", "file", "passed", "pass rate", "needs", "")
        out(format_table(header, rows, right=(2, 3, 4), indent="  "), end="")
    comparison = report.verdict.comparison
    if comparison is None:
        return
    serving = printable(f"against {comparison.serving.ref}, which {report.label} serves")
    if comparison.baseline is None:
        out(f"{serving}: it has no complete run on the current inputs to compare with")
        return
    out(f"{serving} (run {comparison.baseline.id[:12]}):")
    for scenario in comparison.scenarios:
        flag = "  regressed" if scenario.regressed else ""
        out(f"  {printable(scenario.describe())}{flag}")


def _short(value: str) -> str:
    """A content hash as shown (its first 12 digits); other values (a model, ``missing``) whole."""
    return value[:12] if _HASH.fullmatch(value) else value
