"""Commands that move labels: label, rollout, rollback. Every move is recorded in the audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ._app import app, out, registry

if TYPE_CHECKING:
    from ..registry import LabelEvent

__all__: list[str] = []

Reason = Annotated[str | None, typer.Option("--reason", "-r", help="Why; recorded in the audit log.")]
Force = Annotated[bool, typer.Option("--force", help="Move a protected label without the gate (needs --reason).")]


def _report(event: LabelEvent) -> None:
    from ..registry import format_target

    before = format_target(event.from_target)
    line = f"{event.prompt}: {event.label} -> {format_target(event.to_target)} (was {before})"
    if event.gate == "passed":
        line += f"\n  gate: passed (run {event.evidence[:12] if event.evidence else '?'})"
    elif event.gate == "forced":
        line += f"\n  forced past the gate: {event.reason}"
    out.print(line, markup=False)


@app.command()
def label(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt.")],
    label_name: Annotated[str, typer.Argument(metavar="LABEL", help="The label (production, staging, ...).")],
    version: Annotated[int, typer.Argument(help="The version number to point it at.", min=1)],
    reason: Reason = None,
    force: Force = False,
) -> None:
    """Point a label at one version."""
    _report(registry(ctx).set_label(name, label_name, version, reason=reason, force=force))


@app.command()
def rollout(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt.")],
    label_name: Annotated[str, typer.Argument(metavar="LABEL", help="The label.")],
    weights: Annotated[list[str], typer.Argument(metavar="VERSION=WEIGHT...", help="Like 3=90 4=10 (sum 100).")],
    reason: Reason = None,
    force: Force = False,
) -> None:
    """Split a label between versions by weight; a targeting key always gets the same version."""
    from ..registry.labels import parse_weights

    _report(registry(ctx).set_rollout(name, label_name, parse_weights(weights), reason=reason, force=force))


@app.command()
def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt.")],
    to: Annotated[str, typer.Option("--to", help="The label to move (production, ...).")],
    version: Annotated[
        int | None, typer.Option("--version", help="The version (default: the newest with a passing run).", min=1)
    ] = None,
    reason: Reason = None,
) -> None:
    """Move a label to a version with a passing eval run: the newest such version, or the one given."""
    _report(registry(ctx).promote(name, to, version=version, reason=reason))


@app.command()
def rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt.")],
    label_name: Annotated[str, typer.Argument(metavar="LABEL", help="The label.")],
    reason: Reason = None,
    force: Force = False,
) -> None:
    """Return a label to where it pointed before its last move (repeat to go further back)."""
    _report(registry(ctx).rollback(name, label_name, reason=reason, force=force))
