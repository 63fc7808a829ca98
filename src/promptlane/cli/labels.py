"""Commands that move labels: label, rollout, promote, rollback; and approve, reject and pending, for labels whose
moves wait for a second person. Every move is recorded in the audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._app import app, argument, as_json, out, print_json, registry
from ._table import printable

if TYPE_CHECKING:
    from ..registry import LabelEvent
    from ..registry.store import LabelRequest

__all__: list[str] = []

reason_option = click.option("--reason", "-r", help="Why; recorded in the audit log.")
force_option = click.option("--force", is_flag=True, help="Move a protected label without the gate (needs --reason).")


def _report(event: LabelEvent | LabelRequest) -> None:
    from ..registry import format_target
    from ..registry.store import LabelRequest

    if isinstance(event, LabelRequest):
        out(_requested(event))
        return
    before = format_target(event.from_target)
    line = f"{event.prompt}: {event.label} -> {format_target(event.to_target)} (was {before})"
    if event.gate == "passed":
        line += f"\n  gate: passed (run {event.evidence[:12] if event.evidence else '?'})"
    elif event.gate == "forced":
        line += f"\n  forced past the gate: {printable(event.reason or '')}"
    out(line)


@app.command()
@argument("name", help="The prompt.")
@argument("label_name", metavar="LABEL", help="The label (production, staging, ...).")
@argument("version", type=click.IntRange(min=1), help="The version number to point it at.")
@reason_option
@force_option
@click.pass_context
def label(ctx: click.Context, name: str, label_name: str, version: int, reason: str | None, force: bool) -> None:
    """Point a label at one version."""
    _report(registry(ctx).set_label(name, label_name, version, reason=reason, force=force))


@app.command()
@argument("name", help="The prompt.")
@argument("label_name", metavar="LABEL", help="The label.")
@argument("weights", metavar="VERSION=WEIGHT...", nargs=-1, required=True, help="Like 3=90 4=10 (sum 100).")
@reason_option
@force_option
@click.pass_context
def rollout(
    ctx: click.Context, name: str, label_name: str, weights: tuple[str, ...], reason: str | None, force: bool
) -> None:
    """Split a label between versions by weight; a targeting key always gets the same version."""
    from ..registry.labels import parse_weights

    _report(registry(ctx).set_rollout(name, label_name, parse_weights(list(weights)), reason=reason, force=force))


@app.command()
@argument("name", help="The prompt.")
@click.option("--to", required=True, help="The label to move (production, ...).")
@click.option("--version", type=click.IntRange(min=1), help="The version (default: the newest with a passing run).")
@reason_option
@click.pass_context
def promote(ctx: click.Context, name: str, to: str, version: int | None, reason: str | None) -> None:
    """Move a label to a version with a passing eval run: the newest such version, or the one given."""
    _report(registry(ctx).promote(name, to, version=version, reason=reason))


@app.command()
@argument("name", help="The prompt.")
@argument("label_name", metavar="LABEL", help="The label.")
@reason_option
@force_option
@click.pass_context
def rollback(ctx: click.Context, name: str, label_name: str, reason: str | None, force: bool) -> None:
    """Return a label to where it pointed before its last move (repeat to go further back)."""
    _report(registry(ctx).rollback(name, label_name, reason=reason, force=force))


def _requested(request: LabelRequest) -> str:
    from ..registry import format_target

    asked_by = printable(str(request.requested_by))
    line = (
        f"{request.prompt}: {request.label} -> {format_target(request.to_target)} waits for approval "
        f"(request {request.id}, asked by {asked_by}; was {format_target(request.from_target)})"
    )
    if request.evidence:
        line += f"\n  gate: passed (run {request.evidence[:12]}), checked again when approved"
    command = f"promptlane approve {request.prompt} {request.label}"
    return line + f"\n  someone other than {printable(request.requester)} approves it: {command}"


waiting_argument = argument("label_name", metavar="LABEL", help="The label whose move waits for approval.")
request_option = click.option(
    "--request", type=int, help="Only if the pending move is this request (as `pending` lists it)."
)


@app.command()
@argument("name", help="The prompt.")
@waiting_argument
@request_option
@reason_option
@click.pass_context
def approve(ctx: click.Context, name: str, label_name: str, request: int | None, reason: str | None) -> None:
    """Approve the move of a label that waits for a second person: it moves, through the gate again."""
    _report(registry(ctx).approve(name, label_name, request=request, reason=reason))


@app.command()
@argument("name", help="The prompt.")
@waiting_argument
@request_option
@reason_option
@click.pass_context
def reject(ctx: click.Context, name: str, label_name: str, request: int | None, reason: str | None) -> None:
    """Reject (or, as its requester, withdraw) the move of a label that waits for approval."""
    rejected = registry(ctx).reject(name, label_name, request=request, reason=reason)
    out(f"{rejected.prompt}: request {rejected.id} ({rejected.label}) rejected")


@app.command()
@argument("name", required=False, help="The prompt (default: every prompt).")
@as_json
@click.pass_context
def pending(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """List the label moves waiting for approval."""
    from ..registry.wire import request_to_json

    requests = registry(ctx).requests(name)
    if as_json:
        print_json([request_to_json(request) for request in requests])
        return
    if not requests:
        out("no moves waiting for approval")
    for request in requests:
        out(_requested(request))
