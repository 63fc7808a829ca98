"""``promptlane runs``: list recorded runs, show one (failures first), compare two."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ._app import app, argument, as_json, out, print_json, registry
from ._table import format_table, printable

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


@app.group("runs", no_args_is_help=True)
def runs_group() -> None:
    """Recorded eval runs."""


@runs_group.command("list")
@click.option("--prompt", help="Only this prompt's runs.")
@click.option("--version", type=click.IntRange(min=1), help="Only this version's runs.")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True, help="How many.")
@as_json
@click.pass_context
def list_runs(ctx: click.Context, prompt: str | None, version: int | None, limit: int, as_json: bool) -> None:
    """Recent runs, newest first."""
    from ..harness.reports import run_json
    from ._runs_view import short

    records = registry(ctx).store.list_runs(prompt, version=version, limit=limit)
    if as_json:
        print_json([run_json(record) for record in records])
        return
    if not records:
        out("no runs yet: promptlane eval")
        return
    rows = [
        (
            short(record.id),
            record.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            record.prompt,
            f"v{record.version}",
            record.label or "-",
            record.model,
            record.status,
            f"{record.passed}/{record.cases}",
            f"{record.pass_rate:.0%}",
        )
        for record in records
    ]
    header = ("run", "started", "prompt", "version", "label", "model", "status", "passed", "pass rate")
    out(format_table(header, rows), end="")


@runs_group.command("show")
@argument("run_id", metavar="RUN", help="A run id (or unique prefix), or NAME@VERSION.")
@click.option("--all", "show_all", is_flag=True, help="Also list the passing cases.")
@click.option("--limit", "-n", type=click.IntRange(min=1), help="Failing cases to print.")
@as_json
@click.pass_context
def show_run(ctx: click.Context, run_id: str, show_all: bool, limit: int | None, as_json: bool) -> None:
    """A run: its scenarios, then every failing case with the reasons, variables, tool calls and output.

    With --json: the run and all its cases, as in the file `promptlane eval --json FILE` writes.
    """
    from ._runs_view import print_cases, print_run

    store = registry(ctx).store
    record = _run(store, run_id)
    if as_json:
        import sys

        from ..harness.reports import stored_cases, write_run_json
        from ._table import printable_json

        # The stored text as it is into a pipe or a file (a run may hold 100,000 cases); on a terminal, what its
        # strings hide escaped, each piece being whole JSON strings.
        stream = _EscapingWriter(sys.stdout, printable_json) if sys.stdout.isatty() else sys.stdout
        write_run_json(stream, record, stored_cases(store, record.id))  # type: ignore[arg-type]
        sys.stdout.write("\n")
        return
    print_run(record)
    out()
    hidden = print_cases(store.run_cases(record.id, statuses=["failed", "error"]), limit=limit)
    if hidden:
        out(f"... and {hidden} more failing cases (--limit)")
    if show_all:
        print_cases(store.run_cases(record.id, statuses=["passed"]), limit=None, detail=False)


@runs_group.command("compare")
@argument("first", metavar="A", help="The earlier run: an id, or NAME@VERSION.")
@argument("second", metavar="B", help="The later run: an id, or NAME@VERSION.")
@as_json
@click.pass_context
def compare(ctx: click.Context, first: str, second: str, as_json: bool) -> None:
    """What changed from run A to run B: newly failing and newly passing cases, score moves."""
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
    out(
        f"{printable(before.prompt)} v{before.version} ({short(before.id)}, {before.pass_rate:.0%}) -> "
        f"v{after.version} ({short(after.id)}, {after.pass_rate:.0%})"
    )
    sections = [
        ("newly failing", result.newly_failing),
        ("newly passing", result.newly_passing),
        ("only in B", result.added),
        ("only in A", result.removed),
    ]
    for title, changes in sections:
        if not changes:
            continue
        out(f"{title}: {len(changes)}")
        for change in changes:
            why = f"  {printable(change.reason)}" if change.reason else ""
            out(f"  {printable(change.key)}  {change.before or '-'} -> {change.after or '-'}{why}")
    if result.score_changes:
        out(f"score changes: {len(result.score_changes)}")
        for change in result.score_changes:
            moves = ", ".join(
                f"{name} {'-' if a is None else f'{a:.2f}'} -> {'-' if b is None else f'{b:.2f}'}"
                for name, (a, b) in change.scores.items()
            )
            out(f"  {printable(change.key)}  {printable(moves)}")
    out(f"unchanged: {result.unchanged}")


class _EscapingWriter:
    """A stream that writes each piece through ``escape``."""

    def __init__(self, stream: Any, escape: Callable[[str], str]) -> None:
        self._stream, self._escape = stream, escape

    def write(self, text: str) -> int:
        return self._stream.write(self._escape(text))
