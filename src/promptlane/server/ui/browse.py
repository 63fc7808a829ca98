"""Pages for reading prompts and moving labels: the prompt list, a prompt (labels, gate verdicts, versions,
history), the side-by-side diff, and label moves, rollouts and rollbacks through the gate."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...errors import LabelError, NotFoundError, PromptlaneError
from ...registry.gate import GateError
from ...registry.labels import check_label_name, parse_weights
from ...registry.store import format_target
from ...spec_diff import diff_specs
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


@page("read")
async def prompt(view: Page) -> Response:
    name = view.request.path_params["name"]
    registry = view.registry

    def gather() -> dict[str, Any]:
        versions = registry.versions(name)[::-1]  # newest first (NotFoundError for a prompt that is not there)
        labels = {state.label: state for state in registry.labels(name)}
        protected = set(registry.settings.protected_labels)
        requirements = registry.gate_requirements(name)
        verdicts = {v.number: registry.gate_verdict(v, requirements) for v in versions[:10]}
        return {
            "versions": versions,
            "labels": labels,
            "label_names": sorted({*labels, *protected}),
            "protected": protected,
            "verdicts": verdicts,
            "history": list(reversed(registry.history(name)))[:50],
            "scenario_files": requirements.scenario_files,
        }

    context = await run_in_threadpool(gather)
    query = view.request.query_params
    shown = {key: query.get(key) for key in ("notice", "error", "reason")}
    return render(view, "prompt.html", name=name, **shown, **context)


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
    """Point a label at a version or a rollout (``3=90 4=10``), through the gate, with a reason."""
    name = view.request.path_params["name"]
    form = await view.request.form()
    label = str(form.get("label") or "").strip()
    target_text = str(form.get("target") or "").strip()
    reason = str(form.get("reason") or "").strip() or None
    force = form.get("force") == "on"

    def move() -> str:
        check_label_name(label)
        items = target_text.replace(",", " ").split()
        if len(items) == 1 and "=" not in items[0]:
            items = [f"{items[0].lstrip('v')}=100"]
        target = parse_weights(items)
        if force and not view.may("admin"):
            raise LabelError("a forced move past the gate needs a token with the admin scope")
        kind = "move" if len(target) == 1 else "rollout"
        event = view.registry.set_rollout(name, label, target, reason=reason, force=force, actor=view.who, kind=kind)
        return f"{label} now points at {format_target(event.to_target)}"

    return await _label_change(view, name, move, reason=reason)


@page("read", write="promote")
async def rollback(view: Page) -> Response:
    name, label = view.request.path_params["name"], view.request.path_params["label"]
    form = await view.request.form()
    reason = str(form.get("reason") or "").strip() or None

    def undo() -> str:
        event = view.registry.rollback(name, label, reason=reason, actor=view.who)
        return f"{label} rolled back to {format_target(event.to_target)}"

    return await _label_change(view, name, undo)


async def _label_change(view: Page, name: str, change: Callable[[], str], reason: str | None = None) -> Response:
    try:
        notice = await run_in_threadpool(change)
    except GateError as exc:  # a refusal is shown on the prompt's page (the reason kept), not as an error page
        head = str(exc).splitlines()[0]
        if view.may("admin"):
            hint = "to move it anyway, tick 'force past the gate' and give a reason"
        else:
            hint = "an admin can force the move past the gate, with a reason"
        lines = [head, *(f"  - {problem}" for problem in exc.problems), f"  ({hint})"]
        return redirect(prompt_url(name, error="\n".join(lines), reason=reason) + "#labels")
    except PromptlaneError as exc:
        return redirect(prompt_url(name, error=str(exc), reason=reason) + "#labels")
    state(view.request).cache.invalidate(name)  # the API's answers from this process show the move at once
    return redirect(prompt_url(name, notice=notice) + "#labels")
