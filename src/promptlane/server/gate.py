"""The gate's verdict explained: ``GET /api/v1/prompts/{name}/-/gate?label=&version=``.

The server judges by its own requirements (:func:`promptlane.server.prompts.requirements_for` with nothing from the
client: its scenario files, else what the newest complete run saw), so the answer is what a move through this
server, sending nothing, would meet. The web UI's prompt page shows the same report (:func:`server_report`).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..registry.gate import GateReport, GateRequirements
from ..registry.labels import check_label_name
from ..registry.store import MAX_VERSION
from ..registry.wire import gate_report_to_json
from ..spec import check_prompt_name
from . import schemas
from ._http import Endpoint, HttpError, checked, json_response
from .prompts import requirements_for  # the one rule of every endpoint
from .state import state

__all__ = ["ENDPOINTS", "server_report", "server_requirements"]


def server_requirements(request: Request, name: str) -> GateRequirements:
    """What this server asks of a run of ``name`` when the client sends nothing. Blocking (it hashes files)."""
    return requirements_for(request, name, None)


def server_report(
    request: Request,
    name: str,
    *,
    version: int | None = None,
    label: str | None = None,
    requirements: GateRequirements | None = None,
) -> GateReport:
    """The gate's report on ``name`` (``version``: default the newest) for ``label`` (default: the first protected
    label), by this server's requirements (or the ``requirements`` given, found by :func:`server_requirements`).
    Blocking: call it in a thread."""
    requirements = requirements or server_requirements(request, name)
    return state(request).registry.gate_report(name, version=version, label=label, requirements=requirements)


def _version(request: Request) -> int | None:
    text = request.query_params.get("version") or ""
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_VERSION:
        raise HttpError(422, f"version: an integer from 1 to {MAX_VERSION}", kind="ValidationError")
    return int(text)


async def gate_report(request: Request) -> Response:
    name = checked(check_prompt_name, request.path_params["name"])
    label = request.query_params.get("label") or None
    if label is not None:
        checked(check_label_name, label)
    version = _version(request)
    report = await run_in_threadpool(lambda: server_report(request, name, version=version, label=label))
    return json_response(gate_report_to_json(report))


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/v1/prompts/{name}/-/gate",
        gate_report,
        "read",
        "The gate's verdict on a version for a label: the evidence run, each fingerprint part, each scenario, "
        "what would open it",
        response=schemas.GateReport,
        errors=(404,),
        query={
            "label": {
                "type": "string",
                "pattern": f"^({schemas.LABEL_PATTERN.strip('^$')})?$",
                "not": {"const": "latest"},
                "description": "A protected label (default: the first protected label, else production).",
            },
            "version": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_VERSION,
                "description": "The version (default: the newest).",
            },
        },
    ),
]
