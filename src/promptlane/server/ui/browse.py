"""Pages for reading prompts and moving labels: the prompt list, a prompt (labels, the moves waiting for approval,
the gate's verdict for each protected label explained, gate verdicts, versions, history), the side-by-side diff,
and label moves, rollouts and rollbacks through the gate, and approving or rejecting a move that waits for a
second person (``require_approval``).

The page judges by the server's requirements, as the API does (:mod:`promptlane.server.gate`), and so do the moves
made from it: what the page says of the gate is what a move from it meets."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...errors import LabelError, NotFoundError, PromptlaneError
from ...registry.gate import GateError, GateReport
from ...registry.labels import check_label_name, parse_weights
from ...registry.store import LabelEvent, LabelRequest, format_target
from ...spec_diff import diff_specs
from .._http import status_for
from ..gate import server_requirements
from ..state import state
from ._page import Page, page, redirect, render

__all__ = ["prompt_url"]


def prompt_url(name: str, sub: str = "", **query: object) -> str:
    url = f"/prompts/{quote(name, safe='/')}" + (f"/-/{sub}" if sub else "")
    given = {key: value for key, value in query.items() if value is not None}
    return f"{url}?{urlencode(given)}" if given else url


@page("read")
async def prompts(view: Page) -> Response:
    search = (view.request.query_params.get("q") or "").strip()
    summaries = await run_in_threadpool(view.registry.list_prompts)
    if search:
        needle = search.lower()
        summaries = [s for s in summaries if needle in s.name.lower() or needle in (s.description or "").lower()]
    folders: dict[str, list[object]] = defaultdict(list)
    for summary in summaries:
        folder, _, _ = summary.name.rpartition("/")
        folders[folder].append(summary)
    return render(view, "prompts.html", folders=dict(sorted(folders.items())), search=search, count=len(summaries))


NOTICES = {
    "saved": "saved as v{version}",
    "unchanged": "identical to v{version}: nothing new to save",
    "moved": "{label} now points at {target}",
    "rolled-back": "{label} rolled back to {target}",
    "requested": (
        "{label} has not moved: request {request} ({move}, asked by {requester}) waits for approval. {approvers}"
    ),
    "approved": "request {request} approved: {label} now points at {target}",
    "rejected": "request {request} rejected: {label} stays at {target}",
}
"""The notices a page shows after a change, by the key in its address (``?notice=saved&version=3``). Only
these texts are shown, never text from the address: a link cannot make the page say something else. What is
filled in is a version the prompt has, a label it has and where that label points now, or a request of the label
in the state the notice says (all from the registry)."""

APPROVERS = {
    True: "Anyone but {requester} whose token has the promote scope may approve or reject it below.",
    False: "Someone other than {requester} approves it: promptlane approve {name} {label} --request {request}.",
}
"""Who may approve a move, by whether the server has tokens (without them every browser is the same person)."""

_DECIDED = {"requested": "pending", "approved": "approved", "rejected": "rejected"}
"""The state a request must be in for the notice of that key."""


def _notice(view: Page, name: str, query: Mapping[str, str], context: Mapping[str, Any]) -> str | None:
    """The notice ``query`` names, filled in from ``context`` and the registry; None for a key not in NOTICES, or
    a version, label or request the prompt does not have (or a request not in the state the notice says)."""
    key = query.get("notice") or ""
    text = NOTICES.get(key)
    if text is None:
        return None
    version, label = query.get("version") or "", query.get("label") or ""
    if "{version}" in text and version not in {str(v.number) for v in context["versions"]}:
        return None
    state = context["labels"].get(label)
    fields = {"version": version, "label": label, "target": format_target(state.target) if state else "-"}
    if "{request}" in text:
        found = _named_request(view, name, query.get("request") or "")
        if found is None or found.label != label or found.status != _DECIDED[key]:
            return None
        move = f"{found.kind} {format_target(found.from_target)} → {format_target(found.to_target)}"
        fields.update(request=str(found.id), move=move, requester=found.requester, name=name)
        fields["approvers"] = APPROVERS[view.token is not None].format(**fields)
    elif "{label}" in text and state is None:
        return None
    return text.format(**fields)


def _named_request(view: Page, name: str, text: str) -> LabelRequest | None:
    """Request ``text`` (its id) of prompt ``name``, whatever its state; None when there is none."""
    store: Any = view.registry.store  # a SQL store: requests by id are not part of the Store protocol
    try:
        number = _request_id(text)
        return None if number is None else store.get_request(name, number)
    except NotFoundError:
        return None


def _prompt_context(view: Page, name: str) -> dict[str, Any]:
    """What the prompt's page shows (NotFoundError for a prompt that is not there)."""
    registry = view.registry
    versions = registry.versions(name)[::-1]  # newest first
    labels = {state.label: state for state in registry.labels(name)}
    protected = set(registry.settings.protected_labels)
    approval = set(registry.settings.require_approval)
    requirements = server_requirements(view.request, name)
    verdicts = {v.number: registry.gate_verdict(v, requirements) for v in versions[:10]}
    gates = [
        _gate_view(registry.gate_report(name, version=versions[0].number, label=label, requirements=requirements))
        for label in registry.settings.protected_labels
    ]
    return {
        "versions": versions,
        "labels": labels,
        "label_names": sorted({*labels, *protected, *approval}),
        "protected": protected,
        "approval": approval,
        "requests": registry.requests(name),
        "verdicts": verdicts,
        "gates": gates,
        "history": list(reversed(registry.history(name)))[:50],
        "scenario_files": requirements.scenario_files,
    }


def _gate_view(report: GateReport) -> dict[str, Any]:
    """A protected label's gate report as the page shows it: each scenario of the run beside its comparison with
    the serving version's run (None where there is none)."""
    comparison = report.verdict.comparison
    compared = {(c.file, c.scenario): c for c in comparison.scenarios} if comparison is not None else {}
    run = report.verdict.run
    scenarios = [(stats, compared.get((stats.file, stats.name))) for stats in (run.scenarios if run else [])]
    return {"report": report, "verdict": report.verdict, "run": run, "scenarios": scenarios, "comparison": comparison}


@page("read")
async def prompt(view: Page) -> Response:
    name = view.request.path_params["name"]

    def gather() -> dict[str, Any]:
        context = _prompt_context(view, name)
        query = view.request.query_params
        notice = _notice(view, name, query, context)
        return {**context, "notice": notice, "waiting": notice is not None and query.get("notice") == "requested"}

    return render(view, "prompt.html", name=name, **await run_in_threadpool(gather))


@page("read")
async def diff(view: Page) -> Response:
    name = view.request.path_params["name"]
    query = view.request.query_params

    def gather() -> dict[str, Any]:
        numbers = [v.number for v in view.registry.versions(name)]
        a = _number(query.get("a"), numbers[-2] if len(numbers) > 1 else numbers[-1])
        b = _number(query.get("b"), numbers[-1])
        old, new = view.registry.version(name, a), view.registry.version(name, b)
        return {"old": old, "new": new, "numbers": numbers, "changes": diff_specs(old.spec, new.spec)}

    return render(view, "diff.html", name=name, **await run_in_threadpool(gather))


def _number(text: str | None, default: int | None) -> int:
    if not text:
        assert default is not None
        return default
    if not (text.isascii() and text.isdigit()):
        raise NotFoundError(f"no version {text!r}")
    return int(text)


@page("read", write="promote")
async def move_label(view: Page) -> Response:
    """Point a label at a version or a rollout (``3=90 4=10``), through the gate, with a reason. A label that
    requires approval does not move: the move waits for someone else."""
    name = view.request.path_params["name"]
    form = await view.request.form()
    label = str(form.get("label") or "").strip()
    target_text = str(form.get("target") or "").strip()
    reason = str(form.get("reason") or "").strip() or None
    force = form.get("force") == "on"

    def move() -> dict[str, object]:
        check_label_name(label)
        items = target_text.replace(",", " ").split()
        if len(items) == 1 and "=" not in items[0]:
            items = [f"{items[0].lstrip('v')}=100"]
        target = parse_weights(items)
        if force and not view.may("admin"):
            raise LabelError("a forced move past the gate needs a token with the admin scope")
        kind = "move" if len(target) == 1 else "rollout"
        requirements = server_requirements(view.request, name)
        result = view.registry.set_rollout(
            name,
            label,
            target,
            reason=reason,
            force=force,
            actor=view.who,
            identity=view.identity,
            kind=kind,
            requirements=requirements,
        )
        return _outcome(result, "moved")

    return await _label_change(view, name, move, reason=reason)


@page("read", write="promote")
async def rollback(view: Page) -> Response:
    name, label = view.request.path_params["name"], view.request.path_params["label"]
    form = await view.request.form()
    reason = str(form.get("reason") or "").strip() or None

    def undo() -> dict[str, object]:
        result = view.registry.rollback(
            name,
            label,
            reason=reason,
            actor=view.who,
            identity=view.identity,
            requirements=server_requirements(view.request, name),
        )
        return _outcome(result, "rolled-back")

    return await _label_change(view, name, undo)


@page("read", write="promote")
async def approve(view: Page) -> Response:
    """Approve the move of a label waiting for approval, the one the form names (``request``): the label moves,
    through the gate again, by the server's requirements. Its requester cannot approve it."""
    name, label = view.request.path_params["name"], view.request.path_params["label"]
    form = await view.request.form()
    request = _request_id(form.get("request"))
    reason = str(form.get("reason") or "").strip() or None

    def decide() -> dict[str, object]:
        check_label_name(label)
        pending = view.registry.pending(name, label, request)
        view.registry.approve(
            name,
            label,
            request=pending.id,
            reason=reason,
            actor=view.who,
            identity=view.identity,
            requirements=server_requirements(view.request, name),
        )
        return {"notice": "approved", "label": label, "request": pending.id}

    hint = "the move still waits: approve it again once the gate is open"
    return await _label_change(view, name, decide, gate_hint=hint)


@page("read", write="promote")
async def reject(view: Page) -> Response:
    """Reject the move of a label waiting for approval (by its requester: withdraw it), with an optional reason;
    the label stays where it is."""
    name, label = view.request.path_params["name"], view.request.path_params["label"]
    form = await view.request.form()
    request = _request_id(form.get("request"))
    reason = str(form.get("reason") or "").strip() or None

    def decide() -> dict[str, object]:
        check_label_name(label)
        rejected = view.registry.reject(name, label, request=request, reason=reason, actor=view.who)
        return {"notice": "rejected", "label": label, "request": rejected.id}

    return await _label_change(view, name, decide)


def _request_id(value: object) -> int | None:
    """The request a decision names (None: whichever waits)."""
    text = str(value or "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 15):
        raise NotFoundError(f"no request {text!r}")
    return int(text)


def _outcome(result: LabelEvent | LabelRequest, notice: str) -> dict[str, object]:
    """The notice after a move: ``notice`` for a label that moved, or the request that waits for approval."""
    if isinstance(result, LabelRequest):
        return {"notice": "requested", "label": result.label, "request": result.id}
    return {"notice": notice, "label": result.label}


async def _label_change(
    view: Page,
    name: str,
    change: Callable[[], dict[str, object]],
    *,
    reason: str | None = None,
    gate_hint: str | None = None,
) -> Response:
    """Make a label change (``change`` returns the notice to show, as the address names it); then back to the
    prompt's page, or that page again with the refusal and the reason typed (shown from here, never through the
    address). ``gate_hint`` says what to do about a refusal by the gate (default: how to force the move)."""
    try:
        notice = await run_in_threadpool(change)
    except GateError as exc:  # a refusal is shown on the prompt's page (the reason kept), not as an error page
        head = str(exc).splitlines()[0]
        if gate_hint is not None:
            hint = gate_hint
        elif view.may("admin"):
            hint = "to move it anyway, tick 'force past the gate' and give a reason"
        else:
            hint = "an admin can force the move past the gate, with a reason"
        lines = [head, *(f"  - {problem}" for problem in exc.problems), f"  ({hint})"]
        return await _refused(view, name, "\n".join(lines), reason, status=409)
    except PromptlaneError as exc:
        return await _refused(view, name, str(exc), reason, status=status_for(exc))
    state(view.request).cache.invalidate(name)  # the API's answers from this process show the move at once
    anchor = "#approvals" if notice["notice"] == "requested" else "#labels"
    return redirect(f"{prompt_url(name)}?{urlencode(notice)}{anchor}")


async def _refused(view: Page, name: str, error: str, reason: str | None, *, status: int) -> Response:
    context = await run_in_threadpool(_prompt_context, view, name)
    return render(view, "prompt.html", status=status, name=name, error=error, reason=reason, **context)
