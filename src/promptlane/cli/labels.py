"""Commands that move labels: label, rollout, promote, rollback; and approve, reject and pending, for labels whose
moves wait for a second person. Every move is recorded in the audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ._app import AsJson, app, out, print_json, registry

if TYPE_CHECKING:
    from ..registry import LabelEvent
    from ..registry.store import LabelRequest

__all__: list[str] = []

Reason = Annotated[str | None, typer.Option("--reason", "-r", help="Why; recorded in the audit log.")]
Force = Annotated[bool, typer.Option("--force", help="Move a protected label without the gate (needs --reason).")]


def _report(event: LabelEvent | LabelRequest) -> None:
    from ..registry import format_target
    from ..registry.store import LabelRequest

    if isinstance(event, LabelRequest):
        out.print(_requested(event), markup=False)
        return
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


def _requested(request: LabelRequest) -> str:
    from ..registry import format_target

    line = (
        f"{request.prompt}: {request.label} -> {format_target(request.to_target)} waits for approval "
        f"(request {request.id}, asked by {request.requested_by}; was {format_target(request.from_target)})"
    )
    if request.evidence:
        line += f"\n  gate: passed (run {request.evidence[:12]}), checked again when approved"
    command = f"promptlane approve {request.prompt} {request.label}"
    return line + f"\n  someone other than {request.requester} approves it: {command}"


Waiting = Annotated[str, typer.Argument(metavar="LABEL", help="The label whose move waits for approval.")]
Request = Annotated[
    int | None, typer.Option("--request", help="Only if the pending move is this request (as `pending` lists it).")
]


@app.command()
def approve(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt.")],
    label_name: Waiting,
    request: Request = None,
    reason: Reason = None,
) -> None:
    """Approve the move of a label that waits for a second person: it moves, through the gate again."""
    _report(registry(ctx).approve(name, label_name, request=request, reason=reason))


@app.command()
def reject(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt.")],
    label_name: Waiting,
    request: Request = None,
    reason: Reason = None,
) -> None:
    """Reject (or, as its requester, withdraw) the move of a label that waits for approval."""
    rejected = registry(ctx).reject(name, label_name, request=request, reason=reason)
    out.print(f"{rejected.prompt}: request {rejected.id} ({rejected.label}) rejected", markup=False)


@app.command()
def pending(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="The prompt (default: every prompt).")] = None,
    as_json: AsJson = False,
) -> None:
    """List the label moves waiting for approval."""
    from ..registry.wire import request_to_json

    requests = registry(ctx).requests(name)
    if as_json:
        print_json([request_to_json(request) for request in requests])
        return
    if not requests:
        out.print("no moves waiting for approval")
    for request in requests:
        out.print(_requested(request), markup=False)
