"""The little HTTP the endpoints share: JSON responses, bodies checked against their models, ETags, errors."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ..errors import (
    AuthError,
    LabelError,
    NotFoundError,
    PromptlaneError,
    RegistryUnavailableError,
    SpecError,
    TemplateError,
    TokenError,
    VariableError,
)
from ..registry.gate import GateError

__all__ = [
    "Endpoint",
    "HttpError",
    "checked",
    "dumps",
    "error_response",
    "etag_of",
    "invalid",
    "json_response",
    "not_modified",
    "read_body",
    "status_for",
]

Handler = Callable[[Request], Awaitable[Response]]
_In = TypeVar("_In")
_Out = TypeVar("_Out")


@dataclass(frozen=True)
class Endpoint:
    """One operation: its route, the scope it needs, and what the OpenAPI document says of it."""

    method: str
    path: str
    """With ``{name}`` for a prompt name (which may contain ``/``) and ``{param:int}`` style parameters."""
    handler: Handler
    scope: str | None
    """The token scope it needs (None: open)."""
    summary: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    response_list: bool = False
    status: int = 200
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Query parameters: name -> JSON schema (``required`` key inside for required ones)."""
    etag: bool = False
    """Answers 304 to a matching If-None-Match."""
    errors: tuple[int, ...] = ()
    """Error statuses it can answer besides 401/403/422."""
    accepted: type[BaseModel] | None = None
    """What it answers with 202 when the work waits (a label move that needs approval answers the request)."""


class HttpError(Exception):
    """An error answer with a status and a message."""

    def __init__(self, status: int, message: str, *, kind: str = "HttpError", **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.extra = extra


def dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json", headers=headers)


def etag_of(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return f'"{digest.hexdigest()[:24]}"'


def not_modified(request: Request, etag: str) -> bool:
    """Whether the request's If-None-Match already names ``etag``."""
    given = request.headers.get("if-none-match")
    if not given:
        return False
    return given.strip() == "*" or etag in {tag.strip().removeprefix("W/") for tag in given.split(",")}


async def read_body(request: Request, model: type[BaseModel]) -> Any:
    """The request's JSON body validated against ``model`` (422 naming each bad field)."""
    raw = await request.body()
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if raw and media != "application/json" and not media.endswith("+json"):
        # A page in a browser can send `text/plain` (or a form) anywhere without asking first; JSON it cannot.
        raise HttpError(415, "send the body as JSON, with Content-Type: application/json", kind="ValidationError")
    try:
        data = json.loads(raw, parse_constant=_no_constant) if raw else None
    except ValueError as exc:
        raise HttpError(422, f"the body is not JSON: {exc}", kind="ValidationError") from None
    except RecursionError:
        raise HttpError(422, f"the body nests deeper than {MAX_JSON_DEPTH} levels", kind="ValidationError") from None
    _check_json(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc) from None


MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a body may have (a version's schemas need a handful)."""
_MAX_INT = 2**63 - 1


def _check_json(data: Any) -> None:
    """Refuse what no field takes and what would fail deeper, in a database or a recursive walk: nesting past
    :data:`MAX_JSON_DEPTH`, NUL characters in strings and keys, integers beyond 64 bits (422, naming where)."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    while stack:
        value, where = stack.pop()
        if len(where) > MAX_JSON_DEPTH:
            raise HttpError(422, f"the body nests deeper than {MAX_JSON_DEPTH} levels", kind="ValidationError")
        if isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    raise HttpError(422, f"{_where(where)}: a key holds a NUL character", kind="ValidationError")
                stack.append((item, (*where, key)))
        elif isinstance(value, list):
            stack.extend((item, (*where, str(index))) for index, item in enumerate(value))
        elif isinstance(value, str):
            if "\x00" in value:
                raise HttpError(422, f"{_where(where)}: the text holds a NUL character", kind="ValidationError")
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_INT:
            raise HttpError(422, f"{_where(where)}: {value} is out of range (64 bits)", kind="ValidationError")
        elif isinstance(value, float) and not math.isfinite(value):
            raise HttpError(422, f"{_where(where)}: a number out of range (1e400?)", kind="ValidationError")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _where(path: tuple[str, ...]) -> str:
    return ".".join(path) or "body"


def invalid(exc: ValidationError, *, prefix: tuple[str, ...] = ()) -> HttpError:
    """A 422 naming the first bad field (``details`` lists them all); ``prefix`` is where the data sat."""
    details = [
        {"loc": [*prefix, *(str(part) for part in error["loc"])], "msg": error["msg"]}
        for error in exc.errors(include_url=False, include_input=False)
    ]
    first = details[0]
    where = ".".join(first["loc"]) or "body"
    return HttpError(422, f"{where}: {first['msg']}", kind="ValidationError", details=details)


def checked(check: Callable[[_In], _Out], value: _In) -> _Out:
    """``check(value)``, its error a 422: a malformed name or value in the request, not a conflict with what
    the registry holds (the same error raised deeper, say a label rule, keeps its own status)."""
    try:
        return check(value)
    except PromptlaneError as exc:
        raise HttpError(422, str(exc), kind="ValidationError") from None


_STATUS: tuple[tuple[type[PromptlaneError], int], ...] = (
    (AuthError, 401),
    (NotFoundError, 404),
    (GateError, 409),
    (TokenError, 409),
    (LabelError, 409),
    (SpecError, 422),
    (TemplateError, 422),
    (VariableError, 422),
    (RegistryUnavailableError, 503),
)


def status_for(exc: Exception) -> int:
    """The HTTP status an error calls for (400 for one no rule names)."""
    if isinstance(exc, (HttpError, AuthError)):
        return exc.status
    return next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)


def error_response(exc: Exception) -> Response:
    """The JSON error answer for ``exc``: ``{"error": message, "type": ...}`` with the matching status."""
    if isinstance(exc, HttpError):
        retry = exc.extra.get("retry_after")
        headers = {"Retry-After": str(retry)} if retry is not None else None
        return json_response({"error": str(exc), "type": exc.kind, **exc.extra}, status=exc.status, headers=headers)
    if isinstance(exc, AuthError):
        return json_response(
            {"error": str(exc), "type": "AuthError"},
            status=exc.status,
            headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None,
        )
    status = status_for(exc)
    body: dict[str, Any] = {"error": str(exc), "type": type(exc).__name__}
    if isinstance(exc, GateError):
        body["problems"] = exc.problems
    return json_response(body, status=status)
