"""``promptlane runs``: list recorded runs, show one (failures first), compare two."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ._app import AsJson, app, out, print_json, registry

__all__: list[str] = []


def _run(store: Any, ref: str) -> Any:
    """A run by id prefix, or ``NAME@VERSION``: that version's newest run."""
    if "@" in ref:
        from ..errors import NotFoundError
        from ..registry import parse_ref

        name, version, _ = parse_ref(ref)
        runs = store.list_runs(name, version=version, limit=1)
        if not runs:
            raise NotFoundError(f"no runs of {ref}")
        return runs[0]
    return store.get_run(ref)


runs_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Recorded eval runs.")
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
def list_runs(
    ctx: typer.Context,
    prompt: Annotated[str | None, typer.Option("--prompt", help="Only this prompt's runs.")] = None,
    version: Annotated[int | None, typer.Option("--version", help="Only this version's runs.", min=1)] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many.", min=1)] = 20,
    as_json: AsJson = False,
) -> None:
    """Recent runs, newest first."""
    from rich.markup import escape
    from rich.table import Table

    from ..harness.reports import run_json
    from ._runs_view import short

    records = registry(ctx).store.list_runs(prompt, version=version, limit=limit)
    if as_json:
        print_json([run_json(record) for record in records])
        return
    if not records:
        out.print("no runs yet: promptlane eval")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("run", "started", "prompt", "version", "label", "model", "status", "passed", "pass rate"):
        table.add_column(column)
    for record in records:
        table.add_row(
            short(record.id),
            record.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            escape(record.prompt),
            f"v{record.version}",
            escape(record.label or "-"),
            escape(record.model),
            record.status,
            f"{record.passed}/{record.cases}",
            f"{record.pass_rate:.0%}",
        )
    out.print(table)


@runs_app.command("show")
def show_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="A run id (or unique prefix), or NAME@VERSION.")],
    show_all: Annotated[bool, typer.Option("--all", help="Also list the passing cases.")] = False,
    limit: Annotated[int | None, typer.Option("--limit", "-n", help="Failing cases to print.", min=1)] = None,
    as_json: AsJson = False,
) -> None:
    """A run: its scenarios, then every failing case with the reasons, variables, tool calls and output.

    With --json: the run and all its cases, as in the file `promptlane eval --json FILE` writes.
    """
    from ._runs_view import print_cases, print_run

    store = registry(ctx).store
    record = _run(store, run_id)
    if as_json:
        import sys

        from ..harness.reports import write_run_json

        write_run_json(sys.stdout, record, store.run_cases(record.id))
        sys.stdout.write("\n")
        return
    print_run(record)
    out.print()
    hidden = print_cases(store.run_cases(record.id, statuses=["failed", "error"]), limit=limit)
    if hidden:
        out.print(f"... and {hidden} more failing cases (--limit)", style="dim")
    if show_all:
        print_cases(store.run_cases(record.id, statuses=["passed"]), limit=None, detail=False)


@runs_app.command("compare")
def compare(
    ctx: typer.Context,
    first: Annotated[str, typer.Argument(metavar="A", help="The earlier run: an id, or NAME@VERSION.")],
    second: Annotated[str, typer.Argument(metavar="B", help="The later run: an id, or NAME@VERSION.")],
    as_json: AsJson = False,
) -> None:
    """What changed from run A to run B: newly failing and newly passing cases, score moves."""
    from rich.markup import escape

    from ..errors import RegistryError
    from ..harness.reports import compare_runs, comparison_json
    from ._runs_view import short

    store = registry(ctx).store
    before, after = _run(store, first), _run(store, second)
    if before.prompt != after.prompt:
        raise RegistryError(f"runs of different prompts ({before.prompt}, {after.prompt}) do not compare")
    result = compare_runs(before, after, store.run_cases(before.id), store.run_cases(after.id))
    if as_json:
        print_json(comparison_json(result))
        return
    out.print(
        f"[bold]{escape(before.prompt)}[/bold] v{before.version} ({short(before.id)}, {before.pass_rate:.0%}) -> "
        f"v{after.version} ({short(after.id)}, {after.pass_rate:.0%})"
    )
    sections = [
        ("newly failing", result.newly_failing, "red"),
        ("newly passing", result.newly_passing, "green"),
        ("only in B", result.added, "cyan"),
        ("only in A", result.removed, "cyan"),
    ]
    for title, changes, style in sections:
        if not changes:
            continue
        out.print(f"[{style}]{title}: {len(changes)}[/{style}]")
        for change in changes:
            why = f"  {escape(change.reason)}" if change.reason else ""
            out.print(f"  {escape(change.key)}  {change.before or '-'} -> {change.after or '-'}{why}")
    if result.score_changes:
        out.print(f"score changes: {len(result.score_changes)}")
        for change in result.score_changes:
            moves = ", ".join(
                f"{name} {'-' if a is None else f'{a:.2f}'} -> {'-' if b is None else f'{b:.2f}'}"
                for name, (a, b) in change.scores.items()
            )
            out.print(f"  {escape(change.key)}  {escape(moves)}")
    out.print(f"unchanged: {result.unchanged}")
