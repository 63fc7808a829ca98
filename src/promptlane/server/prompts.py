"""Endpoints for prompts, versions and labels, and the application path (resolve, snapshot).

A prompt's name may contain ``/``, so its sub-resources come after ``/-/``:
``/api/v1/prompts/support/reply/-/versions/3``. (``-`` can never be a segment of a prompt name.)
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..errors import AuthError, NotFoundError
from ..registry.gate import GateRequirements, observed_parts
from ..registry.labels import LATEST, check_label_name, check_target
from ..registry.registry import PushResult
from ..registry.rollout import target_from_keys
from ..registry.runs import ScenarioFileRef
from ..registry.store import MAX_VERSION, LabelEvent, LabelRequest
from ..registry.tokens import allows
from ..registry.wire import event_to_json, label_to_json, request_to_json, summary_to_json, version_to_json
from ..spec import NAME_MAX_LENGTH, NAME_PATTERN, check_prompt_name
from . import schemas
from ._http import Endpoint, HttpError, checked, json_response, not_modified, read_body
from .cache import Answer
from .state import actor, state

__all__ = ["ENDPOINTS", "requirements_for"]

_PROMPT = "/api/v1/prompts/{name}"
_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "private, no-cache"


def _name(request: Request) -> str:
    """The prompt name in the path (422 for one no prompt can have: too long, NUL, ...)."""
    return checked(check_prompt_name, request.path_params["name"])


def _send(request: Request, answer: Answer, cache_control: str) -> Response:
    headers = {"ETag": answer.etag, "Cache-Control": cache_control}
    if not_modified(request, answer.etag):
        return Response(status_code=304, headers=headers)
    return Response(answer.body, media_type="application/json", headers=headers)


def _label_param(request: Request) -> str:
    label = request.query_params.get("label") or state(request).registry.default_label
    return _label_or_latest(label)


def _label_or_latest(label: str) -> str:
    """``label`` if it is a label's name or ``latest`` (422 otherwise)."""
    return label if label == LATEST else checked(check_label_name, label)


def _label_path(request: Request) -> str:
    """The label a move names in its path (``latest`` cannot be moved)."""
    return checked(check_label_name, request.path_params["label"])


def requirements_for(request: Request, name: str, given: schemas.GateIn | None) -> GateRequirements:
    """What a run must show to open the gate.

    The fingerprint: the client's parts, and the server's own scenario files where it has the project (its value
    wins where both name a file). A server without them holds current the inputs the newest complete run of the
    prompt saw (by a trusted runner, when some are named), and requires those too: a client can add to the bar but
    not lower it (where its value and the newest run's differ, no run satisfies both: run the evals again). The
    model: the server's `gate_model`, else the one the version declares, never the client's, which could name
    whatever model its run used."""
    registry = state(request).registry
    own = registry.gate_requirements(name)
    parts = [ScenarioFileRef(path=ref.path, sha256=ref.sha256) for ref in given.scenario_files] if given else []
    if own.scenario_files:
        ours = {ref.path for ref in own.scenario_files}
        parts = [*own.scenario_files, *(ref for ref in parts if ref.path not in ours)]
    else:
        runs = registry.store.list_runs(name, limit=50)
        seen = {(ref.path, ref.sha256) for ref in parts}
        parts += [
            ref
            for ref in observed_parts(runs, registry.settings.gate_trusted_runners)
            if (ref.path, ref.sha256) not in seen
        ]
    return GateRequirements(scenario_files=tuple(parts), model=own.model, unfound=False)


def _identity(request: Request) -> str | None:
    """Who makes a move, as ``require_approval`` tells people apart: the token's name (None without tokens: the
    name the client gives)."""
    token = getattr(request.state, "token", None)
    return None if token is None else token.name


def _moved(result: LabelEvent | LabelRequest) -> Response:
    """A move's answer: the audit event (200), or the request that waits for approval (202)."""
    if isinstance(result, LabelRequest):
        return json_response(request_to_json(result), status=202)
    return json_response(event_to_json(result))


def _may_force(request: Request, force: bool) -> None:
    token = getattr(request.state, "token", None)
    if force and state(request).auth.enabled and (token is None or not allows(token.scopes, "admin")):
        raise AuthError("a forced move past the gate needs a token with the admin scope", status=403)


# --- reading ----------------------------------------------------------------------------------------------


async def list_prompts(request: Request) -> Response:
    summaries = await run_in_threadpool(state(request).registry.list_prompts)
    return json_response([summary_to_json(summary) for summary in summaries])


async def get_prompt(request: Request) -> Response:
    if "-" in request.path_params["name"].split("/"):  # a sub-resource path with a method it does not take
        raise HttpError(404, f"no such endpoint: {request.url.path}")
    name = _name(request)
    summaries = await run_in_threadpool(state(request).registry.list_prompts)
    for summary in summaries:
        if summary.name == name:
            return json_response(summary_to_json(summary))
    raise NotFoundError(f"no prompt {name!r}")


async def list_versions(request: Request) -> Response:
    versions = await run_in_threadpool(state(request).registry.versions, _name(request))
    return json_response([version_to_json(version) for version in versions])


async def get_version(request: Request) -> Response:
    name, number = _name(request), request.path_params["number"]
    if not 1 <= number <= MAX_VERSION:
        raise HttpError(422, f"number: an integer from 1 to {MAX_VERSION}", kind="ValidationError")
    cache = state(request).cache
    answer = cache.version_answer(name, number) or (await run_in_threadpool(cache.version, name, number))[1]
    return _send(request, answer, _IMMUTABLE)


async def resolve(request: Request) -> Response:
    name, label = _name(request), _label_param(request)
    key = request.query_params.get("targeting_key")
    cache = state(request).cache
    answer = cache.resolved(name, label, key) or await run_in_threadpool(cache.resolve, name, label, key)
    return _send(request, answer, _REVALIDATE)


async def snapshot(request: Request) -> Response:
    label = _label_param(request)
    cache = state(request).cache
    answer = cache.snapshotted(label) or await run_in_threadpool(cache.snapshot, label)
    return _send(request, answer, _REVALIDATE)


async def list_labels(request: Request) -> Response:
    labels = await run_in_threadpool(state(request).registry.labels, _name(request))
    return json_response([label_to_json(label) for label in labels])


async def get_label(request: Request) -> Response:
    name, label_name = _name(request), _label_or_latest(request.path_params["label"])
    label = await run_in_threadpool(state(request).registry.store.get_label, name, label_name)
    return json_response(label_to_json(label))


async def history(request: Request) -> Response:
    label = request.query_params.get("label") or None
    name = _name(request)
    events = await run_in_threadpool(
        state(request).registry.history, name, _label_or_latest(label) if label is not None else None
    )
    return json_response([event_to_json(event) for event in events])


# --- writing ----------------------------------------------------------------------------------------------


async def push(request: Request) -> Response:
    name = _name(request)
    body = await read_body(request, schemas.PushIn)
    registry = state(request).registry
    author = actor(request, body.author)

    def store() -> PushResult:
        if body.content_hash is None:
            return registry.push_spec(name, body.spec, message=body.message, author=author)
        return registry.push_frozen(name, body.spec, body.content_hash, message=body.message, author=author)

    result = await state(request).work.run(store)  # compiles the templates
    state(request).cache.invalidate(name)
    data = {"version": version_to_json(result.version), "created": result.created}
    return json_response(data, status=201 if result.created else 200)


async def push_batch(request: Request) -> Response:
    body = await read_body(request, schemas.PushBatchIn)
    registry = state(request).registry
    author = actor(request, body.author)
    specs = [(item.name, item.spec) for item in body.versions]
    # One transaction: every version of the batch, or none (compiled on the template workers).
    results = await state(request).work.run(lambda: registry.push_specs(specs, message=body.message, author=author))
    for result in results:
        state(request).cache.invalidate(result.name)
    data = {
        "versions": [{"version": version_to_json(r.version), "created": r.created, "latest": r.latest} for r in results]
    }
    return json_response(data, status=201 if any(r.created for r in results) else 200)


async def move_label(request: Request) -> Response:
    name, label = _name(request), _label_path(request)
    body = await read_body(request, schemas.LabelMoveIn)
    _may_force(request, body.force)
    target = checked(check_target, checked(target_from_keys, body.target or {}))
    registry = state(request).registry
    event = await run_in_threadpool(
        lambda: registry.set_rollout(
            name,
            label,
            target,
            reason=body.reason,
            force=body.force,
            actor=actor(request, body.actor),
            identity=_identity(request),
            kind=body.kind,
            gated=body.gated,
            requirements=requirements_for(request, name, body.requirements),
        )
    )
    state(request).cache.invalidate(name)
    return _moved(event)


async def rollback(request: Request) -> Response:
    name, label = _name(request), _label_path(request)
    body = await read_body(request, schemas.RollbackIn)
    _may_force(request, body.force)
    registry = state(request).registry
    event = await run_in_threadpool(
        lambda: registry.rollback(
            name,
            label,
            reason=body.reason,
            force=body.force,
            actor=actor(request, body.actor),
            identity=_identity(request),
            requirements=requirements_for(request, name, body.requirements),
        )
    )
    state(request).cache.invalidate(name)
    return _moved(event)


async def promote(request: Request) -> Response:
    name, label = _name(request), _label_path(request)
    body = await read_body(request, schemas.PromoteIn)
    registry = state(request).registry
    event = await run_in_threadpool(
        lambda: registry.promote(
            name,
            label,
            version=body.version,
            reason=body.reason,
            actor=actor(request, body.actor),
            identity=_identity(request),
            requirements=requirements_for(request, name, body.requirements),
        )
    )
    state(request).cache.invalidate(name)
    return _moved(event)


async def list_requests(request: Request) -> Response:
    prompt = request.query_params.get("prompt") or None
    name = checked(check_prompt_name, prompt) if prompt is not None else None
    requests = await run_in_threadpool(state(request).registry.requests, name)
    return json_response([request_to_json(item) for item in requests])


async def list_prompt_requests(request: Request) -> Response:
    requests = await run_in_threadpool(state(request).registry.requests, _name(request))
    return json_response([request_to_json(item) for item in requests])


async def approve(request: Request) -> Response:
    name, label = _name(request), _label_path(request)
    body = await read_body(request, schemas.DecisionIn)
    registry = state(request).registry
    event = await run_in_threadpool(
        lambda: registry.approve(
            name,
            label,
            request=body.request,
            reason=body.reason,
            actor=actor(request, body.actor),
            identity=_identity(request),
            requirements=requirements_for(request, name, None),
        )
    )
    state(request).cache.invalidate(name)
    return json_response(event_to_json(event))


async def reject(request: Request) -> Response:
    name, label = _name(request), _label_path(request)
    body = await read_body(request, schemas.DecisionIn)
    registry = state(request).registry
    rejected = await run_in_threadpool(
        lambda: registry.reject(name, label, request=body.request, reason=body.reason, actor=actor(request, body.actor))
    )
    return json_response(request_to_json(rejected))


_LABEL = f"^({schemas.LABEL_PATTERN.strip('^$')})?$"
"""A label in a query (empty: as if not given)."""
_LABEL_QUERY = {
    "label": {
        "type": "string",
        "pattern": _LABEL,
        "description": "A label, or `latest` (default: the server's default).",
    }
}

ENDPOINTS = [
    Endpoint(
        "POST",
        "/api/v1/push",
        push_batch,
        "write",
        "Push several prompts, all or nothing",
        body=schemas.PushBatchIn,
        response=schemas.PushBatchOut,
        status=201,
    ),
    Endpoint(
        "GET", "/api/v1/prompts", list_prompts, "read", "List prompts", response=schemas.Summary, response_list=True
    ),
    Endpoint(
        "GET",
        f"{_PROMPT}/-/versions/{{number:int}}",
        get_version,
        "read",
        "Get a version",
        response=schemas.Version,
        etag=True,
        errors=(404,),
    ),
    Endpoint(
        "GET",
        f"{_PROMPT}/-/versions",
        list_versions,
        "read",
        "List a prompt's versions",
        response=schemas.Version,
        response_list=True,
        errors=(404,),
    ),
    Endpoint(
        "POST",
        f"{_PROMPT}/-/versions",
        push,
        "write",
        "Push a version (identical content: the existing one)",
        body=schemas.PushIn,
        response=schemas.PushOut,
        status=201,
        errors=(404,),
    ),
    Endpoint(
        "GET",
        f"{_PROMPT}/-/resolve",
        resolve,
        "read",
        "Resolve a label to a version",
        response=schemas.Resolve,
        etag=True,
        errors=(404,),
        query={**_LABEL_QUERY, "targeting_key": {"type": "string", "description": "Makes a rollout sticky."}},
    ),
    Endpoint(
        "GET", f"{_PROMPT}/-/labels/{{label}}", get_label, "read", "Get a label", response=schemas.Label, errors=(404,)
    ),
    Endpoint(
        "PUT",
        f"{_PROMPT}/-/labels/{{label}}",
        move_label,
        "promote",
        "Point a label at a version or a rollout, through the gate",
        body=schemas.LabelMoveIn,
        response=schemas.Event,
        errors=(404, 409),
        accepted=schemas.LabelRequestOut,
    ),
    Endpoint(
        "POST",
        f"{_PROMPT}/-/labels/{{label}}/rollback",
        rollback,
        "promote",
        "Return a label to its previous target, through the gate",
        body=schemas.RollbackIn,
        response=schemas.Event,
        errors=(404, 409),
        accepted=schemas.LabelRequestOut,
    ),
    Endpoint(
        "POST",
        f"{_PROMPT}/-/labels/{{label}}/promote",
        promote,
        "promote",
        "Move a label to a version with a passing run (default: the newest)",
        body=schemas.PromoteIn,
        response=schemas.Event,
        errors=(404, 409),
        accepted=schemas.LabelRequestOut,
    ),
    Endpoint(
        "POST",
        f"{_PROMPT}/-/labels/{{label}}/approve",
        approve,
        "promote",
        "Approve the move of a label that waits for a second person, through the gate again",
        body=schemas.DecisionIn,
        response=schemas.Event,
        errors=(404, 409),
    ),
    Endpoint(
        "POST",
        f"{_PROMPT}/-/labels/{{label}}/reject",
        reject,
        "promote",
        "Reject (or withdraw) the move of a label that waits for approval",
        body=schemas.DecisionIn,
        response=schemas.LabelRequestOut,
        errors=(404, 409),
    ),
    Endpoint(
        "GET",
        f"{_PROMPT}/-/requests",
        list_prompt_requests,
        "read",
        "A prompt's label moves waiting for approval",
        response=schemas.LabelRequestOut,
        response_list=True,
        errors=(404,),
    ),
    Endpoint(
        "GET",
        "/api/v1/requests",
        list_requests,
        "read",
        "Label moves waiting for approval",
        response=schemas.LabelRequestOut,
        response_list=True,
        query={
            "prompt": {
                "type": "string",
                "maxLength": NAME_MAX_LENGTH,
                "pattern": f"^({NAME_PATTERN.pattern[1:-1]})?$",
                "description": "Only this prompt's.",
            }
        },
    ),
    Endpoint(
        "GET",
        f"{_PROMPT}/-/labels",
        list_labels,
        "read",
        "List a prompt's labels",
        response=schemas.Label,
        response_list=True,
        errors=(404,),
    ),
    Endpoint(
        "GET",
        f"{_PROMPT}/-/history",
        history,
        "read",
        "Label history (the audit log)",
        response=schemas.Event,
        response_list=True,
        errors=(404,),
        query={"label": {"type": "string", "pattern": _LABEL, "description": "Only this label's moves."}},
    ),
    Endpoint(
        "GET",
        _PROMPT,
        get_prompt,
        "read",
        "Get a prompt: newest version and labels",
        response=schemas.Summary,
        errors=(404,),
    ),
    Endpoint(
        "GET",
        "/api/v1/snapshot",
        snapshot,
        "read",
        "Every prompt at a label, with its versions",
        response=schemas.Snapshot,
        etag=True,
        query=_LABEL_QUERY,
    ),
]
