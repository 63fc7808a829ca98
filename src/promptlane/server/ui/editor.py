"""The editor: a prompt's fields as a form, a live preview rendered from a variables form, template errors
shown at their line, and save, which pushes a new version (or says the content exists already)."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import JSONResponse, Response

from ..._yaml import load_data
from ...errors import PromptlaneError, SpecError, TemplateError, VariableError
from ...registry import Registry
from ...spec_diff import authoring_order, to_yaml
from ...variables import parse_typed
from .._http import HttpError
from ..state import state
from ._page import Page, page, redirect, render
from ._public import public_text
from .browse import prompt_url

__all__ = ["draw_preview"]

_YAML_FIELDS = ("model_settings", "variables", "tools", "output_schema")
_MAX_MESSAGES = 500
_MESSAGE = re.compile(r"^messages\[(\d+)\]$|^messages\.(\d+)")


class FormError(Exception):
    """A field of the form that cannot be read: which field, the message, the line in it."""

    def __init__(self, field: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.field, self.message, self.line = field, message, line


def spec_from_form(form: FormData) -> dict[str, Any]:
    """The prompt spec the form describes (empty fields left out)."""
    spec: dict[str, Any] = {}
    for key in ("description", "model"):
        value = str(form.get(key) or "").strip()
        if value:
            spec[key] = value
    if form.get("kind") == "text":
        spec["template"] = _text(form.get("template"))
    else:
        messages = []
        for index in range(_message_count(form)):
            content = _text(form.get(f"content_{index}"))
            if content.strip():
                messages.append({"role": str(form.get(f"role_{index}") or "user"), "content": content})
        spec["messages"] = messages
    for key in _YAML_FIELDS:
        text = _text(form.get(key))
        if not text.strip():
            continue
        try:
            spec[key] = load_data(text)  # bounded: an alias bomb in a form field is refused, not expanded
        except SpecError as exc:
            raise FormError(key, f"not valid YAML: {exc.reason.removeprefix('invalid YAML: ')}", exc.line) from None
    return spec


def _message_count(form: FormData) -> int:
    text = str(form.get("message_count") or "0")
    return min(int(text), _MAX_MESSAGES) if text.isascii() and text.isdigit() else 0


def _text(value: object) -> str:
    return str(value or "").replace("\r\n", "\n")


def form_error(exc: Exception) -> FormError:
    """Which field of the form an error is about."""
    if isinstance(exc, FormError):
        return exc
    if isinstance(exc, TemplateError):
        field, line = _field_of(exc.template or ""), exc.line
        return FormError(field, exc.reason, line)
    if isinstance(exc, SpecError):
        return FormError(_field_of(exc.key or ""), exc.reason)
    return FormError("", str(exc))


def _field_of(where: str) -> str:
    match = _MESSAGE.match(where)
    if match:
        return f"content_{match.group(1) or match.group(2)}"
    return where.split(".")[0] if where else ""


def _form_fields(spec: dict[str, Any]) -> dict[str, Any]:
    shown = authoring_order({key: value for key, value in spec.items() if key != "includes"})
    dump = lambda value: "" if value in (None, {}, []) else to_yaml(value)  # noqa: E731
    return {
        "kind": "text" if "template" in shown else "chat",
        "description": shown.get("description") or "",
        "model": shown.get("model") or "",
        "template": shown.get("template") or "",
        "messages": shown.get("messages") or [],
        **{key: dump(shown.get(key)) for key in _YAML_FIELDS},
    }


@page("read", write="write")
async def edit(view: Page) -> Response:
    name = view.request.path_params["name"]
    if not view.writing:
        store = view.registry.store  # the newest version now, not a cached resolution of `latest`
        newest = await run_in_threadpool(lambda: store.get_version(name, store.latest_number(name)))
        return render(view, "edit.html", name=name, base=newest.number, fields=_form_fields(dict(newest.spec)))
    form = await view.request.form()
    message = str(form.get("commit_message") or "").strip() or None
    base, latest = str(form.get("base") or ""), await run_in_threadpool(view.registry.store.latest_number, name)
    if base != str(latest):  # someone saved since this form was opened: do not drop their change silently
        problem = FormError("", f"v{latest} was saved after you opened v{base}. Compare them first; saving this form "
                                f"again makes a version from your text, without the changes of v{latest}.")  # fmt: skip
        fields = {**_form_fields({}), **_posted(form)}
        compare = prompt_url(name, "diff", a=base, b=latest)
        return render(view, "edit.html", status=409, name=name, base=latest, fields=fields, problem=problem,
                      compare=compare)  # fmt: skip
    try:
        spec = spec_from_form(form)
        work = state(view.request).work  # compiling runs on the template workers
        result = await work.run(lambda: view.registry.push_spec(name, spec, message=message, author=view.who))
    except (FormError, PromptlaneError) as exc:
        problem = form_error(exc)
        fields = {**_form_fields({}), **_posted(form)}
        return render(view, "edit.html", status=422, name=name, base=form.get("base"), fields=fields, problem=problem)
    state(view.request).cache.invalidate(name)  # `latest` moved, for the API's answers too
    notice = "saved" if result.created else "unchanged"
    return redirect(prompt_url(name, notice=notice, version=result.version.number))


def _posted(form: FormData) -> dict[str, Any]:
    """The form as posted, to show it again with its error."""
    count = _message_count(form)
    messages = [
        {"role": str(form.get(f"role_{i}") or "user"), "content": _text(form.get(f"content_{i}"))}
        for i in range(count)
        if _text(form.get(f"content_{i}")).strip()
    ]
    return {
        "kind": "text" if form.get("kind") == "text" else "chat",
        "description": _text(form.get("description")),
        "model": _text(form.get("model")),
        "template": _text(form.get("template")),
        "messages": messages,
        **{key: _text(form.get(key)) for key in _YAML_FIELDS},
        "commit_message": _text(form.get("commit_message")),
    }


@page("read")
async def preview(view: Page) -> Response:
    """The form rendered with the variables form's values: ``{messages, variables}`` or ``{error, field,
    line}``. A read: it stores nothing."""
    name = view.request.path_params["name"]
    form = await view.request.form()
    who = f"token {view.token.id}" if view.token is not None else (view.request.client or ("local",))[0]
    try:
        answer = await state(view.request).work.preview(who, lambda: draw_preview(view.registry, name, form))
    except HttpError as exc:  # too many previews: the page tries again later
        retry = str(exc.extra.get("retry_after", 1))
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers={"Retry-After": retry})
    except (FormError, PromptlaneError) as exc:
        problem = form_error(exc)
        answer = {"error": problem.message, "field": problem.field, "label": _label(problem.field),
                  "line": problem.line}  # fmt: skip
    if answer.get("error"):
        answer["error"] = public_text(answer["error"], view.root)
    return JSONResponse(answer)


def draw_preview(registry: Registry, name: str, form: FormData) -> dict[str, Any]:
    """The preview of the editor's ``form`` for the prompt ``name`` (CPU work: templates render here).

    Raises:
        FormError: a field of the form cannot be read.
        PromptlaneError: the form is not a valid prompt.
    """
    prompt = registry.draft(name, spec_from_form(form))
    schema = prompt.variables or {}
    values = {}
    for key, declared in schema.items():
        raw = form.get(f"var.{key}")
        if isinstance(raw, str) and raw != "":
            values[key] = parse_typed(raw, (declared or {}).get("type"))
    variables = _variables(schema)
    try:
        return {"messages": prompt.render(values).messages, "variables": variables}
    except VariableError as exc:  # the form is fine: the values are not there yet
        return {"error": str(exc), "field": None, "line": None, "missing": True, "variables": variables}


def _label(field: str) -> str:
    """A form field as the page names it: ``content_1`` is message 2."""
    if field.startswith("content_"):
        return f"message {int(field.removeprefix('content_')) + 1}"
    return field.replace("_", " ")


def _variables(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": key, "type": (value or {}).get("type", "string"), "default": json.dumps((value or {}).get("default"))}
        for key, value in schema.items()
    ]
