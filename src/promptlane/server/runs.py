"""Endpoints for eval runs: ``promptlane eval`` against a server records its runs through these."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..errors import NotFoundError
from ..registry.runs import LEASE_EXPIRED, CaseResult, RunRecord
from ..registry.store import MAX_VERSION
from ..registry.wire import run_from_json, run_to_json
from ..spec import NAME_MAX_LENGTH, NAME_PATTERN, check_prompt_name
from . import schemas
from ._http import Endpoint, HttpError, checked, invalid, json_response, read_body
from .state import state

__all__ = ["ENDPOINTS"]

_RUN = "/api/v1/runs/{run_id}"
_CASES = TypeAdapter(list[CaseResult])
"""Case results as a client sends them (``CaseResult.to_json``), every field's type checked."""
_PAGE = 500
_RUN_ID = re.compile(r"[0-9a-f]{1,32}")
_STATUSES = ("passed", "failed", "error")
_MAX_POSITION = 2**31 - 1
"""The largest case position (an Integer column)."""


def _run_id(request: Request) -> str:
    """The run id (or unique prefix) in the path: 1 to 32 lowercase hex digits (422 otherwise)."""
    run_id = request.path_params["run_id"]
    if not _RUN_ID.fullmatch(run_id):
        raise HttpError(
            422, "run_id: a run's id or a prefix of it: 1 to 32 hex digits (0-9, a-f)", kind="ValidationError"
        )
    return run_id


def _int_param(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise HttpError(422, f"{name}: an integer from {low} to {high}", kind="ValidationError")
    return int(text)


async def list_runs(request: Request) -> Response:
    prompt = request.query_params.get("prompt") or None
    if prompt is not None:
        prompt = checked(check_prompt_name, prompt)
    version = _int_param(request, "version", 0, low=1, high=MAX_VERSION) or None
    limit = _int_param(request, "limit", 50, low=1, high=1000)
    records = await run_in_threadpool(state(request).registry.store.list_runs, prompt, version=version, limit=limit)
    return json_response([run_to_json(record) for record in records])


async def create_run(request: Request) -> Response:
    body = await read_body(request, schemas.RunIn)
    record = _record(body)
    record.runner = _runner(request)
    store = state(request).registry.store

    def create() -> None:
        try:
            store.get_run(record.id)
        except NotFoundError:
            store.create_run(record)
        else:
            raise HttpError(409, f"run {record.id} exists: update it with PUT", kind="RegistryError")

    await run_in_threadpool(create)
    return json_response(run_to_json(record), status=201)


async def get_run(request: Request) -> Response:
    record = await run_in_threadpool(state(request).registry.store.get_run, _run_id(request))
    return json_response(run_to_json(record))


async def update_run(request: Request) -> Response:
    path_id = _run_id(request)
    body = await read_body(request, schemas.RunIn)
    if body.id != path_id:
        raise HttpError(422, f"id: the body is run {body.id}, the path run {path_id}")
    store = state(request).registry.store
    existing = await run_in_threadpool(store.get_run, body.id)
    if existing.id != body.id:  # get_run takes prefixes: an update needs the whole id
        raise NotFoundError(f"no run {body.id!r}")
    _may_change(request, existing)
    record = _record(body)
    record.runner = existing.runner  # who recorded it does not change
    if record.status in ("passed", "failed", "error"):
        await _check_tallies(store, record)
    await run_in_threadpool(store.update_run, record)
    return json_response(run_to_json(record))


async def _check_tallies(store: Any, record: RunRecord) -> None:
    """A finished run's word is checked against what it stored: its tallies must be its cases, and its status
    the one those tallies earn, or a write token could record a passing run out of nothing.

    Raises:
        HttpError: 422, saying what differs.
    """
    claimed = {"passed": record.passed, "failed": record.failed, "error": record.errored}
    stored = await run_in_threadpool(store.count_cases, record.id)
    if {k: v for k, v in claimed.items() if v} != {k: v for k, v in stored.items() if v}:
        shown = ", ".join(f"{stored.get(k, 0)} {k}" for k in claimed)
        said = ", ".join(f"{v} {k}" for k, v in claimed.items())
        raise HttpError(
            422, f"scenarios: the tallies say {said}, but the run's stored cases are {shown}: send the cases first"
        )
    earned = record.conclude()
    if record.status != earned:
        raise HttpError(422, f"status: {record.status}, but the run's tallies earn {earned}")


async def add_cases(request: Request) -> Response:
    run_id = _run_id(request)
    body = await read_body(request, schemas.CasesIn)
    try:
        cases = _CASES.validate_python([case.model_dump() for case in body.cases])
    except ValidationError as exc:
        raise invalid(exc, prefix=("cases",)) from None
    store = state(request).registry.store
    record = await run_in_threadpool(store.get_run, run_id)
    if record.id != run_id:
        raise NotFoundError(f"no run {run_id!r}")
    _may_change(request, record)
    await run_in_threadpool(store.add_cases, run_id, cases)
    return json_response({"added": len(cases)}, status=201)


async def heartbeat(request: Request) -> Response:
    """The process running a run is alive: its lease starts again (a run past its lease reads interrupted)."""
    await run_in_threadpool(state(request).registry.store.heartbeat_run, _run_id(request))
    return Response(status_code=204)


async def list_cases(request: Request) -> Response:
    run_id = _run_id(request)
    after = _int_param(request, "after", 0, low=0, high=_MAX_POSITION)
    limit = _int_param(request, "limit", _PAGE, low=1, high=_PAGE)
    statuses = request.query_params.getlist("status") or None
    for status in statuses or ():
        if status not in _STATUSES:
            raise HttpError(422, f"status: one of {', '.join(_STATUSES)}, not {status[:20]!r}", kind="ValidationError")
    store: Any = state(request).registry.store
    record = await run_in_threadpool(store.get_run, run_id)
    page = await run_in_threadpool(lambda: store.case_page(record.id, after=after, limit=limit, statuses=statuses))
    cases = [json.loads(data) for _, data in page]
    return json_response({"cases": cases, "next": page[-1][0] if len(page) == limit else None})


def _may_change(request: Request, record: RunRecord) -> None:
    """Only the token that recorded a run changes it (its cases, its status), and only until it is finished: a
    finished run is evidence, and evidence does not change afterwards (a run its lease found interrupted is taken
    back by its own process).

    Raises:
        HttpError: 403 for another token, 409 for a finished run.
    """
    if record.runner is not None and _runner(request) != record.runner:
        raise HttpError(
            403, f"run {record.id} was recorded by token {record.runner!r}: only it may change it", kind="AuthError"
        )
    if record.status != "running" and not (record.status == "interrupted" and record.reason == LEASE_EXPIRED):
        raise HttpError(409, f"run {record.id} is finished ({record.status}): a finished run does not change")


def _runner(request: Request) -> str | None:
    """The name of the token that made the request (None where the server checks no tokens)."""
    token = getattr(request.state, "token", None)
    return None if token is None else token.name


def _record(body: schemas.RunIn) -> Any:
    try:
        return run_from_json(body.model_dump())
    except (ValueError, TypeError) as exc:
        raise HttpError(422, f"not a run: {exc}", kind="ValidationError") from None


_STATUS = {"type": "string", "enum": list(_STATUSES)}

ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/v1/runs",
        list_runs,
        "read",
        "List runs, newest first",
        response=schemas.Run,
        response_list=True,
        query={
            "prompt": {"type": "string", "maxLength": NAME_MAX_LENGTH, "pattern": f"^({NAME_PATTERN.pattern[1:-1]})?$"},
            "version": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
    ),
    Endpoint(
        "POST",
        "/api/v1/runs",
        create_run,
        "write",
        "Record a new run",
        body=schemas.RunIn,
        response=schemas.Run,
        status=201,
        errors=(404, 409),
    ),
    Endpoint(
        "GET",
        f"{_RUN}/cases",
        list_cases,
        "read",
        "A run's cases, a page at a time",
        response=schemas.CasePage,
        errors=(400, 404),
        query={
            "after": {"type": "integer", "minimum": 0, "maximum": _MAX_POSITION},
            "limit": {"type": "integer", "minimum": 1, "maximum": _PAGE},
            "status": {"type": "array", "items": _STATUS},
        },
    ),
    Endpoint(
        "POST",
        f"{_RUN}/cases",
        add_cases,
        "write",
        "Append finished cases to a run",
        body=schemas.CasesIn,
        status=201,
        errors=(400, 404),
    ),
    Endpoint(
        "POST",
        f"{_RUN}/heartbeat",
        heartbeat,
        "write",
        "Say the process running a run is alive (a running run past its lease reads interrupted)",
        status=204,
        errors=(404,),
    ),
    Endpoint(
        "GET", _RUN, get_run, "read", "Get a run (by id or unique prefix)", response=schemas.Run, errors=(400, 404)
    ),
    Endpoint(
        "PUT",
        _RUN,
        update_run,
        "write",
        "Save a run's status, tallies and end",
        body=schemas.RunIn,
        response=schemas.Run,
        errors=(400, 404),
    ),
]
